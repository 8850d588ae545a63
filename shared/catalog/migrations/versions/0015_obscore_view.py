"""obscore view: the IVOA ObsCore rows of the catalog (``ivoa.obscore``, PostgreSQL only)

The view is derived from the head schema's tables and its column list lives in
:mod:`shared.catalog.obscore`, so :func:`shared.catalog.db.upgrade` (re)creates it each time
the schema reaches head, with the TAP_SCHEMA tables describing it
(:mod:`shared.catalog.tap_schema`). This revision marks where they begin: going below it drops
the view, the schema ``tap_schema`` and the pg_sphere position index, which would otherwise
hold the tables they read.

Revision ID: 0015_obscore_view
Revises: 0014_caom_observations
Create Date: 2026-12-04 19:45:00.000000
"""

from alembic import op

revision = '0015_obscore_view'
down_revision = '0014_caom_observations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # made at head by shared.catalog.db.upgrade


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP VIEW IF EXISTS ivoa.obscore')
        op.execute('DROP SCHEMA IF EXISTS tap_schema CASCADE')
        op.execute('DROP INDEX IF EXISTS ix_caom_observation_spoint')
