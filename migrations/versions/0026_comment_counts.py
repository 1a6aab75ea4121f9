"""comment counts: each post's approved comments and threads, kept as they change (#18)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-04 17:10:00

A post page showed its comment count, and paged its threads, by counting the post's
approved comments in the index on every uncached view: 10,000 comments cost more than the
rest of the page. The counts now live in a row per post with comments, recounted in the
same transaction as any change to a shown comment (comments.track_changes). Filled here
from the comments there are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comment_counts",
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("approved", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("threads", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO comment_counts (post_id, approved, threads) "
        "SELECT post_id, count(*), sum(CASE WHEN parent_id IS NULL THEN 1 ELSE 0 END) "
        "FROM comments WHERE state = 'approved' GROUP BY post_id"
    )


def downgrade() -> None:
    op.drop_table("comment_counts")
