"""MAST's own protocol over the archive's queries, so that ``astroquery.mast`` works
unchanged: the ``request`` of ``POST /api/v0/invoke`` read and checked, MAST's filters
turned into the criteria of :mod:`services.archive.caom`, and the rows put in the reply
shape astroquery parses (``status``, ``msg``, ``fields`` with MAST's type names, ``data``,
``paging``), plus the column configuration astroquery reads before a query.

Nothing here searches, decides access or serves a file: observation rows and product lists
come from :func:`~services.archive.caom.search_caom` and
:func:`~services.archive.caom.caom_products`, as ``/caom/observations`` gives them.

Services: ``Mast.Caom.Filtered`` (``filters``), ``Mast.Caom.Filtered.Position``
(``filters`` and ``position`` "ra, dec, radius"), ``Mast.Caom.Cone`` (``ra``, ``dec``,
``radius``), ``Mast.Caom.Products`` (``obsid``, comma-separated) and ``Mast.Name.Lookup``
(``input``). A request the archive cannot answer raises :class:`MastError`, whose message
the route returns as MAST's error reply.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from services.archive import mast, resolver
from services.archive.caom import CaomCriteria
from services.archive.schemas import MAX_PAGE, MAX_PAGESIZE, CaomProductRow

__all__ = [
    "CONE",
    "DISTANCE",
    "FILTERED",
    "FILTERED_POSITION",
    "FORMATS",
    "NAME_LOOKUP",
    "OBSERVATION_COLUMNS",
    "POSITION_COLUMNS",
    "PRODUCTS",
    "PRODUCT_COLUMNS",
    "SERVICES",
    "Column",
    "MastError",
    "Answer",
    "MastRequest",
    "column_config",
    "error_reply",
    "lookup_input",
    "observation_criteria",
    "name_lookup",
    "name_lookup_reply",
    "observation_values",
    "page_of",
    "parse_request",
    "product_obsids",
    "product_values",
    "reply",
    "reply_csv",
    "reply_votable",
    "with_columns",
]

FILTERED = "Mast.Caom.Filtered"
FILTERED_POSITION = "Mast.Caom.Filtered.Position"
CONE = "Mast.Caom.Cone"
PRODUCTS = "Mast.Caom.Products"
NAME_LOOKUP = "Mast.Name.Lookup"
SERVICES = (FILTERED, FILTERED_POSITION, CONE, PRODUCTS, NAME_LOOKUP)
FORMATS = ("json", "csv", "votable")
"""The reply formats of ``/api/v0/invoke`` (``Mast.Name.Lookup``: json only)."""

COUNT_COLUMN = "COUNT_BIG(*)"  # astroquery's query_criteria_count asks for it
MAX_REQUEST_CHARS = 200_000
MAX_OBSIDS = 5000


class MastError(ValueError):
    """A MAST request the archive cannot answer; the message says why and what to send."""


# ------------------------------------------------------------------ columns


@dataclass(frozen=True)
class Column:
    """One column of a MAST service: its name, MAST's type name (``string``, ``int``,
    ``float``, ``boolean``), the VOTable datatype astroquery reads to tell continuous
    criteria from discrete ones, its label, unit and description; ``criterion`` names the
    field of :class:`CaomCriteria` a filter on it sets (None: not searchable)."""

    name: str
    type: str
    label: str
    description: str
    unit: str = ""
    example: str = ""
    criterion: str | None = None

    @property
    def votable_type(self) -> str:
        return {"string": "char", "int": "int", "float": "double", "boolean": "boolean"}[self.type]

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.label, "type": self.type, "vot.datatype": self.votable_type,
                               "vot.description": self.description, "vot.ID": self.name, "vot.name": self.name}
        if self.type == "string":
            out["vot.arraysize"] = "*"
        if self.unit:
            out["unit"] = out["vot.unit"] = self.unit
        if self.example:
            out["example"] = self.example
        if self.name in ("filters", "instrument_name"):
            out["separator"] = ";"
        return out


OBSERVATION_COLUMNS: tuple[Column, ...] = (
    Column("intentType", "string", "Observation Type", "Whether observation is for science or calibration.",
           example="Valid values: science", criterion="intent"),
    Column("obs_collection", "string", "Mission", "Collection", example="JWST", criterion="collection"),
    Column("provenance_name", "string", "Provenance Name", "Provenance name, or source of data",
           example="CALJWST"),
    Column("instrument_name", "string", "Instrument", "Instrument name and mode",
           example="NIRCAM/IMAGE, MIRI/IMAGE, NIRISS/SOSS (a name without '/' matches every mode)",
           criterion="instrument_name"),
    Column("project", "string", "Project", "Processing project", example="JWST"),
    Column("filters", "string", "Filters", "Instrument filters (optical elements, ';'-joined)",
           example="F200W, F322W2;GRISMR", criterion="filters"),
    Column("wavelength_region", "string", "Waveband", "Energy band", example="INFRARED"),
    Column("target_name", "string", "Target Name", "Target name", criterion="target_name"),
    Column("target_classification", "string", "Target Classification", "Type of target"),
    Column("obs_id", "string", "Observation ID", "Observation identifier, given by mission",
           example="jw01234-o001_t001_nircam_clear-f200w, jw01234001001_02101_00001_nrca1", criterion="obs_id"),
    Column("s_ra", "float", "RA", "Observation Right Ascension (ICRS)", unit="deg", criterion="s_ra"),
    Column("s_dec", "float", "Dec", "Observation Declination (ICRS)", unit="deg", criterion="s_dec"),
    Column("dataproduct_type", "string", "Product Type", "Type of product",
           example="image, spectrum, cube, timeseries", criterion="dataproduct_type"),
    Column("proposal_pi", "string", "Principal Investigator", "Principal investigator", criterion="proposal_pi"),
    Column("calib_level", "int", "Calibration Level", "Calibration level",
           example="1 = uncalibrated, 2 = calibrated, 3 = science product", criterion="calib_level"),
    Column("t_min", "float", "Start Time", "Observation start time", unit="MJD", criterion="t_min"),
    Column("t_max", "float", "End Time", "Observation end time", unit="MJD", criterion="t_max"),
    Column("t_exptime", "float", "Exposure Length", "Exposure time", unit="sec", criterion="t_exptime"),
    Column("em_min", "float", "Min. Wavelength", "Minimum wavelength", unit="nm", criterion="em_min"),
    Column("em_max", "float", "Max. Wavelength", "Maximum wavelength", unit="nm", criterion="em_max"),
    Column("obs_title", "string", "Observation Title", "Observation description from proposal",
           criterion="obs_title"),
    Column("t_obs_release", "float", "Release Date", "Dataset release date", unit="MJD",
           criterion="t_obs_release"),
    Column("proposal_id", "string", "Proposal ID", "Proposal ID (the program number)", example="1234",
           criterion="program"),
    Column("s_region", "string", "s_region", "STC/S footprint", unit="deg",
           example="POLYGON ICRS ... or CIRCLE ICRS ..."),
    Column("jpegURL", "string", "jpegURL", "Preview image URL"),
    Column("dataURL", "string", "Data URL", "URI of its highest-level science product"),
    Column("dataRights", "string", "Data Rights", "Data rights", example="PUBLIC, EXCLUSIVE_ACCESS",
           criterion="data_rights"),
    Column("obsid", "string", "Product Group ID", "Database identifier for obs_id (get_product_list takes it)",
           criterion="obsid"),
)

# Position services add it: the separation of each row's centre from the position asked for.
DISTANCE = Column("distance", "float", 'Distance (")', "Angular separation between searched coordinates and "
                  "center of observation", unit="arcsec")
POSITION_COLUMNS = (*OBSERVATION_COLUMNS, DISTANCE)
COUNT = Column("Column1", "int", "Count", "The number of rows matching the request (columns COUNT_BIG(*))")

PRODUCT_COLUMNS: tuple[Column, ...] = (
    Column("obsID", "string", "Product Group ID", "obsid of the observation row the file belongs to"),
    Column("obs_collection", "string", "Mission", "Collection"),
    Column("dataproduct_type", "string", "Product Type", "Type of product"),
    Column("obs_id", "string", "Observation ID", "obs_id of the observation row the file belongs to"),
    Column("description", "string", "Description", "Description of the file"),
    Column("type", "string", "Type", "S (simple) or C (composite)"),
    Column("dataURI", "string", "Data URI", "mast:JWST/product/<productFilename>"),
    Column("productType", "string", "Product Type", "SCIENCE, AUXILIARY, INFO or PREVIEW"),
    Column("productGroupDescription", "string", "Product Group Description",
           "'Minimum Recommended Products' or null"),
    Column("productSubGroupDescription", "string", "Product Subgroup Description",
           "File suffix, upper-case", example="UNCAL, RATE, CAL, I2D, ASN"),
    Column("productDocumentationURL", "string", "Product Documentation URL", "Documentation of the product"),
    Column("project", "string", "Project", "Processing project", example="CALJWST"),
    Column("prvversion", "string", "Provenance Version", "Pipeline version that made it"),
    Column("proposal_id", "string", "Proposal ID", "Proposal ID (the program number)"),
    Column("productFilename", "string", "Product Filename", "File name"),
    Column("size", "int", "Size", "File size", unit="bytes"),
    Column("parent_obsid", "string", "Parent obsid", "obsid of the observation row whose list this is"),
    Column("dataRights", "string", "Data Rights", "PUBLIC or EXCLUSIVE_ACCESS"),
    Column("calib_level", "int", "Calibration Level", "Calibration level of the file"),
    Column("sha256", "string", "SHA-256", "Checksum of the file (hex)"),
)

NAME_COLUMNS: tuple[Column, ...] = (
    Column("searchString", "string", "Search String", "The name asked for"),
    Column("canonicalName", "string", "Canonical Name", "The target's name in its programs' plans"),
    Column("ra", "float", "RA", "Right ascension (ICRS)", unit="deg"),
    Column("decl", "float", "Dec", "Declination (ICRS)", unit="deg"),
    Column("resolver", "string", "Resolver", "jwst-dms: the archive's own programs' targets and aliases"),
    Column("matchedAlias", "string", "Matched Alias", "The alias that matched, when not the name"),
    Column("proposal_id", "string", "Proposal ID", "Programs observing it, ';'-joined"),
)

_CONFIGS = {FILTERED: OBSERVATION_COLUMNS, FILTERED_POSITION: POSITION_COLUMNS, CONE: POSITION_COLUMNS,
            PRODUCTS: PRODUCT_COLUMNS, NAME_LOOKUP: NAME_COLUMNS}


def column_config(config_id: str) -> dict[str, dict[str, Any]]:
    """The ``columnsconfig`` of a service, keyed by column name; empty for a service
    without one (MAST answers so too, and astroquery then reads the reply's own types)."""
    return {c.name: c.config() for c in _CONFIGS.get(config_id.strip(), ())}


# ------------------------------------------------------------------ requests


@dataclass(frozen=True)
class MastRequest:
    service: str
    params: dict[str, Any]
    format: str = "json"
    pagesize: int = MAX_PAGESIZE
    page: int = 1
    removenullcolumns: bool = False
    columns: tuple[str, ...] | None = None  # None: every column ("*")


def _int(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MastError(f"{name} must be an integer, not {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise MastError(f"{name} must be an integer, not {value!r}") from None
    if number < lo:
        raise MastError(f"{name} must be at least {lo}, not {number}")
    return number if hi is None else min(number, hi)


def _columns(value: Any, service: str) -> tuple[str, ...] | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "*")):
        return None
    if not isinstance(value, str):
        raise MastError("params.columns must be '*' or a comma-separated list of column names")
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if names == (COUNT_COLUMN,):
        return names
    known = {c.name for c in _CONFIGS.get(service, ())}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MastError(f"params.columns: no column {', '.join(map(repr, unknown))} in {service}; "
                        f"its columns are {', '.join(sorted(known))}")
    return names


def parse_request(text: str | None) -> MastRequest:
    """The ``request`` form field of ``/api/v0/invoke``: a JSON object with ``service``,
    ``params``, ``format`` (:data:`FORMATS`), ``pagesize``, ``page``, ``removenullcolumns`` and
    ``timeout`` (accepted and unused: every answer is complete); ``cacheBreaker``,
    ``clearcache`` and ``removecache`` are accepted and ignored."""
    if text is None or not text.strip():
        raise MastError("no request: send the form field 'request' holding a JSON object such as "
                        '{"service": "Mast.Caom.Filtered", "params": {...}, "format": "json"}')
    if len(text) > MAX_REQUEST_CHARS:
        raise MastError(f"the request is longer than {MAX_REQUEST_CHARS} characters")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MastError(f"the request is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MastError("the request must be a JSON object with 'service' and 'params'")
    service = body.get("service")
    if not isinstance(service, str) or service not in SERVICES:
        raise MastError(f"unknown service {service!r}; this archive answers {', '.join(SERVICES)}")
    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise MastError("params must be a JSON object")
    fmt = body.get("format", "json")
    if fmt not in FORMATS:
        raise MastError(f"format {fmt!r} is not served; ask for one of {', '.join(map(repr, FORMATS))}")
    if service == NAME_LOOKUP and fmt != "json":
        raise MastError(f"{NAME_LOOKUP} answers in format 'json' only")
    return MastRequest(
        service=service, params=params, format=fmt,
        pagesize=_int(body.get("pagesize", MAX_PAGESIZE), "pagesize", 1, MAX_PAGESIZE),
        page=_int(body.get("page", 1), "page", 1, MAX_PAGE),
        removenullcolumns=bool(body.get("removenullcolumns", False)),
    )


def with_columns(req: MastRequest) -> MastRequest:
    """The request with its ``params.columns`` read: '*' (every column), a comma-separated
    list of the service's columns, or ``COUNT_BIG(*)`` (the number of matching rows)."""
    return replace(req, columns=_columns(req.params.get("columns"), req.service))


# ------------------------------------------------------------------ filters -> criteria


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise MastError(f"{what}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MastError(f"{what}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise MastError(f"{what}: {value!r} is not a finite number")
    return number


def _position(ra: Any, dec: Any, radius: Any) -> tuple[float, float, float]:
    r, d, rad = _number(ra, "ra"), _number(dec, "dec"), _number(radius, "radius")
    if not -360.0 < r < 720.0:
        raise MastError(f"ra: {ra!r} is not a right ascension in degrees")
    if not -90.0 <= d <= 90.0:
        raise MastError(f"dec: {dec!r} is outside -90..90 degrees")
    if not 0.0 < rad <= 180.0:
        raise MastError(f"radius: {radius!r} must be above 0 and at most 180 degrees")
    return r % 360.0, d, rad


def _discrete(entry: dict[str, Any], name: str) -> list[str]:
    values = entry.get("values", [])
    if not isinstance(values, list):
        raise MastError(f"filter {name}: values must be a list")
    out = []
    for v in values:
        if isinstance(v, dict):
            raise MastError(f"filter {name}: a discrete column takes values, not ranges ({v!r})")
        if v is None or isinstance(v, list):
            raise MastError(f"filter {name}: {v!r} is not a value")
        out.append(str(v).strip())
    free = entry.get("freeText")
    if free not in (None, ""):
        if not isinstance(free, str):
            raise MastError(f"filter {name}: freeText must be a string")
        out.append(free.strip())
    return mast.parse_list([v for v in out if v], name) if out else []


def _range(entry: dict[str, Any], name: str) -> str:
    """A continuous filter ({min, max}) as the ``lo..hi`` syntax of the criteria."""
    values = entry.get("values", [])
    if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], dict):
        raise MastError(f"filter {name}: a continuous column takes one range, values: [{{\"min\": x, \"max\": y}}]")
    bounds = values[0]
    if not set(bounds) <= {"min", "max"} or not bounds:
        raise MastError(f"filter {name}: a range has 'min' and/or 'max', not {sorted(bounds)}")
    lo = _number(bounds["min"], f"filter {name} min") if bounds.get("min") is not None else None
    hi = _number(bounds["max"], f"filter {name} max") if bounds.get("max") is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise MastError(f"filter {name}: min {lo} is above max {hi}")

    def text(x: float | None) -> str:
        return "" if x is None else repr(x)

    return f"{text(lo)}..{text(hi)}"


_BY_NAME = {c.name.lower(): c for c in POSITION_COLUMNS}
_ONLY = {"collection": mast.MISSION, "intent": "science"}  # what every row of this archive has


def _apply(criteria: CaomCriteria, entry: Any, matches_nothing: list[str]) -> CaomCriteria:
    if not isinstance(entry, dict) or not isinstance(entry.get("paramName"), str):
        raise MastError(f"a filter must be an object with paramName and values, not {entry!r}")
    name = entry["paramName"].strip()
    column = _BY_NAME.get(name.lower())
    if column is None:
        raise MastError(f"filter {name!r}: no such column; the searchable columns are "
                        + ", ".join(c.name for c in OBSERVATION_COLUMNS if c.criterion))
    if column.criterion is None:
        raise MastError(f"filter {column.name!r}: this archive does not search on it; the searchable columns are "
                        + ", ".join(c.name for c in OBSERVATION_COLUMNS if c.criterion))
    key = column.criterion
    ranged = isinstance(entry.get("values"), list) and any(isinstance(v, dict) for v in entry["values"])
    if key == "calib_level" and ranged:  # an integer column: discrete values, or a range
        return replace(criteria, calib_level=criteria.calib_level + [_range(entry, column.name)])
    if column.type == "float":  # times, positions, exposure time, wavelengths: one range each
        if getattr(criteria, key) is not None:
            raise MastError(f"filter {column.name}: given twice")
        return replace(criteria, **{key: _range(entry, column.name)})
    values = _discrete(entry, column.name)
    if not values:
        return criteria
    if key in _ONLY:
        if not mast.wildcard_match(_ONLY[key], values):
            matches_nothing.append(column.name)
        return criteria
    if key == "obsid":
        ids = []
        for v in values:
            if not v.isdigit() or not 1 <= int(v) <= mast.MAX_INT:
                raise MastError(f"filter obsid: {v!r} is not a Product Group ID (a positive integer)")
            ids.append(int(v))
        return replace(criteria, obsid=criteria.obsid + ids)
    if key == "data_rights":
        wanted = {v.upper() for v in values}
        unknown = wanted - {"PUBLIC", "EXCLUSIVE_ACCESS"}
        if unknown:
            raise MastError(f"filter dataRights: {', '.join(sorted(unknown))} is not PUBLIC or EXCLUSIVE_ACCESS")
        return replace(criteria, data_rights=next(iter(wanted))) if len(wanted) == 1 else criteria
    return replace(criteria, **{key: list(getattr(criteria, key)) + values})


def observation_criteria(req: MastRequest) -> tuple[CaomCriteria, bool]:
    """The criteria of an observation service, and whether they can match anything (a
    filter on obs_collection or intentType that excludes JWST science matches nothing).
    Values are checked again by the search itself (its CriterionError is MAST's error too)."""
    p = req.params
    criteria = CaomCriteria()
    if req.service == CONE:
        missing = [k for k in ("ra", "dec") if p.get(k) is None]
        if missing:
            raise MastError(f"{CONE} needs params ra and dec (degrees) and optionally radius; missing "
                            + ", ".join(missing))
        ra, dec, radius = _position(p["ra"], p["dec"], p.get("radius", 0.2))
        return replace(criteria, ra=ra, dec=dec, radius=radius), True
    filters = p.get("filters")
    if not isinstance(filters, list):
        raise MastError(f"{req.service} needs params.filters, a list of {{paramName, values}} objects")
    if req.service == FILTERED and not filters:
        raise MastError(f"{FILTERED} needs at least one filter")
    nothing: list[str] = []
    for entry in filters:
        criteria = _apply(criteria, entry, nothing)
    if req.service == FILTERED_POSITION:
        position = p.get("position")
        if not isinstance(position, str) or len(position.split(",")) != 3:
            raise MastError(f"{FILTERED_POSITION} needs params.position, \"ra, dec, radius\" in degrees")
        ra, dec, radius = _position(*(x.strip() for x in position.split(",")))
        criteria = replace(criteria, ra=ra, dec=dec, radius=radius)
    return criteria, not nothing


def product_obsids(req: MastRequest) -> list[int]:
    """The obsid values of a ``Mast.Caom.Products`` request, in order, each once."""
    raw = req.params.get("obsid")
    if raw is None or raw == "":
        raise MastError(f"{PRODUCTS} needs params.obsid: one or more Product Group IDs (the obsid column of "
                        "observation rows), comma-separated")
    items = raw if isinstance(raw, list) else str(raw).split(",")
    out: list[int] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if not text.isdigit() or not 1 <= int(text) <= mast.MAX_INT:
            raise MastError(f"obsid {text!r} is not a Product Group ID: give the obsid column of observation rows "
                            "(a number), not their obs_id")
        out.append(int(text))
    if len(out) > MAX_OBSIDS:
        raise MastError(f"{len(out)} obsid values; at most {MAX_OBSIDS} in one request")
    return list(dict.fromkeys(out))


def lookup_input(req: MastRequest) -> str:
    """The name of a ``Mast.Name.Lookup`` request (``params.input``)."""
    name = req.params.get("input")
    if not isinstance(name, str) or not name.strip():
        raise MastError(f"{NAME_LOOKUP} needs params.input, the target name to resolve")
    if len(name) > mast.MAX_VALUE_LENGTH:
        raise MastError(f"params.input is longer than {mast.MAX_VALUE_LENGTH} characters")
    return name.strip()


def name_lookup(session, name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What :func:`services.archive.resolver.lookup` finds for ``name`` (the targets that have
    a position), as MAST's ``resolvedCoordinate`` rows; for an unknown name, the reason and
    the closest names the archive knows."""
    try:
        answer = resolver.lookup(session, name)
    except resolver.UnknownName as exc:
        return [], {"msg": exc.answer.detail, "suggestions": exc.answer.suggestions}
    return [r.model_dump() for r in answer.resolvedCoordinate if r.ra is not None and r.decl is not None], {}


def name_lookup_reply(req: MastRequest, found: list[dict[str, Any]], unknown: dict[str, Any]) -> dict[str, Any]:
    """``Mast.Name.Lookup``'s reply: MAST's ``resolvedCoordinate`` list (what MAST's name
    lookup clients read), and the same rows as a table (``fields``, ``data``), which
    astroquery's ``Mast.service_request`` reads."""
    table = [{**r, "proposal_id": ";".join(r.get("proposal_id") or [])} for r in found]
    out = reply(req, Answer(NAME_COLUMNS, page_of(table, req), len(table)))
    out["resolvedCoordinate"] = found
    out.update(unknown)
    return out


# ------------------------------------------------------------------ rows and replies


def observation_values(row: Mapping[str, Any], distance: float | None = None) -> dict[str, Any]:
    """An observation row (the :class:`~services.archive.schemas.CaomObservationRow` fields
    of :func:`~services.archive.caom.search_caom`) with MAST's columns
    (:data:`OBSERVATION_COLUMNS`, and ``distance`` in arcsec for a position service)."""
    data_url = row["dataURL"]
    return {
        "distance": distance, "intentType": row["intentType"], "obs_collection": row["obs_collection"],
        "provenance_name": "CALJWST", "instrument_name": row["instrument_name"], "project": mast.MISSION,
        "filters": row["filters"], "wavelength_region": "INFRARED", "target_name": row["target_name"],
        "target_classification": None, "obs_id": row["obs_id"], "s_ra": row["s_ra"], "s_dec": row["s_dec"],
        "dataproduct_type": row["dataproduct_type"], "proposal_pi": row["proposal_pi"],
        "calib_level": row["calib_level"], "t_min": row["t_min"], "t_max": row["t_max"],
        "t_exptime": row["t_exptime"], "em_min": row["em_min"], "em_max": row["em_max"],
        "obs_title": row["obs_title"], "t_obs_release": row["t_obs_release"], "proposal_id": row["proposal_id"],
        "s_region": row["s_region"], "jpegURL": row["jpegURL"],
        "dataURL": mast.data_uri(data_url.rsplit("/", 1)[-1]) if data_url else None,
        "dataRights": row["dataRights"], "obsid": str(row["obsid"]),
    }


def product_values(row: CaomProductRow, dataproduct_type: str | None) -> dict[str, Any]:
    """A product row with MAST's columns (:data:`PRODUCT_COLUMNS`)."""
    suffix = row.productSubGroupDescription
    return {
        "obsID": str(row.obsID), "obs_collection": row.obs_collection, "dataproduct_type": dataproduct_type,
        "obs_id": row.obs_id, "description": f"{row.productType.lower()} level-{row.calib_level} {suffix} file",
        "type": "S", "dataURI": row.dataURI, "productType": row.productType,
        "productGroupDescription": row.productGroupDescription, "productSubGroupDescription": suffix,
        "productDocumentationURL": None, "project": "CALJWST", "prvversion": row.prvversion,
        "proposal_id": row.proposal_id, "productFilename": row.productFilename, "size": row.size,
        "parent_obsid": str(row.parent_obsid), "dataRights": row.dataRights, "calib_level": row.calib_level,
        "sha256": row.sha256,
    }


@dataclass
class Answer:
    """Rows of one page and what MAST's ``paging`` reports about them (the reply takes
    the rows' dicts as they are: its columns' keys are kept, the others dropped)."""

    columns: Sequence[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


def _paging(page: int, pagesize: int, rows: int, total: int) -> dict[str, int]:
    pages = max(1, math.ceil(total / pagesize)) if total else 1
    return {"page": page, "pageSize": pagesize, "pagesFiltered": pages, "rows": rows,
            "rowsFiltered": total, "rowsTotal": total}


def _shaped(req: MastRequest, answer: Answer) -> tuple[list[Column], list[dict[str, Any]], dict[str, int]]:
    """The reply's columns (``columns`` and ``removenullcolumns`` applied), rows and paging."""
    if req.columns == (COUNT_COLUMN,):
        return [COUNT], [{COUNT.name: answer.total}], _paging(1, req.pagesize, 1, 1)
    columns = list(answer.columns)
    if req.columns is not None:
        by_name = {c.name: c for c in columns}
        columns = [by_name[n] for n in req.columns]
    if req.removenullcolumns and answer.rows:
        columns = [c for c in columns if any(r.get(c.name) is not None for r in answer.rows)]
    names = [c.name for c in columns]
    data = answer.rows
    if data and list(data[0]) != names:  # the rows' own dicts, their other keys dropped (the rows share keys)
        wanted = set(names)
        extra = [k for k in data[0] if k not in wanted]
        missing = [n for n in names if n not in data[0]]
        for r in data:
            for k in extra:
                del r[k]
            for n in missing:
                r[n] = None
    return columns, data, _paging(req.page, req.pagesize, len(data), answer.total)


def reply(req: MastRequest, answer: Answer) -> dict[str, Any]:
    """MAST's reply: ``status`` COMPLETE, ``msg``, ``fields`` ({name, type}), ``data`` (one
    object per row) and ``paging``; ``columns`` and ``removenullcolumns`` applied."""
    columns, data, paging = _shaped(req, answer)
    return {"status": "COMPLETE", "msg": "", "fields": [{"name": c.name, "type": c.type} for c in columns],
            "data": data, "paging": paging}


def reply_csv(req: MastRequest, answer: Answer) -> str:
    """The reply's rows as CSV (``format`` csv): a header line of the column names, then a
    line per row (a null is an empty cell); the paging is not in the file (ask the count
    with ``columns`` ``COUNT_BIG(*)``)."""
    from services.archive.exports import csv_text

    columns, data, _ = _shaped(req, answer)
    names = [c.name for c in columns]
    return csv_text(names, ([r[n] for n in names] for r in data))


def reply_votable(req: MastRequest, answer: Answer) -> bytes:
    """The reply's rows as a VOTable (``format`` votable): a FIELD per column with MAST's
    type, unit and description, and the paging in INFO elements (``QUERY_STATUS``
    OVERFLOW when more pages follow)."""
    from services.archive.vo.votable import VOField, result_votable

    columns, data, paging = _shaped(req, answer)
    fields = [VOField(c.name, "unicodeChar" if c.type == "string" else c.votable_type, c.unit or None,
                      description=c.description) for c in columns]
    names = [c.name for c in columns]
    more = paging["page"] < paging["pagesFiltered"]
    return result_votable(fields, ([r[n] for n in names] for r in data), overflow=more,
                          infos={k: str(v) for k, v in paging.items()}, name=req.service)


def error_reply(message: str) -> dict[str, Any]:
    """MAST's error reply: ``status`` ERROR and the reason in ``msg`` (astroquery raises
    RemoteServiceError with it)."""
    return {"status": "ERROR", "msg": message, "fields": [], "data": [],
            "paging": {"page": 1, "pageSize": 0, "pagesFiltered": 0, "rows": 0, "rowsFiltered": 0, "rowsTotal": 0}}


def page_of(rows: list[dict[str, Any]], req: MastRequest) -> list[dict[str, Any]]:
    start = (req.page - 1) * req.pagesize
    return rows[start:start + req.pagesize]

