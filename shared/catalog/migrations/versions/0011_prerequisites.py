"""prerequisites: the observations an observation is the pre-image of

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


def downgrade() -> None:
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.drop_column('pre_image_for')
