"""view counts in a table of their own

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 06:00:00

Every reader's view of a post adds one to its count. In the posts row that rewrote a
record holding the whole post (and, on SQLite, read its overflow pages to do it); on
PostgreSQL it also waited for any author's save holding the row. A narrow table of
(post id, views) makes each view a small write of its own that no save waits for.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "post_views",
        sa.Column(
            "post_id",
            sa.Integer,
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("views", sa.Integer, nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO post_views (post_id, views) SELECT id, view_count FROM posts"
        " WHERE view_count > 0"
    )
    # SQLite (3.35 and later) and PostgreSQL both drop a column in place.
    op.drop_column("posts", "view_count")


def downgrade() -> None:
    op.add_column(
        "posts", sa.Column("view_count", sa.Integer, nullable=False, server_default="0")
    )
    op.execute(
        "UPDATE posts SET view_count = COALESCE("
        "(SELECT views FROM post_views WHERE post_views.post_id = posts.id), 0)"
    )
    op.drop_table("post_views")
