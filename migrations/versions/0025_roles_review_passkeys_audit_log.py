"""roles, review, passkeys, audit log (#20)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 17:00:00

A slot reserved so that work on several issues can land side by side; its owner fills in
what it creates.
"""

from __future__ import annotations

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
