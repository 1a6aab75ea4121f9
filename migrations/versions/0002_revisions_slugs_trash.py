"""revisions, old and gone slugs, trash

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:05:09.191397
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gone_slugs',
    sa.Column('slug', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('gone_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('slug')
    )
    op.create_table('post_slugs',
    sa.Column('slug', sa.String(length=200), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['post_id'], ['posts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('slug')
    )
    with op.batch_alter_table('post_slugs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_post_slugs_post_id'), ['post_id'], unique=False)

    op.create_table('revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body_md', sa.Text(), nullable=False),
    sa.Column('summary', sa.String(length=300), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('words_changed', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['post_id'], ['posts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('post_id', 'number', name='uq_revisions_post_number')
    )
    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.create_index('ix_revisions_post_kind_author', ['post_id', 'kind', 'author_id'], unique=False)

    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))

    # Posts written before revisions existed get their current text as revision 1.
    op.execute("UPDATE posts SET revision = 1")
    op.execute(
        "INSERT INTO revisions (post_id, number, kind, title, body_md, summary, tags, author_id, "
        "words_changed, created_at) SELECT id, 1, 'save', title, body_md, summary, '', author_id, "
        "word_count, updated_at FROM posts"
    )


def downgrade() -> None:
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('revision')

    with op.batch_alter_table('revisions', schema=None) as batch_op:
        batch_op.drop_index('ix_revisions_post_kind_author')

    op.drop_table('revisions')
    with op.batch_alter_table('post_slugs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_post_slugs_post_id'))

    op.drop_table('post_slugs')
    op.drop_table('gone_slugs')
