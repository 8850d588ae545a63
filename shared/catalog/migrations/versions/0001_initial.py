"""initial catalog: programs to artifacts, outbox, rejections, dead letters

Revision ID: 0001
Revises:
Create Date: 2026-11-21 04:39:17.910842
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index('ix_event_pending', ['dispatched_at', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_type'), ['type'], unique=False)

    op.create_table('ingest_rejection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('raw_uri', sa.String(length=500), nullable=False),
    sa.Column('raw_filename', sa.String(length=200), nullable=False),
    sa.Column('raw_sha256', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False, comment='Machine-readable reason code'),
    sa.Column('detail', sa.Text(), nullable=False, comment='What a person can act on'),
    sa.Column('program_id', sa.String(length=5), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('raw_sha256', 'reason', name='uq_rejection_raw_reason')
    )
    with op.batch_alter_table('ingest_rejection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingest_rejection_raw_uri'), ['raw_uri'], unique=False)

    op.create_table('program',
    sa.Column('id', sa.String(length=5), nullable=False, comment='Five-digit program id'),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('pi_name', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=8), nullable=False),
    sa.Column('eap_months', sa.Integer(), nullable=False),
    sa.Column('authorized_users', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('task_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('retriable', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('task_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_failure_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_failure_task'), ['task'], unique=False)

    op.create_table('observation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.String(length=5), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('target_name', sa.String(length=200), nullable=False),
    sa.Column('target_ra', sa.Float(), nullable=True),
    sa.Column('target_dec', sa.Float(), nullable=True),
    sa.Column('instrument', sa.String(length=16), nullable=False),
    sa.Column('template', sa.String(length=100), nullable=False),
    sa.Column('exp_type', sa.String(length=32), nullable=False),
    sa.Column('filter', sa.String(length=32), nullable=True),
    sa.Column('pupil', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['program_id'], ['program.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'number', name='uq_observation_program_number')
    )
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_observation_program_id'), ['program_id'], unique=False)

    op.create_table('exposure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('observation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False, comment='e.g. jw01234001001_01101_00001_nrca1'),
    sa.Column('visit', sa.Integer(), nullable=False),
    sa.Column('visit_group', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('activity', sa.String(length=2), nullable=False),
    sa.Column('exposure', sa.Integer(), nullable=False),
    sa.Column('detector', sa.String(length=16), nullable=False),
    sa.Column('exp_type', sa.String(length=32), nullable=False),
    sa.Column('filter', sa.String(length=32), nullable=True),
    sa.Column('pupil', sa.String(length=32), nullable=True),
    sa.Column('readpatt', sa.String(length=16), nullable=False),
    sa.Column('subarray', sa.String(length=32), nullable=False),
    sa.Column('ngroups', sa.Integer(), nullable=False),
    sa.Column('nints', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ra', sa.Float(), nullable=True),
    sa.Column('dec', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['observation_id'], ['observation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('exposure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exposure_observation_id'), ['observation_id'], unique=False)

    op.create_table('product',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('suffix', sa.String(length=32), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False, comment='CAOM calibration level'),
    sa.Column('product_type', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('program_id', sa.String(length=5), nullable=False),
    sa.Column('observation_id', sa.Integer(), nullable=True),
    sa.Column('exposure_id', sa.Integer(), nullable=True),
    sa.Column('segment', sa.Integer(), nullable=True),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('meta_release', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data_release', sa.DateTime(timezone=True), nullable=False),
    sa.Column('software_version', sa.String(length=32), nullable=False),
    sa.Column('reference_context', sa.String(length=64), nullable=True),
    sa.Column('inputs', sa.JSON(), nullable=False, comment='Provenance: input filenames'),
    sa.Column('superseded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], ),
    sa.ForeignKeyConstraint(['observation_id'], ['observation.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['program.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('filename', 'revision', name='uq_product_filename_revision')
    )
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.create_index('ix_product_current', ['filename', 'is_current'], unique=False)
        batch_op.create_index(batch_op.f('ix_product_exposure_id'), ['exposure_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_product_filename'), ['filename'], unique=False)
        batch_op.create_index(batch_op.f('ix_product_observation_id'), ['observation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_product_program_id'), ['program_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_product_suffix'), ['suffix'], unique=False)

    op.create_table('artifact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('uri', sa.String(length=500), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uri')
    )
    with op.batch_alter_table('artifact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artifact_product_id'), ['product_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('artifact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artifact_product_id'))

    op.drop_table('artifact')
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_product_suffix'))
        batch_op.drop_index(batch_op.f('ix_product_program_id'))
        batch_op.drop_index(batch_op.f('ix_product_observation_id'))
        batch_op.drop_index(batch_op.f('ix_product_filename'))
        batch_op.drop_index(batch_op.f('ix_product_exposure_id'))
        batch_op.drop_index('ix_product_current')

    op.drop_table('product')
    with op.batch_alter_table('exposure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exposure_observation_id'))

    op.drop_table('exposure')
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_observation_program_id'))

    op.drop_table('observation')
    with op.batch_alter_table('task_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_failure_task'))
        batch_op.drop_index(batch_op.f('ix_task_failure_event_id'))

    op.drop_table('task_failure')
    op.drop_table('program')
    with op.batch_alter_table('ingest_rejection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingest_rejection_raw_uri'))

    op.drop_table('ingest_rejection')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_type'))
        batch_op.drop_index('ix_event_pending')

    op.drop_table('event')
