"""The simulator's NIRSpec fixed slits (NRS_FIXEDSLIT, PRISM/CLEAR on NRS1): the
spectrograph model's geometry, its rendering (flux conservation, line positions), the
nods, the description's refusals, the reference files, and ``examples/nirspec_fs.yaml``
(S200A1, SUBS200A1, 3-POINT-NOD, 6 groups) through the simulator, ingest and detector 1
(one module-scoped run, about 15 s). Tolerances are stated beside each check.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
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
    DescriptionError,
    SimulationResult,
    build_plan,
    load_description,
    simulate,
    simulate_exposure,
    target_spectrum,
)
from services.simulator.detector_model import DetectorModel, make_detector_model
from services.simulator.optical_refs import flat_filename
from services.simulator.slit_refs import nirspec_fs_filename, slit_trace_table
from services.simulator.spectrograph import (
    NIRSPEC_FS,
    SlitSource,
    SourceSpectrum,
    SpectralLine,
    observed_spectrum,
    render_slit,
)
from shared.catalog import Artifact, Product
from shared.config import Settings
from shared.instruments import detector, subarray
from shared.refdata import deliver
from shared.runtime import dispatch_events
from tests.slit_examples import edited

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nirspec_fs.yaml"
S200A1 = NIRSPEC_FS["S200A1"]

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")


def example() -> dict:
    return edited(EXAMPLE)


def changed(obs: dict | None = None, target: dict | None = None, simulation: dict | None = None) -> dict:
    """The example with fields of its observation, target or simulation replaced (None
    values remove a field)."""
    return edited(EXAMPLE, obs, target, simulation)


@pytest.fixture(scope="module")
def nrs1() -> DetectorModel:
    """NRS1's full-frame model (the description's detector seed), drawn once."""
    return make_detector_model(detector("NRS1"), load_description(EXAMPLE).simulation.detector_seed)


def window(name: str) -> tuple[int, int, int, int]:
    sub = subarray("NIRSPEC", name)
    return sub.xstart - 1, sub.ystart - 1, sub.xsize, sub.ysize


# --- the model ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(NIRSPEC_FS))
def test_each_slit_disperses_0_6_to_5_3_um_along_x_inside_its_window(name):
    """Wavelength increases with the column over 0.6-5.3 um (to 0.01 um); the pixel of a
    wavelength inverts it (1e-9 px); the trace bends by less than 3 px; the slit's whole
    image along the spectrum lies inside its own window, 3 px clear of its edges; the
    resolving power runs from ~30 (25-35 at its minimum) to ~300 (5 um)."""
    model = NIRSPEC_FS[name]
    s = model.pixels()
    wl = model.wavelength(s)
    assert np.all(np.diff(wl) > 0)
    assert model.band == pytest.approx((0.6, 5.3), abs=0.01)
    np.testing.assert_allclose(model.pixel(wl), s, atol=1e-9)
    trace = model.trace(s)
    assert np.ptp(trace) < 3.0
    x0, y0, nx, ny = window(model.subarrays[0])
    half = 0.5 * model.slit_length_px
    assert x0 + 3 <= s[0] and s[-1] <= x0 + nx - 4
    assert y0 + 3 <= (trace - half).min() and (trace + half).max() <= y0 + ny - 4
    power = model.resolving_power(np.linspace(0.6, 5.3, 200))
    assert 25.0 < power.min() < 35.0 and 280.0 < float(model.resolving_power(5.0)) < 340.0
    assert model.subarrays[1:] == ("ALLSLITS", "FULL")


def test_the_slits_have_their_public_sizes_and_distinct_places():
    sizes = {name: (m.slit_width, m.slit_length) for name, m in NIRSPEC_FS.items()}
    assert sizes == {"S200A1": (0.2, 3.3), "S200A2": (0.2, 3.3), "S400A1": (0.4, 3.8), "S1600A1": (1.6, 1.6),
                     "S200B1": (0.2, 3.3)}
    places = {(m.imx, m.imy) for m in NIRSPEC_FS.values()}
    assert len(places) == 5 and all(m.detector == "NRS1" and m.pixel_scale == 0.1 for m in NIRSPEC_FS.values())
    assert {m.aperture for m in NIRSPEC_FS.values()} == {f"NRS_{n}_SLIT" for n in NIRSPEC_FS}


@pytest.mark.parametrize("across", [0.0, 0.06])
def test_rendering_conserves_the_flux_the_model_promises(across):
    """Per column, the rendered electrons sum to ``observed f_nu x electrons per Jy x slit
    transmission`` (1 %, away from the spectrum's ends) and over the window to the sum of
    that (0.5 %); a source across the slit loses light as the transmission says and its
    spectrum moves by its offset."""
    spectrum = SourceSpectrum(0.001, slope=-1.0, reference=2.0)
    source = SlitSource(spectrum, along=0.3, across=across)
    scene = render_slit(S200A1, [source], window("SUBS200A1"))
    assert scene.sky.max() == 0.0
    columns = S200A1.pixels()
    shift = across / S200A1.pixel_scale
    wl_source = S200A1.wavelength(columns - shift)
    expected = (observed_spectrum(S200A1, spectrum, columns, across) * S200A1.electrons_per_jy(columns)
                * S200A1.slit_transmission(wl_source, across))
    measured = scene.image.sum(axis=0)[columns.astype(int)]
    inner = slice(10, -10)
    np.testing.assert_allclose(measured[inner], expected[inner], rtol=0.01)
    window_columns = scene.image[:, columns.astype(int)].sum(axis=0)  # all the light, 64 rows
    assert window_columns[inner].sum() == pytest.approx(expected[inner].sum(), rel=0.002)
    if across:  # the jaw takes a fifth of the 5 um light of a source 0.06" off the centre line
        red = columns > S200A1.pixel(4.9)
        loss = measured[red].sum() / render_slit(S200A1, [SlitSource(spectrum, along=0.3)],
                                                   window("SUBS200A1")).image.sum(axis=0)[columns[red].astype(int)].sum()
        assert 0.75 < loss < 0.9


def test_lines_land_on_the_column_the_model_gives_their_wavelength():
    """A narrow line's light (the line's render less the continuum's) has its centroid
    along x at ``pixel(lambda) + across / scale`` (0.05 px; the prism's dispersion changes
    by under 1 % across the line's ~2 px) and along y on the trace plus the source's
    offset along the slit (0.05 px)."""
    across, along = 0.04, -0.5
    for wavelength in (1.2825, 2.5, 4.5):
        line = SpectralLine(wavelength, 0.001, 20.0)
        continuum = SourceSpectrum(0.001, reference=2.0)
        with_line = SourceSpectrum(0.001, reference=2.0, lines=(line,))
        images = [render_slit(S200A1, [SlitSource(s, along=along, across=across)], window("SUBS200A1")).image
                  for s in (with_line, continuum)]
        light = images[0] - images[1]
        x0, y0, _, _ = window("SUBS200A1")
        xs = np.arange(light.shape[1]) + x0
        ys = np.arange(light.shape[0]) + y0
        cx = float((light.sum(axis=0) * xs).sum() / light.sum())
        cy = float((light.sum(axis=1) * ys).sum() / light.sum())
        column = float(S200A1.pixel(wavelength)) + across / S200A1.pixel_scale
        assert cx == pytest.approx(column, abs=0.05)
        assert cy == pytest.approx(float(S200A1.trace(column)) + along / S200A1.pixel_scale, abs=0.05)


# --- the description and the nods ---------------------------------------------------------


def test_the_example_plans_three_nods_along_the_slit():
    desc = load_description(EXAMPLE)
    (obs,) = build_plan(desc).observations
    assert (obs.exp_type, obs.filter, obs.pupil, obs.fixed_slit, obs.subarray, obs.detectors) == (
        "NRS_FIXEDSLIT", "CLEAR", "PRISM", "S200A1", "SUBS200A1", ["NRS1"])
    assert obs.template == "NIRSpec Fixed Slit Spectroscopy"
    assert obs.aperture.name == "NRS_S200A1_SLIT"
    assert obs.dither.pattern_type == "3-POINT-NOD"
    assert obs.dither.offsets == [(0.0, 0.0), (0.0, 1.0), (0.0, -1.0)]  # along the slit: detector y
    assert target_spectrum(desc, 1).reference == 2.0


@pytest.mark.parametrize(("slit", "dither", "positions"), [
    ("S200A1", {"pattern": "3-POINT-NOD"}, [0.0, -1.0, 1.0]),
    ("S200A1", {"pattern": "2-POINT-NOD", "size": 1.5}, [0.75, -0.75]),
    ("S1600A1", {"pattern": "3-POINT-NOD"}, [0.0, -0.3, 0.3]),
    ("S400A1", {"pattern": "NONE"}, [0.0]),
])
def test_nods_put_the_source_where_the_plan_says(slit, dither, positions, nrs1):
    """With no acquisition error the target sits at the slit's reference point and each
    nod moves it along the slit (detector y) by the pattern's offset, not across it: to
    0.01 px plus 0.2 % of the nod (the distortion's local scale and skew, as for the LRS)."""
    sub = NIRSPEC_FS[slit].subarrays[0]
    desc = load_description(changed(obs={"fixed_slit": slit, "subarray": sub, "dither": dither, "roll": 23.0},
                                     simulation={"acquisition_error_arcsec": 0.0, "cosmic_ray_rate": 0.0}))
    plan = build_plan(desc)
    obs = plan.observations[0]
    model = NIRSPEC_FS[slit]
    assert len(obs.exposures) == len(positions)
    for exp, along in zip(obs.exposures, positions, strict=True):
        truth = simulate_exposure(plan, obs, exp, desc.simulation, model=nrs1, noiseless=True).truth.slit
        tolerance = 0.01 + 0.002 * abs(along) / model.pixel_scale  # px
        assert truth.model is model
        assert (truth.source.along, truth.source.across) == pytest.approx((along, 0.0),
                                                                          abs=tolerance * model.pixel_scale)
        assert truth.y == pytest.approx(model.imy - 1.0 + along / model.pixel_scale, abs=tolerance)
        assert truth.x == pytest.approx(model.imx - 1.0, abs=tolerance)


@pytest.mark.parametrize(
    ("obs", "target", "words"),
    [
        ({"fixed_slit": None}, None, ["observations[0]", "fixed_slit", "names its slit", "S200A1"]),
        ({"fixed_slit": "S300A1"}, None, ["observations[0].fixed_slit", "'S300A1' is not a NIRSpec fixed slit"]),
        ({"subarray": "SUBS400A1"}, None, ["observations[0]", "subarray", "SUBS200A1 or ALLSLITS or FULL",
                                          "not SUBS400A1"]),
        ({"subarray": "SUB999"}, None, ["observations[0].subarray", "SUB999"]),
        ({"detectors": ["NRS2"]}, None, ["observations[0]", "images on NRS1 alone"]),
        ({"pupil": "G140M"}, None, ["observations[0]", "filter/pupil", "prism behind CLEAR", "G140M"]),
        ({"pupil": "G999"}, None, ["observations[0]", "pupil", "grating or prism"]),
        ({"filter": "F070LP"}, None, ["observations[0]", "CLEAR", "F070LP"]),
        ({"readpatt": "FASTR1"}, None, ["observations[0].readpatt", "FASTR1"]),
        ({"readpatt": "NRSIRS2"}, None, ["observations[0]", "readpatt", "NRSRAPID or NRS", "not NRSIRS2"]),
        ({"dither": {"pattern": "3-POINT-NOD", "size": 1.5}}, None,
         ["observations[0]", "dither.size", "out of the slit", "at most 1.15"]),
        ({"dither": {"pattern": "2-POINT-NOD", "size": 3.0}}, None, ["dither.size", "at most 2.30"]),
        ({"dither": {"pattern": "3-POINT-NOD", "npoints": 2}}, None, ["observations[0].dither", "3 points"]),
        ({"dither": {"pattern": "ALONG-SLIT-NOD"}}, None, ["observations[0]", "2-POINT-NOD or 3-POINT-NOD"]),
        ({"dither": {"pattern": "2-POINT-NOD", "offsets": [[0, 0], [0, 1]]}}, None, ["explicit offsets"]),
        ({"exp_type": "NRS_IMAGE"}, None, ["instrument: NIRSPEC is not simulated", "NRS_FIXEDSLIT"]),
        ({"tsovisit": True}, None, ["observations[0]", "tsovisit"]),
        (None, {"spectrum": {"lines": [{"wavelength": 7.0, "fwhm": 0.01, "strength": 1.0}]}},
         ["targets[0].spectrum.lines[0].wavelength", "7.0 um is outside the NIRSpec S200A1 PRISM/CLEAR spectrum"]),
    ],
)
def test_bad_nirspec_descriptions_name_the_field_and_the_reason(obs, target, words):
    with pytest.raises(DescriptionError) as info:
        load_description(changed(obs=obs, target=target))
    for word in words:
        assert word in str(info.value)


def test_a_fixed_slit_or_a_slit_nod_elsewhere_is_refused():
    lrs = yaml.safe_load((EXAMPLE.parent / "miri_lrs.yaml").read_text())
    lrs["observations"][0]["fixed_slit"] = "S200A1"
    with pytest.raises(DescriptionError, match="fixed_slit: only a NIRSpec fixed-slit observation"):
        load_description(lrs)
    imaging = yaml.safe_load((EXAMPLE.parent / "nircam_imaging.yaml").read_text())
    imaging["observations"][0]["dither"] = {"pattern": "3-POINT-NOD"}
    with pytest.raises(DescriptionError, match="3-POINT-NOD nods along a slit"):
        load_description(imaging)


# --- the example through simulator, ingest and detector 1 ---------------------------------


@dataclass
class Run:
    sim: SimulationResult
    products: dict[str, Path]  # filename -> local path of the _uncal and _rate files

    def truth(self, exposure: int) -> tuple[fits.HDUList, Table]:
        stem = f"jw04521001001_01101_{exposure:05d}_nrs1"
        return (fits.open(self.sim.truth_dir / f"{stem}_truth_rate.fits"),
                Table.read(self.sim.truth_dir / f"{stem}_truth_spectrum.ecsv", format="ascii.ecsv"))

    def reference(self, name: str) -> Path:
        return next(p for p in self.sim.reference_paths if p.name == name)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    work = tmp_path_factory.mktemp("nrsfs")
    sim = simulate(example(), work / "sim")
    ctx, inline = embedded_context(Settings(var_dir=work / "var", _env_file=None), services=["ingest", "detector1"])
    deliver(ctx, sim.reference_paths, note="simulator references")
    inline.run_until_idle()
    received = receive_files(ctx, sim.delivery)
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    failed = [(task, o.status) for task, o in inline.run_until_idle() if o.status != "ok"]
    assert not failed
    with ctx.catalog.session() as s:
        rows = s.execute(select(Product.filename, Artifact.uri).join(Artifact)
                         .where(Product.suffix.in_(["uncal", "rate"]), Product.filename.contains("nrs1"))).all()
    return Run(sim, {name: ctx.store.local_path(*ctx.store.parse_uri(uri)) for name, uri in rows})


def test_uncal_carries_the_fixed_slit_keywords(run, nrs1):
    """The public keywords of the mode, the window and the nods; the pointing about the
    slit's reference point (V2_REF/V3_REF the plan's aperture), XOFFSET/YOFFSET the
    target's place in its ideal frame (y along V3: a nod (0, dy) puts the target at -dy,
    to 0.2 % of the nod); the ramp is the simulated one; stdatamodels opens it."""
    plan = run.sim.plan
    obs = plan.observations[0]
    desc = load_description(example())
    uncal = sorted(n for n in run.products if n.endswith("_uncal.fits"))
    assert uncal == [f"jw04521001001_01101_0000{k}_nrs1_uncal.fits" for k in (1, 2, 3)]
    assert len([n for n in run.products if n.endswith("_rate.fits")]) == 3
    for k, name in enumerate(uncal, start=1):
        with fits.open(run.products[name]) as hdul:
            h, sci = hdul[0].header, hdul["SCI"].header
            assert {key: h[key] for key in ("INSTRUME", "DETECTOR", "EXP_TYPE", "FILTER", "GRATING", "FXD_SLIT",
                                           "APERNAME", "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2",
                                           "PATTTYPE", "NUMDTHPT", "PATT_NUM", "READPATT")} == {
                "INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "EXP_TYPE": "NRS_FIXEDSLIT", "FILTER": "CLEAR",
                "GRATING": "PRISM", "FXD_SLIT": "S200A1", "APERNAME": "NRS_S200A1_SLIT", "SUBARRAY": "SUBS200A1",
                "SUBSTRT1": 1, "SUBSTRT2": 959, "SUBSIZE1": 2048, "SUBSIZE2": 64, "PATTTYPE": "3-POINT-NOD",
                "NUMDTHPT": 3, "PATT_NUM": k, "READPATT": "NRSRAPID"}
            assert "PUPIL" not in h
            dx, dy = obs.dither.offsets[k - 1]
            assert (h["XOFFSET"], h["YOFFSET"]) == pytest.approx((-dx, -dy), abs=0.002 * abs(dy) + 1e-4)
            assert (sci["V2_REF"], sci["V3_REF"]) == (obs.aperture.v2_ref, obs.aperture.v3_ref)
            expected = simulate_exposure(plan, obs, obs.exposures[k - 1], desc.simulation, model=nrs1,
                                         spectrum=target_spectrum(desc, 1))
            np.testing.assert_array_equal(hdul["SCI"].data, expected.sci)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with dm.open(run.products[name]) as model:
                assert type(model).__name__ == "Level1bModel"
                assert (model.meta.instrument.grating, model.meta.instrument.fixed_slit) == ("PRISM", "S200A1")


def test_truth_spectrum_is_one_row_per_column_of_what_the_slit_put_there(run):
    """Per column, the truth rate's source (DN/s back to photo-electrons) sums over the
    slit to ``observed f_nu x electrons per Jy x transmission`` (5e-4, as the LRS's); the
    columns are the model's; the nods' sources sit 1" apart along y (0.002" once the
    acquisition errors are taken out); the sky fills the slit."""
    index = json.loads(run.sim.truth_index.read_text())
    assert [e["truth_spectrum"] for e in index["exposures"]] == [
        f"truth/jw04521001001_01101_0000{k}_nrs1_truth_spectrum.ecsv" for k in (1, 2, 3)]
    spectrum = target_spectrum(load_description(example()), 1)
    along = []
    for k in (1, 2, 3):
        hdul, table = run.truth(k)
        h = hdul[0].header
        assert table.colnames == ["column", "wavelength", "source_wavelength", "flux_jy", "observed_jy",
                                  "transmission", "trace_y", "source_y", "electrons_per_jy", "source_e_per_s",
                                  "sky_mjy_sr", "sky_e_per_s"]
        assert (h["FXD_SLIT"], table.meta["slit"]["name"]) == ("S200A1", "S200A1")
        columns = np.asarray(table["column"], float)
        np.testing.assert_array_equal(columns, S200A1.pixels())
        across = table.meta["across_arcsec"]
        observed = observed_spectrum(S200A1, spectrum, columns, across)
        np.testing.assert_allclose(table["observed_jy"], observed, rtol=1e-9)
        assert [line["wavelength"] for line in table.meta["lines"]] == [line.wavelength for line in spectrum.lines]

        sci, sky, flat, gain, area = (hdul[n].data.astype(np.float64) for n in ("SCI", "SKY", "FLAT", "GAIN", "AREA"))
        good = flat > 0
        source = np.where(good, (sci - sky * flat / gain) * gain / np.where(good, flat * area, 1.0), 0.0)
        y0 = 958
        ys = np.round(np.asarray(table["source_y"])).astype(int) - y0
        xs = columns.astype(int)
        box = np.array([good[y - 6 : y + 7, x].all() for y, x in zip(ys, xs, strict=True)])
        inner = box & (columns >= S200A1.span[0] + 10) & (columns <= S200A1.span[1] - 10)
        assert inner.sum() > 400
        measured = np.array([source[y - 6 : y + 7, x].sum() for y, x in zip(ys, xs, strict=True)])
        expected = observed * table["electrons_per_jy"] * table["transmission"]
        np.testing.assert_allclose(measured[inner], expected[inner], rtol=5e-4)
        np.testing.assert_allclose(table["source_e_per_s"][inner], expected[inner], rtol=5e-4)
        # the sky: 12 px from the trace along the slit (inside its 16.5 px half-length, far from the source)
        x = 1300
        y = int(round(float(S200A1.trace(x)))) + (12 if k != 3 else -12) - y0
        assert sky[y, x] / area[y, x] == pytest.approx(float(table["sky_e_per_s"][x - S200A1.span[0]]), rel=1e-3)
        along.append(h["SRCALONG"] + h["PNT_DY"])
    assert along == pytest.approx([0.0, -1.0, 1.0], abs=0.002)


def test_reference_files_open_and_calibrate_the_truth(run):
    """PHOTOM opens as NrsFsPhotomModel with a row per slit and turns the truth rate's
    source, flat-fielded with the FLAT, summed over a column, into the observed f_nu times
    the slit transmission (1 %); PATHLOSS opens as PathlossModel with the transmission at
    the slit centre; SPECWCS has one extension per slit holding the model's trace; the
    FLAT (CLEAR/PRISM) and DISTORTION are NRS1's."""
    photom = dm.open(run.reference(nirspec_fs_filename("photom")))
    assert type(photom).__name__ == "NrsFsPhotomModel"
    assert photom.meta.exposure.type == "NRS_FIXEDSLIT"
    rows = {str(r["slit"]).strip(): r for r in photom.phot_table}
    assert set(rows) == set(NIRSPEC_FS)
    row = rows["S200A1"]
    assert (str(row["filter"]).strip(), str(row["grating"]).strip()) == ("CLEAR", "PRISM")
    n = int(row["nelem"])
    waves, relresponse = row["wavelength"][:n], row["relresponse"][:n]
    assert np.all(np.diff(waves) > 0) and waves[0] == pytest.approx(0.6, abs=0.01)

    hdul, table = run.truth(1)
    sci, sky, flat, gain = (hdul[k].data.astype(np.float64) for k in ("SCI", "SKY", "FLAT", "GAIN"))
    with fits.open(run.reference(flat_filename("NIRSPEC", "NRS1", "CLEAR", "PRISM"))) as ref_flat:
        assert (ref_flat[0].header["FILTER"], ref_flat[0].header["GRATING"]) == ("CLEAR", "PRISM")
        reference_flat = ref_flat["SCI"].data[958:1022].astype(np.float64)
    source_dn = np.nan_to_num((sci - sky * flat / gain) / reference_flat)
    columns = np.asarray(table["column"], int)
    ys = np.round(np.asarray(table["source_y"])).astype(int) - 958
    mjy = np.array([source_dn[y - 6 : y + 7, x].sum() for y, x in zip(ys, columns, strict=True)]) * (
        row["photmj"] * np.interp(table["wavelength"], waves, relresponse))
    whole = np.array([np.isfinite(reference_flat[y - 6 : y + 7, x]).all() for y, x in zip(ys, columns, strict=True)])
    inner = whole & (columns >= S200A1.span[0] + 10) & (columns <= S200A1.span[1] - 10)
    np.testing.assert_allclose(mjy[inner] * 1e6, (table["observed_jy"] * table["transmission"])[inner], rtol=0.01)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pathloss = dm.open(run.reference(nirspec_fs_filename("pathloss")))
    assert type(pathloss).__name__ == "PathlossModel"
    apertures = {a.name: a for a in pathloss.apertures}
    assert set(apertures) == set(NIRSPEC_FS)
    aperture = apertures["S200A1"]
    wcs = aperture.pointsource_wcs
    data = aperture.pointsource_data  # (wavelength, along, across)
    centre = (data.shape[1] // 2, data.shape[2] // 2)
    wl = (wcs.crval3 + wcs.cdelt3 * np.arange(data.shape[0])) * 1e6
    assert (wcs.crval1 + wcs.cdelt1 * centre[1], wcs.crval2 + wcs.cdelt2 * centre[0]) == pytest.approx((0.0, 0.0))
    np.testing.assert_allclose(data[:, centre[0], centre[1]], S200A1.slit_transmission(wl), rtol=1e-6)
    assert data[:, 0, 0].max() < 0.55 and data[:, centre[0], centre[1]].min() > 0.8  # the jaws pass half

    with fits.open(run.reference(nirspec_fs_filename("specwcs"))) as specwcs:
        h = specwcs[0].header
        assert {k: h[k] for k in ("INSTRUME", "DETECTOR", "EXP_TYPE", "FILTER", "GRATING", "REFTYPE", "DISPAXIS")} == {
            "INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "EXP_TYPE": "NRS_FIXEDSLIT", "FILTER": "CLEAR",
            "GRATING": "PRISM", "REFTYPE": "SPECWCS", "DISPAXIS": 1}
        assert [hdu.name for hdu in specwcs[1:]] == list(NIRSPEC_FS)
        for name, model in NIRSPEC_FS.items():
            ext = specwcs[name]
            assert (ext.header["IMX"], ext.header["IMY"]) == (model.imx, model.imy)
            assert all(f"V{a}VERT{i}" in ext.header for a in (2, 3) for i in range(1, 5))
            tab = ext.data
            x = tab["x_center"] + model.imx - 1.0
            np.testing.assert_allclose(x, model.pixels(), atol=1e-9)
            np.testing.assert_allclose(tab["y_center"] + model.imy - 1.0, model.trace(x), atol=1e-9)
            np.testing.assert_allclose(tab["wavelength"], model.wavelength(x), rtol=1e-12)
            np.testing.assert_allclose(tab["y0"] - tab["y3"], model.slit_length_px)
            np.testing.assert_allclose(tab["x1"] - tab["x0"], 1.0)
            assert tab.dtype.names == slit_trace_table(model).dtype.names
        v2 = [specwcs["S200A1"].header[f"V2VERT{i}"] for i in range(1, 5)]
        v3 = [specwcs["S200A1"].header[f"V3VERT{i}"] for i in range(1, 5)]
        assert np.ptp(v2) == pytest.approx(0.2, rel=0.01) and np.ptp(v3) == pytest.approx(3.3, rel=0.01)
        assert np.mean(v2) == pytest.approx(run.sim.plan.observations[0].aperture.v2_ref, abs=0.01)

    with dm.open(run.reference("jwst_nirspec_distortion_nrs1_sim.asdf")) as distortion:
        # the MSA and the bright-object time series image through it too
        assert distortion.meta.exposure.p_exptype == "NRS_FIXEDSLIT|NRS_BRIGHTOBJ|NRS_MSASPEC|"
