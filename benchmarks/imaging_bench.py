"""Stages 2 and 3 of imaging on full-frame NIRCam exposures (2048 x 2048), one core.

No targets: figures only. The input is one NIRCam SW detector (NRCA1, F200W, RAPID, 5
groups) at the 4 points of a box dither, with the simulator's default stars, each taken
through ``run_detector1`` (``_rate``) and ``run_image2`` without resample (``_cal``); all
of it is cached in ``bench-results/imaging-input/`` (reused while the description and seed
are unchanged).

Each part is measured in its own child process (so each max RSS is that of the part
alone), pinned to one CPU with OMP/OpenBLAS/MKL threads set to 1 before numpy is imported:

- ``image2``: ``run_image2`` on one ``_rate`` with the simulator's FLAT, PHOTOM, AREA,
  DISTORTION and FILTEROFFSET references, resample to ``_i2d`` included;
- ``image3``: ``run_image3`` on the 4 ``_cal`` with the simulator's astrometric catalog as
  the absolute reference of tweakreg;
- ``resample``: ``shared.resample.resample`` of the 4 ``_cal`` onto their common grid
  (what image3 resamples onto: rotation 0, native scale), and beside it the bare
  ``drizzle`` library with the same pixmaps and weights (inverse VAR_RNOISE, DO_NOT_USE
  and NaN pixels weighted 0), twice: "SCI only", one ``Drizzle`` object and ``add_image``
  of each exposure's data, no variance propagation; and "same products", that plus each
  exposure's three variance arrays drizzled onto the whole grid and combined with squared
  weights, as the public pipeline's resampling (stcal) makes them. Pixmaps and weights
  are computed once outside those timings and timed on their own. ``ours/bare`` is the
  ratio of the timings; "agreement" is |SCI_ours - SCI_bare| / ERR_ours and
  |VAR_ours / VAR_bare - 1| over pixels both cover (should be ~0).

Per-step time comes from the pipelines' step hook (the runner enters it around every
declared step; image3's output grid is made inside outlier_detection, its first user);
"other" is the run minus its steps (array copies, headers, products).
Wall time is the best of a few runs (perf_counter); memory per step comes from a separate
run under tracemalloc (the peak of traced allocations during the step above what was
allocated when it started; "total" is the run's peak above its start); max RSS
(VmHWM) is taken after the first timing run, with the inputs and references loaded.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from benchmarks._child import max_rss_mb, pin_to_one_core, run_in_child
from benchmarks._steps import StepProbe, best, measure_runs, print_steps

INPUT_DIR = Path("bench-results") / "imaging-input"
PARTS = ("image2", "image3", "resample")
REPEAT = {"image2": 3, "image3": 2, "resample": 2}
SEED = 11
CREATED = "2026-01-01T00:00:00"
DESCRIPTION = {
    "program": 9997,
    "title": "Imaging benchmark",
    "pi": "Bench, M.",
    "targets": [{"name": "BENCH-IMAGING", "ra": 53.16, "dec": -27.79}],
    "observations": [{
        "target": "BENCH-IMAGING", "instrument": "NIRCAM", "detectors": ["NRCA1"], "subarray": "FULL",
        "readpatt": "RAPID", "filter": "F200W", "ngroups": 5, "nints": 1,
        "dither": {"pattern": "4-POINT-BOX", "size": 2.0},
    }],
}


# --------------------------------------------------------------------------- input (parent)


def _products(directory: Path, suffix: str) -> list[Path]:
    return sorted(directory.glob(f"*_{suffix}.fits"))


def _prepare_input(directory: Path) -> Path:
    """Simulate, ingest, detector1 and image2 (no resample) once; returns the directory
    holding the ``_rate`` and ``_cal`` files, ``sim/refs`` and ``sim/catalogs``."""
    stamp = directory / "input.json"
    wanted = {"description": DESCRIPTION, "seed": SEED}
    if (stamp.exists() and json.loads(stamp.read_text()) == wanted and len(_products(directory, "rate")) == 4
            and len(_products(directory, "cal")) == 4):
        print(f"reusing the simulated exposures in {directory}", flush=True)
        return directory

    from datetime import UTC, datetime

    from services.ingest.pipeline import ingest_telemetry
    from services.simulator import simulate
    from shared.datamodels import read_product, write_product

    stamp.unlink(missing_ok=True)
    for stale in [*_products(directory, "rate"), *_products(directory, "cal")]:
        stale.unlink()
    print("simulating 4 dithered full-frame NIRCam exposures (2048x2048, 5 groups) with references...", flush=True)
    t0 = time.perf_counter()
    sim = simulate(DESCRIPTION, directory / "sim", seed=SEED)
    refs_dir = directory / "sim" / "refs"
    print(f"  simulated in {time.perf_counter() - t0:.1f} s; detector1 and image2 of each...", flush=True)
    detector1_refs = None
    for telemetry in sim.telemetry_paths:
        out = ingest_telemetry(telemetry.read_bytes(), lambda program: sim.plan,
                               created=datetime(2026, 1, 1, tzinfo=UTC), software_version="bench",
                               segment_bytes=2_000_000_000)
        for uncal_file in out.files:
            if detector1_refs is None:  # one detector, one window: the same references for all
                detector1_refs = _detector1_references(uncal_file.product.keywords, refs_dir)
            rate = _run_detector1(uncal_file.product, detector1_refs)
            write_product(directory / uncal_file.name.with_suffix("rate").format(), rate)
    for rate_path in _products(directory, "rate"):
        cal = _run_image2_without_resample(read_product(rate_path), refs_dir)
        write_product(rate_path.with_name(rate_path.name.replace("_rate.fits", "_cal.fits")), cal)
    for bulky in ("telemetry", "truth"):  # only the references and the catalog are read again
        shutil.rmtree(directory / "sim" / bulky, ignore_errors=True)
    stamp.write_text(json.dumps(wanted))
    print(f"  inputs ready in {time.perf_counter() - t0:.1f} s", flush=True)
    return directory


def _references(pipeline, kw: dict, refs_dir: Path) -> dict:
    """The references of ``pipeline`` for an exposure, chosen in ``refs_dir`` by the archive's rules."""
    from shared.refdata import LocalReferences, load_references

    return load_references(LocalReferences(refs_dir=refs_dir), kw, pipeline.reftypes(kw)).found


def _detector1_references(kw: dict, refs_dir: Path) -> dict:
    from services.detector1.pipeline import DETECTOR1

    return _references(DETECTOR1, kw, refs_dir)


def _run_detector1(uncal, refs):
    from services.detector1.pipeline import run_detector1

    out = run_detector1(uncal, refs, context="bench", software_version="bench", created=CREATED)
    if out.rate is None:
        raise RuntimeError(f"detector1 made no _rate: {out.notes}")
    return out.rate


def _image2_references(kw: dict, refs_dir: Path):
    from services.stage2.pipeline import IMAGE2

    return _references(IMAGE2, kw, refs_dir)


def _run_image2_without_resample(rate, refs_dir: Path):
    from services.stage2.pipeline import IMAGE2, run_image2

    refs = _image2_references(rate.keywords, refs_dir)
    out = run_image2(rate, refs, params=IMAGE2.params(skip={"resample"}), context="bench",
                     software_version="bench", created=CREATED)
    return out.cal


def run() -> dict:
    directory = _prepare_input(INPUT_DIR).resolve()
    result: dict = {"threads": "1 core (affinity), OMP/OPENBLAS/MKL threads 1", "repeat": REPEAT}
    for part in PARTS:
        print(f"measuring {part} in a child process pinned to one core...", flush=True)
        result[part] = run_in_child("benchmarks.imaging_bench", part, str(directory))
    _print(result)
    return result


def _print(r: dict) -> None:
    repeats = "/".join(str(r["repeat"][p]) for p in PARTS)
    print(f"\nimaging benchmark: NIRCam NRCA1 F200W full frame 2048x2048, 4-point box dither, {r['threads']}, "
          f"best of {repeats} timing runs ({'/'.join(PARTS)}), one traced run")
    print_steps("image2 on one _rate (resample to _i2d included)", r["image2"])
    i3 = r["image3"]
    print_steps(f"image3 on 4 _cal ({i3['aligned']}), i2d {i3['i2d_shape']}, {i3['catalog_rows']} sources", i3)
    for note in i3["notes"]:
        if note.startswith("tweakreg"):
            print(f"  note: {note}")
    s = r["resample"]
    print(f"\nresample of the 4 _cal onto their grid {s['grid_shape']} (ny, nx)")
    print(f"  {'':<34} {'seconds':>8} {'peak MB':>9}")
    print(f"  {'shared.resample.resample':<34} {s['ours']:>8.3f} {s['peak_mb']['ours']:>9.0f}")
    print(f"  {'drizzle ' + s['drizzle_version'] + ', bare, SCI only':<34} {s['bare']:>8.3f} "
          f"{s['peak_mb']['bare']:>9.0f}")
    print(f"  {'drizzle ' + s['drizzle_version'] + ', bare, same products':<34} {s['bare_same']:>8.3f} "
          f"{s['peak_mb']['bare_same']:>9.0f}")
    print(f"  {'  pixmaps (4, calc_pixmap)':<34} {s['pixmaps']:>8.3f}")
    print(f"  {'  weights (4, inverse VAR_RNOISE)':<34} {s['weights']:>8.3f}")
    print(f"  ours/bare, SCI only {s['ratio_ours_over_bare']:.2f} (with pixmaps and weights "
          f"{s['ratio_ours_over_bare_with_maps']:.2f}); ours/bare, same products {s['ratio_ours_over_bare_same']:.2f} "
          f"(with pixmaps and weights {s['ratio_ours_over_bare_same_with_maps']:.2f}, target 1.3); "
          f"max RSS {s['max_rss']:.0f} MB")
    a = s["agreement"]
    print(f"  agreement: median |ours - bare| / ERR = {a['median_abs_diff_over_err']:.1e}, max "
          f"{a['max_abs_diff_over_err']:.1e}; variances median |ours / bare - 1| "
          f"{a['median_variance_rel_diff']:.1e}, max {a['max_variance_rel_diff']:.1e}; over {a['pixels']} pixels "
          "both cover")


# --------------------------------------------------------------------------- measurement (child)


def _measure_image2(directory: Path) -> dict:
    import services.stage2.pipeline as image2
    from shared.datamodels import read_product

    io: dict[str, float] = {}
    rate_path = _products(directory, "rate")[0]
    io["read _rate"], rate = best(lambda: read_product(rate_path), REPEAT["image2"])
    io["load references"], refs = best(lambda: _image2_references(rate.keywords, directory / "sim" / "refs"), 1)
    probe = StepProbe()
    r = measure_runs(lambda: image2.run_image2(rate, refs, context="bench", software_version="bench",
                                                created=CREATED, step_hook=probe), probe, REPEAT["image2"])
    out = r.pop("output")
    r["seconds"]["io"] = io
    r["statuses"] = dict(out.statuses)
    r["shape"] = list(rate.images["SCI"].shape)
    r["i2d_shape"] = list(out.i2d.images["SCI"].shape) if out.i2d is not None else None
    return r


def _measure_image3(directory: Path) -> dict:
    import services.stage3.pipeline as image3
    from services.stage3.refcat import load_astrometric_catalog
    from shared.datamodels import read_product

    io: dict[str, float] = {}
    cal_paths = _products(directory, "cal")
    io["read 4 _cal"], members = best(lambda: [read_product(p) for p in cal_paths], 1)
    io["load catalog"], refcat = best(lambda: load_astrometric_catalog(directory / "sim" / "catalogs"), 1)
    probe = StepProbe()
    r = measure_runs(lambda: image3.run_image3(members, None, abs_refcat=refcat, software_version="bench",
                                                created=CREATED, step_hook=probe),
                      probe, REPEAT["image3"])
    out = r.pop("output")
    r["seconds"]["io"] = io
    r["statuses"] = dict(out.statuses)
    r["i2d_shape"] = list(out.i2d.images["SCI"].shape) if out.i2d is not None else None
    r["catalog_rows"] = 0 if out.cat is None else len(out.cat)
    r["alignments"] = [{"aligned": a.aligned, "nmatch": a.nmatch, "rms_arcsec": a.rms, "note": a.note}
                       for a in out.alignments]
    r["notes"] = list(out.notes)
    aligned = sum(a.aligned for a in out.alignments)
    r["aligned"] = (f"{aligned}/{len(members)} aligned, "
                    f"{'absolute catalog of ' + str(len(refcat[0])) + ' stars' if refcat else 'no catalog'}")
    return r


def _measure_resample(directory: Path) -> dict:
    import tracemalloc

    import drizzle
    import numpy as np
    from drizzle.resample import Drizzle
    from drizzle.utils import calc_pixmap

    from services.stage3.products import card_value, member_wcs
    from shared.datamodels import dqflags, read_product
    from shared.resample import ResampleInput, output_grid, resample

    repeat = REPEAT["resample"]
    members = [read_product(p) for p in _products(directory, "cal")]
    inputs = [ResampleInput(np.asarray(m.images["SCI"], np.float32), member_wcs(m),
                            np.asarray(m.images["DQ"], np.uint32), m.images.get("VAR_RNOISE"),
                            m.images.get("VAR_POISSON"), m.images.get("VAR_FLAT"),
                            float(card_value(m, "TMEASURE") or card_value(m, "EFFEXPTM") or 1.0))
              for m in members]
    out_wcs, out_shape = output_grid([i.wcs for i in inputs], [i.data.shape for i in inputs], rotation=0.0)

    def ours():
        return resample(inputs, out_wcs, out_shape, weight_type="ivm")

    def pixmaps():
        return [calc_pixmap(i.wcs, out_wcs, i.data.shape) for i in inputs]

    def weights():
        out = []
        for i in inputs:
            var = np.asarray(i.var_rnoise, np.float32)
            ok = (np.isfinite(i.data) & ((i.dq & dqflags.PIXEL["DO_NOT_USE"]) == 0) & np.isfinite(var) & (var > 0))
            w = np.zeros(i.data.shape, np.float32)
            w[ok] = 1.0 / var[ok]
            out.append(w)
        return out

    t_pix, pmaps = best(pixmaps, 1)
    t_wht, whts = best(weights, 1)
    filled = [np.where(w > 0, i.data, 0.0).astype(np.float32) for i, w in zip(inputs, whts, strict=True)]

    def bare():
        driz = Drizzle(kernel="square", fillval=0.0, out_shape=out_shape)
        for data, pmap, w, i in zip(filled, pmaps, whts, inputs, strict=True):
            driz.add_image(data, exptime=i.exptime, pixmap=pmap, weight_map=w, pixfrac=1.0, in_units="cps")
        return driz

    names = ("var_rnoise", "var_poisson", "var_flat")
    filled_var = [{n: (np.where(ok := np.isfinite(v := getattr(i, n)), v, 0.0).astype(np.float32),
                       np.where(ok, w, 0.0).astype(np.float32)) for n in names}
                  for i, w in zip(inputs, whts, strict=True)]

    def bare_same():
        driz = bare()
        sums = {n: np.zeros(out_shape) for n in names}
        for pmap, i, arrays in zip(pmaps, inputs, filled_var, strict=True):
            for n, (var, w) in arrays.items():
                one = Drizzle(kernel="square", fillval=0.0, out_shape=out_shape, disable_ctx=True)
                one.add_image(var, exptime=i.exptime, pixmap=pmap, weight_map=w, pixfrac=1.0, in_units="cps")
                sums[n] += np.square(one.out_wht, dtype=np.float64) * one.out_img
        with np.errstate(invalid="ignore", divide="ignore"):
            return driz, {n: sums[n] / np.square(driz.out_wht, dtype=np.float64) for n in names}

    t_ours, mine = best(ours, repeat)
    max_rss = max_rss_mb()
    t_bare, driz = best(bare, repeat)
    t_same, (_, bare_vars) = best(bare_same, repeat)

    peaks = {}
    for name, fn in (("ours", ours), ("bare", bare), ("bare_same", bare_same)):
        tracemalloc.start()
        start = tracemalloc.get_traced_memory()[0]
        fn()
        peaks[name] = (tracemalloc.get_traced_memory()[1] - start) / 2**20
        tracemalloc.stop()

    both = (mine.wht > 0) & (np.asarray(driz.out_wht) > 0) & np.isfinite(mine.err) & (mine.err > 0)
    diff = np.abs(mine.data[both] - np.asarray(driz.out_img)[both]) / mine.err[both]
    var_diff = np.concatenate([np.abs(getattr(mine, n)[both] / bare_vars[n][both] - 1.0) for n in names])
    return {
        "grid_shape": list(out_shape), "drizzle_version": drizzle.__version__,
        "ours": t_ours, "bare": t_bare, "bare_same": t_same, "pixmaps": t_pix, "weights": t_wht,
        "ratio_ours_over_bare": t_ours / t_bare, "ratio_ours_over_bare_with_maps": t_ours / (t_bare + t_pix + t_wht),
        "ratio_ours_over_bare_same": t_ours / t_same,
        "ratio_ours_over_bare_same_with_maps": t_ours / (t_same + t_pix + t_wht),
        "peak_mb": peaks, "max_rss": max_rss,
        "agreement": {"pixels": int(both.sum()), "median_abs_diff_over_err": float(np.median(diff)),
                      "max_abs_diff_over_err": float(np.max(diff)),
                      "median_variance_rel_diff": float(np.nanmedian(var_diff)),
                      "max_variance_rel_diff": float(np.nanmax(var_diff))},
    }


def _measure(part: str, directory: Path, result_path: Path) -> None:
    pin_to_one_core()
    import logging

    for name in ("services", "shared.pipeline", "shared.refdata"):  # the expected SKIPPED notes
        logging.getLogger(name).setLevel(logging.ERROR)
    measure = {"image2": _measure_image2, "image3": _measure_image3, "resample": _measure_resample}[part]
    result_path.write_text(json.dumps(measure(directory), indent=2))


if __name__ == "__main__":
    _measure(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
