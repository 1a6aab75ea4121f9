"""subscribers, and when each post was announced to them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 05:20:00

A row per reader who subscribed to new posts by email: the address, its state (pending
until the confirmation link is followed, confirmed, unsubscribed), the dates, and a
random secret their links are signed with. Nothing else about them is kept.

`posts.announced_at` says when subscribers were mailed a post. Every post already public
when this runs is marked announced at its publication time, so upgrading never mails
old posts; scheduled posts still to come stay unmarked and are announced when they go
live.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_confirm_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("email"),
    )
    op.create_index("ix_subscribers_state", "subscribers", ["state", "id"])
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True))

    # Typed columns, so the time compares as each dialect stores it (naive UTC on SQLite).
    posts = sa.table(
        "posts",
        sa.column("published_at", sa.DateTime(timezone=True)),
        sa.column("announced_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.execute(
        posts.update()
        .where(posts.c.published_at.is_not(None), posts.c.published_at <= now)
        .values(announced_at=posts.c.published_at)
    )


def downgrade() -> None:
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_column("announced_at")
    op.drop_index("ix_subscribers_state", table_name="subscribers")
    op.drop_table("subscribers")
