"""prerequisites: the observations an observation is the pre-image of; wavefront-sensing OPD files

Revision ID: 0011_prerequisites
Revises: 0009_access_policy
Create Date: 2026-12-04 13:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0011_prerequisites'
down_revision = '0009_access_policy'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pre_image_for', sa.JSON(), nullable=True,
                                      comment='Observation numbers this one is the pre-image of (prerequisite products)'))
    op.create_table('wavefront_opd',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('date_obs', sa.DateTime(timezone=True), nullable=False, comment='When the wavefront was sensed (UTC)'),
    sa.Column('aperture', sa.String(length=32), nullable=False, comment='Field point, e.g. NRCA3_FP1'),
    sa.Column('rms_nm', sa.Float(), nullable=False, comment='rms OPD over the pupil, nm'),
    sa.Column('uri', sa.String(length=500), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('filename')
    )
    with op.batch_alter_table('wavefront_opd', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wavefront_opd_date_obs'), ['date_obs'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('wavefront_opd', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wavefront_opd_date_obs'))
    op.drop_table('wavefront_opd')
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.drop_column('pre_image_for')
