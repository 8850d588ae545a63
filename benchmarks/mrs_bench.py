"""MIRI MRS cube_build: one full-frame MIRIFUSHORT exposure (band SHORT, channels 1 and 2)
and a 4-point dither, ours and the public pipeline's on the same ``_cal``.

No targets: figures only. The input: four ``_cal`` of a 30 mJy point source on the thermal
sky at the four points of the MRS 4-POINT dither (``description.MRS_4POINT_ALPHA_BETA``),
each rendered noiseless (services/simulator/mrs.py) and calibrated by our calwebb_spec2 with
the simulator's MRS references (made once per run in ``bench-results/mrs-input/``, not
timed).

Ours, in a child process pinned to one CPU with single-threaded numeric libraries
(benchmarks._child): per channel, the cube of one exposure and of the four dithers as
calwebb_spec3's cube_build makes it (per exposure its pixels' footprints on the sky from
its ``_cal``'s gwcs, :func:`shared.spectra.ifu.gwcs_footprints`, then one
:func:`shared.spectra.ifu_cube.channel_cube`; wall time, best of 3) and the child's peak
RSS.
The four exposures share one pointing (the source moved to each dither point instead): the
cost of four dithers, not their sampling.
The public pipeline: jwst's ``CubeBuildStep`` (offline, our CUBEPAR, ``output_type='band'``:
both channels' cubes) on the same ``_cal``, one exposure and the four, in a child of its own
with single-threaded numeric libraries (not pinned); its wall time includes the step's start
and its reading and writing the files. The ratio that compares the cube builds alone is that
of the added cost of three more exposures (four less one), where the start and the fixed
costs cancel; the ratio of the whole runs is given too.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks._child import peak_rss_mib, pin_to_one_core, run_in_child

INPUT_DIR = Path("bench-results") / "mrs-input"
REPEAT = 3
DETECTOR, BAND = "MIRIFUSHORT", "SHORT"


def _prepare(directory: Path) -> tuple[list[Path], Path]:
    """The four ``_cal`` and the CUBEPAR (written once)."""
    import numpy as np

    from services.simulator import mrs
    from services.simulator.description import MRS_4POINT_ALPHA_BETA
    from services.simulator.detector_model import make_detector_model
    from services.simulator.mrs_refs import write_mrs_references
    from services.simulator.optical_refs import mean_gain
    from services.simulator.spectrograph import SourceSpectrum
    from services.stage2.spec2 import run_spec2
    from shared.datamodels import FitsProduct, write_product
    from shared.imaging_wcs import TelescopePointing
    from shared.instruments import detector as detector_info
    from shared.refdata.loading import load_reference
    from shared.refdata.window import Window

    directory.mkdir(parents=True, exist_ok=True)
    cals = [directory / f"jw01234001001_01101_0000{k + 1}_mirifushort_cal.fits" for k in range(4)]
    refs_dir = directory / "refs"
    files = write_mrs_references(make_detector_model(detector_info(DETECTOR), 7), refs_dir)
    cubepar = next(r.path for r in files if r.reftype.upper() == "CUBEPAR")
    if all(p.exists() for p in cals):
        return cals, cubepar
    window = Window(1, 1, 1032, 1024)
    refs = {r.reftype.lower(): load_reference(r.reftype.lower(), r.path, window, (1024, 1032)) for r in files
            if r.reftype.upper() not in ("DISTORTION", "SPECWCS", "REGIONS", "PHOTOM") or f"_{BAND.lower()}_" in r.path.name}
    gain = mean_gain(make_detector_model(detector_info(DETECTOR), 7))
    info = detector_info(DETECTOR)
    p = TelescopePointing(80.48, -69.49, 37.0, float(info.v2_ref), float(info.v3_ref))
    spectrum = SourceSpectrum(0.03, slope=-1.0)
    for k, (alpha, beta) in enumerate(MRS_4POINT_ALPHA_BETA):
        # the source at each dither point's (alpha, beta), the pointing kept: four exposures
        # of the cost of four dithers (their footprints coincide on the sky)
        image = mrs.render_mrs(DETECTOR, BAND, points=[mrs.PointSource(spectrum, alpha, beta)]).image
        sci = (image / gain).astype(np.float32)
        var = np.full(sci.shape, 1e-4, np.float32)
        kw = {"FILENAME": cals[k].name.replace("_cal", "_rate"), "INSTRUME": "MIRI", "DETECTOR": DETECTOR,
              "EXP_TYPE": "MIR_MRS", "CHANNEL": "12", "BAND": BAND, "SUBARRAY": "FULL", "SUBSTRT1": 1, "SUBSTRT2": 1,
              "SUBSIZE1": 1032, "SUBSIZE2": 1024, "SRCTYAPT": "POINT", "TARG_RA": p.ra_ref, "TARG_DEC": p.dec_ref,
              "DATE-OBS": "2024-03-01", "TIME-OBS": "12:00:00", "BUNIT": "DN/s", "RA_REF": p.ra_ref,
              "DEC_REF": p.dec_ref, "ROLL_REF": p.roll_ref, "V2_REF": p.v2_ref, "V3_REF": p.v3_ref}
        rate = FitsProduct("ImageModel", keywords=kw, images={
            "SCI": sci, "DQ": np.zeros(sci.shape, np.uint32), "ERR": np.sqrt(2 * var), "VAR_POISSON": var,
            "VAR_RNOISE": var})
        write_product(cals[k], run_spec2(rate, refs, software_version="bench").cal)
    return cals, cubepar


def _ours(cals: list[Path], refs_dir: Path, result_path: Path) -> None:
    """Our cube build per channel, one exposure and the four; peak RSS."""
    pin_to_one_core()
    import numpy as np
    from astropy.io import fits

    from shared.datamodels import read_product
    from shared.spectra.ifu import gwcs_footprints
    from shared.spectra.ifu_cube import CubeBuildParams, ExposurePixels, channel_cube, cubepar_row

    with fits.open(next(refs_dir.glob("jwst_miri_cubepar_*.fits"))) as hdul:
        table = np.asarray(hdul["CUBEPAR"].data)
    products = [read_product(p) for p in cals]
    out: dict = {}
    for channel in (1, 2):
        row = cubepar_row(table, channel, BAND)
        for n in (1, 4):
            def once(n=n, channel=channel, row=row):
                pixels = [ExposurePixels.of(gwcs_footprints(p.extra_meta["meta.wcs"], channel), p.images["SCI"],
                                            p.images["ERR"], p.images["DQ"]) for p in products[:n]]
                cube = channel_cube(pixels, channel, BAND, row, CubeBuildParams())
                return cube.grid, sum(p.flux.size for p in pixels)
            times = []
            for _ in range(REPEAT):
                t = time.perf_counter()
                grid, count = once()
                times.append(time.perf_counter() - t)
            out[f"channel{channel}_{n}exp"] = {"seconds": min(times), "pixels": int(count),
                                                "cube": [int(grid.nw), int(grid.ny), int(grid.nx)]}
            print(f"  ours, channel {channel}, {n} exposure(s): {min(times):.2f} s ({count} pixels, cube "
                  f"{grid.nx} x {grid.ny} x {grid.nw})", flush=True)
    out["peak_rss_mib"] = peak_rss_mib()
    result_path.write_text(json.dumps(out))


def _jwst(cals: list[Path], cubepar: Path, work: Path) -> dict:
    """jwst's CubeBuildStep on one ``_cal`` and on the four, wall time of its child."""
    import os

    from benchmarks._child import SINGLE_THREAD_ENV
    from benchmarks._jwst import run_steps

    out: dict = {}
    for n in (1, 4):
        start = time.perf_counter()
        inputs = cals[:n] if n == 1 else [_asn(cals, work)]
        run_steps([("cube_build", {"override_cubepar": str(cubepar)})], inputs, work / f"jwst-{n}", work / "crds",
                  work / f"jwst-{n}.log", env={**os.environ, **SINGLE_THREAD_ENV})
        out[f"{n}exp_seconds"] = time.perf_counter() - start
        print(f"  jwst CubeBuildStep, {n} exposure(s), both channels: {out[f'{n}exp_seconds']:.1f} s "
              "(its child's wall time)", flush=True)
    return out


def _asn(cals: list[Path], work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    asn = {"asn_type": "spec3", "asn_rule": "candidate_Asn_Lv3MIRMRS", "asn_id": "o001", "asn_pool": "bench",
           "program": "01234", "products": [{"name": "jw01234-o001_t001_miri",
                                              "members": [{"expname": str(p), "exptype": "science"} for p in cals]}]}
    path = work / "jw01234-o001_spec3_00001_asn.json"
    path.write_text(json.dumps(asn))
    return path


def run() -> dict:
    cals, cubepar = _prepare(INPUT_DIR.resolve())
    print("measuring our MRS cube_build in a child process pinned to one core...", flush=True)
    ours = run_in_child("benchmarks.mrs_bench", "ours", json.dumps([str(p) for p in cals]), str(cubepar.parent))
    print("running jwst's CubeBuildStep offline on the same _cal...", flush=True)
    theirs = _jwst(cals, cubepar, INPUT_DIR.resolve() / "jwst")
    result = {"ours": ours, "jwst": theirs,
              "threads": "ours: 1 core; jwst: its own child, single-threaded numeric libraries"}
    mine = {n: ours[f"channel1_{n}exp"]["seconds"] + ours[f"channel2_{n}exp"]["seconds"] for n in (1, 4)}
    for n in (1, 4):
        result[f"ratio_{n}exp"] = theirs[f"{n}exp_seconds"] / mine[n]
        print(f"  {n} exposure(s), both channels: ours {mine[n]:.1f} s, jwst {theirs[f'{n}exp_seconds']:.1f} s "
              f"(its whole run): jwst / ours {result[f'ratio_{n}exp']:.2f}")
    result["ratio_added_exposures"] = (theirs["4exp_seconds"] - theirs["1exp_seconds"]) / (mine[4] - mine[1])
    print(f"  three more exposures: ours {mine[4] - mine[1]:.1f} s, jwst "
          f"{theirs['4exp_seconds'] - theirs['1exp_seconds']:.1f} s: jwst / ours {result['ratio_added_exposures']:.2f}")
    print(f"  our peak RSS {ours['peak_rss_mib']:.0f} MiB")
    return result


if __name__ == "__main__":
    if sys.argv[1] != "ours":
        sys.exit(f"unknown mode {sys.argv[1]!r}")
    _ours([Path(p) for p in json.loads(sys.argv[2])], Path(sys.argv[3]), Path(sys.argv[4]))
