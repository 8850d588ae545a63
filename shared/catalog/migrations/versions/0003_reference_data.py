"""reference files and numbered reference contexts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 05:09:37.476169
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reference_context',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False, comment='Context number'),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['reference_context.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('reference_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('reftype', sa.String(length=32), nullable=False, comment='REFTYPE, e.g. DARK'),
    sa.Column('instrument', sa.String(length=16), nullable=False, comment='INSTRUME, e.g. NIRCAM'),
    sa.Column('selectors', sa.JSON(), nullable=False, comment='Selector keyword -> value or pattern (A|B, ANY, N/A, GENERIC)'),
    sa.Column('useafter', sa.DateTime(timezone=True), nullable=False, comment='Applies to exposures starting at or after this'),
    sa.Column('uri', sa.String(length=500), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('pedigree', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('filename')
    )
    with op.batch_alter_table('reference_file', schema=None) as batch_op:
        batch_op.create_index('ix_reference_file_lookup', ['instrument', 'reftype'], unique=False)
        batch_op.create_index(batch_op.f('ix_reference_file_sha256'), ['sha256'], unique=False)

    op.create_table('reference_context_file',
    sa.Column('context_id', sa.Integer(), nullable=False),
    sa.Column('reference_file_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['context_id'], ['reference_context.id'], ),
    sa.ForeignKeyConstraint(['reference_file_id'], ['reference_file.id'], ),
    sa.PrimaryKeyConstraint('context_id', 'reference_file_id')
    )
    with op.batch_alter_table('reference_context_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reference_context_file_reference_file_id'), ['reference_file_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('reference_context_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reference_context_file_reference_file_id'))

    op.drop_table('reference_context_file')
    with op.batch_alter_table('reference_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reference_file_sha256'))
        batch_op.drop_index('ix_reference_file_lookup')

    op.drop_table('reference_file')
    op.drop_table('reference_context')
