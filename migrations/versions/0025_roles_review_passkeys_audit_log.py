"""roles, review, passkeys, audit log (#20)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-04 17:00:00

The audit log, passkeys and the review of contributors' posts get tables of their own;
users.role and invitations.role widen to 20 characters for "contributor".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("users", "invitations"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "role", existing_type=sa.String(10), type_=sa.String(20), existing_nullable=False
            )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "actor_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("actor_name", sa.String(254), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_action", "audit_log", ["action", "id"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor_id", "id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "passkeys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("credential_id", sa.String(1400), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.Column("transports", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_passkeys_user_id", "passkeys", ["user_id"])
    op.create_table(
        "reviews",
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column(
            "submitted_by",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "reviewer_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reviewed_revision", sa.Integer(), nullable=False),
    )
    op.create_index("ix_reviews_state", "reviews", ["state", "submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_reviews_state", table_name="reviews")
    op.drop_table("reviews")
    op.drop_index("ix_passkeys_user_id", table_name="passkeys")
    op.drop_table("passkeys")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_action", table_name="audit_log")
    op.drop_table("audit_log")
    # Roles longer than the old column cannot stay; contributors become authors' drafts.
    op.execute("UPDATE users SET role = 'author' WHERE role NOT IN ('admin', 'author')")
    op.execute("UPDATE invitations SET role = 'author' WHERE role NOT IN ('admin', 'author')")
    for table in ("invitations", "users"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "role", existing_type=sa.String(20), type_=sa.String(10), existing_nullable=False
            )
