"""stats views by day and views: the day's most read posts from an index (#13)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 03:00:00

The home page's week's most read asks for today's largest counts by post. A post has one
row a day in `stats_views`, so they are the day's rows, largest first: this index gives
them without reading and grouping every post read today (5 ms at 3,000 of them). On SQLite
the table lives in the counters' own file, where pyproject.blog.stats makes the index.
"""

from __future__ import annotations

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_stats_views_day_views", "stats_views", ["day", "views", "post_id"])


def downgrade() -> None:
    op.drop_index("ix_stats_views_day_views", table_name="stats_views")
