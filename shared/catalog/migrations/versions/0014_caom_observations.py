"""caom observations: MAST's observation rows (one per Level-3 product, one per exposure and
detector), their files, members and program observations; a product's sky footprint

Existing catalogs get their rows when the schema reaches head
(:func:`shared.catalog.db.upgrade` runs :func:`shared.catalog.caom.backfill`): the rows are
computed from the catalog with the models of the head schema, which a migration cannot rely on.

Revision ID: 0014_caom_observations
Revises: 0013_search_indexes
Create Date: 2026-12-04 16:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0014_caom_observations'
down_revision = '0013_search_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.add_column(sa.Column('s_region', sa.Text(), nullable=True,
                                      comment='Sky footprint (S_REGION of the file, or of its pointing): '
                                              'POLYGON ICRS ra dec ...'))
    op.create_table('caom_observation',
    sa.Column('id', sa.Integer(), nullable=False, comment="MAST's obsid (Product Group ID)"),
    sa.Column('obs_id', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False, comment='exposure or level3'),
    sa.Column('program_id', sa.String(length=5), nullable=False),
    sa.Column('observation_id', sa.Integer(), nullable=True, comment='Its (first) program observation'),
    sa.Column('exposure_id', sa.Integer(), nullable=True),
    sa.Column('association_id', sa.Integer(), nullable=True, comment='Level 3: the association that made it'),
    sa.Column('calib_level', sa.Integer(), nullable=False),
    sa.Column('instrument_name', sa.String(length=64), nullable=False, comment='INSTRUMENT/MODE, e.g. NIRCAM/IMAGE'),
    sa.Column('filters', sa.String(length=64), nullable=False),
    sa.Column('target_name', sa.String(length=200), nullable=False),
    sa.Column('dataproduct_type', sa.String(length=16), nullable=True),
    sa.Column('s_ra', sa.Float(), nullable=True),
    sa.Column('s_dec', sa.Float(), nullable=True),
    sa.Column('hpx', sa.BigInteger(), nullable=True,
              comment='HEALPix pixel of (s_ra, s_dec) (shared.catalog.sky): the cone\'s index'),
    sa.Column('s_region', sa.Text(), nullable=True),
    sa.Column('t_min', sa.DateTime(timezone=True), nullable=True),
    sa.Column('t_max', sa.DateTime(timezone=True), nullable=True),
    sa.Column('t_exptime', sa.Float(), nullable=True, comment='Effective exposure time, s'),
    sa.Column('em_min', sa.Float(), nullable=True, comment='Shortest wavelength, nm'),
    sa.Column('em_max', sa.Float(), nullable=True, comment='Longest wavelength, nm'),
    sa.Column('t_obs_release', sa.DateTime(timezone=True), nullable=True,
              comment='Latest data release of its current products'),
    sa.Column('top_filename', sa.String(length=200), nullable=True,
              comment='Its highest-level science product: dataURL, and jpegURL when it has a preview'),
    sa.Column('n_products', sa.Integer(), nullable=False, comment='Current files of its own'),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['association_id'], ['association.id'], ),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], ),
    sa.ForeignKeyConstraint(['observation_id'], ['observation.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['program.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('exposure_id'),
    sa.UniqueConstraint('obs_id')
    )
    with op.batch_alter_table('caom_observation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_caom_observation_calib_level'), ['calib_level'], unique=False)
        batch_op.create_index(batch_op.f('ix_caom_observation_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_caom_observation_observation_id'), ['observation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_caom_observation_program_id'), ['program_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_caom_observation_hpx'), ['hpx'], unique=False)
    op.create_table('caom_product',
    sa.Column('caom_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['caom_id'], ['caom_observation.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('caom_id', 'filename')
    )
    with op.batch_alter_table('caom_product', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_caom_product_filename'), ['filename'], unique=False)
    op.create_table('caom_member',
    sa.Column('caom_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['caom_id'], ['caom_observation.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['caom_observation.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('caom_id', 'member_id')
    )
    with op.batch_alter_table('caom_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_caom_member_member_id'), ['member_id'], unique=False)
    op.create_table('caom_observation_link',
    sa.Column('caom_id', sa.Integer(), nullable=False),
    sa.Column('observation_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['caom_id'], ['caom_observation.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['observation_id'], ['observation.id'], ),
    sa.PrimaryKeyConstraint('caom_id', 'observation_id')
    )
    with op.batch_alter_table('caom_observation_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_caom_observation_link_observation_id'), ['observation_id'], unique=False)


def downgrade() -> None:
    for table, index in (('caom_observation_link', 'observation_id'), ('caom_member', 'member_id'),
                         ('caom_product', 'filename')):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_{index}'))
        op.drop_table(table)
    with op.batch_alter_table('caom_observation', schema=None) as batch_op:
        for column in ('hpx', 'program_id', 'observation_id', 'kind', 'calib_level'):
            batch_op.drop_index(batch_op.f(f'ix_caom_observation_{column}'))
    op.drop_table('caom_observation')
    with op.batch_alter_table('product', schema=None) as batch_op:
        batch_op.drop_column('s_region')
