"""the rate-events table: uses of throttled actions (password resets, subscriptions)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 05:00:00

A row per use of an action, under an HMAC of its key (a client address, an email
address), so limits can be counted without keeping who asked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rate_events_key", "rate_events", ["action", "key", "at"])


def downgrade() -> None:
    op.drop_index("ix_rate_events_key", table_name="rate_events")
    op.drop_table("rate_events")
