"""writing desk: per-post and per-author editor and reading options (#23)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 17:00:00

A slot reserved so that work on several issues can land side by side; its owner fills in
what it creates.
"""

from __future__ import annotations

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
