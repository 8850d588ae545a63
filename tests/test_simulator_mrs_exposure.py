"""The simulator's MIRI MRS observations (MIR_MRS): the description (``band``, the MRS
detectors, the 4-POINT dither), the exposure rendered from the true pointing through
:func:`services.simulator.mrs.render_mrs`, its ``_uncal`` after ingest (EXP_TYPE, CHANNEL,
BAND, the pointing about the MRS reference point) and the selection of the MRS reference
files by CHANNEL and BAND.

Small on purpose: one detector, few groups, noiseless where the check allows it.
Measured when written: the exposure's source rate equals ``render_mrs`` at the truth's
(alpha, beta) through flat and gain to 6e-8; the noiseless ramps' last-minus-first slope of
the brightest source pixels is within 0.5 % of the truth rate (median 0.9992: the
simulated non-linearity and the uint16 DN).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from sqlalchemy import select
from stdatamodels.jwst import datamodels as dm

from services.ingest.receive import receive_files
from services.registry import embedded_context
from services.simulator import (
    build_plan,
    load_description,
    simulate,
    simulate_exposure,
    target_spectrum,
)
from services.simulator.description import MRS_4POINT_ALPHA_BETA, DescriptionError
from services.simulator.detector_model import make_detector_model
from services.simulator.mrs import PointSource, fringe_transmission, render_mrs
from services.simulator.mrs_refs import write_mrs_flats, write_mrs_fringes, write_mrs_references
from services.simulator.optical_refs import write_optical_references
from services.simulator.truth import write_spectrum_truth
from shared.catalog import Artifact, Product
from shared.config import Settings
from shared.instruments import detector
from shared.refdata import select_from_files
from shared.runtime import dispatch_events

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "miri_mrs.yaml"

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")


def small(**obs) -> dict:
    """The example on MIRIFUSHORT alone (the lines of channels 1 and 2), few groups, with
    fields of its observation replaced (None removes one)."""
    desc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    desc["targets"][0]["spectrum"]["lines"] = [line for line in desc["targets"][0]["spectrum"]["lines"]
                                               if line["wavelength"] < 9.0]
    o = desc["observations"][0]
    o.update({"detectors": ["MIRIFUSHORT"], "ngroups": 3})
    for key, value in obs.items():
        if value is None:
            o.pop(key, None)
        else:
            o[key] = value
    return desc


def rejected(desc: dict) -> str:
    with pytest.raises(DescriptionError) as info:
        load_description(desc)
    return str(info.value)


# --- description ----------------------------------------------------------------------


def test_the_example_plans_both_detectors_at_four_dither_points():
    desc = load_description(EXAMPLE)
    (obs,) = build_plan(desc).observations
    assert (obs.exp_type, obs.band, obs.filter, obs.subarray) == ("MIR_MRS", "SHORT", "N/A", "FULL")
    assert obs.detectors == ["MIRIFUSHORT", "MIRIFULONG"]
    assert obs.template == "MIRI Medium Resolution Spectroscopy"
    assert obs.dither.pattern_type == "4-POINT" and obs.dither.npoints == 4
    assert obs.aperture is not None and (obs.aperture.name, obs.aperture.v2_ref, obs.aperture.v3_ref) == (
        "MIRIFU_CENTER", detector("MIRIFUSHORT").v2_ref, detector("MIRIFUSHORT").v3_ref)
    # the two detectors expose together at each point
    assert [(e.dither_point, e.detector) for e in obs.exposures] == [
        (p, d) for p in range(1, 5) for d in ("MIRIFUSHORT", "MIRIFULONG")]
    starts = {p: {e.start_time for e in obs.exposures if e.dither_point == p} for p in range(1, 5)}
    assert all(len(s) == 1 for s in starts.values())


@pytest.mark.parametrize(("obs", "words"), [
    ({"band": None}, ["observations[0]", "band", "MIR_MRS"]),
    ({"band": "MEDUIM"}, ["observations[0].band", "MEDUIM", "SHORT, MEDIUM, LONG"]),
    ({"detectors": ["MIRIMAGE"]}, ["observations[0]", "detectors", "MIRIFUSHORT", "MIRIMAGE"]),
    ({"subarray": "BRIGHTSKY"}, ["observations[0]", "subarray", "FULL"]),
    ({"readpatt": "FAST"}, ["observations[0]", "readpatt", "FASTR1 or SLOWR1"]),
    ({"filter": "F770W"}, ["observations[0]", "filter", "N/A"]),
    ({"dither": {"pattern": "4-POINT-BOX"}}, ["observations[0]", "dither", "4-POINT"]),
    ({"dither": {"pattern": "4-POINT", "size": 1.0}}, ["observations[0]", "dither.size"]),
    ({"tsovisit": True}, ["observations[0]", "exp_type", "staring"]),
])
def test_the_description_refuses_what_the_mrs_cannot_do(obs, words):
    message = rejected(small(**obs))
    for word in words:
        assert word in message, message


def test_band_and_the_mrs_detectors_belong_to_mir_mrs_alone():
    imaging = small(exp_type="MIR_IMAGE", band="SHORT", detectors=["MIRIMAGE"], filter="F770W",
                    dither={"pattern": "NONE"})
    imaging["targets"][0].pop("spectrum")
    message = rejected(imaging)
    assert "band" in message and "MIR_MRS" in message, message
    imaging["observations"][0].pop("band")
    imaging["observations"][0]["detectors"] = ["MIRIFUSHORT"]
    message = rejected(imaging)
    assert "detectors" in message and "MIRIFUSHORT" in message and "MIR_MRS" in message, message
    imaging["observations"][0]["detectors"] = ["MIRIMAGE"]
    imaging["observations"][0]["dither"] = {"pattern": "4-POINT"}
    message = rejected(imaging)
    assert "dither" in message and "4-POINT" in message and "MIR_MRS" in message, message


def test_a_line_outside_the_bands_channels_is_refused():
    desc = small()
    desc["targets"][0]["spectrum"]["lines"].append({"wavelength": 12.814, "fwhm": 0.005, "strength": 1.0})
    message = rejected(desc)  # [Ne II] is in channel 3, on MIRIFULONG, which this observation does not read
    assert "lines[2].wavelength" in message and "channel 1 SHORT" in message, message
    desc["observations"][0]["detectors"] = ["MIRIFUSHORT", "MIRIFULONG"]
    load_description(desc)


# --- the exposure ---------------------------------------------------------------------


def _simulate(desc: dict, point: int, *, exact: bool, ngroups: int | None = None):
    d = load_description(desc)
    plan = build_plan(d)
    (obs,) = plan.observations
    knobs = d.simulation
    if exact:
        knobs = knobs.model_copy(update={"acquisition_error_arcsec": 0.0, "pointing_error_arcsec": 0.0})
    exp = next(e for e in obs.exposures if e.dither_point == point)
    model = make_detector_model(detector(exp.detector), knobs.detector_seed)
    return d, simulate_exposure(plan, obs, exp, knobs, model=model, noiseless=True, spectrum=target_spectrum(d, 1))


def test_the_four_dither_points_put_the_target_where_declared():
    desc = small(ngroups=2)
    places = []
    for point in range(1, 5):
        _, sim = _simulate(desc, point, exact=True)
        places.append((sim.truth.mrs.alpha, sim.truth.mrs.beta))
    np.testing.assert_allclose(places, MRS_4POINT_ALPHA_BETA, atol=1e-6)
    assert len({(round(a, 3), round(b, 3)) for a, b in places}) == 4


def test_the_rate_is_the_mrs_model_at_the_true_place_through_fringes_flat_and_gain():
    d, sim = _simulate(small(ngroups=5, dither={"pattern": "NONE"}), 1, exact=False)
    t = sim.truth
    # the acquisition error moved the target off the reference point, a little
    assert 0.0 < np.hypot(t.mrs.alpha, t.mrs.beta) < 0.1
    assert (sim.observation.exp_type, sim.observation.band) == ("MIR_MRS", "SHORT")
    source = render_mrs("MIRIFUSHORT", "SHORT", points=[PointSource(target_spectrum(d, 1), t.mrs.alpha, t.mrs.beta)],
                        sky_mjy_sr=None, fringes=True).image
    expected = source * t.flat / t.gain
    bright = expected > np.percentile(expected[expected > 0], 99.9)
    assert bright.sum() > 50
    np.testing.assert_allclose(t.stars[bright], expected[bright], rtol=1e-3)
    # the target moved by 0.05" (a quarter of a channel-1 slice) is another image
    moved = render_mrs("MIRIFUSHORT", "SHORT", sky_mjy_sr=None,
                       points=[PointSource(target_spectrum(d, 1), t.mrs.alpha, t.mrs.beta + 0.05)], fringes=True).image
    assert np.max(np.abs(moved[bright] / source[bright] - 1.0)) > 1e-2
    # the sky is the model's thermal background (sky scale 1 with no sky_level)
    assert t.mrs.sky_scale == pytest.approx(1.0)
    sky = render_mrs("MIRIFUSHORT", "SHORT", fringes=True).sky
    # the fringes: the light is the fringeless scene's times the FRINGE's transmission
    plain = render_mrs("MIRIFUSHORT", "SHORT", sky_mjy_sr=None,
                       points=[PointSource(target_spectrum(d, 1), t.mrs.alpha, t.mrs.beta)]).image
    np.testing.assert_allclose(source, plain * fringe_transmission("MIRIFUSHORT", "SHORT"), rtol=1e-12)
    np.testing.assert_allclose(t.rate, (source + sky) * t.flat / t.gain, rtol=1e-5, atol=1e-6)
    # the noiseless ramps carry it (non-linearity and uint16 DN: within 0.5 %)
    sci = sim.sci.astype(np.float64)
    slope = (sci[0, -1] - sci[0, 0]) / (sim.schedule.tgroup * (sim.schedule.ngroups - 1)) - t.dark
    ratio = slope[bright] / t.rate[bright]
    assert abs(np.median(ratio) - 1.0) < 2e-3 and np.max(np.abs(ratio - 1.0)) < 5e-3


def test_the_truth_spectrum_is_the_targets_through_each_channels_lsf(tmp_path):
    d, sim = _simulate(small(ngroups=2, dither={"pattern": "NONE"}), 1, exact=True)
    path = write_spectrum_truth(sim, tmp_path)
    table = Table.read(path, format="ascii.ecsv")
    assert set(table["channel"]) == {1, 2} and len(table) == 2 * 1024
    assert table.meta["alpha_arcsec"] == pytest.approx(0.0, abs=1e-9)
    spectrum = target_spectrum(d, 1)
    for channel, line in ((1, 5.511), (2, 7.652)):
        rows = table[table["channel"] == channel]
        peak = rows[int(np.argmax(rows["observed_jy"]))]
        assert abs(peak["wavelength"] - line) < 0.003  # within about a resolution element
        continuum = np.median(rows["observed_jy"])
        assert continuum == pytest.approx(spectrum.flux_jy, rel=1e-3)  # 10 mJy, flat
        assert peak["observed_jy"] < peak["flux_jy"]  # the LSF broadens and lowers the narrow line


# --- the _uncal -----------------------------------------------------------------------


def test_the_uncal_carries_the_mrs_keywords_and_pointing(tmp_path):
    desc = small(dither={"pattern": "NONE"})
    desc["simulation"]["write_references"] = False
    sim = simulate(desc, tmp_path / "sim")
    ctx, inline = embedded_context(Settings(var_dir=tmp_path / "var", _env_file=None), services=["ingest"])
    received = receive_files(ctx, sim.delivery)
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    assert all(o.status == "ok" for _, o in inline.run_until_idle())
    with ctx.catalog.session() as s:
        (uri,) = s.execute(select(Artifact.uri).join(Product).where(Product.suffix == "uncal")).scalars().all()
    path = ctx.store.local_path(*ctx.store.parse_uri(uri))
    primary, sci = fits.getheader(path, 0), fits.getheader(path, "SCI")
    assert (primary["EXP_TYPE"], primary["DETECTOR"], primary["CHANNEL"], primary["BAND"], primary["FILTER"]) == (
        "MIR_MRS", "MIRIFUSHORT", "12", "SHORT", "N/A")
    assert primary["APERNAME"] == "MIRIFU_CENTER"
    info = detector("MIRIFUSHORT")
    assert (sci["V2_REF"], sci["V3_REF"]) == (info.v2_ref, info.v3_ref)
    target = sim.plan.targets[0]
    assert (sci["RA_REF"], sci["DEC_REF"]) == pytest.approx((target.ra, target.dec), abs=1e-9)
    assert sci["ROLL_REF"] == pytest.approx(0.0, abs=1e-9)
    with dm.open(path) as model:  # the public data model reads them as the MRS's
        assert (model.meta.exposure.type, model.meta.instrument.channel, model.meta.instrument.band) == (
            "MIR_MRS", "12", "SHORT")
    assert primary["NGROUPS"] == 3


# --- reference selection --------------------------------------------------------------


MRS_TYPES = ("DISTORTION", "SPECWCS", "REGIONS", "PHOTOM", "FLAT", "FRINGE")


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("mrs_refs")
    short = make_detector_model(detector("MIRIFUSHORT"), 2022)
    written = write_mrs_references(short, out) + write_mrs_flats(short, out) + write_mrs_fringes(short, out)
    written += write_optical_references(make_detector_model(detector("MIRIMAGE"), 2022), out, [("F770W", "N/A")])
    return [r.path for r in written]


def _header(**kw) -> dict:
    return {"INSTRUME": "MIRI", "READPATT": "FASTR1", "SUBARRAY": "FULL", "DATE-OBS": "2025-01-01",
            "TIME-OBS": "00:00:00", **kw}


MRS_MEDIUM = _header(DETECTOR="MIRIFUSHORT", CHANNEL="12", BAND="MEDIUM", EXP_TYPE="MIR_MRS", FILTER="N/A")


def test_an_mrs_exposure_selects_its_bands_references(refs):
    chosen = select_from_files(refs, MRS_MEDIUM, [*MRS_TYPES, "WAVELENGTHRANGE", "CUBEPAR"])
    for reftype in MRS_TYPES:
        name = chosen[reftype].filename
        assert name is not None and "mirifushort_medium" in name, (reftype, name)
    assert chosen["WAVELENGTHRANGE"].filename == "jwst_miri_wavelengthrange_mrs_sim.asdf"
    assert chosen["CUBEPAR"].filename == "jwst_miri_cubepar_mrs_sim.fits"
    long = select_from_files(refs, {**MRS_MEDIUM, "BAND": "LONG"}, MRS_TYPES)
    assert all("mirifushort_long" in long[t].filename for t in MRS_TYPES)


def test_the_other_bands_and_channels_do_not_match(refs):
    # without the MEDIUM files nothing applies: SHORT and LONG do not stand in for MEDIUM
    others = [p for p in refs if "_medium_" not in p.name]
    chosen = select_from_files(others, MRS_MEDIUM, MRS_TYPES)
    assert all(chosen[t].filename is None for t in MRS_TYPES), {t: chosen[t].filename for t in MRS_TYPES}
    wrong_channel = select_from_files(refs, {**MRS_MEDIUM, "CHANNEL": "34"}, ["DISTORTION", "SPECWCS", "REGIONS",
                                                                              "PHOTOM"])
    assert all(s.filename is None for s in wrong_channel.values())


def test_imaging_selection_is_unchanged_beside_the_mrs_files(refs):
    imaging = _header(DETECTOR="MIRIMAGE", EXP_TYPE="MIR_IMAGE", FILTER="F770W")
    chosen = select_from_files(refs, imaging, ["DISTORTION", "PHOTOM", "FLAT", "AREA"])
    assert {t: s.filename for t, s in chosen.items()} == {
        "DISTORTION": "jwst_miri_distortion_mirimage_sim.asdf", "PHOTOM": "jwst_miri_photom_mirimage_sim.fits",
        "FLAT": "jwst_miri_flat_mirimage_f770w_sim.fits", "AREA": "jwst_miri_area_mirimage_sim.fits"}
    assert select_from_files(refs, imaging, ["REGIONS", "CUBEPAR"])["REGIONS"].filename is None
