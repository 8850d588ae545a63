"""The multi-exposure program of the scale-out test and benchmark, and what the system
must make of it, derived from the simulator's plan."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select

from services.simulator import exposure_name
from shared.catalog import Association, Catalog, Product
from shared.naming import Level3Name, member_output_name

PROGRAM = 2345
PROGRAM_ID = f"{PROGRAM:05d}"
FILTERS = ("F200W", "F150W", "F090W", "F115W")


def description(observations: int = 2, dithers: int = 4, *, subarray: str = "SUB160", ngroups: int = 5,
                stars_per_window: float = 150.0) -> dict:
    """NIRCam imaging of two fields: ``observations`` observations of two detectors at
    ``dithers`` points; by default SUB160 and 5 groups so an exposure calibrates in about a
    second (the end-to-end benchmark asks for FULL and 8 groups)."""
    obs = []
    for n in range(1, observations + 1):
        obs.append({
            "number": n, "target": "FIELD-A" if n % 2 else "FIELD-B", "instrument": "NIRCAM",
            "template": "NIRCam Imaging", "detectors": ["NRCA1", "NRCA2"], "filter": FILTERS[(n - 1) % 4],
            "pupil": "CLEAR", "readpatt": "RAPID", "ngroups": ngroups, "nints": 1, "subarray": subarray,
            "dither": {"pattern": "N-POINT-LINE", "npoints": dithers, "size": 2.0} if dithers != 4
            else {"pattern": "4-POINT-BOX", "size": 2.0},
            "start_time": f"2025-03-0{n}T12:00:00Z",
        })
    return {
        "program": PROGRAM, "title": "Scale-out test program", "pi": "Grace Hopper",
        "pi_user": "grace@example.org", "category": "GO", "eap_months": 12,
        "targets": [{"name": "FIELD-A", "ra": 53.1625, "dec": -27.7914},
                    {"name": "FIELD-B", "ra": 53.2100, "dec": -27.7500}],
        "observations": obs,
        "simulation": {"seed": 7, "stars_per_window": stars_per_window, "bright_stars_per_window": 2, "compress": False},
    }


@dataclass(frozen=True)
class Expected:
    """The current products the chain must end with, by name, and the associations."""

    exposures: tuple[str, ...]          # exposure stems, e.g. jw02345001001_01101_00001_nrca1
    products: frozenset[str]            # every expected current product file name
    level3: frozenset[str]              # the Level-3 ones (mosaic, catalog, segmentation map)
    associations: Counter               # asn_type -> how many are emitted

    @classmethod
    def from_plan(cls, plan) -> Expected:
        exposures, names, level3 = [], set(), set()
        for obs in plan.observations:
            acid = f"o{obs.number:03d}"
            for exp in obs.exposures:
                stem = exposure_name(plan, obs, exp).exposure_id
                exposures.append(stem)
                names |= {f"{stem}_{s}.fits" for s in ("uncal", "rate", "trapsfilled", "cal", "i2d")}
                names.add(member_output_name(f"{stem}_cal.fits", acid, "crf"))
            target = f"t{obs.target_id:03d}"
            for suffix, ext in (("i2d", "fits"), ("segm", "fits"), ("cat", "ecsv")):
                level3.add(Level3Name.build(plan.program, acid, target, obs.instrument,
                                            [obs.filter, obs.pupil], obs.subarray, suffix, ext).format())
        return cls(tuple(exposures), frozenset(names | level3), frozenset(level3),
                   Counter({"image2": len(exposures), "image3": len(plan.observations)}))

    def done(self, catalog: Catalog) -> bool:
        """Whether every Level-3 product exists (the end of the chain)."""
        with catalog.session() as s:
            have = set(s.scalars(select(Product.filename).where(Product.filename.in_(self.level3),
                                                                Product.is_current)))
        return have == set(self.level3)

    def progress(self, catalog: Catalog) -> Counter:
        with catalog.session() as s:
            return Counter(s.scalars(select(Product.suffix).where(Product.program_id == PROGRAM_ID,
                                                                  Product.is_current)))


def current_products(catalog: Catalog) -> dict[str, list[tuple[int, bool]]]:
    """Every product row of the program: filename -> [(revision, is_current), ...]."""
    rows: dict[str, list[tuple[int, bool]]] = {}
    with catalog.session() as s:
        for name, rev, current in s.execute(select(Product.filename, Product.revision, Product.is_current)
                                            .where(Product.program_id == PROGRAM_ID)):
            rows.setdefault(name, []).append((rev, current))
    return rows


def emitted_associations(catalog: Catalog) -> Counter:
    with catalog.session() as s:
        return Counter(s.scalars(select(Association.asn_type).where(Association.program_id == PROGRAM_ID,
                                                                    Association.emitted_count > 0)))
