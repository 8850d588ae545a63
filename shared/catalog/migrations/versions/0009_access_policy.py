"""access policy: program embargo flag, dated access changes, audit of operators' exclusive reads

Revision ID: 0009_access_policy
Revises: 0008_reprocessing
Create Date: 2026-12-04 10:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0009_access_policy'
down_revision = '0008_reprocessing'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.add_column(sa.Column('embargoed', sa.Boolean(), nullable=False, server_default=sa.false(),
                                      comment='Data and previews readable by operators only (shared.access)'))
    op.create_table('program_access_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.String(length=5), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False, comment='waiver, extension, embargo or lift (AccessKind)'),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False, comment='From when it applies'),
    sa.Column('months', sa.Integer(), nullable=True, comment="An extension's months"),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('moved', sa.Integer(), nullable=False, comment='Product revisions whose release date it moved'),
    sa.ForeignKeyConstraint(['program_id'], ['program.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('program_access_change', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_program_access_change_program_id'), ['program_id'], unique=False)
    op.create_table('exclusive_read',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user', sa.String(length=200), nullable=False),
    sa.Column('program_id', sa.String(length=5), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False, comment='The file served (data, preview or thumbnail)'),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('why', sa.String(length=16), nullable=False, comment='exclusive or embargoed'),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['program.id'], ),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('exclusive_read', schema=None) as batch_op:
        batch_op.create_index('ix_exclusive_read_time', ['read_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_exclusive_read_user'), ['user'], unique=False)
        batch_op.create_index(batch_op.f('ix_exclusive_read_program_id'), ['program_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('exclusive_read', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exclusive_read_program_id'))
        batch_op.drop_index(batch_op.f('ix_exclusive_read_user'))
        batch_op.drop_index('ix_exclusive_read_time')
    op.drop_table('exclusive_read')
    with op.batch_alter_table('program_access_change', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_program_access_change_program_id'))
    op.drop_table('program_access_change')
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.drop_column('embargoed')
