"""The whole imaging chain, scored against the simulator's truth.

One program is simulated and run once for the module, every service in this process
(tests/imaging_chain.py: simulate -> deliver the reference files -> ingest -> detector1 ->
associations -> stage2 -> stage3 -> preview, notifier), tweakreg aligning to the
simulator's astrometric catalog:

* observation 1: NIRCam NRCA1, F200W, SUB320, MEDIUM8 x 8 groups, 4-point box dither
  (2 arcsec), ~250 stars per window plus 2 saturating ones, pointing errors at the
  simulator default (0.05 arcsec rms per axis), cosmic rays 5e-4 /px/s from 10 DN (the
  faintest ones stay below the jump threshold of ~17 DN);
* observation 3: the field of observation 1 again in 2-group RAPID ramps (SUB320, 4-point
  box), for outlier detection where jump detection cannot act;
* observation 2: time-series imaging as in examples/nircam_imaging.yaml (SUB64P, F210M
  behind WLP8, RAPID 4 groups, a 4e7 e-/s host star with a 1 % transit), but 240
  integrations and a 28 s transit (the example: 60 and 7 s). tso3 sums the whole SUB64P
  window, where an offset common to all 4096 pixels (what the reference-pixel correction
  leaves of the simulated drifts) doubles the per-integration scatter (0.11 % against
  0.05 % from ERR): over 20 seeds the example's 60 integrations give the depth to 3.5 %
  (1 sigma; 3 of 20 beyond 5 %), 240 integrations to 1.5 % (12 seeds).

Definitions (truth stars of observation 1 from every truth_stars.ecsv, one row per star):

* mosaic position: the truth ra/dec through the Level-3 ``_i2d`` WCS;
* S/N: the truth ``flux_jy`` over the error the catalog would give its ``aper_total_flux``
  there: the catalog's aperture correction times sqrt(sum of ERR^2) over its largest (EE 70)
  aperture (radii and correction from the ``_cat`` meta), ERR in Jy per pixel
  (MJy/sr x 1e6 x PIXAR_SR). Noise from the product itself, so matched and missed stars
  are treated alike (it agrees with the catalog's own flux/err to ~1 % for matched stars);
* matched: a catalog source (``sky_centroid``) within 1 output pixel of the truth position;
* scored stars ("clean"): not saturated in any exposure (truth ``saturated``), at least
  3 px from the coverage edge or any pixel without data (saturated cores are holes), and
  without a blend partner: another truth star within 4 px (about twice the detector PSF
  FWHM of 2.0 px; 1.8 times the mosaic's 2.3 px) holding at least 10 % of the star's flux,
  brighter or fainter. The brighter-only, 3-px exclusion keeps pairs that are one peak in
  the image, whose centroid sits between the stars and whose fainter member is not
  deblended (figures with that exclusion are printed too: 0.06-0.11 px rms and 94-98 %
  completeness over 7 seeds);
* well covered (completeness only): clean and inside every exposure (CON bits = NDRIZ).

Criteria and tolerances:

1. positions: rms of the 2-D offset catalog - truth, arcsec converted with the ``_i2d``
   pixel scale, for clean matched stars of S/N > 50: <= 0.05 px (at least 50 stars);
2. flux: median |aper_total_flux / flux_jy - 1| for clean matched stars of S/N > 100:
   <= 2 % (at least 50 stars);
3. completeness: matched fraction of well-covered stars of S/N > 10: >= 95 % (at least
   100 stars);
4. alignment: per exposure, the ``_crf`` SCI WCS against the truth WCS (truth_rate header:
   the TAN-SIP approximation of the gwcs at TRUE_RA/TRUE_DEC/TRUE_ROL through the simulator's
   distortion) on a 16-px grid over the window: rms pixel offset <= 0.02 px, with >= 15
   tweakreg matches (TWKNMAT) and the unaligned ``_cal`` WCS off by > 0.3 px (the injected
   error is there to recover); the truth header's WCS is first checked against the gwcs
   rebuilt from the DISTORTION reference at TRUE_RA/TRUE_DEC/TRUE_ROL and V2_REF/V3_REF
   (1e-4 px), and each ``_crf``'s ``meta.wcs`` (stdatamodels) against its SCI WCS (1 mas);
5. outliers: cosmic rays of truth_jumps.ecsv in groups >= 2 (group-1 hits are offsets)
   whose pixel has no JUMP_DET and no DO_NOT_USE in the ``_rate``/``_cal`` DQ and whose
   effect on the rate is significant, ``(rate - truth SCI) / ERR > 5`` (each pixel once):
   >= 90 % carry OUTLIER in the ``_crf`` DQ (at least 50 such rays). Scored on
   observation 3 (the field again in 2-group ramps, where jump detection has one
   difference and flags nothing) for the simulator's default ray population (deposits
   of at least 200 DN; the fainter rays are reported too); on observation 1 the rays jump detection leaves are the
   faint ones (5-8 ERR), which the public thresholds cannot reach: a strict expected
   failure that records the figure;
6. TSO: the transit depth fitted to the ``_phot`` ``net_aperture_sum`` with the truth light
   curve's shape (``services.demo.fitted_depth``) within 5 % of the injected 1 %;
7. products: every ASN loads with ``jwst.associations.load_asn``; the ``_cal`` and the
   Level-3 ``_i2d`` open in ``stdatamodels.jwst.datamodels.open`` as ImageModel, their
   ``meta.wcs`` within 1 mas of the SCI-header WCS (skipped when jwst or stdatamodels is
   missing).

Measured figures are printed (``pytest -s``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import QTable, Table
from astropy.wcs import WCS, FITSFixedWarning

from services.demo import fitted_depth
from services.simulator.description import SimulationSpec
from shared.datamodels.dqflags import PIXEL
from shared.imaging_wcs import TelescopePointing, imaging_gwcs, max_separation_mas
from tests.catalog_scoring import Field, score_catalog
from tests.imaging_chain import ChainRun, run_chain

FIELD, TSO, SHORT = 1, 2, 3
DEPTH = 0.01

DESCRIPTION = {
    "program": 1234, "title": "Imaging accuracy", "pi": "Ada Lovelace", "pi_user": "ada@example.org",
    "category": "GO", "eap_months": 12,
    "targets": [{"name": "FIELD-1", "ra": 53.1625, "dec": -27.7914},
                {"name": "HOST-1", "ra": 150.1163, "dec": 2.2012}],
    "observations": [
        {"number": FIELD, "target": "FIELD-1", "instrument": "NIRCAM", "template": "NIRCam Imaging",
         "detectors": ["NRCA1"], "filter": "F200W", "pupil": "CLEAR", "readpatt": "MEDIUM8", "ngroups": 8,
         "nints": 1, "subarray": "SUB320", "dither": {"pattern": "4-POINT-BOX", "size": 2.0}, "roll": 30.0,
         "start_time": "2025-03-01T12:00:00Z"},
        {"number": TSO, "target": "HOST-1", "instrument": "NIRCAM", "template": "NIRCam Time Series",
         "exp_type": "NRC_TSIMAGE", "detectors": ["NRCA1"], "filter": "F210M", "pupil": "WLP8",
         "readpatt": "RAPID", "ngroups": 4, "nints": 240, "subarray": "SUB64P", "tsovisit": True,
         "host_flux": 4.0e7, "transit": {"depth": DEPTH, "duration_s": 28.0, "ingress_s": 3.2}},
        {"number": SHORT, "target": "FIELD-1", "instrument": "NIRCAM", "template": "NIRCam Imaging",
         "detectors": ["NRCA1"], "filter": "F200W", "pupil": "CLEAR", "readpatt": "RAPID", "ngroups": 2,
         "nints": 1, "subarray": "SUB320", "dither": {"pattern": "4-POINT-BOX", "size": 2.0}, "roll": 30.0},
    ],
    "simulation": {"seed": 11, "stars_per_window": 250, "bright_stars_per_window": 2,
                   "cosmic_ray_rate": 5.0e-4, "cosmic_ray_min_dn": 10.0,
                   "target_stars": {"HOST-1": {"stars_per_window": 2, "bright_stars_per_window": 0}}},
}

# --------------------------------------------------------------------------- tolerances

POSITION_RMS_PX = 0.05
POSITION_MIN_SNR = 50.0
FLUX_MEDIAN_ERROR = 0.02
FLUX_MIN_SNR = 100.0
COMPLETENESS = 0.95
COMPLETENESS_MIN_SNR = 10.0
MIN_STARS = {"positions": 50, "flux": 50, "completeness": 100}
ALIGNMENT_RMS_PX = 0.02
MIN_TWEAKREG_MATCHES = 15
MIN_INJECTED_OFFSET_PX = 0.3
OUTLIER_FRACTION = 0.90
CR_MIN_SIGMA = 5.0
MIN_LEFT_RAYS = 50
DEFAULT_RAY_DN = SimulationSpec.model_fields["cosmic_ray_min_dn"].default
DEPTH_RELATIVE_ERROR = 0.05

# scoring choices (see the module docstring)
GRID_STEP_PX = 16

F = PIXEL


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> ChainRun:
    chain = run_chain(DESCRIPTION, tmp_path_factory.mktemp("imaging_chain"))
    print(f"\n[chain] simulate {chain.seconds['simulate']:.1f} s, process {chain.seconds['process']:.1f} s, "
          f"{len(chain.outcomes)} tasks")
    return chain


def _wcs(header: fits.Header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # DATE-* filled in from MJD-*
        return WCS(header)


def _report(what: str, **figures) -> None:
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    print(f"\n[{what}] {text}")


# --------------------------------------------------------------------------- the field


def measure_field(run: ChainRun) -> Field:
    return score_catalog(run.one("i2d", 3, "-o001_"), run.one("cat", 3, "-o001_"), run.truth_stars(FIELD))


@pytest.fixture(scope="module")
def field(run) -> Field:
    return measure_field(run)


def _position_rms(f: Field, base: np.ndarray) -> tuple[float, int]:
    return f.position_rms(POSITION_MIN_SNR, base)


def _completeness(f: Field, base: np.ndarray) -> tuple[float, int]:
    return f.completeness(COMPLETENESS_MIN_SNR, base)


# --------------------------------------------------------------------------- 1-3: the catalog


def test_catalog_positions(field):
    rms, n = _position_rms(field, field.clean)
    sel = field.clean & field.matched & (field.snr > POSITION_MIN_SNR)
    per_axis = np.sqrt(np.mean(field.offset_px[sel] ** 2, axis=0))
    literal_rms, literal_n = _position_rms(field, field.literal)
    _report("positions", n=n, rms_px=rms, rms_east=float(per_axis[0]), rms_north=float(per_axis[1]),
            median_px=float(np.median(np.hypot(*field.offset_px[sel].T))),
            brighter_within_3px_rms=literal_rms, brighter_within_3px_n=literal_n)
    assert n >= MIN_STARS["positions"], f"only {n} clean matched stars above S/N {POSITION_MIN_SNR}"
    assert rms <= POSITION_RMS_PX, f"position rms {rms:.4f} px over {n} stars (tolerance {POSITION_RMS_PX})"


def test_catalog_fluxes(field):
    sel = field.clean & field.matched & (field.snr > FLUX_MIN_SNR)
    error = np.abs(field.flux_ratio[sel] - 1.0)
    median = float(np.median(error))
    _report("flux", n=int(sel.sum()), median_abs_error=median, median_bias=float(np.median(field.flux_ratio[sel]) - 1),
            p90_abs_error=float(np.percentile(error, 90)))
    assert sel.sum() >= MIN_STARS["flux"], f"only {sel.sum()} clean matched stars above S/N {FLUX_MIN_SNR}"
    assert median <= FLUX_MEDIAN_ERROR, f"median flux error {median:.2%} over {sel.sum()} stars"


def test_catalog_uses_the_apcorr_and_abvegaoffset_references(run):
    """The catalog's apertures are the APCORR reference's (the simulator's, for F200W/CLEAR
    at the mosaic's pixel scale ratio 1) and its Vega magnitudes are AB minus the
    ABVEGAOFFSET reference's offset; the _i2d names both files (R_APCORR, R_ABVEGA)."""
    from services.simulator.optical_refs import apcorr_rows
    from services.simulator.optics import vega_ab_offset

    cat = QTable.read(run.one("cat", 3, "-o001_"), format="ascii.ecsv")
    aperture = cat.meta["aperture_params"]
    rows = {round(ee * 100): (r, c, i, o) for f, p, ee, r, c, i, o in apcorr_rows("NIRCAM")
            if (f, p) == ("F200W", "CLEAR")}
    assert cat.meta["aperture_source"] == "jwst_nircam_apcorr_sim.fits"
    np.testing.assert_allclose(aperture["aperture_radii"], [rows[e][0] for e in (30, 50, 70)], rtol=2e-3)
    np.testing.assert_allclose(aperture["aperture_corrections"], [rows[e][1] for e in (30, 50, 70)], rtol=1e-6)
    assert aperture["bkg_aperture_inner_radius"] == pytest.approx(rows[70][2], rel=2e-3)
    offset = vega_ab_offset("NIRCAM", "F200W", "CLEAR")
    assert cat.meta["abvega_offset"] == pytest.approx(offset, rel=1e-6)
    for name in ("aper30", "aper70", "aper_total", "isophotal"):
        good = np.isfinite(cat[f"{name}_abmag"])
        np.testing.assert_allclose(cat[f"{name}_vegamag"][good], cat[f"{name}_abmag"][good] - offset, atol=1e-6)
    header = fits.getheader(run.one("i2d", 3, "-o001_"))
    assert header["R_APCORR"] == "crds://jwst_nircam_apcorr_sim.fits"
    assert header["R_ABVEGA"] == "crds://jwst_nircam_abvegaoffset_sim.asdf"
    _report("catalog references", radii=[round(r, 3) for r in aperture["aperture_radii"]],
            correction=aperture["aperture_corrections"][-1], abvega_offset=round(offset, 4))


def test_catalog_completeness(field):
    fraction, n = _completeness(field, field.well_covered)
    literal_fraction, literal_n = _completeness(field, field.literal)
    missed = field.well_covered & (field.snr > COMPLETENESS_MIN_SNR) & ~field.matched
    _report("completeness", n=n, fraction=fraction, missed_snr=np.round(np.sort(field.snr[missed]), 1).tolist(),
            brighter_within_3px_fraction=literal_fraction, brighter_within_3px_n=literal_n)
    assert n >= MIN_STARS["completeness"], f"only {n} well-covered stars above S/N {COMPLETENESS_MIN_SNR}"
    assert fraction >= COMPLETENESS, f"completeness {fraction:.1%} of {n} stars above S/N {COMPLETENESS_MIN_SNR}"


# --------------------------------------------------------------------------- 4: tweakreg


def _grid_rms(header: fits.Header, ra: np.ndarray, dec: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> float:
    """rms distance (px) between (gx, gy) and where the header's WCS puts (ra, dec)."""
    x, y = _wcs(header).all_world2pix(ra, dec, 0, tolerance=1e-8)
    return float(np.sqrt(np.mean((x - gx) ** 2 + (y - gy) ** 2)))


def _rebuilt_truth_gwcs(run: ChainRun, truth: fits.Header):
    """The true window gwcs as docs/simulator.md defines it: the detector's DISTORTION
    reference at the true pointing of the window centre (V2_REF/V3_REF)."""
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    reference = next(p for p in run.sim.reference_paths
                     if "_distortion_" in p.name and f"_{truth['DETECTOR'].lower()}_" in p.name)
    with datamodels.DistortionModel(str(reference)) as ref:
        model = ref.model
    pointing = TelescopePointing(truth["TRUE_RA"], truth["TRUE_DEC"], truth["TRUE_ROL"], truth["V2_REF"],
                                 truth["V3_REF"])
    return imaging_gwcs(model, pointing, xstart=int(truth["SUBSTRT1"]), ystart=int(truth["SUBSTRT2"]),
                        xsize=int(truth["SUBSIZE1"]), ysize=int(truth["SUBSIZE2"]))


def test_tweakreg_recovers_the_pointing_errors(run):
    for entry in run.truth_exposures(FIELD):
        eid = entry["exposure_id"]
        truth = run.truth_header(entry)
        true_wcs = _wcs(truth)
        crf_header = fits.getheader(run.one("crf", 3, eid), "SCI")
        cal_header = fits.getheader(run.one("cal", 2, eid), "SCI")
        ny, nx = crf_header["NAXIS2"], crf_header["NAXIS1"]
        gy, gx = (a.ravel().astype(float) for a in np.mgrid[0:ny:GRID_STEP_PX, 0:nx:GRID_STEP_PX])
        ra, dec = true_wcs.all_pix2world(gx, gy, 0)
        rebuilt = _rebuilt_truth_gwcs(run, truth).invert(ra, dec, with_bounding_box=False)
        assert np.max(np.hypot(rebuilt[0] - gx, rebuilt[1] - gy)) < 1e-4, f"{eid}: truth WCS is not the gwcs"
        aligned, unaligned = (_grid_rms(h, ra, dec, gx, gy) for h in (crf_header, cal_header))
        datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
        with datamodels.open(run.one("crf", 3, eid)) as crf:
            gwcs_mas = max_separation_mas(crf.meta.wcs, _wcs(crf_header), (ny, nx))
        assert gwcs_mas < 1.0, f"{eid}: _crf meta.wcs off its SCI WCS by {gwcs_mas:.3g} mas"
        _report(f"tweakreg {eid}", rms_px=aligned, before_px=unaligned, crf_gwcs_mas=gwcs_mas,
                twkref=crf_header.get("TWKREF"),
                twknmat=crf_header.get("TWKNMAT"), twkrms=crf_header.get("TWKRMS"))
        assert unaligned > MIN_INJECTED_OFFSET_PX, f"{eid}: no pointing error to recover ({unaligned:.3f} px)"
        assert int(crf_header.get("TWKNMAT", 0)) >= MIN_TWEAKREG_MATCHES, f"{eid}: TWKNMAT {crf_header.get('TWKNMAT')}"
        assert aligned <= ALIGNMENT_RMS_PX, f"{eid}: aligned WCS off the truth by {aligned:.4f} px rms"


# --------------------------------------------------------------------------- 5: outliers


def _rays_left_by_jump(run: ChainRun, entry: dict, min_dn: float = 0.0) -> tuple[np.ndarray, np.ndarray, int]:
    """(significance, OUTLIER flag) of each pixel holding a significant ray that jump
    detection left, and the number of OUTLIER pixels holding no ray."""
    eid = entry["exposure_id"]
    with fits.open(run.one("rate", 2, eid)) as rate, fits.open(run.one("cal", 2, eid)) as cal, \
            fits.open(run.one("crf", 3, eid)) as crf:
        sci, err, rate_dq = rate["SCI"].data, rate["ERR"].data, rate["DQ"].data
        cal_dq, crf_dq = cal["DQ"].data, crf["DQ"].data
    truth = fits.getdata(run.truth_path(entry, "truth_rate"), "SCI")
    rays = Table.read(run.truth_path(entry, "truth_jumps"), format="ascii.ecsv")
    rays = rays[(np.asarray(rays["group"]) >= 2) & (np.asarray(rays["amplitude_dn"]) >= min_dn)]
    pixels = np.unique(np.transpose([np.asarray(rays["y"]), np.asarray(rays["x"])]), axis=0)
    y, x = pixels.T
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = (sci[y, x] - truth[y, x]) / err[y, x]
    unflagged = ((rate_dq[y, x] | cal_dq[y, x]) & (F["JUMP_DET"] | F["DO_NOT_USE"])) == 0
    left = unflagged & (sigma > CR_MIN_SIGMA)
    outlier = (crf_dq & F["OUTLIER"]) != 0
    hit = np.zeros(outlier.shape, bool)
    hit[y, x] = True
    return sigma[left], outlier[y[left], x[left]], int((outlier & ~hit).sum())


def _flagged_fraction(run: ChainRun, observation: int, what: str, min_dn: float = 0.0) -> tuple[float, int]:
    sigmas, flagged, spurious = [], [], 0
    for entry in run.truth_exposures(observation):
        s, o, extra = _rays_left_by_jump(run, entry, min_dn)
        sigmas.append(s)
        flagged.append(o)
        spurious += extra
    sigma, flag = np.concatenate(sigmas), np.concatenate(flagged)
    fraction = float(flag.mean()) if flag.size else float("nan")
    bins = {f"{lo}-{hi}": f"{int(flag[(sigma > lo) & (sigma <= hi)].sum())}/{int(((sigma > lo) & (sigma <= hi)).sum())}"
            for lo, hi in ((5, 6), (6, 7), (7, 8), (8, 20), (20, np.inf))}
    _report(what, rays=flag.size, flagged_fraction=fraction, flagged_by_sigma=bins,
            outlier_pixels_without_ray=spurious)
    return fraction, flag.size


def test_outlier_detection_flags_the_rays_of_short_ramps(run):
    """Two-group ramps give jump detection a single difference, so it flags nothing and
    every ray stays in the rate: the case outlier detection is there for. Scored on the
    simulator's default ray population (deposits from ``cosmic_ray_min_dn``, 200 DN); the
    fainter rays this program adds are reported beside it."""
    _flagged_fraction(run, SHORT, "outliers (2-group ramps, every ray)")
    fraction, n = _flagged_fraction(run, SHORT, f"outliers (2-group ramps, rays >= {DEFAULT_RAY_DN:g} DN)",
                                    DEFAULT_RAY_DN)
    assert n >= MIN_LEFT_RAYS, f"only {n} significant rays left by jump detection"
    assert fraction >= OUTLIER_FRACTION, f"{fraction:.1%} of {n} rays flagged OUTLIER"


@pytest.mark.xfail(strict=True, reason=(
    "outlier_detection (public thresholds: |data - blot| > 1.2 deriv + 5 err near, 0.7 deriv + 4 err at "
    "the pixel) cannot reach rays jump detection leaves: those change the rate by 5-8 err, where the "
    "blotted median's noise and derivative term decide; 19-27 % are flagged over 7 seeds"))
def test_outlier_detection_flags_the_faint_rays_jump_detection_left(run):
    fraction, n = _flagged_fraction(run, FIELD, "outliers (8-group ramps, faint rays)")
    assert n >= MIN_LEFT_RAYS, f"only {n} significant rays left by jump detection"
    assert fraction >= OUTLIER_FRACTION, f"{fraction:.1%} of {n} rays flagged OUTLIER"


# --------------------------------------------------------------------------- 6: TSO


def test_tso_light_curve_recovers_the_depth(run):
    [entry] = run.truth_exposures(TSO)
    phot = Table.read(run.one("phot", 3), format="ascii.ecsv")
    curve = Table.read(run.truth_path(entry, "truth_lightcurve"), format="ascii.ecsv")
    assert len(phot) == len(curve)
    times = np.asarray(phot["MJD"], float) - np.asarray(curve["mid_mjd_utc"], float)
    assert np.max(np.abs(times)) * 86400 < 0.01, "light curve and truth are not the same integrations"
    depth = fitted_depth(np.asarray(phot["net_aperture_sum"], float), np.asarray(curve["relative_flux"], float))
    error = abs(depth / DEPTH - 1)
    _report("tso", integrations=len(phot), depth=depth, injected=DEPTH, relative_error=error)
    assert error <= DEPTH_RELATIVE_ERROR, f"depth {depth:.5f} vs {DEPTH} ({error:.1%} off)"


# --------------------------------------------------------------------------- 7: public tools


def test_asn_and_products_open_in_the_public_tools(run):
    associations = pytest.importorskip("jwst.associations")
    datamodels = pytest.importorskip("stdatamodels.jwst.datamodels")
    names = run.filenames("asn")
    assert {n.split("_")[-3] for n in names} >= {"image2", "image3", "tso-image2", "tso3"}
    for name in names:
        with open(run.path(name)) as handle:
            asn = associations.load_asn(handle)
        assert asn["products"] and asn["products"][0]["members"], name
    paths = [run.path(n) for n in run.filenames("cal", 2)] + [run.path(n) for n in run.filenames("i2d", 3)]
    worst = 0.0
    for path in paths:
        with datamodels.open(path) as model:
            assert type(model).__name__ == "ImageModel", path.name
            assert model.data.shape == fits.getdata(path, "SCI").shape
            worst = max(worst, max_separation_mas(model.meta.wcs, _wcs(fits.getheader(path, "SCI")), model.data.shape))
    _report("public tools", asn_files=len(names), image_models=len(paths), gwcs_vs_fits_wcs_max_mas=worst)
    assert worst < 1.0
