"""work items: one row per routed task (branch work-ledger)

Revision ID: 0006_work_ledger
Revises: c4e1a9d27b06
Create Date: 2026-12-04 03:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_work_ledger'
down_revision = 'c4e1a9d27b06'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('work_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('task', sa.String(length=100), nullable=False, comment='e.g. detector1.run'),
    sa.Column('state', sa.String(length=16), nullable=False, comment='pending, running, done, failed'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True,
              comment='When its message was last sent (a retry: when the delayed message falls due)'),
    sa.Column('sends', sa.Integer(), nullable=False, comment='Messages sent for it'),
    sa.Column('attempts', sa.Integer(), nullable=False, comment='Times a worker claimed it'),
    sa.Column('worker', sa.String(length=200), nullable=True, comment='host:pid of the last worker to claim it'),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True, comment='When the last claim began'),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True,
              comment='A running claim expires then unless extended'),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'task', name='uq_work_item_event_task')
    )
    with op.batch_alter_table('work_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_item_event_id'), ['event_id'], unique=False)
        batch_op.create_index('ix_work_item_state_task', ['state', 'task'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('work_item', schema=None) as batch_op:
        batch_op.drop_index('ix_work_item_state_task')
        batch_op.drop_index(batch_op.f('ix_work_item_event_id'))

    op.drop_table('work_item')
