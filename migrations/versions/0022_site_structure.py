"""site structure: pages, navigation, settings, series, pins, per-post options (#17)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 17:00:00

A slot reserved so that work on several issues can land side by side; its owner fills in
what it creates.
"""

from __future__ import annotations

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
