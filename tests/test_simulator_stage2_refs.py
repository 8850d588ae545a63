"""Stage-2 reference files of the simulator (FLAT, PHOTOM, AREA, DISTORTION, FILTEROFFSET) and
the catalog's (APCORR, ABVEGAOFFSET): their content follows the definitions of
docs/simulator.md, they open cleanly in stdatamodels (and jwst's source-catalog reader),
deliver, and are selected for the exposures that need them."""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from services.simulator import build_plan, host_star, load_description, simulate, simulate_exposure
from services.simulator.detector_model import make_detector_model
from services.simulator.distortion import detector_distortion, detector_distortion_model
from services.simulator.optical_refs import UJY_A2_PER_MJY_SR, mean_gain, nominal_pixel_area_sr
from services.simulator.optics import jy_per_electron
from shared.config import Settings
from shared.instruments import detector, subarray
from shared.refdata import best_references, deliver
from shared.refdata.files import reference_header

STAGE2 = ("FLAT", "PHOTOM", "AREA", "DISTORTION", "FILTEROFFSET")
CATALOG = ("APCORR", "ABVEGAOFFSET")


def nircam_description() -> dict:
    common = {"target": "FIELD", "instrument": "NIRCAM", "detectors": ["NRCA1"], "readpatt": "RAPID",
              "ngroups": 3, "subarray": "SUB64P"}
    return {
        "program": 4341, "title": "Stage-2 references", "pi": "Test Person",
        "targets": [{"name": "FIELD", "ra": 53.16, "dec": -27.79}],
        "observations": [
            {**common, "filter": "F200W", "start_time": "2025-06-01T00:00:00"},
            {**common, "filter": "F210M", "pupil": "WLP8", "tsovisit": True, "nints": 3, "host_flux": 1.0e6},
        ],
        "simulation": {"seed": 3, "cosmic_ray_rate": 0.0, "stars_per_window": 30, "bright_stars_per_window": 0},
    }


def miri_description() -> dict:
    return {
        "program": 4342, "title": "Stage-2 references, MIRI", "pi": "Test Person",
        "targets": [{"name": "FIELD", "ra": 266.4, "dec": -29.0}],
        "observations": [{"target": "FIELD", "instrument": "MIRI", "detectors": ["MIRIMAGE"], "filter": "F770W",
                          "readpatt": "FAST", "ngroups": 3, "subarray": "SUB64"}],
        "simulation": {"seed": 4, "cosmic_ray_rate": 0.0},
    }


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    return {"NIRCAM": simulate(nircam_description(), tmp_path_factory.mktemp("nircam")),
            "MIRI": simulate(miri_description(), tmp_path_factory.mktemp("miri"))}


@pytest.fixture(scope="module")
def nrca1():
    return make_detector_model(detector("NRCA1"), 2022)


def stage2_paths(result, reftypes=STAGE2) -> dict[str, list]:
    """The science detectors' stage-2 references (the guiders' FLAT is calwebb_guider's)."""
    out: dict[str, list] = {}
    for path in result.reference_paths:
        header = reference_header(path)
        reftype = str(header["REFTYPE"]).upper()
        if reftype in reftypes and header["INSTRUME"] != "FGS":
            out.setdefault(reftype, []).append(path)
    return out


def rate_header(plan, obs, exp) -> dict:
    """The selection keywords of the exposure's ``_rate`` (as ingest writes them)."""
    start = exp.start_time + timedelta(microseconds=500)
    return {"INSTRUME": obs.instrument, "DETECTOR": exp.detector, "FILTER": obs.filter, "PUPIL": obs.pupil,
            "EXP_TYPE": obs.exp_type, "READPATT": obs.readpatt, "SUBARRAY": obs.subarray,
            "NOUTPUTS": subarray(obs.instrument, obs.subarray).noutputs,
            "DATE-OBS": start.strftime("%Y-%m-%d"), "TIME-OBS": start.strftime("%H:%M:%S.%f")[:-3]}


def test_files_open_without_warnings_and_hold_the_definitions(sims, nrca1):
    """FLAT = QE x area x g0 / gain (float32, 1e-6), NaN and NO_FLAT_FIELD|DO_NOT_USE where
    QE is 0; PHOTMJSR = jy_per_electron x 1e-6 x g0 / Omega for every filter row (1e-6);
    AREA = the distortion's relative area; DISTORTION (ASDF) holds the detector's transform
    to V2/V3; FILTEROFFSET (ASDF) zero offsets for every filter."""
    paths = stage2_paths(sims["NIRCAM"])
    assert sorted(p.name for p in paths["FLAT"]) == ["jwst_nircam_flat_nrca1_f200w_clear_sim.fits",
                                                     "jwst_nircam_flat_nrca1_f210m_wlp8_sim.fits"]
    g0 = mean_gain(nrca1)
    omega = nominal_pixel_area_sr(0.031)
    yy, xx = np.indices(nrca1.shape)
    area = detector_distortion(detector("NRCA1")).relative_area(xx, yy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.open(paths["FLAT"][0]) as flat:
            assert type(flat) is dm.FlatModel and flat.meta.instrument.pupil in ("CLEAR", "WLP8")
            data, dq = np.asarray(flat.data, np.float64), np.asarray(flat.dq)
        with dm.open(paths["PHOTOM"][0]) as photom:
            assert type(photom) is dm.NrcImgPhotomModel
            rows = {(r["filter"], r["pupil"]): (r["photmjsr"], r["uncertainty"]) for r in photom.phot_table}
            pixar_sr = photom.meta.photometry.pixelarea_steradians
        with dm.open(paths["AREA"][0]) as pam:
            assert type(pam) is dm.PixelAreaModel and pam.meta.instrument.filter == "ANY"
            np.testing.assert_allclose(pam.data, area, rtol=1e-6)
    dead = nrca1.flat <= 0
    expected = nrca1.flat * area * g0 / nrca1.gain
    np.testing.assert_allclose(data[~dead], expected[~dead], rtol=1e-6)
    assert np.all(np.isnan(data[dead])) and np.all(dq[dead] == (1 << 18) | 1) and not dq[~dead].any()
    assert dead[:4].all() and dead.sum() > 4 * 4 * 2044  # reference pixels and dead ones
    assert pixar_sr == pytest.approx(omega, rel=1e-12)
    for key in (("F200W", "CLEAR"), ("F210M", "WLP8"), ("F150W2", "F164N"), ("F444W", "CLEAR")):
        value, sigma = rows[key]
        assert value == pytest.approx(jy_per_electron("NIRCAM", *key) * 1e-6 * g0 / omega, rel=1e-6)
        assert sigma == pytest.approx(0.01 * value, rel=1e-6)
    [dark] = [p for p in sims["NIRCAM"].reference_paths if reference_header(p)["REFTYPE"] == "DARK"]
    assert fits.getheader(dark)["EXP_TYPE"] == "ANY"  # SUB64P serves NRC_IMAGE and NRC_TSIMAGE
    assert [p.name for p in paths["DISTORTION"]] == ["jwst_nircam_distortion_nrca1_sim.asdf"]
    assert reference_header(paths["DISTORTION"][0])["EXP_TYPE"] == "NRC_IMAGE|NRC_TSIMAGE"
    x, y = np.array([0.0, 1023.5, 2047.0]), np.array([5.0, 1023.5, 2000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.open(paths["DISTORTION"][0]) as ref:
            assert type(ref) is dm.DistortionModel and ref.meta.pedigree == "SIMULATION"
            assert ref.meta.reftype.upper() == "DISTORTION" and ref.meta.instrument.channel == "SHORT"
            assert (str(ref.meta.input_units), str(ref.meta.output_units)) == ("pix", "arcsec")
            np.testing.assert_allclose(ref.model(x, y), detector_distortion_model(detector("NRCA1"))(x, y), atol=1e-12)
            np.testing.assert_allclose(ref.model(1023.5, 1023.5), (120.6, -527.5), atol=1e-12)  # NRCA1's V2/V3
        for sim, n in ((sims["NIRCAM"], 77), (sims["MIRI"], 9)):
            with dm.open(stage2_paths(sim)["FILTEROFFSET"][0]) as offsets:
                assert type(offsets) is dm.FilteroffsetModel and len(offsets.filters) == n
                assert all(f.column_offset == f.row_offset == 0.0 for f in offsets.filters)
        with dm.open(stage2_paths(sims["MIRI"])["PHOTOM"][0]) as photom:
            assert type(photom) is dm.MirImgPhotomModel
            assert {r["subarray"] for r in photom.phot_table} >= {"FULL", "SUB64"}


def test_files_deliver_and_are_selected_for_their_exposures(sims, tmp_path):
    from services.registry import embedded_context

    ctx, _ = embedded_context(Settings(var_dir=tmp_path / "var", _env_file=None), services=["ingest"])
    try:
        paths = [p for r in sims.values() for group in stage2_paths(r).values() for p in group]
        delivery = deliver(ctx, paths, note="stage-2 references")
        assert delivery.created and len(delivery.added) == len(paths) == 11  # 2 + 4 + 5 (NRCA1 has two flats)
        plan = sims["NIRCAM"].plan
        with ctx.catalog.session() as s:
            for obs, flat in zip(plan.observations, ("f200w_clear", "f210m_wlp8"), strict=True):
                chosen = best_references(s, rate_header(plan, obs, obs.exposures[0]), STAGE2)
                assert {k: v.filename for k, v in chosen.items()} == {
                    "FLAT": f"jwst_nircam_flat_nrca1_{flat}_sim.fits", "PHOTOM": "jwst_nircam_photom_nrca1_sim.fits",
                    "AREA": "jwst_nircam_area_nrca1_sim.fits",
                    "DISTORTION": "jwst_nircam_distortion_nrca1_sim.asdf",
                    "FILTEROFFSET": "jwst_nircam_filteroffset_nrca1_sim.asdf"}, chosen
            miri = sims["MIRI"].plan
            obs = miri.observations[0]
            chosen = best_references(s, rate_header(miri, obs, obs.exposures[0]), STAGE2)
            assert chosen["FLAT"].filename == "jwst_miri_flat_mirimage_f770w_sim.fits", chosen["FLAT"].reason
            assert all(sel.found for sel in chosen.values()), {k: v.reason for k, v in chosen.items()}
            other = dict(rate_header(plan, plan.observations[0], plan.observations[0].exposures[0]), FILTER="F090W")
            assert not best_references(s, other, ["FLAT"])["FLAT"].found  # no flat for a filter not simulated
    finally:
        ctx.catalog.dispose()


def test_rewritten_files_are_byte_identical(sims, tmp_path):
    again = simulate(nircam_description(), tmp_path / "again")
    for reftype, paths in stage2_paths(again, STAGE2 + CATALOG).items():
        for path in paths:
            assert path.read_bytes() == (sims["NIRCAM"].truth_dir.parent / "refs" / path.name).read_bytes(), reftype


def test_catalog_references_hold_the_psf_and_vega_definitions(sims, tmp_path):
    """APCORR (FITS) and ABVEGAOFFSET (ASDF), one per instrument: they open without a
    warning in stdatamodels and in jwst's source-catalog reader, the radii are those of the
    Gaussian PSF in a mosaic (sigma^2 = (FWHM/2.3548)^2 + 4/12 px^2; 1e-5), the correction
    1/EE, the offset Vega's AB magnitude; they deliver and are chosen by INSTRUME and
    EXP_TYPE (the P_EXP_TY pattern)."""
    import math

    from services.registry import embedded_context
    from services.simulator.optical_refs import APCORR_EE, MOSAIC_BLUR_PX2
    from services.simulator.optics import psf_fwhm_arcsec, vega_ab_offset

    paths = {**stage2_paths(sims["NIRCAM"], CATALOG)}
    assert [p.name for p in paths["APCORR"]] == ["jwst_nircam_apcorr_sim.fits"]
    assert [p.name for p in paths["ABVEGAOFFSET"]] == ["jwst_nircam_abvegaoffset_sim.asdf"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.open(paths["APCORR"][0]) as apcorr:
            assert type(apcorr) is dm.NrcImgApcorrModel and apcorr.meta.exposure.p_exptype == "NRC_IMAGE|NRC_TSIMAGE|"
            raw = np.asarray(apcorr.apcorr_table)
            table = {name: (np.char.decode(raw[name]) if raw[name].dtype.kind == "S" else np.asarray(raw[name]))
                     for name in raw.dtype.names}
        with dm.open(paths["ABVEGAOFFSET"][0]) as abvega:
            assert type(abvega) is dm.ABVegaOffsetModel
            offsets = {(r["filter"], r["pupil"]): float(r["abvega_offset"]) for r in abvega.abvega_offset}
    for (filt, pupil, px) in (("F200W", "CLEAR", 0.031), ("F210M", "WLP8", 0.031), ("F444W", "CLEAR", 0.063)):
        keep = (table["filter"] == filt) & (table["pupil"] == pupil)
        rows = {name: column[keep] for name, column in table.items()}
        assert np.allclose(rows["eefraction"], APCORR_EE)
        sigma = math.sqrt((psf_fwhm_arcsec({"F200W": 1.990, "F210M": 2.093, "F444W": 4.421}[filt], pupil) / px
                           / 2.3548200450309493) ** 2 + MOSAIC_BLUR_PX2)
        np.testing.assert_allclose(rows["radius"], sigma * np.sqrt(-2 * np.log(1 - np.asarray(APCORR_EE))), rtol=1e-5)
        np.testing.assert_allclose(rows["apcorr"], 1 / np.asarray(APCORR_EE), rtol=1e-6)
        assert len(set(rows["skyin"])) == 1 and rows["skyin"][0] >= 3 * 2.3548 * sigma
        assert offsets[(filt, pupil)] == pytest.approx(vega_ab_offset("NIRCAM", filt, pupil), rel=1e-6)
    assert offsets[("F200W", "CLEAR")] == pytest.approx(1.70, abs=0.03)  # the published NIRCam value, to 0.03

    jwst_reader = pytest.importorskip("jwst.source_catalog.reference_data")
    model = dm.ImageModel(data=np.zeros((4, 4), np.float32))
    model.meta.instrument.name, model.meta.instrument.filter, model.meta.instrument.pupil = "NIRCAM", "F200W", "CLEAR"
    model.meta.resample.pixel_scale_ratio = 1.0
    ref = jwst_reader.ReferenceData(model, [str(paths["APCORR"][0]), str(paths["ABVEGAOFFSET"][0])], (30, 50, 70))
    r70 = table["radius"][(table["filter"] == "F200W") & (table["pupil"] == "CLEAR")
                          & (np.round(table["eefraction"] * 100) == 70)]
    assert ref.aperture_params["aperture_radii"][-1] == pytest.approx(float(r70[0]))
    assert ref.abvega_offset == pytest.approx(offsets[("F200W", "CLEAR")])

    ctx, _ = embedded_context(Settings(var_dir=tmp_path / "var", _env_file=None), services=["ingest"])
    try:
        files = [p for r in sims.values() for group in stage2_paths(r, CATALOG).values() for p in group]
        assert len(deliver(ctx, files, note="catalog references").added) == 4
        plan = sims["NIRCAM"].plan
        with ctx.catalog.session() as s:
            for obs in plan.observations:  # NRC_IMAGE and NRC_TSIMAGE
                chosen = best_references(s, rate_header(plan, obs, obs.exposures[0]), CATALOG)
                assert {k: v.filename for k, v in chosen.items()} == {
                    "APCORR": "jwst_nircam_apcorr_sim.fits", "ABVEGAOFFSET": "jwst_nircam_abvegaoffset_sim.asdf"}
            miri = sims["MIRI"].plan
            chosen = best_references(s, rate_header(miri, miri.observations[0], miri.observations[0].exposures[0]),
                                     CATALOG)
            assert chosen["ABVEGAOFFSET"].filename == "jwst_miri_abvegaoffset_sim.asdf"
    finally:
        ctx.catalog.dispose()


def test_calibrated_sky_is_flat_and_star_flux_adds_up_in_jansky(sims, nrca1):
    """On the noiseless truth rate: rate / FLAT x PHOTMJSR is the same MJy/sr for the sky on
    every pixel (1e-5, float32), and summing surface brightness x true pixel area
    (area x Omega) over the window gives the stars' electrons x jy_per_electron x 1e-6 MJy
    (1e-5). PHOTUJA2 x nominal pixel area is jy_per_electron x g0, in uJy (1e-6)."""
    result = sims["NIRCAM"]
    plan = result.plan
    obs = plan.observations[0]
    knobs = load_description(nircam_description()).simulation
    sim = simulate_exposure(plan, obs, obs.exposures[0], knobs, model=nrca1, noiseless=True,
                            host=host_star(load_description(nircam_description()), obs.number))
    t = sim.truth
    paths = stage2_paths(result)
    flat_path = next(p for p in paths["FLAT"] if "f200w_clear" in p.name)
    flat = fits.getdata(flat_path, "SCI")[:64, :64].astype(np.float64)
    with dm.open(paths["PHOTOM"][0]) as photom:
        value = next(float(r["photmjsr"]) for r in photom.phot_table if (r["filter"], r["pupil"]) == ("F200W", "CLEAR"))
    omega = nominal_pixel_area_sr(0.031)
    jy = jy_per_electron("NIRCAM", "F200W", "CLEAR")
    good = np.isfinite(flat)
    sky_sb = (t.rate.astype(np.float64) - t.stars) / flat * value
    off_stars = good & (t.stars < 10 * (t.rate - t.stars))  # float32 rate - stars keeps the sky to 1e-6 there
    assert off_stars.sum() > 0.5 * good.sum()
    np.testing.assert_allclose(sky_sb[off_stars], t.sky_level * jy * 1e-6 / omega, rtol=1e-5)
    star_sb = t.stars.astype(np.float64) / flat * value
    stars_e = t.flux.astype(np.float64) - t.sky_level * t.area
    assert np.sum((star_sb * t.area * omega)[good]) == pytest.approx(np.sum(stars_e[good]) * jy * 1e-6, rel=1e-5)
    assert value * UJY_A2_PER_MJY_SR * 0.031**2 == pytest.approx(jy * 1e6 * mean_gain(nrca1), rel=1e-6)


def test_plan_without_filters_of_an_instrument_writes_no_flat(tmp_path):
    desc = nircam_description()
    desc["observations"] = desc["observations"][:1]
    desc["simulation"]["write_references"] = False
    assert not simulate(desc, tmp_path).reference_paths
    plan = build_plan(load_description(desc))
    assert [(o.filter, o.pupil) for o in plan.observations] == [("F200W", "CLEAR")]
