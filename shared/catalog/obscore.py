"""The IVOA ObsCore 1.1 presentation of the catalog: the table ``ivoa.obscore``.

One ObsCore row per CAOM observation row (:mod:`shared.catalog.caom`): a Level-3 product, or
an exposure and detector. Every column is declared once here, with its VOTable datatype,
unit, UCD, utype and description (what ``TAP_SCHEMA.columns`` and the VOTable FIELDs say),
and the SQL expression that computes it from ``caom_observation`` and ``program``:

* :func:`obscore_select` is that SELECT: SIA2 and SCS query it on any backend, and on
  PostgreSQL :func:`create_view` makes it the view ``ivoa.obscore`` that TAP queries with
  ADQL (recreated whenever the schema is brought to head, so it always matches this list);
* units are ObsCore's, not MAST's: times in MJD, wavelengths in metres;
* ``obs_publisher_did`` is ``ivo://jwst-dms/jwst?<obs_id>`` and ``access_url`` the DataLink
  document of the row (``/vo/datalink?ID=<did>``, relative: the VO routes put the address
  the request reached in front of it, :func:`absolute_url`);
* metadata are public: every row is listed whatever its exclusive access; the data behind
  ``access_url`` are served only to authorized callers.

PostgreSQL with the pg_sphere extension also gets a GiST index on the rows' positions, so
an ADQL ``CONTAINS(POINT(...), CIRCLE(...))`` (translated to pg_sphere) is an index scan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import BigInteger, Float, Select, String, cast, literal, null, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from shared.catalog.models import CaomObservation, Program

__all__ = [
    "ACCESS_FORMAT",
    "AUTHORITY",
    "COLUMNS",
    "DATALINK_PATH",
    "ObsCoreColumn",
    "absolute_url",
    "create_view",
    "has_pgsphere",
    "is_derived",
    "obs_id_of",
    "obscore_select",
    "publisher_did",
]

log = logging.getLogger(__name__)

AUTHORITY = "ivo://jwst-dms"
"""The IVOA authority of the archive's identifiers."""

DATALINK_PATH = "/vo/datalink"
"""Where a row's DataLink document is served (``?ID=<obs_publisher_did>``)."""

ACCESS_FORMAT = "application/x-votable+xml;content=datalink"

_DID_PREFIX = f"{AUTHORITY}/jwst?"


def publisher_did(obs_id: str) -> str:
    """The ObsCore ``obs_publisher_did`` of the CAOM row ``obs_id``."""
    return _DID_PREFIX + obs_id


def obs_id_of(did: str) -> str | None:
    """The ``obs_id`` a publisher DID names, or None when it is not one of ours."""
    if not did.startswith(_DID_PREFIX) or len(did) == len(_DID_PREFIX):
        return None
    return did[len(_DID_PREFIX):]


def absolute_url(value: str | None, base_url: str) -> str | None:
    """A relative URL of a row (``/vo/...``) made absolute with the address the request reached."""
    if value is None or not value.startswith("/"):
        return value
    return base_url.rstrip("/") + value


class _Mjd(FunctionElement):
    """A timestamp as a Modified Julian Date (days)."""

    type = Float()
    inherit_cache = True


@compiles(_Mjd, "postgresql")
def _mjd_postgresql(element, compiler, **kw):
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) / 86400.0 + 40587.0 AS DOUBLE PRECISION)"


@compiles(_Mjd)
def _mjd_default(element, compiler, **kw):  # SQLite
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2400000.5)"


@dataclass(frozen=True)
class ObsCoreColumn:
    """One column of ``ivoa.obscore``: its VOTable description and how it is computed."""

    name: str
    datatype: str  # VOTable: char, short, int, long, double
    unit: str | None
    ucd: str | None
    utype: str | None
    description: str
    expr: Callable[[], ColumnElement]
    xtype: str | None = None
    principal: bool = False
    indexed: bool = False

    @property
    def arraysize(self) -> str | None:
        return "*" if self.datatype == "char" else None


_c = CaomObservation
_NM_TO_M = 1e-9


def _text(value: str | None) -> Callable[[], ColumnElement]:
    return (lambda: cast(null(), String)) if value is None else (lambda: literal(value, String))


def _none_double() -> ColumnElement:
    return cast(null(), Float)


def _none_long() -> ColumnElement:
    return cast(null(), BigInteger)


COLUMNS: tuple[ObsCoreColumn, ...] = (
    ObsCoreColumn("dataproduct_type", "char", None, "meta.id", "obscore:ObsDataset.dataProductType",
                  "Data product type: image, cube, spectrum, timeseries", lambda: _c.dataproduct_type, principal=True),
    ObsCoreColumn("calib_level", "short", None, "meta.code;obs.calib", "obscore:ObsDataset.calibLevel",
                  "Calibration level: 1 raw, 2 calibrated exposure, 3 combined product",
                  lambda: _c.calib_level, principal=True, indexed=True),
    ObsCoreColumn("obs_collection", "char", None, "meta.id", "obscore:DataID.Collection",
                  "Name of the data collection", _text("JWST"), principal=True),
    ObsCoreColumn("obs_id", "char", None, "meta.id", "obscore:DataID.observationID",
                  "Observation id: a Level-3 product name or an exposure and detector", lambda: _c.obs_id,
                  principal=True, indexed=True),
    ObsCoreColumn("obs_publisher_did", "char", None, "meta.ref.ivoid", "obscore:Curation.PublisherDID",
                  "IVOA identifier of the observation", lambda: literal(_DID_PREFIX, String) + _c.obs_id,
                  principal=True),
    ObsCoreColumn("access_url", "char", None, "meta.ref.url", "obscore:Access.Reference",
                  "DataLink document of the observation: its files, previews and members",
                  lambda: literal(f"{DATALINK_PATH}?ID={_DID_PREFIX}", String) + _c.obs_id, principal=True),
    ObsCoreColumn("access_format", "char", None, "meta.code.mime", "obscore:Access.Format",
                  "Format of what access_url returns", _text(ACCESS_FORMAT), principal=True),
    ObsCoreColumn("access_estsize", "long", "kbyte", "phys.size;meta.file", "obscore:Access.Size",
                  "Estimated size of the dataset (not computed: NULL)", _none_long),
    ObsCoreColumn("target_name", "char", None, "meta.id;src", "obscore:Target.Name",
                  "Name of the target as proposed", lambda: _c.target_name, principal=True),
    ObsCoreColumn("target_class", "char", None, "src.class", "obscore:Target.Class",
                  "Class of the target (not known: NULL)", _text(None)),
    ObsCoreColumn("s_ra", "double", "deg", "pos.eq.ra", "obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
                  "Right ascension (ICRS) of the centre of the footprint", lambda: _c.s_ra, principal=True, indexed=True),
    ObsCoreColumn("s_dec", "double", "deg", "pos.eq.dec", "obscore:Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
                  "Declination (ICRS) of the centre of the footprint", lambda: _c.s_dec, principal=True, indexed=True),
    ObsCoreColumn("s_fov", "double", "deg", "phys.angSize;instr.fov", "obscore:Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
                  "Diameter of the field of view (not computed: NULL)", _none_double),
    ObsCoreColumn("s_region", "char", None, "pos.outline;obs.field", "obscore:Char.SpatialAxis.Coverage.Support.Area",
                  "Sky footprint (STC-S)", lambda: _c.s_region, xtype="adql:REGION", principal=True),
    ObsCoreColumn("s_resolution", "double", "arcsec", "pos.angResolution", "obscore:Char.SpatialAxis.Resolution.Refval.value",
                  "Spatial resolution (not computed: NULL)", _none_double),
    ObsCoreColumn("s_xel1", "long", None, "meta.number", "obscore:Char.SpatialAxis.numBins1",
                  "Pixels along the first axis (not computed: NULL)", _none_long),
    ObsCoreColumn("s_xel2", "long", None, "meta.number", "obscore:Char.SpatialAxis.numBins2",
                  "Pixels along the second axis (not computed: NULL)", _none_long),
    ObsCoreColumn("t_min", "double", "d", "time.start;obs.exposure", "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
                  "Start of the first exposure (MJD)", lambda: _Mjd(_c.t_min), principal=True),
    ObsCoreColumn("t_max", "double", "d", "time.end;obs.exposure", "obscore:Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
                  "End of the last exposure (MJD)", lambda: _Mjd(_c.t_max), principal=True),
    ObsCoreColumn("t_exptime", "double", "s", "time.duration;obs.exposure", "obscore:Char.TimeAxis.Coverage.Support.Extent",
                  "Effective exposure time", lambda: _c.t_exptime, principal=True),
    ObsCoreColumn("t_resolution", "double", "s", "time.resolution", "obscore:Char.TimeAxis.Resolution.Refval.value",
                  "Temporal resolution (not computed: NULL)", _none_double),
    ObsCoreColumn("t_xel", "long", None, "meta.number", "obscore:Char.TimeAxis.numBins",
                  "Time samples (not computed: NULL)", _none_long),
    ObsCoreColumn("em_min", "double", "m", "em.wl;stat.min", "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
                  "Shortest wavelength of the bandpass", lambda: _c.em_min * _NM_TO_M, principal=True),
    ObsCoreColumn("em_max", "double", "m", "em.wl;stat.max", "obscore:Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
                  "Longest wavelength of the bandpass", lambda: _c.em_max * _NM_TO_M, principal=True),
    ObsCoreColumn("em_res_power", "double", None, "spect.resolution", "obscore:Char.SpectralAxis.Resolution.ResolPower.refVal",
                  "Spectral resolving power (not computed: NULL)", _none_double),
    ObsCoreColumn("em_xel", "long", None, "meta.number", "obscore:Char.SpectralAxis.numBins",
                  "Spectral samples (not computed: NULL)", _none_long),
    ObsCoreColumn("o_ucd", "char", None, "meta.ucd", "obscore:Char.ObservableAxis.ucd",
                  "UCD of the observable (not computed: NULL)", _text(None)),
    ObsCoreColumn("pol_states", "char", None, "meta.code;phys.polarization", "obscore:Char.PolarizationAxis.stateList",
                  "Polarization states (none: NULL)", _text(None)),
    ObsCoreColumn("pol_xel", "long", None, "meta.number", "obscore:Char.PolarizationAxis.numBins",
                  "Polarization samples (none: NULL)", _none_long),
    ObsCoreColumn("facility_name", "char", None, "meta.id;instr.tel", "obscore:Provenance.ObsConfig.Facility.name",
                  "Observatory", _text("JWST"), principal=True),
    ObsCoreColumn("instrument_name", "char", None, "meta.id;instr", "obscore:Provenance.ObsConfig.Instrument.name",
                  "Instrument and mode, e.g. NIRCAM/IMAGE", lambda: _c.instrument_name, principal=True, indexed=True),
    # optional ObsCore 1.1 columns
    ObsCoreColumn("obs_release_date", "char", None, "time.release", "obscore:Curation.releaseDate",
                  "End of exclusive access: data public from then (ISO 8601)", lambda: _c.t_obs_release,
                  xtype="timestamp", principal=True),
    ObsCoreColumn("proposal_id", "char", None, "meta.id;obs.proposal", "obscore:Provenance.Proposal.identifier",
                  "Program (proposal) id", lambda: _c.program_id, principal=True, indexed=True),
    ObsCoreColumn("proposal_pi", "char", None, "meta.id.PI", "obscore:Provenance.Proposal.pi",
                  "Principal investigator of the program", lambda: Program.pi_name),
    ObsCoreColumn("proposal_title", "char", None, "meta.title;obs.proposal", "obscore:Provenance.Proposal.title",
                  "Title of the program", lambda: Program.title),
    ObsCoreColumn("filters", "char", None, "instr.filter", None,
                  "Filters (and pupil) in the beam (as MAST lists them)", lambda: _c.filters),
)


def obscore_select() -> Select:
    """``SELECT <every ObsCore column> FROM caom_observation JOIN program``: the rows of
    ``ivoa.obscore``. Filter it by its selected columns (``.selected_columns``) or by
    :class:`~shared.catalog.models.CaomObservation`'s."""
    return (select(*(col.expr().label(col.name) for col in COLUMNS))
            .select_from(CaomObservation).join(Program, Program.id == CaomObservation.program_id))


POSITION_INDEX = "ix_caom_observation_spoint"


def is_derived(obj, name, type_, reflected, compare_to) -> bool:
    """False for what :func:`create_view` makes at head (the position index), which the
    models do not declare: an Alembic ``include_object`` hook, so comparing the models with
    the schema ignores it."""
    return not (type_ == "index" and name == POSITION_INDEX)


def has_pgsphere(conn: Connection) -> bool:
    """True when the catalog's PostgreSQL has the pg_sphere extension installed."""
    return bool(conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_sphere'")).scalar())


def create_view(conn: Connection) -> None:
    """(Re)create the view ``ivoa.obscore`` on a PostgreSQL catalog, and with pg_sphere
    available (installed here when the server has it and the role may), the position index."""
    if conn.dialect.name != "postgresql":
        return
    body = obscore_select().compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    conn.execute(text("CREATE SCHEMA IF NOT EXISTS ivoa"))
    conn.execute(text("DROP VIEW IF EXISTS ivoa.obscore"))
    conn.execute(text(f"CREATE VIEW ivoa.obscore AS {body}"))
    conn.execute(text("COMMENT ON VIEW ivoa.obscore IS 'IVOA ObsCore 1.1 rows of the archive (shared.catalog.obscore)'"))
    if not has_pgsphere(conn):
        available = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_sphere'")).scalar()
        if not available:
            log.warning("PostgreSQL has no pg_sphere: ADQL geometry (CONTAINS, POINT, CIRCLE) is unavailable to TAP")
            return
        try:
            with conn.begin_nested():
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_sphere"))
        except Exception as exc:  # e.g. the role may not create extensions
            log.warning("could not install pg_sphere (%s): ADQL geometry is unavailable to TAP", exc)
            return
    conn.execute(text(f"CREATE INDEX IF NOT EXISTS {POSITION_INDEX} ON caom_observation "
                      "USING gist (spoint(radians(s_ra), radians(s_dec)))"))
