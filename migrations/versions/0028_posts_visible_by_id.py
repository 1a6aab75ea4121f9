"""posts visible by id: related posts are ranked from an index, not from posts' rows (#13)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 23:00:00

The end of a post weighs about 80 candidates (the newest posts of each of its tags) and
keeps the 3 sharing most tags. Whether a candidate is visible was read from its row, where
the columns that say so come after the body: on SQLite each check read the whole body
(5 to 6 pages). This index holds them by id, for the visible posts only, so the ranking
reads no row (pyproject.blog.reading names it on SQLite).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

VISIBLE = "status = 'published' AND deleted_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_posts_visible_by_id",
        "posts",
        ["id", "published_at", "kind", "status", "deleted_at"],
        sqlite_where=sa.text(VISIBLE),
        postgresql_where=sa.text(VISIBLE),
    )


def downgrade() -> None:
    op.drop_index("ix_posts_visible_by_id", table_name="posts")
