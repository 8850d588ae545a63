"""What the slit-spectroscopy tests share: an example program edited field by field, the
whole system run on one in this process, the line profile fitted to a spectrum, and
spectra scored against the simulator's truth."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits
from astropy.table import Table
from sqlalchemy import select

from services.console import ingest_paths
from services.registry import embedded_context
from services.simulator import simulate
from shared.catalog import Artifact, ArtifactKind, Product
from shared.config import Settings
from shared.refdata import deliver


def edited(example: Path, obs: dict | None = None, target: dict | None = None,
           simulation: dict | None = None) -> dict:
    """The example program with fields of its (first) observation, target or simulation
    replaced (None values remove a field)."""
    desc = copy.deepcopy(yaml.safe_load(example.read_text()))
    for part, changes in ((desc["observations"][0], obs), (desc["targets"][0], target),
                          (desc.setdefault("simulation", {}), simulation)):
        for key, value in (changes or {}).items():
            if value is None:
                part.pop(key, None)
            else:
                part[key] = value
    return desc


#: The services that make and archive the products, without previews and notices (what
#: the accuracy tests score; the end-to-end tests see the rest).
PRODUCT_SERVICES = ("ingest", "detector1", "associations", "stage2", "stage3")


def run_in_process(desc: dict, tmp: Path, services: tuple[str, ...] | None = None, **settings) -> dict:
    """``desc`` simulated and run through the system in this process (embedded catalog
    and store: ingest, detector1, associations, stage 2, stage 3, previews, notices; only
    ``services`` when given, e.g. :data:`PRODUCT_SERVICES`; ``settings`` changed from
    their defaults, e.g. ``segment_bytes``); every current data product downloaded to
    ``tmp/products``. Returns the simulation (``sim``), ``out``, the context (``ctx``),
    ``truth_dir`` and the product ``names``."""
    sim = simulate(desc, tmp / "sim")
    ctx, inline = embedded_context(Settings(var_dir=tmp / "var", _env_file=None, **settings), services)
    deliver(ctx, sim.reference_paths, note="simulator references")
    inline.run_until_idle()
    ingest_paths(ctx, inline, [sim.plan_path, sim.ephemeris_path, *sim.msa_paths, *sim.telemetry_paths])
    failed = [(task, o.error) for task, o in inline.completed if o.status != "ok"]
    assert not failed, failed
    out = tmp / "products"
    out.mkdir()
    with ctx.catalog.session() as s:
        rows = s.execute(select(Product.filename, Artifact.uri).join(Artifact)
                         .where(Product.is_current, Artifact.kind == ArtifactKind.DATA)).all()
    for name, uri in rows:
        ctx.store.download_uri(uri, out / name)
    return {"sim": sim, "out": out, "ctx": ctx, "truth_dir": tmp / "sim" / "truth",
            "names": sorted(n for n, _ in rows)}


def run_level3_locally(command, run: dict, asn_type: str, member_suffix: str, tmp: Path,
                       product: str | None = None) -> Path:
    """``command`` (a ``dms run`` command of stage 3) on ``run``'s archived association of
    ``asn_type`` (the one that names ``product``, when the run made several) with its
    ``_<member_suffix>.fits`` members copied beside it, with the simulator's references;
    the directory of what it wrote."""
    import shutil

    from shared.runlocal import run_command

    refs_dir = str(Path(run["sim"].reference_paths[0]).parent)
    work, out = tmp / "files", tmp / "out"
    work.mkdir()
    for name in run["names"]:
        if name.endswith(f"_{member_suffix}.fits") or (f"_{asn_type}_" in name and name.endswith("_asn.json")):
            shutil.copy(run["out"] / name, work / name)
    (asn,) = [p for p in work.glob(f"*_{asn_type}_*_asn.json") if product is None or product in p.read_text()]
    assert run_command(command, [str(asn), "--refs-dir", refs_dir, "--out", str(out)]) == 0
    return out


def gaussian_line(wl, centre, sigma, peak, c0, c1):
    """A Gaussian line on a straight continuum, to fit a line's centroid."""
    return c0 + c1 * (wl - centre) + peak * np.exp(-0.5 * ((wl - centre) / sigma) ** 2)


# --------------------------------------------------------------- spectra against the truth

BAND = (0.7, 5.1)  # um: NIRSpec's prism band scored (its ends are faint)
BRIGHT_JY = 5.0e-5  # sources scored for flux: their median truth above this


def spectra_of(path: Path) -> list[tuple[fits.Header, np.ndarray]]:
    """(header, table) of every EXTRACT1D of an ``_x1d``."""
    with fits.open(path) as hdul:
        return [(hdu.header, np.array(hdu.data)) for hdu in hdul if hdu.name == "EXTRACT1D"]


def truth_on(t: Table, wavelength: np.ndarray) -> np.ndarray:
    """A truth table's ``observed_jy`` at ``wavelength``."""
    order = np.argsort(t["wavelength"])
    return np.interp(wavelength, np.asarray(t["wavelength"])[order], np.asarray(t["observed_jy"])[order])


def usable(x: np.ndarray, band: tuple[float, float] = BAND) -> np.ndarray:
    """The elements of a spectrum with a flux, not DO_NOT_USE, inside ``band``."""
    return np.isfinite(x["FLUX"]) & ((x["DQ"] & 1) == 0) & (x["WAVELENGTH"] > band[0]) & (x["WAVELENGTH"] < band[1])


def flux_scores(spectra: list[tuple[fits.Header, np.ndarray]], truth_of, label: str
                ) -> list[tuple[int, float, float]]:
    """(source id, median flux / truth, spread of (flux - truth) / error) of every
    spectrum whose source is brighter than :data:`BRIGHT_JY`, over :data:`BAND`
    (``truth_of(source_id)`` its truth table), each printed; a spectrum with fewer than 150
    usable elements fails."""
    out = []
    for header, x in spectra:
        truth = truth_on(truth_of(header["SOURCEID"]), x["WAVELENGTH"])
        keep = usable(x)
        if np.median(truth[keep]) < BRIGHT_JY:
            continue
        ratio = float(np.median(x["FLUX"][keep] / truth[keep]))
        spread = float(np.std((x["FLUX"][keep] - truth[keep]) / x["FLUX_ERROR"][keep]))
        print(f"{label} source {header['SOURCEID']} ({np.median(truth[keep]) * 1e3:.3f} mJy, {int(keep.sum())} "
              f"elements): median flux / truth {ratio:.4f}, spread of (flux - truth) / error {spread:.3f}")
        assert keep.sum() > 150, (label, header["SOURCEID"], int(keep.sum()))
        out.append((int(header["SOURCEID"]), ratio, spread))
    return out
