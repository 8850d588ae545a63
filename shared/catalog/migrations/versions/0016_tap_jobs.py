"""tap jobs: the asynchronous TAP queries (UWS), kept in the catalog so that every API process
answers for every job and jobs outlive the process that made them

Jobs are short-lived (one hour): going down drops them, and a client holding a job's URL
gets 404 for it, as for an expired job.

Revision ID: 0016_tap_jobs
Revises: 0015_obscore_view
Create Date: 2026-12-04 23:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0016_tap_jobs'
down_revision = '0015_obscore_view'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tap_job',
    sa.Column('id', sa.String(length=32), nullable=False, comment='The UWS job id (random)'),
    sa.Column('owner', sa.String(length=200), nullable=True,
              comment='The token owner who made it; none: anyone who knows the id'),
    sa.Column('parameters', sa.JSON(), nullable=False, comment='[name, value] pairs, as sent'),
    sa.Column('execution_duration', sa.Float(), nullable=False, comment='Seconds the query may run'),
    sa.Column('phase', sa.String(length=16), nullable=False,
              comment='PENDING, EXECUTING, COMPLETED, ERROR or ABORTED'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('destruction_at', sa.DateTime(timezone=True), nullable=False, comment='Removed after this time'),
    sa.Column('runner', sa.String(length=200), nullable=True, comment='host:pid of the API process that ran it'),
    sa.Column('result', sa.LargeBinary(), nullable=True, comment='The VOTable of a COMPLETED job'),
    sa.Column('error', sa.Text(), nullable=True, comment='Why a job in ERROR failed'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('tap_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tap_job_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_tap_job_destruction_at'), ['destruction_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tap_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tap_job_destruction_at'))
        batch_op.drop_index(batch_op.f('ix_tap_job_owner'))
    op.drop_table('tap_job')
