"""statistics: daily views, referrers, searches, feed subscribers (#22)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 17:00:00

Day buckets of what readers read (`stats_views`, `stats_referrers`), what they searched for
(`stats_searches`) and what feed readers report (`stats_feed_readers`); a rolled-up month
is a row whose period is "month". `stats_recent_views` holds salted hashes for a few
minutes (a repeat view is counted once) and `stats_salts` the day's salt, deleted at
midnight. On SQLite the counting happens in the counters' own file, where
pyproject.blog.stats makes the same tables; these stay empty there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def _counted(name: str, *key: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("page", sa.String(220), primary_key=True),
        *key,
        sa.Column("period", sa.String(5), nullable=False, server_default="day"),
        sa.Column("post_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("views", sa.Integer(), nullable=False, server_default="0"),
    )


def upgrade() -> None:
    _counted("stats_views")
    op.create_index("ix_stats_views_day_post", "stats_views", ["day", "post_id", "views"])
    op.create_index("ix_stats_views_post", "stats_views", ["post_id", "day"])
    op.create_index("ix_stats_views_author", "stats_views", ["author_id", "day"])
    _counted("stats_referrers", sa.Column("referrer", sa.String(253), primary_key=True))
    op.create_index("ix_stats_referrers_post", "stats_referrers", ["post_id", "day"])
    op.create_index("ix_stats_referrers_author", "stats_referrers", ["author_id", "day"])
    op.create_table(
        "stats_searches",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("term", sa.String(100), primary_key=True),
        sa.Column("searches", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("found", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "stats_feed_readers",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("reader", sa.String(60), primary_key=True),
        sa.Column("feed", sa.String(200), primary_key=True),
        sa.Column("subscribers", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "stats_recent_views",
        sa.Column("digest", sa.String(32), primary_key=True),
        sa.Column("seen_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_stats_recent_views_seen", "stats_recent_views", ["seen_at"])
    op.create_table(
        "stats_salts",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("salt", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stats_salts")
    op.drop_index("ix_stats_recent_views_seen", table_name="stats_recent_views")
    op.drop_table("stats_recent_views")
    op.drop_table("stats_feed_readers")
    op.drop_table("stats_searches")
    op.drop_index("ix_stats_referrers_author", table_name="stats_referrers")
    op.drop_index("ix_stats_referrers_post", table_name="stats_referrers")
    op.drop_table("stats_referrers")
    op.drop_index("ix_stats_views_author", table_name="stats_views")
    op.drop_index("ix_stats_views_post", table_name="stats_views")
    op.drop_index("ix_stats_views_day_post", table_name="stats_views")
    op.drop_table("stats_views")
