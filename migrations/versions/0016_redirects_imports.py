"""redirects and imports (#16): old links of imported posts, and web imports under way

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 14:40:00

`redirects` maps a path another platform used ("/2019/05/slug/", "/?p=123") to a post: a
request that would 404 answers 301 to the post instead. `imports` is one web import: the
uploaded file's place in the instance folder, its state, its progress and its report.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "redirects",
        sa.Column("path", sa.String(500), primary_key=True),
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_redirects_post_id", "redirects", ["post_id"])
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("stored", sa.String(255), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_imports_user_id", "imports", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_imports_user_id", table_name="imports")
    op.drop_table("imports")
    op.drop_index("ix_redirects_post_id", table_name="redirects")
    op.drop_table("redirects")
