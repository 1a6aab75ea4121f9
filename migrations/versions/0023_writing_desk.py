"""writing desk: per-post and per-author editor and reading options (#23)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 17:00:00

A post's automatic table of contents can be turned off (`toc_mode`: "auto" or "off"; a
[TOC] marker in the text always places one). An author has a picture (a media library
picture, shown with the bio at the end of their posts) and a remembered editor font
("sans" or "mono").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain columns with defaults: SQLite adds them in place (the search triggers stay).
    op.add_column(
        "posts", sa.Column("toc_mode", sa.String(5), nullable=False, server_default="auto")
    )
    op.add_column(
        "users", sa.Column("editor_font", sa.String(5), nullable=False, server_default="sans")
    )
    # No reference to media: a picture deleted from the library simply stops showing.
    op.add_column("users", sa.Column("picture_media_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain columns (no reference): SQLite 3.35+ drops them in place, keeping the triggers.
    op.drop_column("users", "picture_media_id")
    op.drop_column("users", "editor_font")
    op.drop_column("posts", "toc_mode")
