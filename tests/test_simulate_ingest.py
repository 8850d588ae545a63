"""Simulator -> ingest for every example program: each _uncal opens in astropy and in the
public data models as Level1bModel, is named by the convention, carries the plan's
keywords, holds exactly the simulated ramp, and its pointing WCS is the plan's commanded
pointing: the truth WCS (true pointing, distortion) puts the simulator's stars where the
truth says they are, the commanded one within the injected pointing error."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from sqlalchemy import select

from services.ingest.receive import receive_files
from services.registry import embedded_context
from services.simulator import host_star, load_description, simulate, simulate_exposure
from shared.catalog import Artifact, Product
from shared.config import Settings
from shared.instruments import detector
from shared.naming import parse_exposure
from shared.runtime import dispatch_events

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]


def small(example: str) -> dict:
    """The example with fewer dither points and no reference files, to keep tests quick."""
    desc = yaml.safe_load((EXAMPLES / example).read_text())
    for obs in desc["observations"]:
        obs["dither"] = {"pattern": "NONE"}
    desc.setdefault("simulation", {})["write_references"] = False
    return desc


@pytest.mark.parametrize("example", ["nircam_imaging.yaml", "niriss_imaging.yaml", "miri_imaging.yaml", "nircam_longwave.yaml"])
def test_example_program_ingests_into_valid_uncal(example, tmp_path):
    desc = small(example)
    loaded = load_description(desc)
    knobs = loaded.simulation
    sim = simulate(desc, tmp_path / "sim")
    settings = Settings(var_dir=tmp_path / "var")
    ctx, inline = embedded_context(settings, services=["ingest"])
    received = receive_files(ctx, [sim.plan_path, sim.ephemeris_path, *sim.telemetry_paths])
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    assert all(o.status == "ok" for _, o in inline.run_until_idle())

    with ctx.catalog.session() as s:
        rows = s.execute(select(Product.filename, Artifact.uri).join(Artifact)).all()
    assert len(rows) == len(sim.telemetry_paths)
    plan = sim.plan
    from stdatamodels.jwst import datamodels

    for filename, uri in rows:
        name = parse_exposure(filename)
        assert name.suffix == "uncal" and name.program == plan.program
        path = ctx.store.local_path(*ctx.store.parse_uri(uri))
        obs = plan.observation(name.observation)
        exposure = next(e for e in obs.exposures if e.detector.lower() == name.detector and e.exposure == name.exposure)
        expected = simulate_exposure(plan, obs, exposure, knobs, host=host_star(loaded, obs.number))
        with fits.open(path) as hdul:
            h0, h1 = hdul[0].header, hdul["SCI"].header
            assert h0["DATAMODL"] == "Level1bModel" and h0["FILENAME"] == filename
            assert (h0["PROGRAM"], h0["OBSERVTN"], h0["DETECTOR"]) == (plan.program, f"{obs.number:03d}", exposure.detector)
            assert (h0["FILTER"], h0["READPATT"], h0["SUBARRAY"]) == (obs.filter, obs.readpatt, obs.subarray)
            assert (h0["NGROUPS"], h0["NINTS"], h0["DATAPROB"]) == (obs.ngroups, obs.nints, False)
            assert h0["TARGNAME"] == plan.target(obs.target_id).name and h0["PI_NAME"] == plan.pi_name
            np.testing.assert_array_equal(hdul["SCI"].data, expected.sci)
            if expected.refout is not None:
                np.testing.assert_array_equal(hdul["REFOUT"].data, expected.refout)
            if expected.zeroframe is not None:
                np.testing.assert_array_equal(hdul["ZEROFRAME"].data, expected.zeroframe)
            # the header WCS is the commanded pointing; the truth WCS (true pointing and distortion)
            # places the truth stars at their truth pixels (0.01 px), the commanded one within the
            # injected shift plus the distortion across the window (1 px)
            assert (h1["RA_REF"], h1["DEC_REF"]) == pytest.approx((exposure.pointing.ra, exposure.pointing.dec))
            # the observatory's state from the delivered ephemeris (not the geocentre fallback)
            assert h1["EPH_TYPE"] == "Definitive" and 1.2e9 < np.linalg.norm([h1[f"OBSGEO-{a}"] for a in "XYZ"]) < 1.9e9
            truth_header = fits.getheader(sim.truth_dir / f"{name.exposure_id}_truth_rate.fits")
            truth = Table.read(sim.truth_dir / f"{name.exposure_id}_truth_stars.ecsv")
            inside = truth[(truth["x"] > 2) & (truth["x"] < h0["SUBSIZE1"] - 3) & (truth["y"] > 2) & (truth["y"] < h0["SUBSIZE2"] - 3)]
            if len(inside):
                x, y = WCS(truth_header, naxis=2).all_world2pix(inside["ra"], inside["dec"], 0)
                assert np.max(np.hypot(x - inside["x"], y - inside["y"])) < 0.01
                x, y = WCS(h1, naxis=2).world_to_pixel_values(inside["ra"], inside["dec"])
                shift = np.hypot(truth_header["PNT_DX"], truth_header["PNT_DY"]) / detector(h0["DETECTOR"]).pixel_scale
                assert np.max(np.hypot(x - inside["x"], y - inside["y"])) < shift + 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with datamodels.open(path) as m:
                assert type(m).__name__ == "Level1bModel"
                assert m.meta.exposure.readpatt == obs.readpatt
                assert m.meta.observation.date == h0["DATE-OBS"]
                assert abs(m.meta.exposure.start_time - (exposure.start_time.timestamp() / 86400 + 40587)) < 1e-6
