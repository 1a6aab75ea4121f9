"""comments: readers' answers under posts, held/approved/spam, and a per-post setting (#18)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 14:30:00

posts.comments is "auto", "open" or "closed" (a NOT NULL column with a default: SQLite adds
it in place, so the search triggers on posts stay).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "posts",
        sa.Column("comments", sa.String(10), nullable=False, server_default="auto"),
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "post_id", sa.Integer(), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "parent_id",
            sa.Integer(),
            sa.ForeignKey("comments.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(254), nullable=False, server_default=""),
        sa.Column("website", sa.String(300), nullable=False, server_default=""),
        sa.Column("body_md", sa.Text(), nullable=False, server_default=""),
        sa.Column("body_html", sa.Text(), nullable=False, server_default=""),
        sa.Column("state", sa.String(10), nullable=False, server_default="held"),
        sa.Column("kind", sa.String(12), nullable=False, server_default="comment"),
        sa.Column("source_url", sa.String(2000), nullable=False, server_default=""),
        sa.Column("identity", sa.String(64), nullable=False, server_default=""),
        sa.Column("client", sa.String(64), nullable=False, server_default=""),
        sa.Column("notify_replies", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_comments_parent_id", "comments", ["parent_id"])
    op.create_index("ix_comments_post_state", "comments", ["post_id", "state", "parent_id", "id"])
    op.create_index("ix_comments_identity", "comments", ["identity", "state"])
    op.create_index("ix_comments_state", "comments", ["state", "id"])
    op.create_index("ix_comments_source", "comments", ["source_url", "post_id"])


def downgrade() -> None:
    op.drop_table("comments")
    # A plain column (no index, no reference): SQLite 3.35+ drops it in place, keeping
    # the search triggers on posts.
    op.drop_column("posts", "comments")
