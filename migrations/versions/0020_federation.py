"""federation: actors, keys, followers, deliveries, inbox log (#19)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 17:00:00

ActivityPub (pyproject/blog/activitypub.py). `federation_keys`: the RSA key pair of each
of our actors (the blog, each author), made when first needed. `federation_remote_actors`:
actors of other servers we heard from, with their inbox and public key (a cache, refetched
when a signature fails). `federation_followers`: who follows which of our actors (pending
while the admin approves). `federation_posts`: what followers were last told of each post
(Create, Update or Delete), so an edit or a move to the trash is told once.
`federation_deliveries`: one row per activity per (shared) inbox, with its retries.
`federation_domains`: a domain's failures, paused after a week of them. `federation_blocks`:
blocked domains and actors. `federation_inbox_log`: what came to our inboxes and whether it
verified. `federation_reactions`: likes and announces of our posts, by name.
Posts written before this are marked as told: upgrading sends nothing for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "federation_keys",
        sa.Column("actor", sa.String(80), primary_key=True),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("private_pem", sa.Text(), nullable=False),
        _when("created_at"),
    )
    op.create_table(
        "federation_remote_actors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uri", sa.String(2000), nullable=False),
        sa.Column("key_id", sa.String(2000), nullable=False),
        sa.Column("inbox", sa.String(2000), nullable=False),
        sa.Column("shared_inbox", sa.String(2000), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        _when("fetched_at"),
        sa.UniqueConstraint("uri", name="uq_federation_remote_actors_uri"),
    )
    op.create_index("ix_federation_remote_actors_key", "federation_remote_actors", ["key_id"])
    op.create_table(
        "federation_followers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("local_actor", sa.String(80), nullable=False),
        sa.Column(
            "remote_actor_id",
            sa.Integer(),
            sa.ForeignKey("federation_remote_actors.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("follow_activity", sa.String(2000), nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        _when("created_at"),
        _when("accepted_at", nullable=True),
        sa.UniqueConstraint(
            "local_actor", "remote_actor_id", name="uq_federation_followers_actor_remote"
        ),
    )
    op.create_index(
        "ix_federation_followers_state", "federation_followers", ["local_actor", "state"]
    )
    op.create_table(
        "federation_posts",
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("creates", sa.Integer(), nullable=False),
        _when("told_at"),
    )
    op.create_table(
        "federation_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("inbox", sa.String(2000), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("activity", sa.Text(), nullable=False),
        sa.Column("audience", sa.String(400), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=False),
        _when("created_at"),
        _when("next_attempt_at"),
        _when("done_at", nullable=True),
    )
    op.create_index(
        "ix_federation_deliveries_due",
        "federation_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_index("ix_federation_deliveries_domain", "federation_deliveries", ["domain", "state"])
    op.create_table(
        "federation_domains",
        sa.Column("domain", sa.String(255), primary_key=True),
        _when("failing_since", nullable=True),
        _when("paused_at", nullable=True),
        _when("last_success_at", nullable=True),
        sa.Column("last_error", sa.String(500), nullable=False),
    )
    op.create_table(
        "federation_blocks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("value", sa.String(2000), nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("kind", "value", name="uq_federation_blocks_kind_value"),
    )
    op.create_table(
        "federation_inbox_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("activity_id", sa.String(2000), nullable=False),
        sa.Column("activity_type", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(2000), nullable=False),
        sa.Column("inbox", sa.String(80), nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        _when("received_at"),
    )
    op.create_index(
        "ix_federation_inbox_log_activity",
        "federation_inbox_log",
        ["activity_id", "outcome"],
    )
    op.create_table(
        "federation_reactions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "post_id",
            sa.Integer(),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("actor_uri", sa.String(2000), nullable=False),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("actor_url", sa.String(2000), nullable=False),
        sa.Column("activity_id", sa.String(2000), nullable=False),
        _when("created_at"),
        sa.UniqueConstraint(
            "post_id", "kind", "actor_uri", name="uq_federation_reactions_post_kind_actor"
        ),
    )
    # Posts written before this are taken as told: upgrading delivers nothing for them.
    op.execute(
        "INSERT INTO federation_posts (post_id, revision, state, creates, told_at)"
        " SELECT id, revision, 'created', 1, updated_at FROM posts"
        " WHERE status = 'published' AND deleted_at IS NULL"
        " AND published_at <= CURRENT_TIMESTAMP"
    )


def downgrade() -> None:
    op.drop_table("federation_reactions")
    op.drop_index("ix_federation_inbox_log_activity", table_name="federation_inbox_log")
    op.drop_table("federation_inbox_log")
    op.drop_table("federation_blocks")
    op.drop_table("federation_domains")
    op.drop_index("ix_federation_deliveries_domain", table_name="federation_deliveries")
    op.drop_index("ix_federation_deliveries_due", table_name="federation_deliveries")
    op.drop_table("federation_deliveries")
    op.drop_table("federation_posts")
    op.drop_index("ix_federation_followers_state", table_name="federation_followers")
    op.drop_table("federation_followers")
    op.drop_index("ix_federation_remote_actors_key", table_name="federation_remote_actors")
    op.drop_table("federation_remote_actors")
    op.drop_table("federation_keys")
