"""a post's cover image: posts.cover_media_id, a picture of the media library (#15)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 14:10:00

Nullable, and set to NULL if the picture goes (the library refuses to delete a cover,
so that is only a safety net). Indexed: the library asks which posts use a picture.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


# The search index's triggers on posts (0003): SQLite drops them with the table when a
# batch operation rebuilds it, so a rebuild puts them back.
SQLITE_TRIGGERS = [
    "CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN"
    " INSERT INTO posts_fts (rowid, title, summary, body, tags)"
    " VALUES (new.id, new.title, new.summary, new.body_md, new.tag_names); END",
    "CREATE TRIGGER posts_fts_update AFTER UPDATE OF title, summary, body_md, tag_names"
    " ON posts BEGIN DELETE FROM posts_fts WHERE rowid = old.id;"
    " INSERT INTO posts_fts (rowid, title, summary, body, tags)"
    " VALUES (new.id, new.title, new.summary, new.body_md, new.tag_names); END",
    "CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN"
    " DELETE FROM posts_fts WHERE rowid = old.id; END",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a NULL-default column with its reference in place; batch mode would
        # rebuild the table and lose the search triggers.
        op.execute(
            "ALTER TABLE posts ADD COLUMN cover_media_id INTEGER"
            " REFERENCES media (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("posts", sa.Column("cover_media_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_posts_cover_media_id_media",
            "posts",
            "media",
            ["cover_media_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index("ix_posts_cover_media_id", "posts", ["cover_media_id"])


def downgrade() -> None:
    op.drop_index("ix_posts_cover_media_id", table_name="posts")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot drop a column that holds a reference: rebuild the table.
        with op.batch_alter_table("posts", schema=None) as batch_op:
            batch_op.drop_column("cover_media_id")
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.drop_constraint("fk_posts_cover_media_id_media", "posts", type_="foreignkey")
        op.drop_column("posts", "cover_media_id")
