"""webmentions: mentions received and mentions sent (#18)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 14:40:00

`mentions`: a row per (source page, post of ours) another site told us about, pending
until verified, then with its kind and author. `sent_mentions`: a row per (post, link in
it) we told about, with the post's revision then, so a link is told again only when the
post changed. `mentioned_revisions`: the revision of each post whose links were last
looked at, so a scheduled post is looked at when it goes live; posts already written are
marked, so upgrading sends nothing for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mentions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(2000), nullable=False),
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("author_name", sa.String(100), nullable=False),
        sa.Column("author_url", sa.String(2000), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("queued", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("source", "post_id", name="uq_mentions_source_post"),
    )
    op.create_index("ix_mentions_post_state", "mentions", ["post_id", "state", "kind"])
    op.create_table(
        "sent_mentions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("target", sa.String(2000), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("post_id", "target", name="uq_sent_mentions_post_target"),
    )

    op.create_table(
        "mentioned_revisions",
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("revision", sa.Integer(), nullable=False),
    )
    # Posts written before this are taken as told: upgrading sends no Webmention for them.
    op.execute("INSERT INTO mentioned_revisions (post_id, revision) SELECT id, revision FROM posts")


def downgrade() -> None:
    op.drop_table("mentioned_revisions")
    op.drop_table("sent_mentions")
    op.drop_index("ix_mentions_post_state", table_name="mentions")
    op.drop_table("mentions")
