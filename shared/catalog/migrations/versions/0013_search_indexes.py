"""search indexes: HEALPix pixels of pointings and targets, observations' summaries of their
current products, indexes of the archive's searches (filename patterns, suffixes, times)

Revision ID: 0013_search_indexes
Revises: 0012_target_aliases
Create Date: 2026-12-04 16:00:00.000000

The derived columns are filled here for the rows already archived (shared.catalog.summary
keeps them from then on). On PostgreSQL the filename index serves prefix patterns
(``text_pattern_ops``), and a trigram index (the ``pg_trgm`` extension, created when the
database allows it) serves patterns with a leading wildcard.
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = '0013_search_indexes'
down_revision = '0012_target_aliases'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
_BATCH = 20000
# The summary of every observation (as shared.catalog.summary.refresh_observations, frozen here).
_SUMMARY = """
UPDATE observation SET
  current_level = (SELECT max(CASE WHEN p.suffix = 'msa' THEN NULL ELSE p.level END) FROM product p
                   WHERE p.observation_id = observation.id AND p.is_current),
  mrp_level = (SELECT max(p.level) FROM product p WHERE p.observation_id = observation.id AND p.is_current
               AND upper(p.product_type) = 'SCIENCE' AND p.suffix != 'asn'),
  current_release = (SELECT max(p.data_release) FROM product p
                     WHERE p.observation_id = observation.id AND p.is_current),
  current_products = (SELECT count(*) FROM product p WHERE p.observation_id = observation.id AND p.is_current)
"""


def _fill_pixels(bind, table: str, ra: str, dec: str, column: str) -> None:
    from shared.catalog.sky import pixels

    last = 0
    while True:
        rows = bind.execute(sa.text(f"SELECT id, {ra}, {dec} FROM {table} WHERE id > :last AND {ra} IS NOT NULL "
                                    f"AND {dec} IS NOT NULL ORDER BY id LIMIT {_BATCH}"), {"last": last}).all()
        if not rows:
            return
        values = pixels([r[1] for r in rows], [r[2] for r in rows])
        bind.execute(sa.text(f"UPDATE {table} SET {column} = :h WHERE id = :i"),
                     [{"h": int(h), "i": r[0]} for r, h in zip(rows, values, strict=True)])
        last = rows[-1][0]


def _trigram_available(bind) -> bool:
    """Create pg_trgm if it is not there and the database allows it (a trusted extension:
    the database owner may); False when it cannot be had."""
    if bind.scalar(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")):
        return True
    if not bind.scalar(sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")):
        return False
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        return True
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm could not be created (%s): filename patterns with a leading wildcard scan "
                    "the product table", exc.orig)
        return False


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('target_hpx', sa.BigInteger(), nullable=True,
                                      comment='Derived: HEALPix pixel of the target (shared.catalog.sky)'))
        batch_op.add_column(sa.Column('current_level', sa.Integer(), nullable=True,
                                      comment='Derived: highest level of its current products (no MSA file); NULL: planned'))
        batch_op.add_column(sa.Column('mrp_level', sa.Integer(), nullable=True,
                                      comment='Derived: highest level of its current science products (no ASN): the MRP level'))
        batch_op.add_column(sa.Column('current_release', sa.DateTime(timezone=True), nullable=True,
                                      comment='Derived: latest data release date of its current products'))
        batch_op.add_column(sa.Column('current_products', sa.Integer(), server_default='0', nullable=False,
                                      comment='Derived: number of its current products'))
    with op.batch_alter_table('exposure', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hpx', sa.BigInteger(), nullable=True,
                                      comment='Derived: HEALPix pixel of the pointing (shared.catalog.sky)'))

    _fill_pixels(bind, "exposure", "ra", "dec", "hpx")
    _fill_pixels(bind, "observation", "target_ra", "target_dec", "target_hpx")
    bind.execute(sa.text(_SUMMARY))

    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_observation_target_hpx'), ['target_hpx'], unique=False)
    with op.batch_alter_table('exposure', schema=None) as batch_op:
        batch_op.create_index('ix_exposure_hpx', ['hpx', 'observation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exposure_start_time'), ['start_time'], unique=False)
    # Case-insensitive criteria compare lower(column) (services/archive/mast.like_any).
    op.create_index('ix_product_lower_suffix', 'product', [sa.text('lower(suffix)')], unique=False)
    if postgres:
        op.execute("CREATE INDEX ix_product_lower_filename ON product (lower(filename) text_pattern_ops)")
        # A finer histogram of file names: with the default (100 bins) a prefix such as one
        # observation's (jw01234001*, about 100 of a million rows) is estimated at 1 % of the
        # table, and the planner walks the whole filename index to serve ORDER BY ... LIMIT.
        op.execute("ALTER INDEX ix_product_lower_filename ALTER COLUMN 1 SET STATISTICS 5000")
        if _trigram_available(bind):
            op.execute("CREATE INDEX ix_product_filename_trgm ON product USING gin (lower(filename) gin_trgm_ops)")
    else:
        op.create_index('ix_product_lower_filename', 'product', [sa.text('lower(filename)')], unique=False)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_product_filename_trgm")
    op.drop_index('ix_product_lower_suffix', table_name='product')
    op.drop_index('ix_product_lower_filename', table_name='product')
    with op.batch_alter_table('exposure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exposure_start_time'))
        batch_op.drop_index('ix_exposure_hpx')
        batch_op.drop_column('hpx')
    with op.batch_alter_table('observation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_observation_target_hpx'))
        batch_op.drop_column('current_products')
        batch_op.drop_column('current_release')
        batch_op.drop_column('mrp_level')
        batch_op.drop_column('current_level')
        batch_op.drop_column('target_hpx')
