"""an index of the posts readers can see

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 03:30:00

Every reader list is the visible posts, newest first. A partial index holding only those
lets a page of the list (deep ones too) be read from the index in order, without visiting
the rows of drafts and trashed posts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

VISIBLE = sa.text("status = 'published' AND deleted_at IS NULL")


def upgrade() -> None:
    # It replaces the index on (status, published_at, id), which also held drafts and
    # trashed posts and led the planner to visit their rows.
    op.drop_index("ix_posts_status_published", table_name="posts")
    op.create_index(
        "ix_posts_visible",
        "posts",
        # status and deleted_at too, so the index covers the filter: no row is read to skip it.
        ["published_at", "id", "status", "deleted_at"],
        sqlite_where=VISIBLE,
        postgresql_where=VISIBLE,
    )


def downgrade() -> None:
    op.drop_index("ix_posts_visible", table_name="posts")
    op.create_index("ix_posts_status_published", "posts", ["status", "published_at", "id"])
