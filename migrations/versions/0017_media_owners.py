"""media owners: a picture in the library of every author who uploaded it (#15)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 14:35:00
"""

from __future__ import annotations

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
