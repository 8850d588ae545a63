"""calwebb_spec2 for wide-field slitless spectroscopy (NRC_WFSS, NIS_WFSS) on small
synthetic exposures: sources of known flat spectra rendered along the traces of a grism
model (one dispersing along x, NIRCam's GRISMR; one along y, NIRISS's GR150R), a dispersed
sky that is a scale times the WFSSBKG pattern, noise; the sources given by a catalog whose
sky positions come from the exposure's imaging WCS."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.modeling.models import Mapping, Polynomial1D, Scale, Shift
from astropy.table import Table
from scipy.special import erf
from stdatamodels.jwst import datamodels as dm

from services.stage2.spec2 import SPEC2, run_spec2
from services.stage2.steps.assign_wcs import exposure_wcs
from shared.datamodels import FitsProduct
from shared.datamodels.fits_io import write_product
from shared.errors import InputError
from shared.imaging_wcs import TelescopePointing
from shared.spectra.grism import grism_trace
from shared.spectra.wfss import SPREAD_LINES, background_scale, half_height

OTHER_BAD_PIXEL = 1 << 30
PIXAR_SR = 9.3e-14
PHOTMJSR = 0.5
SIGMA = 1.0  # the sources' cross-dispersion profile, pixels
SKY_SCALE = 1.5  # DN/s per unit of the WFSSBKG pattern
NOISE = 0.02  # DN/s per pixel
XSTART, YSTART = 901, 801  # the window's first full-frame pixel (1-based)
NX, NY = 220, 220
POINTING = dict(RA_REF=150.1, DEC_REF=2.2, ROLL_REF=35.0, V2_REF=90.0, V3_REF=-550.0)


@dataclass
class Mode:
    """A grism of the test: its exposure's keywords, SPECWCS tree (order 1), the law of
    its trace (t -> wavelength, along the dispersion, across it, pixels from the source)
    and its WAVELENGTHRANGE tree."""

    keywords: dict
    dispaxis: int
    lam0: float
    dlam: float
    along0: float
    along1: float
    across: tuple[float, float, float]
    band: tuple[float, float]
    wavelengthrange: dict = field(default_factory=dict)

    def tree(self) -> dict:
        third = Mapping((2,), n_inputs=3)
        span = self.along1 - self.along0
        along = third | Polynomial1D(1, c0=self.along0, c1=span)
        across = third | Polynomial1D(2, c0=self.across[0], c1=self.across[1], c2=self.across[2])
        inverse = third | Polynomial1D(1, c0=-self.along0 / span, c1=1.0 / span)
        x, y = (along, across) if self.dispaxis == 1 else (across, along)
        return {"orders": [1], "displ": [Polynomial1D(1, c0=self.lam0, c1=self.dlam)], "dispx": [x], "dispy": [y],
                "invdispl": [Polynomial1D(1, c0=-self.lam0 / self.dlam, c1=1.0 / self.dlam)],
                "invdispx" if self.dispaxis == 1 else "invdispy": [inverse]}

    def wavelength(self, line: np.ndarray, source_along: float) -> np.ndarray:
        """The wavelength at full-frame line ``line`` (0-based) along the dispersion."""
        t = (line - source_along - self.along0) / (self.along1 - self.along0)
        return np.where((t >= 0) & (t <= 1), self.lam0 + self.dlam * t, np.nan)

    def line_of(self, wavelength: np.ndarray, source_along: float) -> np.ndarray:
        t = (np.asarray(wavelength) - self.lam0) / self.dlam
        return source_along + self.along0 + t * (self.along1 - self.along0)

    def relresponse(self, wavelength: np.ndarray) -> np.ndarray:
        return 0.8 + 0.4 * (wavelength - self.lam0) / self.dlam

    @property
    def dispersion(self) -> float:
        """um per pixel along the dispersion (the law is linear)."""
        return self.dlam / (self.along1 - self.along0)


NIRCAM = Mode(keywords=dict(INSTRUME="NIRCAM", DETECTOR="NRCALONG", EXP_TYPE="NRC_WFSS", FILTER="F444W",
                            PUPIL="GRISMR"),
              dispaxis=1, lam0=3.9, dlam=1.1, along0=50.0, along1=150.0, across=(1.0, 2.0, 0.5), band=(3.95, 4.95),
              wavelengthrange={"wavelengthrange": [[1, "F444W", 3.95, 4.95], [1, "F356W", 3.1, 4.0]],
                               "order": [1], "extract_orders": [["F444W", [1]], ["F356W", [1]]]})
NIRISS = Mode(keywords=dict(INSTRUME="NIRISS", DETECTOR="NIS", EXP_TYPE="NIS_WFSS", FILTER="GR150R", PUPIL="F150W"),
              dispaxis=2, lam0=1.30, dlam=0.40, along0=40.0, along1=140.0, across=(0.5, 1.5, -0.3),
              band=(1.34, 1.66),
              wavelengthrange={"order": [1], "waverange_selector": ["F115W", "F150W"],
                               "wavelengthrange": [[[1.0, 1.3], [1.34, 1.66]]], "extract_orders": [["F150W", [1]]]})

# (label, window x, window y, flux Jy, is_extended, AB mag): for NIRCam's, sources 1 and 2 on
# nearly the same row with overlapping spectra, 3 alone, 4 undispersed off the window's left
# edge with its spectrum on it, 5 far off the window
SOURCES_X = [(1, 20.3, 30.6, 1.0e-4, False, 20.0), (2, 60.7, 31.0, 0.5e-4, False, 21.0),
             (3, 40.2, 80.4, 2.0e-4, True, 19.5), (4, -30.4, 115.2, 0.8e-4, False, 20.5),
             (5, 600.0, 50.0, 1.0e-4, False, 20.0)]
# for NIRISS's (dispersed along y): the same, transposed
SOURCES_Y = [(lab, y, x, f, e, m) for lab, x, y, f, e, m in SOURCES_X]


class _Ref:
    """A loaded reference as the steps read it (already cut to the window)."""

    def __init__(self, reftype: str, *, tree=None, images=None, tables=None, header=None):
        self.reftype, self.filename = reftype, f"test_{reftype}.fits"
        self.tree, self.images, self.tables = tree or {}, images or {}, tables or {}
        self.header, self.table_headers, self.arrays = header or {}, {}, {}

    def get(self, name):
        return self.images.get(name)

    def release(self):
        pass


def _distortion():
    # full-frame 0-based pixels -> V2/V3 arcsec: 0.063" pixels about the detector's centre
    return (Shift(-1023.5) & Shift(-1023.5)) | (Scale(0.063) & Scale(0.063)) | (Shift(90.0) & Shift(-550.0))


def _wcs():
    return exposure_wcs(_distortion(), TelescopePointing.from_keywords(POINTING), xstart=XSTART, ystart=YSTART,
                        xsize=NX, ysize=NY)[0]


def _pixel_profile(centre: np.ndarray, n: int) -> np.ndarray:
    """(lines, n): the fraction of a Gaussian of SIGMA about each centre falling in each pixel."""
    edges = np.arange(n + 1, dtype=np.float64) - 0.5
    cdf = 0.5 * (1.0 + erf((edges[None, :] - centre[:, None]) / (math.sqrt(2.0) * SIGMA)))
    return np.diff(cdf, axis=1)


def _scene(mode: Mode, sources, *, seed: int = 3):
    """The raw _rate (sources x flat + sky x pattern + noise), the flat, the pattern."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:NY, 0:NX]
    pattern = (1.0 + 0.15 * np.sin(xx / 23.0) + 0.1 * (yy / NY)).astype(np.float32)
    pattern /= np.median(pattern)
    flat = (1.0 + 0.03 * rng.standard_normal((NY, NX))).astype(np.float32)
    sources_rate = np.zeros((NY, NX))
    frame = sources_rate if mode.dispaxis == 2 else sources_rate.T  # lines along the dispersion
    start_along, start_across = (XSTART, YSTART) if mode.dispaxis == 1 else (YSTART, XSTART)
    for _, x, y, flux, _, _ in sources:
        along, across = (x, y) if mode.dispaxis == 1 else (y, x)
        full_along, full_across = along + start_along - 1, across + start_across - 1
        lines = np.arange(frame.shape[0], dtype=np.float64)
        lam = mode.wavelength(lines + start_along - 1, full_along)
        lit = np.isfinite(lam) & (lam >= mode.band[0]) & (lam <= mode.band[1])
        if not lit.any():
            continue
        t = (lines[lit] + start_along - 1 - full_along - mode.along0) / (mode.along1 - mode.along0)
        centre = full_across + mode.across[0] + mode.across[1] * t + mode.across[2] * t**2 - (start_across - 1)
        total = flux / (PHOTMJSR * mode.relresponse(lam[lit]) * PIXAR_SR * 1e6)  # DN/s in the line
        frame[lit] += total[:, None] * _pixel_profile(centre, frame.shape[1])
    rate = sources_rate * flat + SKY_SCALE * pattern + NOISE * rng.standard_normal((NY, NX))
    return rate.astype(np.float32), flat, pattern


def _catalog(sources, *, extent: float = 4.0) -> Table:
    wcs = _wcs()

    def gw(x, y):  # sources off the window too
        return wcs(x, y, with_bounding_box=False)

    rows = []
    for label, x, y, _, extended, mag in sources:
        corners = {name: gw(x + dx, y + dy) for name, dx, dy in (("ll", -extent, -extent), ("ul", -extent, extent),
                                                                  ("lr", extent, -extent), ("ur", extent, extent))}
        rows.append((label, x, y, *gw(x, y), extended, mag, corners))
    t = Table()
    t["label"] = [r[0] for r in rows]
    t["xcentroid"] = [r[1] for r in rows]
    t["ycentroid"] = [r[2] for r in rows]
    t["sky_centroid"] = SkyCoord([r[3] for r in rows], [r[4] for r in rows], unit="deg")
    t["is_extended"] = [r[5] for r in rows]
    t["isophotal_abmag"] = [r[6] for r in rows]
    t["semimajor_sigma"] = [SIGMA] * len(rows)
    for name in ("ll", "ul", "lr", "ur"):
        t[f"sky_bbox_{name}"] = SkyCoord([r[7][name][0] for r in rows], [r[7][name][1] for r in rows], unit="deg")
    return t


def _exposure(mode: Mode, rate: np.ndarray) -> FitsProduct:
    keywords = {**mode.keywords, **POINTING, "FILENAME": "jw01234001001_01101_00001_nrcalong_rate.fits",
                "SUBARRAY": "FULL", "SUBSTRT1": XSTART, "SUBSTRT2": YSTART, "SUBSIZE1": NX, "SUBSIZE2": NY,
                "PROGRAM": "01234", "OBSERVTN": "001", "VISIT": "001", "VISITGRP": "01", "SEQ_ID": "1",
                "ACT_ID": "01", "EXPOSURE": "00001", "EFFEXPTM": 1000.0, "EFFINTTM": 500.0}
    var = np.full(rate.shape, NOISE**2, np.float32)
    return FitsProduct("ImageModel", keywords=keywords, images={
        "SCI": rate, "ERR": np.sqrt(2 * var), "DQ": np.zeros(rate.shape, np.uint32), "VAR_POISSON": var,
        "VAR_RNOISE": var.copy()})


def _refs(mode: Mode, flat: np.ndarray, pattern: np.ndarray) -> dict:
    n = 40
    wl = np.zeros(n)
    wl[:20] = np.linspace(mode.lam0 - 0.05, mode.lam0 + mode.dlam + 0.05, 20)
    rr = np.zeros(n)
    rr[:20] = mode.relresponse(wl[:20])
    table = np.zeros(2, [("filter", "S12"), ("pupil", "S12"), ("order", "<i4"), ("photmjsr", "<f4"),
                         ("uncertainty", "<f4"), ("nelem", "<i4"), ("wavelength", "<f4", (n,)),
                         ("relresponse", "<f4", (n,)), ("reluncertainty", "<f4", (n,))])
    for i, order in enumerate((1, 2)):  # PHOTMJSR per um of spectrum, the public grisms' unit
        table[i] = (mode.keywords["FILTER"], mode.keywords["PUPIL"], order, PHOTMJSR / order * mode.dispersion, 0.0,
                    20, wl, rr, np.zeros(n))
    zeros = np.zeros(flat.shape, np.float32)
    return {
        "specwcs": _Ref("specwcs", tree=mode.tree()),
        "distortion": _Ref("distortion", tree={"model": _distortion()}),
        "wavelengthrange": _Ref("wavelengthrange", tree=mode.wavelengthrange),
        "wfssbkg": _Ref("wfssbkg", images={"SCI": pattern, "DQ": np.zeros(flat.shape, np.uint32), "ERR": zeros}),
        "flat": _Ref("flat", images={"SCI": flat, "DQ": np.zeros(flat.shape, np.uint32), "ERR": zeros}),
        "photom": _Ref("photom", tables={"PHOTOM": table}, header={"PIXAR_SR": PIXAR_SR, "PIXAR_A2": 0.004}),
    }


@pytest.fixture(scope="module", params=[NIRCAM, NIRISS], ids=["nrc_grismr_along_x", "nis_gr150r_along_y"])
def run(request):
    mode = request.param
    sources = SOURCES_X if mode.dispaxis == 1 else SOURCES_Y
    rate, flat, pattern = _scene(mode, sources)
    science = _exposure(mode, rate)
    out = run_spec2(science, _refs(mode, flat, pattern), catalog=_catalog(sources),
                    params=SPEC2.params(), software_version="test", created="2026-01-01T00:00:00")
    return mode, sources, out


def _spectra(out) -> dict[int, tuple[np.ndarray, dict]]:
    """{source label: (its order-1 table, its cards)} from the _x1d's rows."""
    (table,) = out.x1d.spectra
    found = {}
    for row in table.table:
        n = int(row["N_ALONGDISP"])
        found[int(row["SOURCE_ID"])] = ({k: row[k][:n] for k in ("WAVELENGTH", "FLUX", "DQ", "FLUX_ERROR")},
                                        dict(table.keywords))
    return found


def test_steps_run_in_the_public_order_with_the_scaled_background(run):
    mode, _, out = run
    results = out.record.results
    assert list(results)[:5] == ["assign_wcs", "bkg_subtract", "flat_field", "extract_2d", "srctype"]
    assert "resample_spec" not in results and out.s2d is None  # no _s2d for WFSS, as in the public pipeline
    assert {k: r.status.value for k, r in results.items()} == dict.fromkeys(
        ("assign_wcs", "bkg_subtract", "flat_field", "extract_2d", "srctype", "photom", "extract_1d"), "COMPLETE")
    scale = out.cal.keywords["BKGD_SCL"]
    assert abs(scale / SKY_SCALE - 1) < 0.01, scale
    notes = "\n".join(out.record.notes)
    assert "4 of 5 catalog source(s) have spectra on the window" in notes
    assert "1 dropped, their spectra off the window (5)" in notes


def test_each_source_flux_and_wavelengths(run):
    mode, sources, out = run
    spectra = _spectra(out)
    assert sorted(spectra) == [1, 2, 3, 4]
    start_along = XSTART if mode.dispaxis == 1 else YSTART
    for label, x, y, flux, _, _ in sources[:4]:
        t, _ = spectra[label]
        along = (x if mode.dispaxis == 1 else y) + start_along - 1
        # each element's wavelength is the model's at a whole pixel of the window (the source's true position)
        line = mode.line_of(t["WAVELENGTH"], along) - (start_along - 1)
        assert np.max(np.abs(line - np.round(line))) < 0.01, label
        assert np.all(np.diff(t["WAVELENGTH"]) > 0)
        assert t["WAVELENGTH"][0] >= mode.band[0] and t["WAVELENGTH"][-1] <= mode.band[1]
        clean = (t["DQ"] & OTHER_BAD_PIXEL) == 0
        assert clean.sum() > 20, label
        ratio = t["FLUX"][clean] / flux
        assert np.all(np.abs(ratio - 1) < 0.03), (label, ratio.min(), ratio.max())


def test_contamination_flagged_where_regions_overlap_and_only_there(run):
    mode, sources, out = run
    spectra = _spectra(out)
    start_along = XSTART if mode.dispaxis == 1 else YSTART

    def lines(label):
        x, y = sources[label - 1][1:3]
        t = spectra[label][0]
        return np.round(mode.line_of(t["WAVELENGTH"], (x if mode.dispaxis == 1 else y) + start_along - 1)).astype(int)

    # sources 1 and 2 lie 0.4 px apart across the dispersion: flagged exactly on the lines the other's
    # spectrum covers and SPREAD_LINES past its ends (where the line-spread function carries its light)
    both = set(lines(1)) & set(lines(2))
    assert len(both) > 20
    for label, other in ((1, 2), (2, 1)):
        flagged = (spectra[label][0]["DQ"] & OTHER_BAD_PIXEL) != 0
        reach = (lines(label) >= lines(other).min() - SPREAD_LINES) & (lines(label) <= lines(other).max() + SPREAD_LINES)
        np.testing.assert_array_equal(flagged, reach, err_msg=str(label))
    for label in (3, 4):  # alone across the dispersion
        assert not np.any(spectra[label][0]["DQ"] & OTHER_BAD_PIXEL), label
    # the _cal's slits carry the flags on their pixels
    by_name = {s.keywords["SLTNAME"]: s for s in out.cal.slits}
    assert np.any(by_name["1"].images["DQ"] & OTHER_BAD_PIXEL)
    assert not np.any(by_name["3"].images["DQ"] & OTHER_BAD_PIXEL)
    assert "2 overlap another source's spectrum" in "\n".join(out.record.notes)


def test_products_open_as_the_public_models(run, tmp_path):
    mode, sources, out = run
    cal_path = write_product(tmp_path / "x_cal.fits", out.cal)
    x1d_path = write_product(tmp_path / "x_x1d.fits", out.x1d)
    with dm.open(str(cal_path)) as cal:
        assert isinstance(cal, dm.MultiSlitModel) and len(cal.slits) == 4
        slit = {s.name: s for s in cal.slits}["3"]
        assert slit.source_id == 3 and slit.meta.wcsinfo.spectral_order == 1
        assert slit.meta.wcsinfo.dispersion_direction == mode.dispaxis
        assert abs(slit.source_xpos - sources[2][1]) < 0.01 and abs(slit.source_ypos - sources[2][2]) < 0.01
        assert slit.wavelength.shape == slit.data.shape and slit.source_type == "EXTENDED"
        assert slit.xstart >= XSTART and slit.ystart >= YSTART
        assert np.isfinite(slit.source_ra) and np.isfinite(slit.source_dec)
    with dm.open(str(x1d_path)) as x1d:
        assert isinstance(x1d, dm.WFSSMultiSpecModel) and len(x1d.spec) == 1
        spec = x1d.spec[0]
        assert spec.spectral_order == 1 and spec.dispersion_direction == mode.dispaxis
        assert spec.group_id == "jw01234001001_01101_00001_1"
        assert list(spec.spec_table["SOURCE_ID"]) == [1, 2, 3, 4]
        assert spec.spec_table.columns["FLUX"].unit == "Jy"
        assert list(spec.spec_table["SOURCE_TYPE"]) == ["POINT", "POINT", "EXTENDED", "POINT"]


def test_each_order_extracted_and_calibrated_on_its_own():
    # a grism of two orders (the second twice as dispersed, 15 rows above the first, half
    # the first's PHOTMJSR): each order's spectrum of an isolated source is its own slit and
    # its own EXTRACT1D table, calibrated with its order's PHOTOM row to the source's flux
    first = NIRCAM
    second = dataclasses.replace(first, along0=60.0, along1=260.0, across=(15.0, 2.0, 0.5))
    one, two = first.tree(), second.tree()
    tree = {k: one[k] + two[k] for k in one if k != "orders"} | {"orders": [1, 2]}
    wavelengthrange = {"wavelengthrange": [[1, "F444W", 3.95, 4.95], [2, "F444W", 3.95, 4.95]], "order": [1, 2],
                       "extract_orders": [["F444W", [1, 2]]]}
    source = [(1, 10.4, 100.3, 1.0e-4, False, 20.0)]
    rate, flat, pattern = _scene(first, source)
    # order 2 in DN/s: the flux over its PHOTMJSR (half order 1's), rendered alone (no sky or noise) through
    # the same flat (the same seed)
    alone = _scene(second, [(1, 10.4, 100.3, 2.0e-4, False, 20.0)])[0] - _scene(second, [])[0]
    refs = _refs(first, flat, pattern)
    refs["photom"].tables["PHOTOM"]["photmjsr"][1] = PHOTMJSR / 2 * second.dispersion  # order 2's, per um
    refs["specwcs"] = _Ref("specwcs", tree=tree)
    refs["wavelengthrange"] = _Ref("wavelengthrange", tree=wavelengthrange)
    out = run_spec2(_exposure(first, rate + alone), refs, catalog=_catalog(source), params=SPEC2.params(),
                    software_version="test", created="2026-01-01T00:00:00")
    assert [s.keywords["SPORDER"] for s in out.cal.slits] == [1, 2]
    tables = out.x1d.spectra
    assert [t.keywords["SPORDER"] for t in tables] == [1, 2]
    for table, lines in zip(tables, (100, 150), strict=True):
        (row,) = table.table
        n = int(row["N_ALONGDISP"])
        flux, dq = np.asarray(row["FLUX"][:n]), np.asarray(row["DQ"][:n])
        assert n >= lines * 0.9 and int(row["SOURCE_ID"]) == 1, (table.keywords["SPORDER"], n)
        assert not np.any(dq & OTHER_BAD_PIXEL)  # an order does not contaminate its own source's other order
        assert np.all(np.abs(flux / 1.0e-4 - 1.0) < 0.03), (table.keywords["SPORDER"], flux.min(), flux.max())


def test_a_wfss_exposure_needs_its_catalog():
    rate, flat, pattern = _scene(NIRCAM, SOURCES_X[:1])
    with pytest.raises(InputError, match="source catalog of its direct images"):
        run_spec2(_exposure(NIRCAM, rate), _refs(NIRCAM, flat, pattern), params=SPEC2.params())


def test_a_rotated_filter_wheel_is_refused():
    rate, flat, pattern = _scene(NIRISS, SOURCES_Y[:1])
    refs = _refs(NIRISS, flat, pattern)
    refs["specwcs"].tree["fwcpos_ref"] = 0.2
    science = _exposure(NIRISS, rate)
    science.keywords["FWCPOS"] = 0.5
    with pytest.raises(InputError, match="rotated by the wheel are not supported"):
        run_spec2(science, refs, catalog=_catalog(SOURCES_Y[:1]), params=SPEC2.params())


def test_magnitude_limit_leaves_faint_sources_out(tmp_path):
    rate, flat, pattern = _scene(NIRCAM, SOURCES_X)
    params = SPEC2.params(steps={"extract_2d": {"wfss_mmag_extract": 20.2}})
    path = tmp_path / "x_cat.ecsv"  # as stage 2 reads the image3 catalog
    _catalog(SOURCES_X).write(path, format="ascii.ecsv")
    out = run_spec2(_exposure(NIRCAM, rate), _refs(NIRCAM, flat, pattern),
                    catalog=Table.read(path, format="ascii.ecsv"), params=params)
    assert sorted(int(s.keywords["SOURCEID"]) for s in out.cal.slits) == [1, 3]
    assert "2 fainter than AB 20.2 left out" in "\n".join(out.record.notes)


def test_background_scale_rejects_what_the_mask_misses():
    rng = np.random.default_rng(1)
    pattern = 1.0 + 0.2 * rng.random((80, 80))
    sci = 2.5 * pattern + 0.01 * rng.standard_normal((80, 80))
    sci[10:12, :] += 50.0  # a spectrum the mask does not cover
    fit = background_scale(sci, np.zeros((80, 80), np.uint32), pattern, None, np.zeros((80, 80), bool))
    assert abs(fit.scale - 2.5) < 1e-3 and fit.n_rejected >= 160
    with pytest.raises(ValueError, match="usable pixel"):
        background_scale(sci, np.zeros((80, 80), np.uint32), pattern, None, np.ones((80, 80), bool))


def test_half_height_rule():
    assert half_height(10.0, np.array([7.0, 13.0, 6.5, 12.0]), 1.0) == 5.0  # the floor
    assert half_height(10.0, np.array([2.2, 18.0]), 1.0) == 8.0  # the bounding box, rounded up
    assert half_height(10.0, None, 2.5) == 8.0  # 3 semimajor_sigma
    assert half_height(10.0, np.array([-40.0, 60.0]), None) == 20.0  # the ceiling


def test_grism_trace_along_y_follows_the_model():
    tree = NIRISS.tree()
    x0, y0 = 50.3, 10.6
    trace = grism_trace(tree, x0, y0, xstart=XSTART, ystart=YSTART, nx=NX, ny=NY, dispaxis=2)
    assert trace.dispaxis == 2 and trace.ref == (x0, y0)
    rows = trace.rows
    t = (rows + YSTART - 1 - (y0 + YSTART - 1) - 40.0) / 100.0
    np.testing.assert_allclose(trace.wavelength[rows], 1.30 + 0.40 * t, rtol=1e-12)
    np.testing.assert_allclose(trace.x[rows], x0 + 0.5 + 1.5 * t - 0.3 * t**2, atol=1e-9)
    # without invdispy (NIRISS's files have none) t is interpolated from dispy over its span
    sampled = grism_trace({**tree, "invdispy": None}, x0, y0, xstart=XSTART, ystart=YSTART, nx=NX, ny=NY,
                          dispaxis=2)
    assert np.array_equal(sampled.rows, rows)
    np.testing.assert_allclose(sampled.wavelength[rows], trace.wavelength[rows], atol=1e-9)
    with pytest.raises(ValueError, match="lacks dispx"):
        grism_trace({**tree, "dispx": None}, x0, y0, nx=NX, ny=NY, dispaxis=2)
