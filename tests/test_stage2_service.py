"""stage2 as a service: simulator -> ingest -> detector1 -> a Level-2 association built
here -> ``stage2.run`` -> ``_cal``/``_i2d`` (``_calints`` for time series) archived with
their provenance; scored against the simulator's truth.

What is compared, and the tolerances:

- sky surface brightness: the median ``_cal`` SCI over good pixels away from stars
  matches the simulator's photometric calibration, ``sky_level * jy_per_electron * 1e-6 /
  Omega`` MJy/sr (Omega the nominal pixel solid angle), within 1 % (the sky is raised to
  40 e-/s so the median is measured to ~0.1 %; detector-1 slopes are unbiased to a few
  0.1 %);
- astrometry: the ``_cal`` SCI-header WCS (``astropy.wcs.WCS``, distortion included) is
  built from the *commanded* pointing, which stage 2 knows; the simulator placed the
  stars with the true pointing, off by the injected error (PNT_DX, PNT_DY arcsec along
  detector x/y, truth header). So the truth star positions (truth_stars.ecsv ra/dec)
  must map to their truth x/y shifted by (PNT_DX, PNT_DY) / pixel scale, within 0.1
  pixel; and the same gwcs built on the true pointing (TRUE_RA/DEC/ROL) must reproduce the
  truth x/y within 0.01 pixel. The ``_cal``'s ``meta.wcs`` (stdatamodels) maps the window's
  pixels where its SCI-header WCS does, within 0.001 mas.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from sqlalchemy import select
from stdatamodels.jwst import datamodels as dm

from services.ingest.receive import receive_files
from services.registry import embedded_context
from services.simulator import simulate
from services.stage2.steps.assign_wcs import exposure_wcs
from services.stage2.task import handle_association
from shared.archiving import archive_product
from shared.catalog import Artifact, ArtifactKind, EventRecord, Product
from shared.catalog.queries import event_from_record
from shared.config import Settings
from shared.errors import InputError, is_retriable
from shared.imaging_wcs import TelescopePointing, max_separation_mas
from shared.instruments import detector
from shared.messages import Event
from shared.refdata import deliver
from shared.runtime import dispatch_events

pytestmark = pytest.mark.integration

SCIENCE = "jw01234001001_01101_00001_nrca1"
TSO = "jw01234002001_01101_00001_nrca1"
SKY_E_PER_S = 40.0
ARCSEC2_PER_SR = 4.2545170296152e10

DESCRIPTION = {
    "program": 1234, "title": "stage2 test", "pi": "Ada Lovelace", "pi_user": "ada@example.org", "category": "GO",
    "eap_months": 12,
    "targets": [{"name": "FIELD-1", "ra": 53.1625, "dec": -27.7914},
                {"name": "HOST-1", "ra": 80.5, "dec": -69.5}],
    "observations": [
        {"number": 1, "target": "FIELD-1", "instrument": "NIRCAM", "template": "NIRCam Imaging",
         "detectors": ["NRCA1"], "filter": "F200W", "pupil": "CLEAR", "readpatt": "RAPID", "ngroups": 8, "nints": 1,
         "subarray": "SUB160", "dither": {"pattern": "NONE"}, "roll": 30.0, "start_time": "2025-03-01T12:00:00Z"},
        {"number": 2, "target": "HOST-1", "instrument": "NIRCAM", "template": "NIRCam Time Series",
         "detectors": ["NRCA1"], "filter": "F200W", "pupil": "CLEAR", "readpatt": "RAPID", "ngroups": 3, "nints": 3,
         "subarray": "SUB64P", "dither": {"pattern": "NONE"}, "roll": 10.0, "tsovisit": True,
         "exp_type": "NRC_TSIMAGE", "start_time": "2025-03-01T14:00:00Z"},
    ],
    "simulation": {"seed": 7, "stars_per_window": 30, "bright_stars_per_window": 0, "sky_level": SKY_E_PER_S,
                   "cosmic_ray_rate": 0.0},
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate(DESCRIPTION, tmp_path_factory.mktemp("sim"))


@pytest.fixture(scope="module")
def chain(sim, tmp_path_factory):
    """The catalog after ingest and detector1, with the simulator's references delivered."""
    ctx, inline = embedded_context(Settings(var_dir=tmp_path_factory.mktemp("var"), _env_file=None),
                                   services=["ingest", "detector1"])
    deliver(ctx, sim.reference_paths)
    received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    done = inline.run_until_idle()
    assert all(o.status == "ok" for _, o in done), done
    return ctx


def archive_asn(ctx, tmp_path: Path, asn_type: str, members: list[tuple[str, str]], *, sequence: int = 1,
                observation: int = 1) -> Event:
    """Archive a Level-2 association of ``members`` ((expname, exptype)) and return its
    ``dms.product.archived`` event, as the association builder would announce it."""
    name = f"jw01234-o{observation:03d}_20250301t120000_{asn_type}_{sequence:05d}_asn.json"
    doc = {"asn_type": asn_type, "asn_rule": "candidate_Asn_Lv2Image", "version_id": "20250301t120000",
           "code_version": "0.1.0", "degraded_status": "No known degraded exposures in association.",
           "program": "01234", "constraints": "none", "asn_id": f"o{observation:03d}", "target": "1",
           "asn_pool": "jw01234_20250301t120000_pool.csv",
           "products": [{"name": members[0][0].rsplit("_", 1)[0],
                         "members": [{"expname": n, "exptype": t, "exposerr": "null"} for n, t in members]}]}
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2))
    archived = archive_product(ctx, path, suffix="asn", level=2, program="01234", observation=observation,
                               exposure=None, inputs=[n for n, _ in members], source="/test/associations",
                               content_type="application/json", asn_type=asn_type, asn_id=doc["asn_id"])
    with ctx.catalog.session() as s:
        return event_from_record(s.get(EventRecord, archived.event_id))


def product_file(ctx, filename: str) -> tuple[Product, Path]:
    with ctx.catalog.session() as s:
        product, uri = s.execute(select(Product, Artifact.uri).join(Artifact).where(
            Product.filename == filename, Product.is_current, Artifact.kind == ArtifactKind.DATA)).one()
    return product, ctx.store.local_path(*ctx.store.parse_uri(uri))


def open_strictly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return dm.open(path)


@pytest.fixture(scope="module")
def image2_run(chain, tmp_path_factory):
    event = archive_asn(chain, tmp_path_factory.mktemp("asn"), "image2", [(f"{SCIENCE}_rate.fits", "science")])
    return event, handle_association(event, chain)


def test_cal_and_i2d_are_archived_with_provenance(chain, sim, image2_run):
    event, event_ids = image2_run
    assert len(event_ids) == 2
    cal, cal_path = product_file(chain, f"{SCIENCE}_cal.fits")
    i2d, i2d_path = product_file(chain, f"{SCIENCE}_i2d.fits")
    refs = {p.name for p in sim.reference_paths}
    for product in (cal, i2d):
        assert (product.level, product.product_type, product.reference_context) == (2, "SCIENCE", "dms_0001.ctx")
        assert product.inputs[:2] == [f"{SCIENCE}_rate.fits", event.product.filename]
        used = {i.removeprefix("crds://") for i in product.inputs[2:]}
        assert len(used) == 5 and used <= refs  # distortion, filteroffset, flat, photom, area
    header = fits.getheader(cal_path)
    assert header["S_WCS"] == header["S_FLAT"] == header["S_PHOTOM"] == "COMPLETE"
    assert header["S_BKDSUB"] == "SKIPPED" and header["CRDS_CTX"] == "dms_0001.ctx"
    assert header["ASNTABLE"] == event.product.filename
    assert all(header[k].startswith("crds://jwst_nircam_") for k in ("R_DISTOR", "R_FLAT", "R_PHOTOM", "R_AREA"))
    model = open_strictly(cal_path)
    assert type(model).__name__ == "ImageModel" and model.meta.bunit_data == "MJy/sr" and model.area is not None
    i2d_model = open_strictly(i2d_path)
    assert type(i2d_model).__name__ == "ImageModel" and i2d_model.meta.cal_step.resample == "COMPLETE"
    # A repeated delivery of the same message archives nothing new.
    assert handle_association(event, chain) == []


def test_cal_sky_matches_the_photometric_calibration(chain, sim, image2_run):
    from services.simulator.optics import jy_per_electron

    _, cal_path = product_file(chain, f"{SCIENCE}_cal.fits")
    with fits.open(cal_path) as hdul:
        sci, dq, photmjsr = hdul["SCI"].data, hdul["DQ"].data, hdul["SCI"].header["PHOTMJSR"]
    stars = fits.getdata(sim.truth_dir / f"{SCIENCE}_truth_rate.fits", "STARS")
    omega = detector("NRCA1").pixel_scale ** 2 / ARCSEC2_PER_SR  # the nominal pixel
    expected = SKY_E_PER_S * jy_per_electron("NIRCAM", "F200W", "CLEAR") * 1e-6 / omega
    sky = (dq == 0) & (stars < 1e-3 * np.nanmedian(sci / photmjsr)) & np.isfinite(sci)
    assert sky.sum() > 5000
    assert np.median(sci[sky]) == pytest.approx(expected, rel=0.01)


@pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")  # astropy fills DATE-* from MJD-*
def test_cal_wcs_maps_truth_stars_to_their_pixels(chain, sim, image2_run):
    _, cal_path = product_file(chain, f"{SCIENCE}_cal.fits")
    header = fits.getheader(cal_path, "SCI")
    stars = Table.read(sim.truth_dir / f"{SCIENCE}_truth_stars.ecsv")
    inside = (stars["x"] > 0) & (stars["x"] < 159) & (stars["y"] > 0) & (stars["y"] < 159)
    stars = stars[inside]
    assert len(stars) >= 5
    truth = fits.getheader(sim.truth_dir / f"{SCIENCE}_truth_rate.fits")
    distortion_file = next(p for p in sim.reference_paths if "_distortion_" in p.name)
    scale = detector("NRCA1").pixel_scale
    # The commanded pointing, as stage 2 knows it, displaced by the injected error.
    x, y = WCS(header).all_world2pix(stars["ra"], stars["dec"], 0, tolerance=1e-8)
    shift_x, shift_y = truth["PNT_DX"] / scale, truth["PNT_DY"] / scale
    assert np.hypot(shift_x, shift_y) > 0.1  # the error is there to be seen
    commanded = float(np.max(np.hypot(x - stars["x"] - shift_x, y - stars["y"] - shift_y)))
    assert commanded < 0.1
    # The same construction on the true pointing reproduces the truth positions.
    primary = fits.getheader(cal_path)
    with dm.DistortionModel(str(distortion_file)) as ref:
        model = ref.model
    pointing = TelescopePointing(truth["TRUE_RA"], truth["TRUE_DEC"], truth["TRUE_ROL"], header["V2_REF"],
                                 header["V3_REF"])
    true_gwcs, _ = exposure_wcs(model, pointing, xstart=primary["SUBSTRT1"], ystart=primary["SUBSTRT2"], xsize=160,
                                ysize=160)
    xt, yt = true_gwcs.invert(np.asarray(stars["ra"]), np.asarray(stars["dec"]), with_bounding_box=False)
    true = float(np.max(np.hypot(xt - stars["x"], yt - stars["y"])))
    assert true < 0.01
    with dm.open(cal_path) as cal:
        gwcs_mas = max_separation_mas(cal.meta.wcs, WCS(header), (160, 160))
    print(f"\n[astrometry] commanded {commanded:.3g} px, true {true:.3g} px, meta.wcs vs SCI WCS {gwcs_mas:.3g} mas")
    assert gwcs_mas < 1e-3


def test_tso_association_gives_calints(chain, tmp_path):
    event = archive_asn(chain, tmp_path, "tso-image2", [(f"{TSO}_rateints.fits", "science")], observation=2)
    assert len(handle_association(event, chain)) == 1
    _, path = product_file(chain, f"{TSO}_calints.fits")
    cube = open_strictly(path)
    assert type(cube).__name__ == "CubeModel" and cube.data.shape == (3, 64, 64) and len(cube.int_times) == 3
    assert cube.meta.wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
    assert cube.meta.bunit_data == "MJy/sr" and cube.meta.cal_step.photom == "COMPLETE"


def test_background_member_is_subtracted_and_listed(chain, tmp_path):
    # The same exposure as its own background: only the flow and provenance are checked here.
    members = [(f"{SCIENCE}_rate.fits", "science"), (f"{SCIENCE}_rate.fits", "background")]
    event = archive_asn(chain, tmp_path, "image2", members, sequence=2)
    assert handle_association(event, chain)  # a new revision of _cal and _i2d
    cal, path = product_file(chain, f"{SCIENCE}_cal.fits")
    assert cal.revision == 2 and cal.inputs[:3] == [f"{SCIENCE}_rate.fits", f"{SCIENCE}_rate.fits",
                                                    event.product.filename]
    header = fits.getheader(path)
    assert header["S_BKDSUB"] == "COMPLETE"
    sci, dq = fits.getdata(path, "SCI"), fits.getdata(path, "DQ")
    usable = (dq & 1) == 0
    assert usable.sum() > 20000 and np.all(sci[usable] == 0.0)


def test_missing_member_and_stale_association(chain, tmp_path):
    missing = f"{SCIENCE.replace('00001_nrca1', '00009_nrca1')}_rate.fits"
    event = archive_asn(chain, tmp_path, "image2", [(f"{SCIENCE}_rate.fits", "science"), (missing, "background")],
                        sequence=3)
    with pytest.raises(InputError, match=missing) as raised:
        handle_association(event, chain)
    assert not is_retriable(raised.value)  # dead-lettered with this reason
    # A newer revision of the same association file makes the old event stale.
    name = event.product.filename
    (tmp_path / name).write_text((tmp_path / name).read_text().replace('"background"', '"sourcecat"'))
    archive_product(chain, tmp_path / name, suffix="asn", level=2, program="01234", observation=1, exposure=None,
                    inputs=[], source="/test/associations", content_type="application/json",
                    asn_type="image2")
    assert handle_association(event, chain) == []
