"""fan in: work split across tasks (stage 3's maps), each part's result, and when the last
part was recorded together with the event of the task that combines them

Revision ID: 0017_fan_in
Revises: 0016_tap_jobs
Create Date: 2026-12-05 14:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0017_fan_in'
down_revision = '0016_tap_jobs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fan_in',
    sa.Column('key', sa.String(length=200), nullable=False,
              comment='Names the split work, e.g. stage3:<asn sha256>:survey'),
    sa.Column('parts', sa.Integer(), nullable=False, comment='How many parts the work was split into'),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True,
              comment="When the last part was recorded (and the combining task's event with it)"),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('fan_in_part',
    sa.Column('fan_in_key', sa.String(length=200), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False, comment='0 .. parts - 1'),
    sa.Column('result_uri', sa.String(length=500), nullable=False),
    sa.Column('result_sha256', sa.String(length=64), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['fan_in_key'], ['fan_in.key'], ),
    sa.PrimaryKeyConstraint('fan_in_key', 'part')
    )


def downgrade() -> None:
    op.drop_table('fan_in_part')
    op.drop_table('fan_in')
