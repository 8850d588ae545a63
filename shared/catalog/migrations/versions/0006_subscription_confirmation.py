"""api-hardening: subscriptions are confirmed before anything is sent

Revision ID: c4e1a9d27b06
Revises: 0005
Create Date: 2026-12-04 03:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'c4e1a9d27b06'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True,
                                      comment='when the target confirmed it (e-mail: the link was followed); nothing is sent before'))
        batch_op.add_column(sa.Column('confirm_token_sha256', sa.String(length=64), nullable=True,
                                      comment="sha256 of the confirmation link's token, while one is out"))
        batch_op.add_column(sa.Column('confirm_sent_at', sa.DateTime(timezone=True), nullable=True,
                                      comment='when that link was sent'))
    # Subscriptions made before confirmation existed keep working: they count as confirmed.
    op.execute("UPDATE subscription SET confirmed_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_column('confirm_sent_at')
        batch_op.drop_column('confirm_token_sha256')
        batch_op.drop_column('confirmed_at')
