"""The simulator's MIRI LRS slit (MIR_LRS-FIXEDSLIT): the description, the slit as the
pointing reference, the nods, the ``_uncal`` after ingest and the ``_rate`` after
detector 1, the truth spectrum against the spectrograph model, and the slit's reference
files.

One module-scoped run of ``examples/miri_lrs.yaml`` (two nods, FULL, 5 groups) through the
simulator, ingest and detector 1 (about 15 s) feeds most tests. Tolerances are stated
beside each check.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from sqlalchemy import select
from stdatamodels.jwst import datamodels as dm

from services.ingest.receive import receive_files
from services.registry import embedded_context
from services.simulator import (
    DescriptionError,
    SimulationResult,
    build_plan,
    load_description,
    simulate,
    simulate_exposure,
    target_spectrum,
)
from services.simulator.optical_refs import flat_filename
from services.simulator.spectrograph import LRS, observed_spectrum
from shared.catalog import Artifact, Product
from shared.config import Settings
from shared.refdata import deliver
from shared.runtime import dispatch_events
from tests.slit_examples import edited

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "miri_lrs.yaml"

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")


def example() -> dict:
    return edited(EXAMPLE)


def changed(obs: dict | None = None, target: dict | None = None, simulation: dict | None = None) -> dict:
    """The example with fields of its observation, target or simulation replaced (None
    values remove a field)."""
    return edited(EXAMPLE, obs, target, simulation)


@dataclass
class Run:
    sim: SimulationResult
    description: dict
    products: dict[str, Path]  # filename -> local path of the _uncal and _rate files

    def truth(self, exposure: int) -> tuple[fits.HDUList, Table]:
        stem = f"jw03457001001_01101_{exposure:05d}_mirimage"
        return (fits.open(self.sim.truth_dir / f"{stem}_truth_rate.fits"),
                Table.read(self.sim.truth_dir / f"{stem}_truth_spectrum.ecsv", format="ascii.ecsv"))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    work = tmp_path_factory.mktemp("lrs")
    desc = example()
    sim = simulate(desc, work / "sim")
    ctx, inline = embedded_context(Settings(var_dir=work / "var", _env_file=None), services=["ingest", "detector1"])
    deliver(ctx, sim.reference_paths, note="simulator references")
    inline.run_until_idle()
    received = receive_files(ctx, sim.delivery)
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    failed = [(task, o.status) for task, o in inline.run_until_idle() if o.status != "ok"]
    assert not failed
    with ctx.catalog.session() as s:
        rows = s.execute(select(Product.filename, Artifact.uri).join(Artifact)
                         .where(Product.suffix.in_(["uncal", "rate"]), Product.filename.contains("mirimage"))).all()
    return Run(sim, desc, {name: ctx.store.local_path(*ctx.store.parse_uri(uri)) for name, uri in rows})


# --- description ----------------------------------------------------------------------


def test_the_example_plans_two_nods_along_the_slit():
    desc = load_description(EXAMPLE)
    plan = build_plan(desc)
    (obs,) = plan.observations
    assert (obs.exp_type, obs.filter, obs.subarray, obs.detectors) == ("MIR_LRS-FIXEDSLIT", "P750L", "FULL",
                                                                        ["MIRIMAGE"])
    assert obs.template == "MIRI Low Resolution Spectroscopy"
    assert obs.dither.pattern_type == "ALONG-SLIT-NOD" and obs.dither.offsets == [(-1.0, 0.0), (1.0, 0.0)]
    assert [(e.exposure, e.dither_point) for e in obs.exposures] == [(1, 1), (2, 2)]
    # the target's own spectrum; a target without one gets the default (2 mJy, slope -1, two lines)
    assert target_spectrum(desc, 1).flux_jy == 0.003
    default = target_spectrum(load_description(changed(target={"spectrum": None})), 1)
    assert (default.flux_jy, default.slope) == (0.002, -1.0)
    assert sorted(line.strength > 0 for line in default.lines) == [False, True]


@pytest.mark.parametrize(
    ("desc", "words"),
    [
        (changed(obs={"filter": "F770W"}), ["observations[0]", "P750L", "not F770W"]),
        (changed(obs={"exp_type": None}), ["observations[0]", "P750L is the LRS prism", "MIR_LRS-FIXEDSLIT"]),
        (changed(obs={"exp_type": "MIR_LRS-SLITLESS"}), ["observations[0]", "SLITLESSPRISM", "not FULL"]),
        (changed(obs={"subarray": "SUB256"}), ["observations[0]", "FULL", "SUB256"]),
        (changed(obs={"detectors": ["MIRIFULONG"]}), ["observations[0]", "MIRIMAGE alone"]),
        (changed(obs={"dither": {"pattern": "4-POINT-BOX"}}), ["observations[0]", "ALONG-SLIT-NOD", "NONE"]),
        (changed(obs={"dither": {"pattern": "ALONG-SLIT-NOD", "offsets": [[0, 0], [1, 0]]}}),
         ["observations[0]", "explicit offsets"]),
        (changed(obs={"dither": {"pattern": "ALONG-SLIT-NOD", "npoints": 3}}), ["observations[0].dither", "2 points"]),
        (changed(obs={"dither": {"pattern": "ALONG-SLIT-NOD", "size": 4.0}}), ["dither.size", "slit's ends"]),
        (changed(obs={"tsovisit": True}), ["observations[0]", "tsovisit"]),
        (changed(obs={"exp_type": None, "filter": "F770W"}), ["observations[0]", "ALONG-SLIT-NOD nods along a slit"]),
        (changed(target={"spectrum": {"lines": [{"wavelength": 20.0, "fwhm": 0.1, "strength": 1.0}]}}),
         ["targets[0].spectrum.lines", "20.0 um is outside the LRS spectrum"]),
        (changed(target={"spectrum": {"flux_jy": -1.0}}), ["targets[0].spectrum.flux_jy"]),
        (changed(target={"spectrum": {"lines": [{"wavelength": 8.0, "fwhm": 0.1, "strength": -2.0}]}}),
         ["targets[0].spectrum.lines[0].strength"]),
        (changed(obs={"exp_type": None, "filter": "F770W", "dither": {"pattern": "NONE"}}),
         ["targets[0].spectrum", "none observes 'DUSTY-STAR-1'"]),
    ],
)
def test_bad_lrs_descriptions_name_the_field_and_the_reason(desc, words):
    with pytest.raises(DescriptionError) as info:
        load_description(desc)
    for word in words:
        assert word in str(info.value)


# --- pointing ---------------------------------------------------------------------------


@pytest.mark.parametrize("dither", [{"pattern": "NONE"}, {"pattern": "ALONG-SLIT-NOD", "size": 3.0}])
def test_the_slit_centre_is_the_pointing_reference(dither):
    """With no pointing error the target sits at the slit centre, full-frame pixel
    (IMX - 1, IMY - 1), and a nod moves it along the slit (detector x) only: to 0.01 px
    (the focal plane's flat V2/V3 offsets are true to a fraction of a mas) plus 0.2 % of
    the nod (the offsets are taken along the ideal axes; the distortion's local scale and
    skew at the slit, up to 0.12 %, turn them on the detector)."""
    desc = load_description(changed(obs={"dither": dither, "roll": 37.0},
                                     simulation={"acquisition_error_arcsec": 0.0, "cosmic_ray_rate": 0.0}))
    plan = build_plan(desc)
    obs = plan.observations[0]
    for exp, (dx, dy) in zip(obs.exposures, obs.dither.offsets, strict=True):
        slit = simulate_exposure(plan, obs, exp, desc.simulation, noiseless=True).truth.slit
        tolerance = 0.01 + 0.002 * abs(dx) / LRS.pixel_scale  # px
        assert slit.x == pytest.approx(LRS.imx - 1.0 - dx / LRS.pixel_scale, abs=tolerance)
        assert slit.y == pytest.approx(LRS.imy - 1.0 - dy / LRS.pixel_scale, abs=tolerance)
        assert (slit.source.along, slit.source.across) == pytest.approx((-dx, 0.0), abs=tolerance * LRS.pixel_scale)


# --- the simulated program: _uncal, truth, _rate ------------------------------------------


def test_uncal_carries_the_slit_and_nod_keywords(run):
    plan = run.sim.plan
    obs = plan.observations[0]
    desc = load_description(run.description)
    uncal = sorted(n for n in run.products if n.endswith("_uncal.fits"))
    assert uncal == [f"jw03457001001_01101_0000{k}_mirimage_uncal.fits" for k in (1, 2)]
    for k, name in enumerate(uncal, start=1):
        with fits.open(run.products[name]) as hdul:
            h = hdul[0].header
            assert (h["EXP_TYPE"], h["FILTER"], h["SUBARRAY"], h["DETECTOR"]) == ("MIR_LRS-FIXEDSLIT", "P750L", "FULL",
                                                                                 "MIRIMAGE")
            assert (h["PATTTYPE"], h["PATT_NUM"], h["NUMDTHPT"]) == ("ALONG-SLIT-NOD", k, 2)
            # the public convention for a slit: the pointing about the slit's reference point
            # (MIRIM_SLIT), XOFFSET/YOFFSET the target's place in its ideal frame (x against
            # V2, detector -x here): a nod that moves the telescope by dx puts the target at
            # -dx, to the distortion's local scale (0.2 %)
            dx, dy = obs.dither.offsets[k - 1]
            assert h["APERNAME"] == "MIRIM_SLIT"
            assert h["XOFFSET"] == pytest.approx(-dx, abs=0.002 * abs(dx) + 1e-6)
            assert h["YOFFSET"] == pytest.approx(-dy, abs=0.002 * abs(dx) + 1e-6)
            sci = hdul["SCI"].header
            assert (sci["V2_REF"], sci["V3_REF"]) == (obs.aperture.v2_ref, obs.aperture.v3_ref)
            assert h["TEMPLATE"] == "MIRI Low Resolution Spectroscopy"
            # exactly the simulated ramp, made with the target's own spectrum
            exp = obs.exposures[k - 1]
            expected = simulate_exposure(plan, obs, exp, desc.simulation, spectrum=target_spectrum(desc, 1))
            np.testing.assert_array_equal(hdul["SCI"].data, expected.sci)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with dm.open(run.products[name]) as model:
                assert type(model).__name__ == "Level1bModel"
                assert (model.meta.exposure.type, model.meta.dither.primary_type) == ("MIR_LRS-FIXEDSLIT",
                                                                                      "ALONG-SLIT-NOD")


def test_truth_spectrum_is_what_the_spectrograph_puts_on_the_detector(run):
    """Per row, the truth rate's source (DN/s back to photo-electrons: x gain / flat /
    area) sums over the slit to ``observed f_nu x electrons per Jy x slit transmission``
    of the model: to 5e-4 (the model's sampling of the transmission within a row gives
    2e-4; a source not multiplied by the pixel area, 1.001 at the slit, would be off by
    1e-3); the table's columns are the model's (1e-9); the source's lines are where the
    table says; there are no field stars."""
    spectrum = target_spectrum(load_description(run.description), 1)
    index = json.loads(run.sim.truth_index.read_text())
    entries = [e for e in index["exposures"] if e["observation"] == 1]
    assert [e["truth_spectrum"] for e in entries] == [
        f"truth/jw03457001001_01101_0000{k}_mirimage_truth_spectrum.ecsv" for k in (1, 2)]
    for k, entry in enumerate(entries, start=1):
        hdul, table = run.truth(k)
        h = hdul[0].header
        across, along = table.meta["across_arcsec"], table.meta["along_arcsec"]
        assert (h["SRCACROS"], h["SRCALONG"]) == (across, along) and entry["slit_source"]["along_arcsec"] == along
        assert [line["wavelength"] for line in table.meta["lines"]] == [line.wavelength for line in spectrum.lines]
        assert all(0.05 < line["resolution_element_um"] < 0.3 for line in table.meta["lines"])
        rows = np.asarray(table["row"], float)
        shift = across / LRS.pixel_scale
        source_wl = LRS.wavelength(rows - shift)
        transmission = LRS.slit_transmission(source_wl, across)
        observed = observed_spectrum(LRS, spectrum, rows, across)
        expected = observed * LRS.electrons_per_jy(rows) * transmission
        np.testing.assert_allclose(table["observed_jy"], observed, rtol=1e-9)
        np.testing.assert_allclose(table["transmission"], transmission, rtol=1e-9)
        np.testing.assert_allclose(table["flux_jy"], spectrum(source_wl), rtol=1e-9)
        np.testing.assert_allclose(table["wavelength"], LRS.wavelength(rows), rtol=1e-12)

        sci, sky, flat, gain, area = (hdul[n].data.astype(np.float64) for n in ("SCI", "SKY", "FLAT", "GAIN", "AREA"))
        # the spectrum alone: no field stars, no light elsewhere (the line-spread function's far tails aside)
        assert max(abs(sci[:90]).max(), abs(sci[430:]).max()) < 1e-6 * sci.max()
        assert len(Table.read(run.sim.truth_dir / f"{entry['exposure_id']}_truth_stars.ecsv")) == 0
        good = flat > 0
        source = np.where(good, (sci - sky * flat / gain) * gain / np.where(good, flat * area, 1.0), 0.0)
        iy = rows.astype(int)
        xs = np.round(table["source_x"]).astype(int)
        box = np.array([good[y, x - 8 : x + 9].all() for y, x in zip(iy, xs, strict=True)])  # no dead pixel there
        inner = box & (rows >= LRS.span[0] + 10) & (rows <= LRS.span[1] - 10)
        assert inner.sum() > 250
        measured = np.array([source[y, x - 8 : x + 9].sum() for y, x in zip(iy, xs, strict=True)])
        np.testing.assert_allclose(measured[inner], expected[inner], rtol=5e-4)
        np.testing.assert_allclose(table["source_e_per_s"][inner], expected[inner], rtol=5e-4)
        # the emission line stands out at its row, the absorption dips at its own
        continuum = spectrum.flux_jy * (source_wl / 7.5) ** spectrum.slope
        for line in spectrum.lines:
            row = int(np.argmin(abs(source_wl - line.wavelength)))
            assert (observed[row] / continuum[row] - 1.0) * np.sign(line.strength) > 0.1
        # the sky fills the slit: 15 px from the trace (inside the 21 px half-length, far from the source)
        for y in (150, 300, 400):
            x = int(round(float(LRS.trace(y)))) - 15
            assert sky[y, x] / area[y, x] == pytest.approx(float(table["sky_e_per_s"][y - LRS.span[0]]), rel=1e-3)


def test_nods_put_the_source_two_arcsec_apart(run):
    """The nods are 2.0" apart along the slit once the injected pointing errors are taken
    out: in the truth (0.002") and in the detector-1 rates (centroids along x of the
    nod difference, which removes the sky: 0.1 px)."""
    headers = [run.truth(k)[0][0].header for k in (1, 2)]
    along = [h["SRCALONG"] for h in headers]
    pointing = [h["PNT_DX"] for h in headers]
    assert along[0] - along[1] + (pointing[0] - pointing[1]) == pytest.approx(2.0, abs=0.002)
    assert (headers[0]["SRC_X"] - headers[1]["SRC_X"]) * LRS.pixel_scale == pytest.approx(along[0] - along[1],
                                                                                            abs=0.002)
    rates = [fits.open(run.products[f"jw03457001001_01101_0000{k}_mirimage_rate.fits"]) for k in (1, 2)]
    diff = rates[0]["SCI"].data.astype(np.float64) - rates[1]["SCI"].data
    usable = ((rates[0]["DQ"].data | rates[1]["DQ"].data) & 1) == 0  # DO_NOT_USE in neither
    rows = slice(LRS.span[0], LRS.span[1] + 1)

    def centroid(image: np.ndarray, x_source: float) -> float:
        x0 = int(x_source) - 8
        cut = np.where(usable[rows, x0 : x0 + 17], image[rows, x0 : x0 + 17], 0.0)
        return float((cut * np.arange(x0, x0 + 17)).sum() / cut.sum())

    separation = centroid(diff, headers[0]["SRC_X"]) - centroid(-diff, headers[1]["SRC_X"])
    assert separation == pytest.approx(headers[0]["SRC_X"] - headers[1]["SRC_X"], abs=0.1)
    assert separation * LRS.pixel_scale + (pointing[0] - pointing[1]) == pytest.approx(2.0, abs=0.1 * LRS.pixel_scale)


def test_slit_reference_files_open_and_calibrate_the_truth(run):
    """SPECWCS, PHOTOM and PATHLOSS open as the public models; the FLAT of P750L is
    written; the imaging references leave the prism out, the distortion serves the slit
    too. The slit's PHOTOM turns the truth rate's source (flat-fielded) back into the
    observed f_nu times the slit transmission, per row (1 %)."""
    paths = {p.name: p for p in run.sim.reference_paths}
    specwcs, photom, pathloss = (dm.open(paths[f"jwst_miri_{t}_lrs-fixedslit_sim.fits"])
                                 for t in ("specwcs", "photom", "pathloss"))
    assert (type(specwcs).__name__, type(photom).__name__, type(pathloss).__name__) == (
        "MiriLRSSpecwcsModel", "MirLrsPhotomModel", "MirLrsPathlossModel")
    assert (specwcs.meta.x_ref, specwcs.meta.y_ref) == (LRS.imx, LRS.imy)
    assert np.all(np.diff(specwcs.wavetable["wavelength"]) > 0)
    assert photom.meta.exposure.type == pathloss.meta.exposure.type == "MIR_LRS-FIXEDSLIT"
    with dm.open(paths[flat_filename("MIRI", "MIRIMAGE", "P750L", None)]) as flat:
        assert type(flat).__name__ == "FlatModel" and flat.meta.instrument.filter == "P750L"
    with dm.open(paths["jwst_miri_photom_mirimage_sim.fits"]) as imaging:
        assert "P750L" not in {str(f).strip() for f in imaging.phot_table["filter"]}
        assert "F770W" in {str(f).strip() for f in imaging.phot_table["filter"]}
    with dm.open(paths["jwst_miri_distortion_mirimage_sim.asdf"]) as distortion:
        assert "MIR_LRS-FIXEDSLIT" in distortion.meta.exposure.p_exptype.split("|")

    row = photom.phot_table[0]
    hdul, table = run.truth(1)
    sci, sky, flat, gain = (hdul[n].data.astype(np.float64) for n in ("SCI", "SKY", "FLAT", "GAIN"))
    with fits.open(paths[flat_filename("MIRI", "MIRIMAGE", "P750L", None)]) as ref_flat:
        reference_flat = ref_flat["SCI"].data.astype(np.float64)
    source_dn = np.nan_to_num((sci - sky * flat / gain) / reference_flat)  # flat-fielded DN/s of the source
    relresponse = np.interp(table["wavelength"], row["wavelength"], row["relresponse"])
    rows = np.asarray(table["row"], int)
    xs = np.round(table["source_x"]).astype(int)
    jy = np.array([source_dn[y, x - 8 : x + 9].sum() for y, x in zip(rows, xs, strict=True)]) * (
        row["photmjsr"] * relresponse * photom.meta.photometry.pixelarea_steradians * 1e6)
    whole = np.array([np.isfinite(reference_flat[y, x - 8 : x + 9]).all() for y, x in zip(rows, xs, strict=True)])
    inner = whole & (rows >= LRS.span[0] + 10) & (rows <= LRS.span[1] - 10)
    np.testing.assert_allclose(jy[inner], (table["observed_jy"] * table["transmission"])[inner], rtol=0.01)
