"""The association pool: one row per exposure (per detector) that exists in the catalog.

Written as the real pools are: an ASCII table with ``|`` as delimiter, a header row, the
columns of a current operations pool in their order, ``NULL`` for unknown values and
``T``/``F`` for flags. The public ``AssociationPool.read`` loads it. Deterministic: the
pool's time stamp is the latest archive time among its ``_uncal``/``_rate`` products, so
the same exposures give the same file name and bytes; a pool whose bytes differ from the
program's current pool is stamped later than it (one second after, when its inputs all
fall in that pool's second), so two different pools never share a name.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timedelta

from astropy.table import Table

from services.associations.candidates import Candidate, candidate_text, candidates_of
from services.associations.planned import planned_name
from services.associations.state import ExposureRecord, ProgramState
from shared.instruments import detector
from shared.naming import PoolName
from shared.plan import Observation, Plan, PlannedExposure

__all__ = ["NULL", "POOL_COLUMNS", "Pool", "build_pool", "pool_bytes", "pool_row"]

NULL = "NULL"

# The columns of a current operations pool, in their order.
POOL_COLUMNS = (
    "FILENAME", "OBS_ID", "PROGRAM", "OBS_NUM", "VISIT", "VISIT_ID", "VISITGRP", "VISITYPE", "SEQ_ID",
    "ACT_ID", "EXPOSURE", "EXP_TYPE", "NEXPOSUR", "EXPCOUNT", "INSTRUME", "DETECTOR", "CHANNEL",
    "TARGETID", "TARGPROP", "TARGNAME", "TARGTYPE", "TEMPLATE", "PNTGTYPE", "PNTG_SEQ", "TARGORDN",
    "EXPSPCIN", "DITHPTIN", "MOSTILNO", "MODULE", "FILTER", "PUPIL", "DITHERID", "PATTTYPE", "PATTSTRT",
    "NUMDTHPT", "PATTSIZE", "SUBPXPTS", "PATT_NUM", "SUBPIXEL", "APERNAME", "SDP_VER", "SUBARRAY",
    "GRATING", "FXD_SLIT", "BAND", "GWA_XTIL", "GWA_YTIL", "ASN_CANDIDATE", "EXPOSERR", "IS_PSF",
    "IS_IMPRT", "BKGDTARG", "TSOVISIT", "MSASTATE", "MSAMETFL", "OPMODE", "LAMP", "SPEC_NUM", "SPAT_NUM",
    "DMS_NOTE", "EXSEGTOT", "NINTS", "NGROUPS", "MTSHADOW",
)


@dataclass(frozen=True)
class Pool:
    """The pool of a program: its rows (column -> text), name and the products it lists."""

    name: PoolName
    rows: tuple[dict[str, str], ...]
    inputs: tuple[str, ...]  # the _uncal (or _rate) files of its exposures: provenance

    @property
    def filename(self) -> str:
        return self.name.format()

    @property
    def created(self) -> datetime:
        return self.name.created

    @property
    def stamp(self) -> str:
        """The time stamp as written in pool and association names (``YYYYMMDDtHHMMSS``)."""
        return self.created.strftime("%Y%m%dt%H%M%S")


def _text(value) -> str:
    if value is None or value == "":
        return NULL
    if isinstance(value, bool):
        return "T" if value else "F"
    return str(value)


def _planned(plan: Plan, rec: ExposureRecord) -> tuple[Observation | None, PlannedExposure | None]:
    try:
        obs = plan.observation(rec.observation)
    except KeyError:
        return None, None
    for exp in obs.exposures:
        if planned_name(plan.program, obs, exp).exposure_id == rec.name:
            return obs.for_exposure(exp), exp
    return obs, None


def _optics(rec: ExposureRecord, obs: Observation | None) -> dict[str, object]:
    """PUPIL, or for NIRSpec (whose plan gives its grating-wheel element as the pupil) the
    GRATING and, for its fixed slits, FXD_SLIT (for its MOS, MSAMETFL) with the
    spectral-step index and the sub-pixel points (EXPSPCIN, SUBPXPTS) the public Level-2
    nod rules match science exposures by: one step, no sub-pixel dithers. A MIRI MRS
    exposure's BAND (its optical element, FILTER being N/A, which the public rules group by)
    and its mosaic tile, 1 (MOSTILNO, which the public Asn_Lv2Spec matches science exposures
    by)."""
    pupil = rec.pupil if rec.pupil not in (None, "N/A") else None
    if obs is not None and obs.band:
        return {"PUPIL": pupil, "BAND": obs.band, "MOSTILNO": 1}
    if rec.instrument.upper() != "NIRSPEC":
        return {"PUPIL": pupil}
    out: dict[str, object] = {"GRATING": pupil}
    if obs is not None and obs.fixed_slit:
        out |= {"FXD_SLIT": obs.fixed_slit, "EXPSPCIN": 1, "SUBPXPTS": 1}
    if obs is not None and obs.msa_metadata:  # MOS: the public rule needs its MSA metadata file
        out |= {"MSAMETFL": obs.msa_metadata, "EXPSPCIN": 1, "SUBPXPTS": 1}
    return out


def pool_row(plan: Plan, rec: ExposureRecord, candidates: list[Candidate]) -> dict[str, str]:
    """The pool row of one exposure: identifiers and optics from the catalog, pattern,
    flags, target and candidates from the plan; NULL where neither knows."""
    obs, exp = _planned(plan, rec)
    det = detector(rec.detector)
    target = plan.target(obs.target_id) if obs is not None else None
    visit_id = f"{rec.program}{rec.observation:03d}{rec.visit:03d}"
    uncal = rec.files("uncal")
    segmented = any(p.segment is not None for p in uncal)
    row = {
        "FILENAME": rec.file_name("uncal"),
        "OBS_ID": f"V{visit_id}P{0:08d}{rec.visit_group:02d}{rec.sequence}{rec.activity}",
        "PROGRAM": int(rec.program),
        "OBS_NUM": rec.observation,
        "VISIT": rec.visit,
        "VISIT_ID": visit_id,
        "VISITGRP": rec.visit_group,
        "VISITYPE": "PRIME_TARGETED_FIXED",
        "SEQ_ID": rec.sequence,
        "ACT_ID": rec.activity,
        "EXPOSURE": rec.exposure,
        "EXP_TYPE": rec.exp_type,
        "NEXPOSUR": (sum(1 for e in obs.exposures if e.visit == rec.visit and e.detector == rec.detector)
                     if obs is not None else None),
        "EXPCOUNT": rec.exposure,
        "INSTRUME": rec.instrument,
        "DETECTOR": rec.detector,
        "CHANNEL": det.channel,
        "TARGETID": obs.target_id if obs is not None else None,
        "TARGPROP": target.name if target else rec.target_name,
        "TARGNAME": target.name if target else rec.target_name,
        "TARGTYPE": target.target_type if target else None,
        "TEMPLATE": obs.template if obs is not None else None,
        "PNTGTYPE": "SCIENCE",
        "MODULE": det.module,
        "FILTER": rec.filter,
        **_optics(rec, obs),
        "PATTTYPE": obs.dither.pattern_type if obs is not None else None,
        "NUMDTHPT": obs.dither.npoints if obs is not None else None,
        "PATT_NUM": exp.dither_point if exp is not None else None,
        "APERNAME": f"{rec.detector}_{rec.subarray}",
        "SDP_VER": uncal[0].software_version if uncal else None,
        "SUBARRAY": rec.subarray,
        "ASN_CANDIDATE": candidate_text(candidates_of(rec.observation, candidates)),
        "IS_PSF": obs.is_psf if obs is not None else None,
        "BKGDTARG": obs.is_background if obs is not None else None,
        "TSOVISIT": obs.tsovisit if obs is not None else None,
        "EXSEGTOT": len(uncal) if segmented else None,
        "NINTS": rec.nints,
        "NGROUPS": rec.ngroups,
    }
    return {col: _text(row.get(col)) for col in POOL_COLUMNS}


def build_pool(plan: Plan, state: ProgramState, candidates: list[Candidate]) -> Pool | None:
    """The pool of every exposure with an archived ``_uncal`` or ``_rate``; None when
    there is none yet."""
    records = [r for r in sorted(state.exposures.values(), key=lambda r: r.name)
               if r.files("uncal") or r.files("rate")]
    if not records:
        return None
    raw = [p for r in records for p in (r.files("uncal") or r.files("rate"))]
    stamped = [p for r in records for suffix in ("uncal", "rate") for p in r.files(suffix)]
    created = max(p.archived_at for p in stamped).replace(microsecond=0, tzinfo=None)
    rows = tuple(pool_row(plan, r, candidates) for r in records)
    current = state.pool
    if current is not None and created <= current.name.created:
        if hashlib.sha256(_table_bytes(rows)).hexdigest() == current.sha256:
            created = current.name.created
        else:
            created = current.name.created + timedelta(seconds=1)
    return Pool(PoolName(state.program, created), rows, tuple(p.filename for p in raw))


def pool_bytes(pool: Pool) -> bytes:
    """The pool file: ``|``-delimited, header row, one line per exposure."""
    return _table_bytes(pool.rows)


def _table_bytes(rows: tuple[dict[str, str], ...]) -> bytes:
    table = Table(rows=[[row[c] for c in POOL_COLUMNS] for row in rows], names=POOL_COLUMNS,
                  dtype=[str] * len(POOL_COLUMNS))
    out = io.StringIO()
    table.write(out, format="ascii.basic", delimiter="|")
    return out.getvalue().encode()
