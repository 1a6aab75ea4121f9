"""media owners: a picture in the library of every author who uploaded it (#15)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 14:35:00
"""

from __future__ import annotations

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
