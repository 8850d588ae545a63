"""associations: what each candidate expects and the members of the last ASN emitted

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 07:10:21.797605
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('association',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.String(length=5), nullable=False),
    sa.Column('acid', sa.String(length=8), nullable=False, comment='Candidate: oNNN, c1NNN or a3NNN'),
    sa.Column('asn_type', sa.String(length=16), nullable=False, comment='image2, tso-image2, image3, tso3, ...'),
    sa.Column('product_name', sa.String(length=200), nullable=False, comment='Lv2: the exposure id; Lv3: the product name'),
    sa.Column('asn_rule', sa.String(length=64), nullable=False, comment='e.g. candidate_Asn_Lv3Image'),
    sa.Column('level', sa.Integer(), nullable=False, comment='2 or 3'),
    sa.Column('complete', sa.Boolean(), nullable=False, comment='Every required member exists'),
    sa.Column('expected', sa.JSON(), nullable=False, comment='Required member filenames'),
    sa.Column('waiting', sa.JSON(), nullable=False, comment='Required members not archived yet'),
    sa.Column('members', sa.JSON(), nullable=False, comment='[filename, revision, exptype] of each member of the last ASN emitted'),
    sa.Column('filename', sa.String(length=200), nullable=True, comment='Last ASN file emitted'),
    sa.Column('version_id', sa.String(length=16), nullable=True, comment='version_id of the last ASN emitted'),
    sa.Column('pool', sa.String(length=64), nullable=True, comment='Pool the last ASN was built from'),
    sa.Column('product_id', sa.Integer(), nullable=True, comment='The archived ASN file'),
    sa.Column('emitted_count', sa.Integer(), nullable=False, comment='ASNs emitted so far'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('emitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['product_id'], ['product.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['program.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('program_id', 'acid', 'asn_type', 'product_name', name='uq_association_key')
    )
    with op.batch_alter_table('association', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_association_filename'), ['filename'], unique=False)
        batch_op.create_index(batch_op.f('ix_association_program_id'), ['program_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('association', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_association_program_id'))
        batch_op.drop_index(batch_op.f('ix_association_filename'))

    op.drop_table('association')
