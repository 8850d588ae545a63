"""access granted by the PI

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 05:34:41.102544
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.add_column(sa.Column('granted_users', sa.JSON(), nullable=False, server_default=sa.text("'[]'"), comment='Granted by the PI through the API'))


def downgrade() -> None:
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.drop_column('granted_users')

