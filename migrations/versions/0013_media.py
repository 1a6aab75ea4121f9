"""the media table: uploaded pictures, named by the upload's SHA-256 (#15)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 05:20:00

One row per distinct upload: who uploaded it, its cleaned original's format and size, its
alt text, and the variants the job made (JSON). Which posts use a picture is read from
their Markdown, so there is no link table to keep in step.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "owner_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("source_format", sa.String(10), nullable=False),
        sa.Column("ext", sa.String(5), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("animated", sa.Boolean(), nullable=False),
        sa.Column("alt", sa.Text(), nullable=False),
        sa.Column("decorative", sa.Boolean(), nullable=False),
        sa.Column("variants", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_media_owner_id", "media", ["owner_id"])


def downgrade() -> None:
    op.drop_index("ix_media_owner_id", table_name="media")
    op.drop_table("media")
