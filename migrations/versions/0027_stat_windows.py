"""stat windows: the past days' sums of /stats, kept for every worker and host (#22)

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 06:00:00

The first /stats render of a day summed every past day of its window again in each worker
(0.6 s for an admin's year at 100,000 posts), since the sums were kept in the worker's
memory only. They are now rows of `stats_windows`, written by whichever worker first needs
them and by a periodic job for the site's standard windows; `stats_generation` holds the
number that writes to past days (imports, the roll-up into months) move on, which makes
every kept row stale at once. On SQLite both live in the counters' own file, where
pyproject.blog.stats makes them; these stay empty there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stats_windows",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("first_day", sa.Date(), primary_key=True),
        sa.Column("last_day", sa.Date(), primary_key=True),
        sa.Column("author_id", sa.Integer(), primary_key=True),
        sa.Column("minimum", sa.Integer(), primary_key=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("sums", sa.Text(), nullable=False),
    )
    op.create_table(
        "stats_generation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("stats_generation")
    op.drop_table("stats_windows")
