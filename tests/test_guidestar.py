"""Guide-star products: names, the centroid codec, and the small imaging program (two dither
points of one detector, one guided visit) run through every service: the visit's ID, ACQ1,
ACQ2 and TRACK products and one fine-guide product per exposure open in the public
GuiderRawModel, carry the simulator's centroids, are AUXILIARY (never MRP) and are linked
to the exposures they guided, both ways; the science headers carry the guide star and the
jitter statistics."""

from __future__ import annotations

import math
import warnings
from datetime import datetime

import numpy as np
import pytest
from astropy.io import fits
from fastapi.testclient import TestClient

from services.archive.app import create_app
from services.ingest.assembly import StreamReport, split_exposures
from services.ingest.guidestar import decode_centroids, guide_streams
from services.simulator.guiding import centroid_noise_mas, visit_jitter
from shared.naming import BadNameError, GuideStarName, parse_any, parse_guidestar
from shared.telemetry import APID, PayloadError, centroid_rows, centroids_from_rows
from tests.faults.harness import small_program
from tests.imaging_chain import copy_run

PUBLIC_NAMES = [
    "jw01029001001_gs-acq1_2022142180746_uncal.fits",
    "jw01029001001_gs-fg_2022142181502_uncal.fits",
    "jw01029001001_gs-id_1_image_uncal.fits",
    "jw01029001001_gs-id_1_stacked_uncal.fits",
    "jw01029001001_gs-track_2022142180900_cal.fits",
]


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_guide_star_names_parse_and_format(name):
    parsed = parse_guidestar(name)
    assert parsed.format() == name
    assert parse_any(name) == parsed
    assert parsed.program == "01029" and parsed.observation == 1 and parsed.visit == 1


def test_guide_star_name_fields_and_errors():
    fg = parse_guidestar("jw01029001001_gs-fg_2022142181502_uncal.fits")
    assert fg.exp_type == "FGS_FINEGUIDE" and fg.kind == "gs-fg"
    assert fg.start == datetime(2022, 5, 22, 18, 15, 2)  # day 142 of 2022
    assert parse_guidestar("jw01029001001_gs-id_2_stacked_uncal.fits").exp_type == "FGS_ID-STACK"
    for bad in ("jw01029001001_gs-fg_2022400181502_uncal.fits",  # day 400
                "jw01029001001_gs-xx_2022142181502_uncal.fits",
                "jw01029000001_gs-acq1_2022142180746_uncal.fits",  # visit 0
                "jw01029001001_gs-id_image_uncal.fits"):
        with pytest.raises(BadNameError):
            parse_guidestar(bad)
    with pytest.raises(BadNameError):
        GuideStarName("01029", 1, 1, "acq1", "uncal")  # no start time


def test_centroid_rows_round_trip_and_reject_other_widths():
    rng = np.random.default_rng(3)
    dt = rng.integers(0, 2**32, 50, dtype=np.uint64)
    x, y = rng.integers(-2**31, 2**31, 50), rng.integers(-2**31, 2**31, 50)
    counts, quality = rng.integers(0, 65536, 50), rng.integers(0, 4, 50)
    back = centroids_from_rows(centroid_rows(dt, x, y, counts, quality))
    assert np.array_equal(back["dt_us"], dt) and np.array_equal(back["x_uas"], x)
    assert np.array_equal(back["y_uas"], y) and np.array_equal(back["counts_100"], counts)
    assert np.array_equal(back["quality"], quality)
    with pytest.raises(PayloadError):
        centroids_from_rows(np.zeros((3, 7), dtype=np.uint16))


@pytest.fixture(scope="module")
def chain(tmp_path_factory, small_program_run):
    run = copy_run(small_program_run, tmp_path_factory.mktemp("guidestar"))
    yield run
    run.ctx.catalog.dispose()


@pytest.fixture(scope="module")
def api(chain):
    with TestClient(create_app(chain.ctx.settings)) as client:
        yield client


def _gs_names(chain, calibrated: bool = False) -> dict[str, list[str]]:
    """Current guide-star products by catalog suffix: the raw ones (``gs-<mode>``), or
    with ``calibrated`` the ``_cal`` calwebb_guider made of them (``gs-<mode>-cal``)."""
    from sqlalchemy import select

    from shared.catalog import Product
    with chain.ctx.catalog.session() as s:
        rows = s.execute(select(Product.suffix, Product.filename).where(Product.is_current,
                                                                       Product.suffix.like("gs-%"))).all()
    rows = [(k, n) for k, n in rows if k.endswith("-cal") == calibrated]
    out: dict[str, list[str]] = {}
    for suffix, name in rows:
        out.setdefault(suffix, []).append(name)
    return {k: sorted(v) for k, v in out.items()}


def test_every_guided_visit_has_its_guide_star_products(chain):
    plan = chain.sim.plan
    names = _gs_names(chain)
    for obs in plan.observations:
        assert obs.guide_stars, f"observation {obs.number} is guided and has a guide star"
        for gs in obs.guide_stars:
            visit = f"jw{plan.program}{obs.number:03d}{gs.visit:03d}"
            for kind in ("gs-id-image", "gs-acq1", "gs-acq2", "gs-track"):
                assert [n for n in names[kind] if n.startswith(visit)], (kind, names)
            exposures = {e.exposure for e in obs.exposures if e.visit == gs.visit}
            assert len([n for n in names["gs-fg"] if n.startswith(visit)]) == len(exposures)


def test_guide_star_products_open_as_guider_raw_model(chain):
    from stdatamodels.jwst import datamodels

    expected = {"gs-id-image": ("FGS_ID-IMAGE", (2, 2, 128, 128)), "gs-acq1": ("FGS_ACQ1", (6, 2, 64, 64)),
                "gs-acq2": ("FGS_ACQ2", (5, 2, 32, 32)), "gs-track": ("FGS_TRACK", (16, 2, 32, 32))}
    gs = chain.sim.plan.observations[0].guide_stars[0]
    for kind, names in _gs_names(chain).items():
        for name in names:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no validation warning from the public model
                model = datamodels.open(chain.path(name))
                model.validate()
            assert type(model).__name__ == "GuiderRawModel", name
            assert model.meta.instrument.name == "FGS" and model.meta.instrument.detector == gs.detector
            assert model.meta.guidestar.gs_id == gs.id and model.meta.guidestar.gs_mag == gs.fgs_mag
            assert model.planned_star_table["reference_star_id"][0] == gs.id
            if kind == "gs-fg":
                assert model.meta.exposure.type == "FGS_FINEGUIDE"
                assert model.data.shape[1:] == (2, 8, 8) and len(model.centroid_table) > 0
                continue
            exp_type, shape = expected[kind]
            assert model.meta.exposure.type == exp_type and model.data.shape == shape
            # The star the simulator put in the window is where the flight table says.
            flight = model.flight_star_table[0]
            centre = (shape[-1] - 1) / 2
            tolerance = {"gs-id-image": 25.0, "gs-acq1": 6.0}.get(kind, 1.0)
            assert abs(flight["id_x"] - centre) < tolerance and abs(flight["id_y"] - centre) < tolerance


def test_fine_guide_centroids_are_the_simulated_ones(chain):
    from stdatamodels.jwst import datamodels

    plan = chain.sim.plan
    knobs = chain.truth_index["parameters"]
    obs = plan.observations[0]
    jitter = visit_jitter(plan, obs, 1, knobs["seed"], knobs["jitter_mas"], knobs["jitter_time_s"])
    gs = obs.guide_star(1)
    for name in _gs_names(chain)["gs-fg"]:
        model = datamodels.open(chain.path(name))
        table = model.centroid_table
        start = datetime.fromisoformat(table["centroid_time"][0]).replace(tzinfo=jitter.start.tzinfo)
        sl = jitter.window(start, len(table) / 16.0)
        assert sl.stop - sl.start == len(table)
        assert np.allclose((table["guide_star_position_x"] - gs.ideal_x) * 1000, jitter.meas_x[sl], atol=1e-3)
        assert np.allclose((table["guide_star_position_y"] - gs.ideal_y) * 1000, jitter.meas_y[sl], atol=1e-3)
        r = np.hypot(model.pointing_table["jitter"], 0)
        assert math.isclose(model.meta.jitter_average, float(np.sqrt(np.mean(r**2))), rel_tol=1e-9)
        assert math.isclose(model.meta.jitter_max, float(r.max()), rel_tol=1e-9)


def test_science_headers_carry_the_guide_star_and_jitter(chain):
    plan = chain.sim.plan
    obs = plan.observations[0]
    gs = obs.guide_star(1)
    noise = centroid_noise_mas(gs.fgs_mag)
    fg = _gs_names(chain)["gs-fg"]
    for entry in chain.truth_exposures(1):
        name = f"{entry['exposure_id']}_uncal.fits"
        header = fits.getheader(chain.path(name))
        assert header["GDSTARID"] == gs.id and header["GS_ORDER"] == 1 and header["PCS_MODE"] == "FINEGUIDE"
        assert header["GS_RA"] == pytest.approx(gs.ra) and header["GS_MAG"] == pytest.approx(gs.fgs_mag)
        assert header["GSJITNUM"] == entry["jitter_samples"]
        # Measured = true jitter + centroid noise: the rms adds in quadrature.
        expected = math.sqrt(entry["jitter_rms_mas"] ** 2 + 2 * noise**2)
        assert header["GSJITRMS"] == pytest.approx(expected, rel=0.4)
        assert header["GSJITMAX"] >= header["GSJITRMS"]
        assert abs(header["GSCENTX"] - gs.ideal_x) < 0.01 and abs(header["GSCENTY"] - gs.ideal_y) < 0.01
        # ... the same statistics as the fine-guide product of that exposure says
        stamp = datetime.fromisoformat(header["GSSTRTTM"]).strftime("%Y%j%H%M%S")
        (mine,) = [n for n in fg if stamp in n]
        pointing = fits.getheader(chain.path(mine), "Pointing")
        assert pointing["JITTRAVG"] == pytest.approx(header["GSJITRMS"], abs=1e-4)


def test_guide_star_products_are_auxiliary_and_linked_to_the_exposures_they_guided(chain, api):
    names = _gs_names(chain)
    uncal = chain.filenames("uncal")
    assert len(uncal) == 2
    rows = {r["productFilename"]: r for r in api.get("/products", params={"pagesize": 1000}).json()["rows"]}
    visit_level = [n for k in ("gs-id-image", "gs-acq1", "gs-acq2", "gs-track") for n in names[k]]
    cals = _gs_names(chain, calibrated=True)
    visit_cal = [n for k in ("gs-id-image", "gs-acq1", "gs-acq2", "gs-track") for n in cals[f"{k}-cal"]]
    for name in visit_level + names["gs-fg"] + visit_cal + cals["gs-fg-cal"]:
        assert rows[name]["productType"] == "AUXILIARY" and rows[name]["productGroupDescription"] is None
        assert rows[name]["linkage"] == "aggregation"
    mrp = api.get("/products", params={"pagesize": 1000, "mrp_only": "true"}).json()["rows"]
    assert not [r for r in mrp if "_gs-" in r["productFilename"]]
    # A visit's acquisition guided both exposures; each fine-guide product its own.
    # ... and so does its _cal (calwebb_guider), linked as the raw product is.
    for name in visit_level + visit_cal:
        linked = api.get(f"/products/{name}/linkages").json()["guiding"]
        assert {(n["kind"], n["productFilename"]) for n in linked} == {("linked", u) for u in uncal}
    by_exposure = {}
    for name in names["gs-fg"] + cals["gs-fg-cal"]:
        linked = api.get(f"/products/{name}/linkages").json()["guiding"]
        assert len(linked) == 1 and linked[0]["productFilename"] in uncal
        by_exposure.setdefault(linked[0]["productFilename"], set()).add(name)
    assert sorted(by_exposure) == uncal and all(len(v) == 2 for v in by_exposure.values())
    # ... and the other way: every product of a guided exposure lists its guide-star data.
    for u in uncal:
        for product in (u, u.replace("_uncal", "_rate"), u.replace("_uncal", "_cal")):
            linked = {n["productFilename"] for n in api.get(f"/products/{product}/linkages").json()["guiding"]}
            assert linked == set(visit_level) | set(visit_cal) | by_exposure[u], product


def test_guiding_is_ingested_whatever_order_the_files_arrive_in(chain):
    """The fine guiding of an exposure travels in the exposure's file, the visit's
    acquisition in a file of its own: each decodes alone, and the packets of a file in
    reverse order give the same centroids."""
    for path in [*chain.sim.telemetry_paths, *chain.sim.guide_paths]:
        data = path.read_bytes()
        exposures, report = split_exposures(data)
        guiding = [s for s in exposures.values() if guide_streams(s)]
        assert len(guiding) == 1, path.name
        streams = guiding[0]
        if path.name.endswith("_gs.ccsds"):
            assert set(streams.packets) == {"gs-id-image", "gs-acq1", "gs-acq2", "gs-track"}
            continue
        assert set(streams.packets) == {"gs-centroid", "gs-fg"}
        forward = decode_centroids(streams.packets["gs-centroid"], StreamReport())
        backward = decode_centroids(streams.packets["gs-centroid"][::-1], StreamReport())
        assert forward.time == backward.time and np.array_equal(forward.x, backward.x)
        twice = StreamReport()
        doubled = decode_centroids(streams.packets["gs-centroid"] * 2, twice)
        assert doubled.time == forward.time and twice.duplicates == len(forward)
        assert all(p.apid == APID.GUIDE_CENTROID for p in streams.packets["gs-centroid"])


def test_fine_guide_products_get_a_preview_of_the_jitter(chain):
    from sqlalchemy import select

    from services.preview.load import load_source
    from services.preview.pipeline import jitter_plot
    from shared.catalog import Artifact, Product

    names = _gs_names(chain)
    with chain.ctx.catalog.session() as s:
        kinds = {}
        for product, artifact in s.execute(select(Product, Artifact).join(Artifact, Artifact.product_id == Product.id)
                                           .where(Product.is_current, Product.suffix.like("gs-%"))):
            kinds.setdefault(product.filename, set()).add(artifact.kind)
    for name in names["gs-fg"]:
        assert kinds[name] == {"data", "preview", "thumbnail"}, name
    for kind in ("gs-id-image", "gs-acq1", "gs-acq2", "gs-track"):  # no jitter to show
        assert all(kinds[n] == {"data"} for n in names[kind])
    # ... and so for their _cal: the fine-guide one carries the centroids, so the same plot
    cals = _gs_names(chain, calibrated=True)
    assert all(kinds[n] == {"data", "preview", "thumbnail"} for n in cals["gs-fg-cal"]) and cals["gs-fg-cal"]
    assert all(kinds[n] == {"data"} for k in ("gs-id-image", "gs-acq1", "gs-acq2", "gs-track")
               for n in cals[f"{k}-cal"])
    # The plot is the centroids' offsets from their mean, in mas, against time.
    path = chain.path(names["gs-fg"][0])
    source = load_source(path, "gs-fg")
    plot = jitter_plot(source)
    table = fits.getdata(path, "FGS Centroid Packet")
    x = table["guide_star_position_x"]
    assert np.allclose(plot.series[0].y, (x - x.mean()) * 1000)
    assert plot.series[0].x[0] == 0 and np.allclose(np.diff(plot.series[0].x), 1 / 16, atol=1e-3)
    header = fits.getheader(path, "Pointing")
    assert f"rms radial {header['JITTRAVG']:.3g} mas" in plot.note


GS_KINDS = ["gs-id-image", "gs-acq1", "gs-acq2", "gs-track", "gs-fg"]
GS_SHAPES = {"gs-id-image": (1, 128, 128), "gs-acq1": (6, 64, 64), "gs-acq2": (5, 32, 32), "gs-track": (16, 32, 32)}


def _reference(chain, reftype: str, detector: str):
    """The simulator's reference file of a type for a guider, opened as its public model."""
    from stdatamodels.jwst import datamodels

    index = chain.truth_index
    (entry,) = [r for r in index["references"] if r["reftype"] == reftype and r["detector"] == detector]
    return datamodels.open(str(chain.sim.truth_dir.parent / entry["path"]))


def _window(model):
    """(row slice, column slice) of a guide-star product's window on its guider."""
    x0, y0 = model.meta.subarray.xstart - 1, model.meta.subarray.ystart - 1
    ny, nx = model.data.shape[-2:]
    return slice(y0, y0 + ny), slice(x0, x0 + nx)


def _star_rates(planes: np.ndarray) -> np.ndarray:
    """DN/s of the guide star in each rate plane: a 5x5 box about the brightest pixel, less
    the plane's median (the sky) per pixel. A 5x5 box holds > 99.9 % of a 1.3-pixel FWHM
    star however it falls on the pixels."""
    out = []
    for plane in planes:
        d = plane.astype(np.float64) - np.nanmedian(plane)
        iy, ix = np.unravel_index(np.nanargmax(d), d.shape)
        out.append(float(np.nansum(d[max(iy - 2, 0):iy + 3, max(ix - 2, 0):ix + 3])))
    return np.array(out)


@pytest.mark.parametrize("kind", GS_KINDS)
def test_every_guide_star_product_has_its_cal_from_calwebb_guider(chain, kind):
    """The detector1 worker ran calwebb_guider on each raw guide-star product: a _cal that
    opens and validates as the public GuiderCalModel without a warning, archived AUXILIARY at
    level 2 beside its raw product, with the step status, the guider's reference files and
    the raw product's tables."""
    from sqlalchemy import select
    from stdatamodels.jwst import datamodels

    from shared.catalog import Product

    raws, cals = _gs_names(chain)[kind], _gs_names(chain, calibrated=True)[f"{kind}-cal"]
    assert [n.replace("_uncal.fits", "_cal.fits") for n in raws] == cals
    gs = chain.sim.plan.observations[0].guide_star(1)
    for raw_name, name in zip(raws, cals, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no validation warning from the public model
            cal = datamodels.open(chain.path(name))
            cal.validate()
        raw = datamodels.open(chain.path(raw_name))
        assert type(cal).__name__ == "GuiderCalModel" and cal.meta.bunit_data == "DN/s"
        if kind == "gs-fg":
            assert cal.data.shape == (raw.data.shape[0], 8, 8) and len(cal.centroid_table) == len(raw.centroid_table)
            assert cal.meta.jitter_average == pytest.approx(raw.meta.jitter_average)
        else:
            assert cal.data.shape == GS_SHAPES[kind]
        if kind == "gs-track":  # the window TRACK read, per integration
            table = raw.track_sub_table
            assert len(table) == 16 and len(cal.track_sub_table) == 16
            assert set(table["x_corner"]) == {raw.meta.subarray.xstart} and set(table["x_size"]) == {32}
            assert set(table["y_corner"]) == {raw.meta.subarray.ystart} and set(table["y_size"]) == {32}
        assert cal.err.shape == cal.data.shape and cal.dq.shape == cal.data.shape[1:] and np.all(cal.err > 0)
        assert cal.meta.exposure.type == raw.meta.exposure.type and cal.meta.guidestar.gs_id == gs.id
        assert cal.planned_star_table["reference_star_id"][0] == gs.id
        steps = cal.meta.cal_step
        assert (steps.dq_init, steps.guider_cds, steps.flat_field) == ("COMPLETE",) * 3
        det = gs.detector.lower()
        refs = cal.meta.ref_file
        assert refs.mask.name == f"crds://jwst_fgs_mask_{det}_sim.fits"
        assert refs.gain.name == f"crds://jwst_fgs_gain_{det}_sim.fits"
        assert refs.readnoise.name == f"crds://jwst_fgs_readnoise_{det}_sim.fits"
        assert refs.flat.name == f"crds://jwst_fgs_flat_{det}_sim.fits"
        assert refs.crds.context_used != "N/A" and cal.meta.calibration_software_version
        with chain.ctx.catalog.session() as s:
            row = s.scalar(select(Product).where(Product.filename == name, Product.is_current))
            source = s.scalar(select(Product).where(Product.filename == raw_name, Product.is_current))
            assert (row.level, row.product_type, row.suffix) == (2, "AUXILIARY", f"{kind}-cal")
            assert (row.observation_id, row.exposure_id) == (source.observation_id, source.exposure_id)
            assert row.inputs[0] == raw_name and any("jwst_fgs_flat" in i for i in row.inputs)


def test_guide_star_data_stay_out_of_the_science_chain(chain):
    """No guide-star product is a member of an association, and none entered stage 2."""
    import json

    from sqlalchemy import select

    from shared.catalog import Product

    with chain.ctx.catalog.session() as s:
        asns = s.scalars(select(Product.filename).where(Product.suffix == "asn", Product.is_current)).all()
        made_by_stage2 = s.scalars(select(Product.filename).where(Product.is_current,
                                                                  Product.suffix.in_(("cal", "i2d")))).all()
    assert asns and made_by_stage2
    for name in asns:
        text = chain.path(name).read_text()
        assert "_gs-" not in text, name
        assert all(m["expname"].find("_gs-") < 0 for p in json.loads(text)["products"] for m in p["members"])
    assert not [n for n in made_by_stage2 if "_gs-" in n]


@pytest.mark.parametrize("kind", GS_KINDS)
def test_calibrated_guide_star_rate_is_the_truth_and_no_worse_than_the_public_steps(chain, kind, capsys):
    """The guide star's count rate on our _cal agrees with the simulator's truth,
    ``count_rate(GS_MAG) / g0`` DN/s (g0 the guider's mean gain: the flat makes every pixel
    read as if its gain were g0 and its QE 1), within 4 sigma of the measurement (from the
    _cal's ERR) plus 1 %; and with the public steps run on the same raw product with the
    same reference files (jwst dq_init, guider_cds, flat_field) it is the same or closer."""
    pytest.importorskip("jwst")
    from jwst.flatfield.flat_field import do_correction
    from jwst.guider_cds.guider_cds import guider_cds
    from stdatamodels.jwst import datamodels

    from services.simulator.guiding import count_rate

    gs = chain.sim.plan.observations[0].guide_star(1)
    truth = count_rate(gs.fgs_mag) / chain.truth_index["detectors"][gs.detector]["g0_e_per_dn"]
    raw_name = _gs_names(chain)[kind][0]
    cal = datamodels.open(chain.path(raw_name.replace("_uncal", "_cal")))
    ours = _star_rates(cal.data)
    err = np.array([math.sqrt(float(np.sum(e[max(0, iy - 2):iy + 3, max(0, ix - 2):ix + 3] ** 2)))
                    for e, (iy, ix) in zip(cal.err, (np.unravel_index(np.nanargmax(p - np.nanmedian(p)), p.shape)
                                                     for p in cal.data), strict=True)])
    sigma = float(np.sqrt(np.sum(err**2))) / len(err)  # of the mean of the planes
    measured = float(ours.mean())
    tolerance = 4 * sigma + 0.01 * truth
    # The public steps, with our reference files (the full frames: they cut the window).
    raw = datamodels.GuiderRawModel(str(chain.path(raw_name)))
    public = guider_cds(raw, _reference(chain, "GAIN", gs.detector), _reference(chain, "READNOISE", gs.detector))
    do_correction(public, flat=_reference(chain, "FLAT", gs.detector))
    theirs = float(_star_rates(public.data).mean())
    with capsys.disabled():
        print(f"\n[guider {kind}] truth {truth:.1f} DN/s, ours {measured:.1f} (tolerance {tolerance:.1f}), "
              f"public {theirs:.1f}; {len(ours)} plane(s)")
    assert abs(measured - truth) < tolerance, (measured, truth, tolerance)
    assert abs(measured - truth) <= abs(theirs - truth) + 1e-3 * truth
    if kind != "gs-fg":  # the same count rate plane by plane (the public ERR differs, see steps/guider_cds.py)
        assert np.allclose(cal.data, public.data, rtol=1e-5, atol=1e-3)


def test_bad_pixels_of_the_mask_are_flagged_in_the_cal(chain):
    """Every flag of the guider's MASK in a window is in the _cal's DQ (dq_init), and the
    flat's dead pixels are NO_FLAT_FIELD|DO_NOT_USE; the 128x128 ID window holds some."""
    from stdatamodels.jwst import datamodels

    gs = chain.sim.plan.observations[0].guide_star(1)
    mask = _reference(chain, "MASK", gs.detector).dq
    flat = _reference(chain, "FLAT", gs.detector)
    flagged = 0
    for names in _gs_names(chain, calibrated=True).values():
        for name in names:
            cal = datamodels.open(chain.path(name))
            window = _window(cal)
            expected = mask[window]
            assert np.all((cal.dq & expected) == expected), name
            dead = (flat.dq[window] & 2**18) != 0
            assert np.all((cal.dq[dead] & (2**18 | 1)) == (2**18 | 1))
            flagged += int(np.count_nonzero(expected))
    assert flagged > 0


def test_a_malformed_guide_star_product_is_refused_with_the_reason(chain, tmp_path):
    """A guide-star _uncal calwebb_guider cannot read (3-D SCI, no read time) fails its
    task with a reason a person can act on, dead-lettered (not retried); the worker goes on
    and nothing is archived from it."""
    from sqlalchemy import select

    from services.detector1.task import handle_uncal
    from shared.archiving import archive_product
    from shared.catalog import EventRecord, Product, TaskFailure
    from shared.catalog.queries import event_from_record
    from shared.runtime import run_handler

    good = chain.path(_gs_names(chain)["gs-acq2"][0])
    name = "jw01234001001_gs-acq2_2025060000000_uncal.fits"
    with fits.open(good) as hdul:
        hdul["SCI"].data = hdul["SCI"].data[:, 1]  # (nints, ny, nx): the reads are gone
        del hdul[0].header["TGROUP"]
        hdul.writeto(tmp_path / name)
    archived = archive_product(chain.ctx, tmp_path / name, suffix="gs-acq2", level=1, program=chain.sim.plan.program,
                               observation=1, exposure=None, inputs=[], source="/test/ingest",
                               product_type="AUXILIARY")
    with chain.ctx.catalog.session() as s:
        payload = event_from_record(s.get(EventRecord, archived.event_ids[0])).to_json_dict()
    outcome = run_handler("detector1.run", handle_uncal, payload, chain.ctx)
    assert outcome.status == "failed" and "cannot run calwebb_guider" in outcome.error
    assert "SCI has shape" in outcome.error and "TGROUP" in outcome.error
    with chain.ctx.catalog.session() as s:
        failure = s.scalar(select(TaskFailure).where(TaskFailure.event_id == archived.event_ids[0]))
        assert failure is not None and not failure.retriable and "calwebb_guider" in failure.reason
        assert s.scalar(select(Product).where(Product.filename == name.replace("_uncal", "_cal"))) is None


def test_guiding_the_plan_does_not_account_for_is_refused_with_a_reason(chain):
    from services.ingest.pipeline import ingest_telemetry

    plan = chain.sim.plan
    obs = plan.observations[0]
    visit_file = next(p for p in chain.sim.guide_paths).read_bytes()
    exposure_file = chain.sim.telemetry_paths[0].read_bytes()
    kwargs = dict(created=datetime(2025, 3, 2), software_version="test", segment_bytes=2**31)

    def run(data, the_plan):
        return ingest_telemetry(data, lambda program: the_plan, **kwargs)

    good = run(visit_file, plan)
    assert not good.rejections and sorted(f.name.mode for f in good.guide_files) == [
        "acq1", "acq2", "id-image", "track"]
    assert [r.reason for r in run(visit_file, None).rejections] == ["missing_plan"]
    unguided = plan.model_copy(update={"observations": [obs.model_copy(update={"guide_stars": []})]})
    refused = run(visit_file, unguided)
    assert [r.reason for r in refused.rejections] == ["guiding_mismatch"] and not refused.guide_files
    assert "does not guide" in refused.rejections[0].detail
    other = "GUIDER2" if obs.guide_stars[0].detector == "GUIDER1" else "GUIDER1"
    swapped = plan.model_copy(update={"observations": [obs.model_copy(update={"guide_stars": [
        obs.guide_stars[0].model_copy(update={"detector": other})]})]})
    assert [r.reason for r in run(visit_file, swapped).rejections] == ["guiding_mismatch"]
    # An exposure whose fine guiding is refused keeps its science product, without jitter keywords.
    out = run(exposure_file, unguided)
    assert [r.reason for r in out.rejections] == ["guiding_mismatch"] and len(out.files) == 1
    assert "GSJITRMS" not in out.files[0].product.keywords
    both = run(exposure_file, plan)
    assert not both.rejections and len(both.files) == 1 and [g.name.mode for g in both.guide_files] == ["fg"]
    assert both.files[0].product.keywords["GSJITNUM"] == len(
        both.guide_files[0].product.tables["FGS Centroid Packet"])


def test_fine_guiding_of_a_two_detector_exposure_makes_one_product_and_the_same_keywords(tmp_path):
    """Every detector's file of an exposure carries its fine guiding: each science header
    gets the same jitter statistics; only the first detector's file makes the gs-fg product."""
    from services.ingest.pipeline import ingest_telemetry
    from services.simulator import simulate

    desc = small_program()
    desc["observations"][0].update(detectors=["NRCA1", "NRCA2"], dither={"pattern": "NONE"})
    desc["simulation"]["write_references"] = False
    sim = simulate(desc, tmp_path / "sim")
    assert [p.name.rsplit("_", 1)[-1] for p in sim.telemetry_paths] == ["nrca1.ccsds", "nrca2.ccsds"]
    outputs = [ingest_telemetry(p.read_bytes(), lambda program: sim.plan, created=datetime(2025, 3, 2),
                                software_version="test", segment_bytes=2**31) for p in sim.telemetry_paths]
    assert all(not o.rejections and len(o.files) == 1 for o in outputs)
    assert [len(o.guide_files) for o in outputs] == [1, 0]
    cards = [{k: o.files[0].product.keywords.get(k) for k in ("GDSTARID", "GSJITRMS", "GSJITMAX", "GSJITNUM",
                                                               "GSCENTX", "GSSTRTTM")} for o in outputs]
    assert cards[0] == cards[1] and cards[0]["GSJITNUM"] > 0
    assert outputs[0].guide_files[0].guided == (1, 1, 1, 1)


def test_links_hold_when_the_visit_guiding_arrives_before_the_science(tmp_path):
    """Ingest the visit's guiding file first: its products stand alone until the science
    arrives, then the linkage walk finds both ways; nothing is re-made or re-announced."""
    from sqlalchemy import func, select

    from services.archive.linkages import Walk
    from services.ingest.receive import receive_files
    from services.registry import embedded_context
    from services.simulator import simulate
    from shared.catalog import EventRecord, Product
    from shared.config import Settings
    from shared.messages import EventType
    from shared.runtime import dispatch_events

    desc = small_program()
    desc["simulation"]["write_references"] = False
    sim = simulate(desc, tmp_path / "sim")
    ctx, inline = embedded_context(Settings(var_dir=tmp_path / "var", _env_file=None), services=["ingest"])

    def deliver(paths):
        received = receive_files(ctx, paths)
        dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
        assert all(o.status == "ok" for _, o in inline.run_until_idle())

    def walk(name):
        with ctx.catalog.session() as s:
            product = s.scalar(select(Product).where(Product.filename == name, Product.is_current))
            return sorted(p.filename for p in Walk(s).guiding(product))

    deliver([sim.plan_path, *sim.guide_paths])
    with ctx.catalog.session() as s:
        acq1 = s.scalar(select(Product.filename).where(Product.suffix == "gs-acq1"))
    assert acq1 is not None and walk(acq1) == []
    deliver(sim.telemetry_paths)
    uncal = [f"{p.stem}_uncal.fits" for p in sim.telemetry_paths]
    assert walk(acq1) == sorted(uncal)
    with ctx.catalog.session() as s:
        fg = s.scalars(select(Product.filename).where(Product.suffix == "gs-fg")).all()
        assert s.scalar(select(func.count()).select_from(Product).where(Product.suffix.like("gs-%"))) == 6
        # the visit's products were made and announced once, before the science
        assert s.scalar(select(func.count()).select_from(Product).where(Product.filename == acq1)) == 1
        assert s.scalar(select(func.count()).select_from(EventRecord).where(
            EventRecord.subject == acq1, EventRecord.type == EventType.PRODUCT_ARCHIVED)) == 1
    for name in uncal:
        linked = walk(name)
        assert len(linked) == 5 and acq1 in linked and len(set(linked) & set(fg)) == 1


def test_guide_images_that_do_not_form_a_window_are_refused(chain):
    from services.ingest.pipeline import ingest_telemetry
    from shared.telemetry import SecondaryHeader, decode_stream, encode_packet

    data = chain.sim.guide_paths[0].read_bytes()
    first = next(p for p in decode_stream(data) if p.apid == APID.GUIDE_IMAGE["acq1"])
    h = first.header
    third_read = SecondaryHeader(**{**h.__dict__, "group": 3})
    bad = data + encode_packet(first.apid, 9999, third_read, first.rows())
    out = ingest_telemetry(bad, lambda program: chain.sim.plan, created=datetime(2025, 3, 2),
                           software_version="test", segment_bytes=2**31)
    assert [r.reason for r in out.rejections] == ["guiding_mismatch"] and not out.guide_files
    assert "FGS_ACQ1 images" in out.rejections[0].detail and "at most 2" in out.rejections[0].detail


def test_dms_run_guider_on_a_local_file_gives_the_archived_cal(chain, tmp_path):
    """``dms run guider`` with the simulator's reference directory makes the same count rate
    as the worker did (the same pipeline, references chosen by the same rules)."""
    from services.detector1.commands import GUIDER_COMMAND
    from shared.runlocal import run_command

    cal_name = _gs_names(chain, calibrated=True)["gs-acq2-cal"][0]  # (not the malformed one of the test above)
    raw = chain.path(cal_name.replace("_cal.fits", "_uncal.fits"))
    refs = chain.sim.truth_dir.parent / "refs"
    assert run_command(GUIDER_COMMAND, [str(raw), "--output-dir", str(tmp_path), "--refs-dir", str(refs)]) == 0
    (made,) = tmp_path.iterdir()
    assert made.name == raw.name.replace("_uncal", "_cal")
    archived = chain.path(made.name)
    assert np.array_equal(fits.getdata(made, "SCI"), fits.getdata(archived, "SCI"))
    assert np.array_equal(fits.getdata(made, "DQ"), fits.getdata(archived, "DQ"))
    assert fits.getheader(made)["S_FLAT"] == "COMPLETE" and fits.getheader(made)["CRDS_CTX"] == "local"
    assert run_command(GUIDER_COMMAND, [str(raw), "--skip", "guider_cdz"]) == 2
