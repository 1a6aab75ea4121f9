"""media owners: a picture in the library of every author who uploaded it (#15)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 14:35:00

The same bytes uploaded by two authors are one picture (one URL, one set of files); each
author gets a row here, with their own label and alt text, so the picture is in both
libraries and leaves one without leaving the other. Every picture's uploader gets their
row now. The media table keeps its owner, label and alt columns (those of the first
uploader): rebuilding it on SQLite would empty the posts' cover references.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_owners",
        sa.Column(
            "media_id",
            sa.Integer(),
            sa.ForeignKey("media.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("alt", sa.Text(), nullable=False),
        sa.Column("decorative", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_media_owners_user_id", "media_owners", ["user_id"])
    op.execute(
        "INSERT INTO media_owners (media_id, user_id, filename, alt, decorative, created_at)"
        " SELECT id, owner_id, filename, alt, decorative, created_at FROM media"
    )


def downgrade() -> None:
    op.drop_index("ix_media_owners_user_id", table_name="media_owners")
    op.drop_table("media_owners")
