"""a small search vector of each post's title, tags and summary (PostgreSQL)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 22:00:00

Ranking every match of a common word read and decompressed each match's whole
tsvector (the body's words and positions): half a second for a word in half of 100,000
posts. Search now ranks the matches in a post's head (title, tags, summary) by this
small vector, which has a GIN index of its own, and lists body-only matches after them,
newest first, reading a body's vector only to confirm a match. SQLite's FTS5 table is
unchanged.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

POSTGRES_UP = [
    "ALTER TABLE posts ADD COLUMN search_head tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(tag_names, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(summary, '')), 'B')) STORED",
    "CREATE INDEX ix_posts_search_head ON posts USING gin (search_head)",
]
POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS ix_posts_search_head",
    "ALTER TABLE posts DROP COLUMN IF EXISTS search_head",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_DOWN:
            op.execute(statement)
