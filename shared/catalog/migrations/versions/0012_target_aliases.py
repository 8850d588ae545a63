"""target aliases: other names of an observation's target, from the plan (name resolution)

Revision ID: 0012_target_aliases
Revises: 0011_prerequisites
Create Date: 2026-12-04 16:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0012_target_aliases'
down_revision = '0011_prerequisites'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target_aliases', sa.JSON(), nullable=True,
                                      comment='Other names of the target, from the plan (name resolution)'))


def downgrade() -> None:
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.drop_column('target_aliases')
