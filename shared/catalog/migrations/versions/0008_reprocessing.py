"""reprocessing requests, units and reference impact

Revision ID: 0008_reprocessing
Revises: 0006_work_ledger
Create Date: 2026-12-04 09:11:14.079815
"""

import sqlalchemy as sa
from alembic import op

revision = '0008_reprocessing'
down_revision = '0006_work_ledger'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reprocessing_request',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False, comment='sha256 of scope, stage and context'),
    sa.Column('program_id', sa.String(length=5), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=False, comment='observations, exposures, products, association'),
    sa.Column('from_stage', sa.String(length=16), nullable=False, comment='detector1, stage2 or stage3'),
    sa.Column('reference_context', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('software_reason', sa.Text(), nullable=True, comment='A software change that motivates it'),
    sa.Column('requested_by', sa.String(length=200), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False, comment='user, operator or reference (policy)'),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['program_id'], ['program.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('reprocessing_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reprocessing_request_program_id'), ['program_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reprocessing_request_state'), ['state'], unique=False)

    op.create_table('reference_impact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('context', sa.String(length=64), nullable=False, comment='The new context'),
    sa.Column('parent', sa.String(length=64), nullable=True, comment='The context the exposure was calibrated with'),
    sa.Column('program_id', sa.String(length=5), nullable=False),
    sa.Column('exposure_name', sa.String(length=64), nullable=False),
    sa.Column('first_stage', sa.String(length=16), nullable=False, comment='detector1, stage2 or stage3'),
    sa.Column('references', sa.JSON(), nullable=False, comment='[{reftype, step, old, new}] of each reference that differs'),
    sa.Column('request_id', sa.String(length=36), nullable=True, comment='The request the policy opened for it'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['program_id'], ['program.id'], ),
    sa.ForeignKeyConstraint(['request_id'], ['reprocessing_request.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('context', 'exposure_name', name='uq_reference_impact')
    )
    with op.batch_alter_table('reference_impact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reference_impact_context'), ['context'], unique=False)
        batch_op.create_index(batch_op.f('ix_reference_impact_program_id'), ['program_id'], unique=False)

    op.create_table('reprocessing_unit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False, comment='exposure or association'),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False, comment='The stage it runs (or ran) last'),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('pending', sa.JSON(), nullable=False,
              comment='Inputs whose step of this stage is still due (segments, ASN files)'),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['reprocessing_request.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id', 'kind', 'name', name='uq_reprocessing_unit')
    )
    with op.batch_alter_table('reprocessing_unit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reprocessing_unit_request_id'), ['request_id'], unique=False)

    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=36), nullable=True, comment='The reprocessing request that made this revision (None: operational processing)'))
        batch_op.add_column(sa.Column('request_unit', sa.String(length=200), nullable=True, comment='The unit of that request it belongs to (an exposure, an association)'))
        batch_op.add_column(sa.Column('abandoned_at', sa.DateTime(timezone=True), nullable=True, comment="A request's revision that never became current (the request failed or was cancelled)"))
        batch_op.add_column(sa.Column('reason', sa.JSON(), nullable=True, comment='Why a reprocessed revision was made: request, contexts, references that differ'))
        batch_op.add_column(sa.Column('changes', sa.JSON(), nullable=True, comment='How it differs from the revision it replaces (shared.changes)'))
        batch_op.create_index(batch_op.f('ix_product_request_id'), ['request_id'], unique=False)
        batch_op.create_foreign_key('fk_product_request_id', 'reprocessing_request', ['request_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.drop_constraint('fk_product_request_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_product_request_id'))
        batch_op.drop_column('changes')
        batch_op.drop_column('reason')
        batch_op.drop_column('abandoned_at')
        batch_op.drop_column('request_unit')
        batch_op.drop_column('request_id')

    with op.batch_alter_table('reprocessing_unit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reprocessing_unit_request_id'))

    op.drop_table('reprocessing_unit')
    with op.batch_alter_table('reference_impact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reference_impact_program_id'))
        batch_op.drop_index(batch_op.f('ix_reference_impact_context'))

    op.drop_table('reference_impact')
    with op.batch_alter_table('reprocessing_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reprocessing_request_state'))
        batch_op.drop_index(batch_op.f('ix_reprocessing_request_program_id'))

    op.drop_table('reprocessing_request')
