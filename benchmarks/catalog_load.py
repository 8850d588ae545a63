"""Synthetic but realistic catalog rows for the archive benchmark, bulk-loaded with COPY.

Programs of 1 to 60 observations (about 20 on average); NIRCam, NIRISS and MIRI imaging
and NIRSpec IFU observations, each with its dithers and detectors, and every product the
chain makes of them: per exposure ``_uncal``, ``_rate``, ``_cal``, ``_crf`` and the
Level-2 association; per dither a fine-guide product; per visit the guide-star ID, ACQ
and TRACK products; per observation the Level-3 association and its products (``_i2d``,
``_cat``, ``_segm``; ``_s3d``, ``_x1d``); per program a pool. One observation in ten was
reprocessed: its calibrated products have a second revision, the first superseded.
Science products from Level 2 have a preview and a thumbnail. A third of the targets lie
in ten deep fields (Gaussian, 0.3 degree), the rest anywhere on the sky; exposures point
within a few arcminutes of their target. Archive dates run from 2022-07 to 2026-11, with
12 months of exclusive access for most programs (a tenth are public at once).

The rows are written for the schema of ``0011_prerequisites`` (the columns every later
migration keeps); migrations after it fill what they derive.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

__all__ = ["Loaded", "load"]

BASE_SCHEMA = "0011_prerequisites"

DEEP_FIELDS = [(53.16, -27.79), (150.12, 2.21), (34.40, -5.20), (214.83, 52.82), (3.58, -30.40),
               (270.0, 66.56), (80.89, -69.76), (83.82, -5.39), (161.26, -59.68), (266.42, -29.01)]


@dataclass(frozen=True)
class _Template:
    instrument: str
    template: str
    exp_type: str
    detectors: tuple[str, ...]
    dithers: int
    filters: tuple[str, ...]
    pupil: str
    readpatt: str
    level3: tuple[str, ...]  # suffixes of the Level-3 products
    share: float


TEMPLATES = [
    _Template("NIRCAM", "NIRCam Imaging", "NRC_IMAGE", ("nrca1", "nrca2", "nrca3", "nrca4"), 6,
              ("F090W", "F150W", "F200W", "F277W", "F356W", "F444W"), "CLEAR", "MEDIUM8", ("i2d", "cat", "segm"), 0.4),
    _Template("NIRISS", "NIRISS Imaging", "NIS_IMAGE", ("nis",), 12, ("F115W", "F150W", "F200W"), "CLEARP",
              "NIS", ("i2d", "cat", "segm"), 0.2),
    _Template("MIRI", "MIRI Imaging", "MIR_IMAGE", ("mirimage",), 12, ("F560W", "F770W", "F1000W", "F1500W"), "",
              "FASTR1", ("i2d", "cat", "segm"), 0.2),
    _Template("NIRSPEC", "NIRSpec IFU Spectroscopy", "NRS_IFU", ("nrs1", "nrs2"), 4, ("F290LP", "F170LP"), "",
              "NRSIRS2RAPID", ("s3d", "x1d"), 0.2),
]
_LEVEL3_TYPE = {"i2d": "SCIENCE", "cat": "SCIENCE", "segm": "AUXILIARY", "s3d": "SCIENCE", "x1d": "SCIENCE"}
_EXT = {"cat": "ecsv"}
_START = datetime(2022, 7, 12, tzinfo=UTC)
_SPAN_DAYS = (datetime(2026, 11, 20, tzinfo=UTC) - _START).days


@dataclass(frozen=True)
class Loaded:
    programs: int
    observations: int
    exposures: int
    products: int
    artifacts: int
    seconds: float
    samples: dict  # a few real values for the queries: filenames, programs, targets, obs_ids


def _ts(t: datetime) -> str:
    return t.isoformat()


class _Table:
    """A COPY buffer of one table (text format, tab-separated, \\N for NULL)."""

    def __init__(self, name: str, columns: tuple[str, ...]):
        self.name, self.columns, self.rows, self.buf = name, columns, 0, io.StringIO()

    def add(self, *values) -> None:
        self.buf.write("\t".join("\\N" if v is None else str(v) for v in values))
        self.buf.write("\n")
        self.rows += 1

    def flush(self, cur) -> None:
        data = self.buf.getvalue()
        if data:
            with cur.copy(f'COPY "{self.name}" ({", ".join(self.columns)}) FROM STDIN') as copy:
                copy.write(data)
        self.buf = io.StringIO()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.program = _Table("program", ("id", "title", "pi_name", "category", "eap_months", "authorized_users",
                                          "granted_users", "pi_user", "embargoed", "created_at"))
        self.observation = _Table("observation", ("id", "program_id", "number", "target_name", "target_ra",
                                                  "target_dec", "instrument", "template", "exp_type", "filter",
                                                  "pupil", "pre_image_for"))
        self.exposure = _Table("exposure", ("id", "observation_id", "name", "visit", "visit_group", "sequence",
                                            "activity", "exposure", "detector", "exp_type", "filter", "pupil",
                                            "readpatt", "subarray", "ngroups", "nints", "start_time", "ra", "dec"))
        self.product = _Table("product", ("id", "filename", "suffix", "level", "product_type", "revision",
                                          "is_current", "program_id", "observation_id", "exposure_id", "archived_at",
                                          "meta_release", "data_release", "software_version", "reference_context",
                                          "inputs", "superseded_at"))
        self.artifact = _Table("artifact", ("id", "product_id", "kind", "uri", "sha256", "size", "content_type"))
        self.n_obs = self.n_exp = self.n_prod = self.n_art = 0
        self.samples: dict[str, list] = {"current": [], "programs": [], "targets": [], "obs_prefix": []}

    def tables(self) -> list[_Table]:
        return [self.program, self.observation, self.exposure, self.product, self.artifact]

    def add_product(self, program: str, obs_number: int, obs_id: int | None, exposure_id: int | None,
                    filename: str, suffix: str, level: int, ptype: str, inputs: list[str], archived: datetime,
                    release: datetime, reprocessed: bool, preview: bool) -> None:
        revisions = [1, 2] if reprocessed else [1]
        for rev in revisions:
            self.n_prod += 1
            pid = self.n_prod
            at = archived + timedelta(days=90 * (rev - 1))
            current = rev == revisions[-1]
            superseded = None if current else _ts(archived + timedelta(days=90))
            self.product.add(pid, filename, suffix, level, ptype, rev, "t" if current else "f", program,
                             obs_id if obs_id is not None else None, exposure_id, _ts(at), _ts(at), _ts(release),
                             "1.16.1" if rev == 1 else "1.18.0", f"jwst_{1100 + 40 * rev}.pmap",
                             json.dumps(inputs), superseded)
            key = f"{program}/{obs_number:03d}/r{rev}/{filename}"
            size = int(self.rng.integers(20_000, 400_000_000))
            ctype = "application/json" if filename.endswith(".json") else (
                "text/csv" if filename.endswith(".csv") else "text/plain" if filename.endswith(".ecsv")
                else "application/fits")
            self.n_art += 1
            self.artifact.add(self.n_art, pid, "data", f"s3://dms-archive/{key}", _sha(key), size, ctype)
            if preview:
                stem = filename.rsplit(".", 1)[0]
                for kind, name, ct in (("preview", f"{stem}.png", "image/png"),
                                       ("thumbnail", f"{stem}_thumb.jpg", "image/jpeg")):
                    pkey = f"{program}/{obs_number:03d}/r{rev}/{name}"
                    self.n_art += 1
                    self.artifact.add(self.n_art, pid, kind, f"s3://dms-previews/{pkey}", _sha(pkey),
                                      int(self.rng.integers(5_000, 900_000)), ct)
            if current and self.rng.random() < 0.02:
                self.samples["current"].append(filename)

    def add_program(self, number: int, n_obs: int) -> None:
        rng = self.rng
        program = f"{number:05d}"
        eap = 0 if rng.random() < 0.1 else 12
        created = _START + timedelta(days=float(rng.uniform(0, _SPAN_DAYS - 30)))
        self.program.add(program, f"Synthetic program {program}", f"Investigator {number}, A.",
                         "GO" if rng.random() < 0.8 else "GTO", eap, "[]", "[]", f"pi{number}@example.org", "f",
                         _ts(created))
        self.samples["programs"].append(program)
        pool = f"jw{program}_20250101t000000_pool.csv"
        pool_inputs: list[str] = []
        for number_in_program in range(1, n_obs + 1):
            pool_inputs += self.add_observation(program, number_in_program, created, eap)
        self.add_product(program, 0, None, None, pool, "pool", 1, "AUXILIARY", pool_inputs[:50], created,
                         created, False, False)

    def _target(self) -> tuple[float, float]:
        rng = self.rng
        if rng.random() < 1 / 3:
            ra0, dec0 = DEEP_FIELDS[int(rng.integers(len(DEEP_FIELDS)))]
            dec = float(np.clip(dec0 + rng.normal(0, 0.3), -89.9, 89.9))
            ra = (ra0 + rng.normal(0, 0.3) / max(math.cos(math.radians(dec)), 0.05)) % 360.0
            return ra, dec
        return float(rng.uniform(0, 360)), math.degrees(math.asin(rng.uniform(-1, 1)))

    def add_observation(self, program: str, number: int, created: datetime, eap: int) -> list[str]:
        rng = self.rng
        shares = np.array([t.share for t in TEMPLATES])
        t = TEMPLATES[int(rng.choice(len(TEMPLATES), p=shares / shares.sum()))]
        self.n_obs += 1
        oid = self.n_obs
        ra, dec = self._target()
        filt = t.filters[int(rng.integers(len(t.filters)))]
        self.observation.add(oid, program, number, f"TARGET-{program}-{number}", f"{ra:.7f}", f"{dec:.7f}",
                             t.instrument, t.template, t.exp_type, filt, t.pupil or None, "[]")
        self.samples["targets"].append((ra, dec))
        start = created + timedelta(days=float(rng.uniform(1, 60)))
        archived = start + timedelta(hours=6)
        release = archived + timedelta(days=365 * eap / 12)
        reprocessed = rng.random() < 0.1
        obs = f"jw{program}{number:03d}"
        self.samples["obs_prefix"].append(obs)
        stamp = "20250101t000000"
        cal_names, crf_names, uncal_names = [], [], []
        visit = 1
        for d in range(1, t.dithers + 1):
            when = start + timedelta(minutes=25 * d)
            dra, ddec = rng.normal(0, 0.02, 2)
            fine = None
            for det in t.detectors:
                self.n_exp += 1
                eid = self.n_exp
                name = f"{obs}{visit:03d}_02101_{d:05d}_{det}"
                self.exposure.add(eid, oid, name, visit, 2, 1, "01", d, det.upper(), t.exp_type, filt,
                                  t.pupil or None, t.readpatt, "FULL", 8, 1, _ts(when),
                                  f"{(ra + dra) % 360:.7f}", f"{float(np.clip(dec + ddec, -90, 90)):.7f}")
                fine = fine or eid
                uncal, rate, cal = f"{name}_uncal.fits", f"{name}_rate.fits", f"{name}_cal.fits"
                asn2 = f"jw{program}-o{number:03d}_{stamp}_image2_{self.n_exp % 100000:05d}_asn.json"
                crf = f"{name}_o{number:03d}_crf.fits"
                raw = f"s3://dms-raw/{program}/{number:03d}/{name}.ccsds"
                self.add_product(program, number, oid, eid, uncal, "uncal", 1, "SCIENCE", [raw], archived, release,
                                 False, False)
                self.add_product(program, number, oid, eid, rate, "rate", 2, "SCIENCE",
                                 [uncal, "crds://jwst_nircam_dark_0342.fits"], archived, release, reprocessed, True)
                self.add_product(program, number, oid, None, asn2, "asn", 2, "AUXILIARY", [rate], archived, release,
                                 False, False)
                self.add_product(program, number, oid, eid, cal, "cal", 2, "SCIENCE",
                                 [rate, asn2, "crds://jwst_nircam_flat_0512.fits"], archived, release, reprocessed,
                                 True)
                self.add_product(program, number, oid, eid, crf, "crf", 3, "AUXILIARY", [cal], archived, release,
                                 reprocessed, False)
                uncal_names.append(uncal)
                cal_names.append(cal)
                crf_names.append(crf)
            gs_stamp = (when - timedelta(minutes=5)).strftime("%Y%j%H%M%S")
            self.add_product(program, number, oid, fine, f"{obs}{visit:03d}_gs-fg_{gs_stamp}_cal.fits", "gs-fg", 2,
                             "AUXILIARY", [f"s3://dms-raw/{program}/{number:03d}/gs-fg-{d}.ccsds"], archived, release,
                             False, False)
        gs_stamp = start.strftime("%Y%j%H%M%S")
        for mode in ("gs-acq1", "gs-acq2", "gs-track"):
            self.add_product(program, number, oid, None, f"{obs}{visit:03d}_{mode}_{gs_stamp}_cal.fits", mode, 2,
                             "AUXILIARY", [], archived, release, False, False)
        self.add_product(program, number, oid, None, f"{obs}{visit:03d}_gs-id_1_image_cal.fits", "gs-id", 2,
                         "AUXILIARY", [], archived, release, False, False)
        asn3 = f"jw{program}-o{number:03d}_{stamp}_image3_00001_asn.json"
        self.add_product(program, number, oid, None, asn3, "asn", 3, "AUXILIARY", cal_names, archived, release,
                         False, False)
        optical = f"{(t.pupil or 'clear').lower()}-{filt.lower()}" if t.instrument == "NIRCAM" else filt.lower()
        for suffix in t.level3:
            name = f"jw{program}-o{number:03d}_t001_{t.instrument.lower()}_{optical}_{suffix}.{_EXT.get(suffix, 'fits')}"
            ptype = _LEVEL3_TYPE[suffix]
            self.add_product(program, number, oid, None, name, suffix, 3, ptype, [asn3, *crf_names], archived,
                             release, reprocessed, ptype == "SCIENCE")
        return uncal_names


def _program_sizes(rng: np.random.Generator, products: int) -> list[int]:
    """Observations per program until about ``products`` products (about 100 per observation)."""
    sizes, total = [], 0
    while total < products / 100:
        n = int(min(60, max(1, rng.geometric(1 / 20))))
        sizes.append(n)
        total += n
    return sizes


def load(conn, products: int, seed: int = 2026, batch_programs: int = 50) -> Loaded:
    """Fill an empty catalog (schema :data:`BASE_SCHEMA`) through ``conn`` (psycopg, not
    autocommit) with about ``products`` product rows; commits."""
    import time

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    b = _Builder(rng)
    sizes = _program_sizes(rng, products)
    numbers = rng.choice(np.arange(1000, 9999), size=len(sizes), replace=False)
    with conn.cursor() as cur:
        for i, (number, n) in enumerate(zip(numbers, sizes, strict=True)):
            b.add_program(int(number), n)
            if (i + 1) % batch_programs == 0:
                for table in b.tables():
                    table.flush(cur)
        for table in b.tables():
            table.flush(cur)
        for table, column in (("observation", "id"), ("exposure", "id"), ("product", "id"), ("artifact", "id")):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT max({column}) FROM {table}))")
    conn.commit()
    return Loaded(programs=len(sizes), observations=b.n_obs, exposures=b.n_exp, products=b.n_prod,
                  artifacts=b.n_art, seconds=time.perf_counter() - t0, samples=b.samples)
