"""an index that lists visible posts without reading them

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 06:30:00

The sitemap lists every visible post with when it last changed, and the tag and author
entries need the newest change of their posts. Those columns come after the Markdown and
HTML in a posts row, so reading them read every post whole (a sitemap part of 50,000
posts took seconds). A partial index holding only the visible posts' id, slug, author
and times answers all three from the index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

VISIBLE = sa.text("status = 'published' AND deleted_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_posts_listing",
        "posts",
        ["id", "slug", "author_id", "updated_at", "published_at", "status", "deleted_at"],
        sqlite_where=VISIBLE,
        postgresql_where=VISIBLE,
    )


def downgrade() -> None:
    op.drop_index("ix_posts_listing", table_name="posts")
