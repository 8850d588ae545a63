"""observation tsovisit: the plan's TSOVISIT of each observation (a time series), which makes
its CAOM rows ``timeseries`` whatever the mode (shared.catalog.caom.dataproduct_type)

Observations recorded before stay NULL (not known: their rows are typed by EXP_TYPE alone,
as before) until the program's plan is recorded again (shared.catalog.queries.upsert_program).

Revision ID: 0018_observation_tsovisit
Revises: 0017_fan_in
Create Date: 2026-12-06 13:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0018_observation_tsovisit'
down_revision = '0017_fan_in'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'tsovisit', sa.Boolean(), nullable=True,
            comment='TSOVISIT from the plan: a time-series observation; NULL: not known (recorded before 0018)'))


def downgrade() -> None:
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.drop_column('tsovisit')
