"""statistics: daily views, referrers, searches, feed subscribers (#22)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 17:00:00

A slot reserved so that work on several issues can land side by side; its owner fills in
what it creates.
"""

from __future__ import annotations

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
