"""site structure: pages, navigation, settings, series, pins, per-post options (#17)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 17:00:00

Pages are posts of another `kind` (one machinery: revisions, autosave, trash). Reader
lists show only posts, so the partial index they are read from gains `kind`: a page of
the list is still read from the index alone. Site settings are name/value rows with a
log of every change; menus, series and their posts have small tables of their own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

VISIBLE = sa.text("status = 'published' AND deleted_at IS NULL")


def upgrade() -> None:
    # Plain columns with defaults: SQLite adds them in place (the search triggers stay).
    op.add_column("posts", sa.Column("kind", sa.String(10), nullable=False, server_default="post"))
    op.add_column(
        "posts", sa.Column("noindex", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "posts",
        sa.Column("canonical_override", sa.String(500), nullable=False, server_default=""),
    )
    op.add_column("posts", sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_index("ix_posts_visible", table_name="posts")
    op.create_index(
        "ix_posts_visible",
        "posts",
        ["published_at", "id", "status", "deleted_at", "kind"],
        sqlite_where=VISIBLE,
        postgresql_where=VISIBLE,
    )
    op.create_index("ix_posts_pinned_at", "posts", ["pinned_at"])

    op.create_table(
        "site_settings",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "setting_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=False),
        sa.Column("new_value", sa.Text(), nullable=False),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_setting_changes_changed", "setting_changes", ["changed_at", "id"])
    op.create_table(
        "nav_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("menu", sa.String(10), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(80), nullable=False),
        sa.Column("target_kind", sa.String(10), nullable=False),
        sa.Column("target", sa.String(500), nullable=False, server_default=""),
    )
    op.create_index("ix_nav_links_menu", "nav_links", ["menu", "position"])
    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(200), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "series_posts",
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "series_id",
            sa.Integer(),
            sa.ForeignKey("series.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_index("ix_series_posts_series", "series_posts", ["series_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_series_posts_series", table_name="series_posts")
    op.drop_table("series_posts")
    op.drop_table("series")
    op.drop_index("ix_nav_links_menu", table_name="nav_links")
    op.drop_table("nav_links")
    op.drop_index("ix_setting_changes_changed", table_name="setting_changes")
    op.drop_table("setting_changes")
    op.drop_table("site_settings")
    op.drop_index("ix_posts_pinned_at", table_name="posts")
    op.drop_index("ix_posts_visible", table_name="posts")
    op.create_index(
        "ix_posts_visible",
        "posts",
        ["published_at", "id", "status", "deleted_at"],
        sqlite_where=VISIBLE,
        postgresql_where=VISIBLE,
    )
    # Plain columns (no reference): SQLite 3.35+ drops them in place, keeping the triggers.
    for column in ("pinned_at", "canonical_override", "noindex", "kind"):
        op.drop_column("posts", column)
