"""NIRSpec's WAVELENGTHRANGE, end to end on small inputs: the simulator writes the public
ASDF file (``WavelengthrangeModel``), the reference machinery delivers, selects and loads
it by its ``meta`` (and refuses malformed ASDF references with a reason), and spec2's
assign_wcs bounds a slit's wavelengths to the range of the exposure's filter and grating.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import asdf
import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from services.simulator.slit_refs import slit_trace_table, slit_vertices
from services.simulator.spectrograph import NIRSPEC_FS
from services.simulator.wavelengthrange_ref import (
    WAVELENGTH_RANGES,
    WAVELENGTHRANGE_FILENAME,
    write_nirspec_wavelengthrange,
)
from services.stage2.spec2 import SPEC2, run_spec2
from shared.config import Settings
from shared.datamodels import FitsProduct
from shared.errors import InputError
from shared.refdata import (
    DeliveryError,
    HeaderError,
    LocalReferences,
    ReferenceFileError,
    Window,
    best_references,
    deliver,
    load_reference,
    load_references,
    reference_key,
)
from shared.runtime import ServiceContext
from shared.spectra import SlitTrace
from shared.spectra.wavelengthrange import bound_trace, filter_grating, wavelength_ranges
from shared.storage import Bucket

SLIT = NIRSPEC_FS["S200A1"]
WINDOW = Window(xstart=1, ystart=959, xsize=2048, ysize=64)  # SUBS200A1
FULL = (2048, 2048)


@pytest.fixture(scope="module")
def wavelengthrange(tmp_path_factory) -> Path:
    return write_nirspec_wavelengthrange(tmp_path_factory.mktemp("refs")).path


def test_the_simulator_writes_the_public_model(wavelengthrange, tmp_path):
    """The file opens as the public WavelengthrangeModel without a warning: CLEAR_PRISM the
    simulated prism's band, the gratings' nominal ranges, in metres; the same bytes again."""
    assert wavelengthrange.name == WAVELENGTHRANGE_FILENAME
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.WavelengthrangeModel(str(wavelengthrange)) as model:
            ranges = dict(zip(model.waverange_selector, model.wavelengthrange, strict=True))
            orders = dict(zip(model.waverange_selector, model.order, strict=True))
            assert model.meta.wavelength_units == u.m
            assert model.meta.reftype.upper() == "WAVELENGTHRANGE" and model.meta.instrument.name == "NIRSPEC"
            assert model.meta.exposure.p_exptype == "NRS_FIXEDSLIT|NRS_MSASPEC|NRS_BRIGHTOBJ|"
    assert np.allclose(ranges["CLEAR_PRISM"], [0.6e-6, 5.3e-6], rtol=0, atol=1e-12)
    assert np.allclose(ranges["F290LP_G395H"], [2.87e-6, 5.27e-6], rtol=0, atol=1e-12)
    assert orders["CLEAR_PRISM"] == 0 and orders["F070LP_G140M"] == -1
    assert set(ranges) == {name for name, *_ in WAVELENGTH_RANGES} and len(ranges) == 9
    # the simulated prism's columns all fall within its range
    assert ranges["CLEAR_PRISM"][0] * 1e6 <= SLIT.band[0] < SLIT.band[1] <= ranges["CLEAR_PRISM"][1] * 1e6
    again = write_nirspec_wavelengthrange(tmp_path).path
    assert again.read_bytes() == wavelengthrange.read_bytes()


def test_the_public_pipeline_reads_it(wavelengthrange):
    """jwst's NIRSpec assign_wcs finds the prism's order and range in it."""
    from jwst.assign_wcs.nirspec import get_spectral_order_wrange

    with dm.ImageModel((2, 2)) as model:
        model.meta.instrument.filter, model.meta.instrument.grating = "CLEAR", "PRISM"
        model.meta.exposure.type = "NRS_FIXEDSLIT"
        order, wrange = get_spectral_order_wrange(model, str(wavelengthrange))
    assert order == 0 and np.allclose(wrange, [0.6e-6, 5.3e-6], rtol=0, atol=1e-12)


@pytest.fixture
def ctx(tmp_path):
    context = ServiceContext.from_settings(Settings(var_dir=tmp_path / "var", _env_file=None))
    context.catalog.upgrade()
    yield context
    context.catalog.dispose()


def _exposure(**overrides) -> dict:
    header = {"INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "EXP_TYPE": "NRS_FIXEDSLIT", "FILTER": "CLEAR",
              "GRATING": "PRISM", "FXD_SLIT": "S200A1", "SUBARRAY": "SUBS200A1", "SUBSTRT1": WINDOW.xstart,
              "SUBSTRT2": WINDOW.ystart, "SUBSIZE1": WINDOW.xsize, "SUBSIZE2": WINDOW.ysize,
              "DATE-OBS": "2025-03-01", "TIME-OBS": "12:00:00.000"}
    return {**header, **overrides}


def test_delivered_selected_by_its_meta_and_loaded_with_its_tree(ctx, wavelengthrange):
    """Delivered as application/asdf with EXP_TYPE its p_exptype; chosen for fixed-slit,
    MOS and bright-object exposures of either detector, not for the IFU; loaded with its
    ranges and meta."""
    d = deliver(ctx, [wavelengthrange])
    assert d.added == (WAVELENGTHRANGE_FILENAME,)
    (info,) = d.files
    assert (info.reftype, info.instrument, info.selectors) == ("WAVELENGTHRANGE", "NIRSPEC",
                                                               {"EXP_TYPE": "NRS_FIXEDSLIT|NRS_MSASPEC|NRS_BRIGHTOBJ"})
    stored = ctx.store.stat(Bucket.REFS, reference_key("NIRSPEC", WAVELENGTHRANGE_FILENAME))
    assert stored.content_type == "application/asdf"
    with ctx.catalog.session() as s:
        for exp_type, det in (("NRS_FIXEDSLIT", "NRS1"), ("NRS_MSASPEC", "NRS2"), ("NRS_BRIGHTOBJ", "NRS1")):
            chosen = best_references(s, _exposure(EXP_TYPE=exp_type, DETECTOR=det), ["wavelengthrange"])
            assert chosen["wavelengthrange"].filename == WAVELENGTHRANGE_FILENAME
        assert best_references(s, _exposure(EXP_TYPE="NRS_IFU"), ["wavelengthrange"])["wavelengthrange"].filename \
            is None
    refs = load_references(LocalReferences(refs_dir=wavelengthrange.parent), _exposure(), ["wavelengthrange"])
    ref = refs.found["wavelengthrange"]
    assert ref.header["REFTYPE"].upper() == "WAVELENGTHRANGE" and ref.header["EXP_TYPE"] == (
        "NRS_FIXEDSLIT|NRS_MSASPEC|NRS_BRIGHTOBJ")
    assert ref.tree["waverange_selector"][0] == "CLEAR_PRISM" and ref.tree["order"][0] == 0
    assert ref.tree["meta"]["wavelength_units"] == u.m
    assert wavelength_ranges(ref.tree)["CLEAR_PRISM"] == pytest.approx((0.6, 5.3))


def _write_tree(path: Path, tree: dict) -> Path:
    asdf.AsdfFile(tree).write_to(path)
    return path


META = {"reftype": "WAVELENGTHRANGE", "instrument": {"name": "NIRSPEC"}, "useafter": "2022-01-01T00:00:00",
        "exposure": {"type": "NRS_FIXEDSLIT", "p_exptype": "NRS_FIXEDSLIT|"}}


def test_malformed_asdf_references_are_refused_with_the_reason(ctx, tmp_path, wavelengthrange):
    """Delivery names each bad file and what is wrong with it, and stores nothing; loading
    names the file and its problem."""
    garbage = tmp_path / "garbage.asdf"
    garbage.write_bytes(b"#ASDF 1.0.0\n%YAML 1.1\n--- {meta: [unclosed\n")
    meta_list = _write_tree(tmp_path / "meta_list.asdf", {"meta": ["reftype", "WAVELENGTHRANGE"]})
    no_useafter = _write_tree(tmp_path / "no_useafter.asdf",
                              {"meta": {k: v for k, v in META.items() if k != "useafter"}, "wavelengthrange": []})
    with pytest.raises(DeliveryError) as refused:
        deliver(ctx, [wavelengthrange, garbage, meta_list, no_useafter])
    text = str(refused.value)
    assert "garbage.asdf: not a readable ASDF file" in text
    assert "meta_list.asdf: its ASDF meta is a list, not a mapping of keywords" in text
    assert "no_useafter.asdf: USEAFTER is missing from the ASDF meta" in text
    assert ctx.store.stat(Bucket.REFS, reference_key("NIRSPEC", WAVELENGTHRANGE_FILENAME)) is None

    def load(path: Path):
        return load_reference("wavelengthrange", path, WINDOW, FULL)

    with pytest.raises(ReferenceFileError, match="garbage.asdf is not a readable ASDF file"):
        load(garbage)
    with pytest.raises(ReferenceFileError, match="meta_list.asdf: its ASDF meta is a list"):
        load(meta_list)
    no_ranges = _write_tree(tmp_path / "no_ranges.asdf", {"meta": META, "waverange_selector": ["CLEAR_PRISM"]})
    with pytest.raises(ReferenceFileError, match="no_ranges.asdf has no 'wavelengthrange' in its ASDF tree"):
        load(no_ranges)
    other_type = _write_tree(tmp_path / "distortion.asdf", {"meta": {**META, "reftype": "DISTORTION"},
                                                              "wavelengthrange": [[1e-6, 2e-6]]})
    with pytest.raises(ReferenceFileError, match="distortion.asdf is a DISTORTION reference .*not WAVELENGTHRANGE"):
        load(other_type)
    not_asdf = tmp_path / "not_asdf.fits"
    fits.PrimaryHDU().writeto(not_asdf)
    with pytest.raises(ReferenceFileError, match="not_asdf.fits is not an ASDF file, its public format"):
        load(not_asdf)


def test_wavelength_ranges_in_um_from_the_public_layout():
    tree = {"waverange_selector": ["CLEAR_PRISM", "f290lp_g395m"], "wavelengthrange": [[6e-7, 5.3e-6], [2.87e-6, 5.27e-6]],
            "meta": {"wavelength_units": u.m}}
    assert wavelength_ranges(tree) == {"CLEAR_PRISM": pytest.approx((0.6, 5.3)),
                                       "F290LP_G395M": pytest.approx((2.87, 5.27))}
    in_um = {**tree, "wavelengthrange": [[0.6, 5.3], [2.87, 5.27]], "meta": {"wavelength_units": "um"}}
    assert wavelength_ranges(in_um)["CLEAR_PRISM"] == pytest.approx((0.6, 5.3))
    no_units = {k: v for k, v in tree.items() if k != "meta"}  # the public NIRSpec unit, metres
    assert wavelength_ranges(no_units)["F290LP_G395M"] == pytest.approx((2.87, 5.27))
    assert filter_grating("clear", " PRISM") == "CLEAR_PRISM"
    with pytest.raises(ValueError, match="no GRATING keyword"):
        filter_grating("CLEAR", None)


@pytest.mark.parametrize(("change", "message"), [
    ({"waverange_selector": None}, "no waverange_selector"),
    ({"wavelengthrange": [[6e-7, 5.3e-6]]}, "names 2 filter/grating pair.* gives 1 wavelengthrange"),
    ({"wavelengthrange": [[6e-7, 5.3e-6], ["F290LP_G395M", 2.87e-6, 5.27e-6]]}, "range for F290LP_G395M .* not \\[low, high\\]"),
    ({"wavelengthrange": [[6e-7, 5.3e-6], [5.27e-6, 2.87e-6]]}, "not a positive span"),
    ({"wavelengthrange": [[6e-7, 5.3e-6], [2.87e-6, float("nan")]]}, "not \\[low, high\\]"),
    ({"waverange_selector": ["CLEAR_PRISM", "clear_prism"]}, "names CLEAR_PRISM twice"),
    ({"meta": {"wavelength_units": "s"}}, "not a unit of length"),
])
def test_a_malformed_wavelengthrange_is_refused(change, message):
    tree = {"waverange_selector": ["CLEAR_PRISM", "F290LP_G395M"], "wavelengthrange": [[6e-7, 5.3e-6], [2.87e-6, 5.27e-6]],
            "meta": {"wavelength_units": u.m}}
    tree = {k: v for k, v in {**tree, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        wavelength_ranges(tree)


def test_bound_trace_drops_the_lines_outside_the_range():
    rows = np.arange(10)
    trace = SlitTrace(wavelength=np.where(rows >= 2, 0.5 + 0.5 * rows, np.nan), x=np.where(rows >= 2, 3.0, np.nan),
                      rows=np.flatnonzero(rows >= 2), ref=(3.0, 5.0), dispaxis=1)
    bounded = bound_trace(trace, 1.6, 4.0)  # lines 2..9 have 1.5..5.0 um
    assert bounded.rows.tolist() == [3, 4, 5, 6, 7]
    assert np.isnan(bounded.wavelength[[0, 1, 2, 8, 9]]).all() and np.isnan(bounded.x[[2, 8]]).all()
    assert bounded.wavelength[3] == 2.0 and bounded.x[3] == 3.0 and bounded.ref == trace.ref
    assert bounded.dispaxis == 1 and bound_trace(trace, 6.0, 7.0).rows.size == 0


def _specwcs(path: Path) -> Path:
    """A fixed-slit SPECWCS of S200A1 in this system's layout (the simulator's trace)."""
    primary = fits.PrimaryHDU()
    for key, value in {"TELESCOP": "JWST", "INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "EXP_TYPE": "NRS_FIXEDSLIT",
                       "REFTYPE": "SPECWCS", "DISPAXIS": 1, "USEAFTER": "2022-01-01T00:00:00"}.items():
        primary.header[key] = value
    table = slit_trace_table(SLIT)
    hdu = fits.BinTableHDU.from_columns([fits.Column(name=c, format="D", array=table[c]) for c in table.dtype.names],
                                        name="S200A1")
    hdu.header["IMX"], hdu.header["IMY"] = SLIT.imx, SLIT.imy
    for key, value in slit_vertices(SLIT).items():
        hdu.header[key.replace("_", "").upper()] = value
    fits.HDUList([primary, hdu]).writeto(path)
    return path


def _science(**keywords) -> FitsProduct:
    ny, nx = WINDOW.ysize, WINDOW.xsize
    kw = {**_exposure(), "FILENAME": "jw04521001001_01101_00001_nrs1_rate.fits", "BUNIT": "DN/s", **keywords}
    return FitsProduct("ImageModel", keywords=kw, images={
        "SCI": np.ones((ny, nx), np.float32), "ERR": np.full((ny, nx), 0.1, np.float32),
        "DQ": np.zeros((ny, nx), np.uint32), "VAR_POISSON": np.full((ny, nx), 0.01, np.float32),
        "VAR_RNOISE": np.full((ny, nx), 0.01, np.float32)})


def _wavelengths(out) -> np.ndarray:
    (slit,) = out.cal.slits
    return slit.images["WAVELENGTH"]


def test_assign_wcs_bounds_the_slit_to_its_filter_and_grating(tmp_path, wavelengthrange):
    """The prism's 0.6-5.3 um leaves every pixel of the simulated spectrum its wavelength;
    a narrower CLEAR_PRISM range takes the wavelength from the pixels outside it, and the
    rectified slit keeps only the lines inside; a pair the file does not list is refused,
    naming it and the file; without the reference the SPECWCS's span stands."""
    assert "wavelengthrange" in SPEC2.reftypes(_exposure())
    specwcs = load_reference("specwcs", _specwcs(tmp_path / "specwcs.fits"), WINDOW, FULL)
    ranges = load_reference("wavelengthrange", wavelengthrange, WINDOW, FULL)
    without = run_spec2(_science(), {"specwcs": specwcs})
    full = run_spec2(_science(), {"specwcs": specwcs, "wavelengthrange": ranges})
    np.testing.assert_array_equal(_wavelengths(full), _wavelengths(without))
    lit = _wavelengths(full)
    assert np.nanmin(lit) < 0.61 and np.nanmax(lit) > 5.29
    assert any("CLEAR_PRISM spans 0.600-5.300 um" in n for n in full.record.notes)
    assert full.record.reference_cards()["R_WAVRAN"] == f"crds://{WAVELENGTHRANGE_FILENAME}"
    assert without.record.reference_cards()["R_WAVRAN"] == "N/A"

    narrow_tree = {"meta": META, "waverange_selector": ["CLEAR_PRISM"], "wavelengthrange": [[1.0e-6, 3.0e-6]],
                   "order": [0]}
    narrow = load_reference("wavelengthrange", _write_tree(tmp_path / "narrow.asdf", narrow_tree), WINDOW, FULL)
    bounded = run_spec2(_science(), {"specwcs": specwcs, "wavelengthrange": narrow})
    wl = _wavelengths(bounded)
    assert 1.0 <= np.nanmin(wl) < 1.01 and 2.99 < np.nanmax(wl) <= 3.0
    outside = np.isfinite(lit) & ((lit < 1.0) | (lit > 3.0))
    assert outside.sum() > 1000 and np.isnan(wl[outside]).all()
    np.testing.assert_array_equal(wl[np.isfinite(wl)], lit[np.isfinite(wl)])
    s2d_wl = bounded.s2d.slits[0].images["WAVELENGTH"]
    assert 1.0 <= np.nanmin(s2d_wl) and np.nanmax(s2d_wl) <= 3.0

    with pytest.raises(ReferenceFileError, match=r"narrow.asdf has no range for the exposure's filter and grating "
                                                 r"F290LP_G395M \(it lists CLEAR_PRISM\)"):
        run_spec2(_science(FILTER="F290LP", GRATING="G395M"), {"specwcs": specwcs, "wavelengthrange": narrow})
    with pytest.raises(HeaderError, match="no GRATING keyword"):
        run_spec2(_science(GRATING=None), {"specwcs": specwcs, "wavelengthrange": narrow})
    off = _write_tree(tmp_path / "off.asdf", {**narrow_tree, "wavelengthrange": [[6.0e-6, 7.0e-6]]})
    with pytest.raises(InputError, match="lies outside the 6-7 um range"):
        run_spec2(_science(), {"specwcs": specwcs,
                               "wavelengthrange": load_reference("wavelengthrange", off, WINDOW, FULL)})
