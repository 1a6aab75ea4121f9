"""search index and site version

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:08:40.687973

SQLite: an FTS5 table kept in sync with posts by triggers, ranked with bm25.
PostgreSQL: a weighted tsvector column generated from the post, with a GIN index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_FTS_COLUMNS = "title, summary, body, tags"
_FTS_VALUES = "new.id, new.title, new.summary, new.body_md, new.tag_names"

SQLITE_UP = [
    "CREATE VIRTUAL TABLE posts_fts USING fts5("
    "title, summary, body, tags, tokenize = 'unicode61 remove_diacritics 2')",
    f"INSERT INTO posts_fts (rowid, {_FTS_COLUMNS}) "
    "SELECT id, title, summary, body_md, tag_names FROM posts",
    f"CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN "
    f"INSERT INTO posts_fts (rowid, {_FTS_COLUMNS}) VALUES ({_FTS_VALUES}); END",
    # Only when searchable text changes: a view count update must not re-index the post.
    f"CREATE TRIGGER posts_fts_update AFTER UPDATE OF title, summary, body_md, tag_names "
    f"ON posts BEGIN DELETE FROM posts_fts WHERE rowid = old.id; "
    f"INSERT INTO posts_fts (rowid, {_FTS_COLUMNS}) VALUES ({_FTS_VALUES}); END",
    "CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN "
    "DELETE FROM posts_fts WHERE rowid = old.id; END",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS posts_fts_delete",
    "DROP TRIGGER IF EXISTS posts_fts_update",
    "DROP TRIGGER IF EXISTS posts_fts_insert",
    "DROP TABLE IF EXISTS posts_fts",
]
POSTGRES_UP = [
    "ALTER TABLE posts ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(tag_names, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(summary, '')), 'B') || "
    "setweight(to_tsvector('english', coalesce(body_md, '')), 'D')) STORED",
    "CREATE INDEX ix_posts_search_vector ON posts USING gin (search_vector)",
]
POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS ix_posts_search_vector",
    "ALTER TABLE posts DROP COLUMN IF EXISTS search_vector",
]


def upgrade() -> None:
    op.create_table(
        "site_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO site_state (id, version, changed_at) VALUES (1, 1, CURRENT_TIMESTAMP)")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tag_names", sa.Text(), nullable=False, server_default=""))
    op.execute(
        "UPDATE posts SET tag_names = coalesce((SELECT "
        + (
            "string_agg(tags.name, ' ' ORDER BY tags.name)"
            if op.get_bind().dialect.name == "postgresql"
            else "group_concat(tags.name, ' ')"
        )
        + " FROM post_tags JOIN tags ON tags.id = post_tags.tag_id"
        " WHERE post_tags.post_id = posts.id), '')"
    )
    statements = SQLITE_UP if op.get_bind().dialect.name == "sqlite" else POSTGRES_UP
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    statements = SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else POSTGRES_DOWN
    for statement in statements:
        op.execute(statement)
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_column("tag_names")
    op.drop_table("site_state")
