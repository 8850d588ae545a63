"""Synthetic calibrated exposures for the stage-3 tests: known stars, known WCSs with
known pointing errors, noise and cosmic rays.

Images are surface brightness (MJy/sr) of stars rendered as pixel-integrated Gaussians;
a star of flux F (Jy) puts F / (1e6 * pixel solid angle) MJy/sr summed over its pixels,
with the solid angle of each pixel taken from its true WCS (distortion included), so
flux = sum(SB * solid angle) holds exactly on every grid.

WCSs are made as stage 2 makes them (:func:`window_wcs_pair`): a gwcs of a SUB160-like
window at (950, 900) of a 2048 frame through a DISTORTION model, and its TAN-SIP
approximation; a ``_cal`` carries both (SCI header and ``meta.wcs``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from astropy.wcs import WCS
from scipy.special import erf

from services.stage3.products import set_keywords
from shared.datamodels import FitsProduct
from shared.imaging_wcs import (
    TelescopePointing,
    distortion_model,
    fits_approximation,
    fits_gwcs,
    imaging_gwcs,
    window_reference,
)
from shared.resample import pixel_area_arcsec2
from shared.wcs import SipDistortion, wcs_header, window_wcs

SCALE = 0.031  # arcsec / pixel
SR_PER_ARCSEC2 = (math.pi / 180.0 / 3600.0) ** 2
PIXAR_SR = SCALE**2 * SR_PER_ARCSEC2
RA0, DEC0 = 53.1, -27.8
DISTORTION = SipDistortion(
    3, (1024.5, 1024.5),
    {(2, 0): 4e-6, (1, 1): -2e-6, (0, 2): 3e-6, (3, 0): 2e-10},
    {(2, 0): -1e-6, (1, 1): 3e-6, (0, 2): 2e-6, (0, 3): -1e-10},
)
DISTORTION_MODEL = distortion_model(DISTORTION, SCALE, 120.6, -527.5, (2048, 2048))
WINDOW_START = (950, 900)


def window_wcs_pair(ra: float, dec: float, roll: float, shape: tuple[int, int], *,
                    model=DISTORTION_MODEL, start: tuple[int, int] = WINDOW_START):
    """(gwcs, its TAN-SIP approximation) of a window of ``shape`` whose centre points at
    (``ra``, ``dec``) with +V3 at position angle ``roll``; no distortion (TAN, exact gwcs)
    when ``model`` is None."""
    ny, nx = shape
    if model is None:
        wcs = window_wcs(ra, dec, roll, SCALE, nx, ny)
        return fits_gwcs(wcs, shape), wcs
    v2v3 = window_reference(model, *start, nx, ny)
    gw = imaging_gwcs(model, TelescopePointing(ra, dec, roll, *v2v3), xstart=start[0], ystart=start[1], xsize=nx,
                      ysize=ny)
    return gw, fits_approximation(gw, shape)


@dataclass
class Sky:
    """Stars: ra, dec (deg), flux (Jy)."""

    ra: np.ndarray
    dec: np.ndarray
    flux: np.ndarray


@dataclass
class Exposure:
    """One synthetic ``_cal``: arrays, the WCS it claims (with the pointing error) and
    the truth."""

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_rnoise: np.ndarray
    var_poisson: np.ndarray
    wcs: WCS
    true_wcs: WCS
    cr_mask: np.ndarray
    keywords: dict = field(default_factory=dict)
    gwcs: object = None  # the gwcs ``wcs`` approximates (meta.wcs of the _cal)


def make_sky(n: int, *, radius_arcsec: float = 5.0, flux_range=(2e-8, 2e-6), seed: int = 1,
             ra0: float = RA0, dec0: float = DEC0) -> Sky:
    rng = np.random.default_rng(seed)
    # Uniform in a square around the centre; log-uniform fluxes.
    dx = rng.uniform(-radius_arcsec, radius_arcsec, n) / 3600.0
    dy = rng.uniform(-radius_arcsec, radius_arcsec, n) / 3600.0
    flux = 10 ** rng.uniform(math.log10(flux_range[0]), math.log10(flux_range[1]), n)
    return Sky(ra0 + dx / math.cos(math.radians(dec0)), dec0 + dy, flux)


def render(wcs: WCS, shape: tuple[int, int], sky: Sky, fwhm: float) -> np.ndarray:
    """Surface brightness (MJy/sr) of the sky's stars on an image."""
    ny, nx = shape
    x, y = wcs.world_to_pixel_values(sky.ra, sky.dec)
    sig = fwhm / 2.3548
    half = int(math.ceil(6 * sig)) + 1
    img = np.zeros(shape)
    for xi, yi, f in zip(x, y, sky.flux, strict=True):
        x0, y0 = int(round(xi)), int(round(yi))
        if x0 < -half or y0 < -half or x0 >= nx + half or y0 >= ny + half:
            continue
        xs = np.arange(x0 - half, x0 + half + 1)
        ys = np.arange(y0 - half, y0 + half + 1)
        gx = 0.5 * (erf((xs + 0.5 - xi) / (math.sqrt(2) * sig)) - erf((xs - 0.5 - xi) / (math.sqrt(2) * sig)))
        gy = 0.5 * (erf((ys + 0.5 - yi) / (math.sqrt(2) * sig)) - erf((ys - 0.5 - yi) / (math.sqrt(2) * sig)))
        stamp = f * np.outer(gy, gx)
        cx = (xs >= 0) & (xs < nx)
        cy = (ys >= 0) & (ys < ny)
        img[np.ix_(ys[cy], xs[cx])] += stamp[np.ix_(cy, cx)]
    # Jy per pixel -> MJy/sr with each pixel's true solid angle.
    yy, xx = np.mgrid[0:ny:8, 0:nx:8]
    area = np.array([pixel_area_arcsec2(wcs, float(a), float(b)) for a, b in zip(xx.ravel(), yy.ravel(), strict=True)])
    rel = area.reshape(xx.shape) / SCALE**2
    rel_full = np.kron(rel, np.ones((8, 8)))[:ny, :nx]
    return img / (PIXAR_SR * rel_full * 1e6)


def make_exposures(
    sky: Sky, *, n: int = 4, shape=(160, 160), fwhm: float = 2.0, dithers=None, pointing_errors=None,
    roll: float = 30.0, roll_errors=None, sky_levels=None, n_cr: int = 30, seed: int = 2,
    noise_jy: float = 2e-9, gain_jy: float = 1e-10, distortion=DISTORTION_MODEL, offset=(0.0, 0.0),
) -> list[Exposure]:
    """``n`` dithered exposures of ``sky``.

    ``dithers`` (arcsec, (dx, dy) per exposure along RA/Dec) move the true pointing;
    ``pointing_errors`` (arcsec) are what the claimed WCS gets wrong, ``roll_errors``
    (deg) its roll error. Noise: read noise ``noise_jy`` per pixel (as a flux) plus
    Poisson noise with ``gain_jy`` Jy per electron. ``n_cr`` cosmic rays per exposure.
    ``distortion``: a DISTORTION model, or None for undistorted (TAN) windows. ``offset``
    (arcsec, along RA/Dec) moves every exposure: another detector of the same exposures.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    dithers = dithers if dithers is not None else [(0.0, 0.0), (0.37, 0.21), (-0.29, 0.43), (0.18, -0.36)][:n]
    pointing_errors = pointing_errors if pointing_errors is not None else [(0.0, 0.0)] * n
    roll_errors = roll_errors if roll_errors is not None else [0.0] * n
    sky_levels = sky_levels if sky_levels is not None else [0.0] * n
    cosd = math.cos(math.radians(DEC0))
    to_sb = 1.0 / (PIXAR_SR * 1e6)  # Jy per pixel -> MJy/sr
    out = []
    for k in range(n):
        dra, ddec = dithers[k][0] + offset[0], dithers[k][1] + offset[1]
        era, edec = pointing_errors[k]
        ra = RA0 + dra / 3600.0 / cosd
        dec = DEC0 + ddec / 3600.0
        _, true_wcs = window_wcs_pair(ra, dec, roll, shape, model=distortion)
        claimed_gwcs, claimed = window_wcs_pair(ra + era / 3600.0 / cosd, dec + edec / 3600.0, roll + roll_errors[k],
                                                shape, model=distortion)
        model = render(true_wcs, shape, sky, fwhm) + sky_levels[k]
        var_r = np.full(shape, (noise_jy * to_sb) ** 2)
        var_p = np.maximum(model, 0) * gain_jy * to_sb
        data = model + rng.normal(size=shape) * np.sqrt(var_r + var_p)
        cr = np.zeros(shape, bool)
        cy, cx = rng.integers(3, ny - 3, n_cr), rng.integers(3, nx - 3, n_cr)
        cr[cy, cx] = True
        data[cr] += rng.uniform(30, 300, n_cr) * noise_jy * to_sb
        dq = np.zeros(shape, np.uint32)
        out.append(Exposure(data.astype(np.float32), np.sqrt(var_r + var_p).astype(np.float32), dq,
                            var_r.astype(np.float32), var_p.astype(np.float32), claimed, true_wcs, cr,
                            gwcs=claimed_gwcs))
    return out


def cal_product(exp: Exposure, *, exposure_number: int, keywords: dict | None = None) -> FitsProduct:
    """A ``_cal``-like product of a synthetic exposure (NIRCam imaging keywords)."""
    kw = {
        "TELESCOP": "JWST", "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "FILTER": "F200W", "PUPIL": "CLEAR",
        "EXP_TYPE": "NRC_IMAGE", "PROGRAM": "01234", "OBSERVTN": "001", "VISIT": "001", "VISITGRP": "02",
        "SEQ_ID": "1", "ACT_ID": "01", "EXPOSURE": str(exposure_number), "SUBARRAY": "SUB160",
        "SUBSTRT1": 950, "SUBSTRT2": 900, "SUBSIZE1": exp.data.shape[1], "SUBSIZE2": exp.data.shape[0],
        "EXPSTART": 60000.0 + exposure_number * 0.01, "EXPMID": 60000.005 + exposure_number * 0.01,
        "EXPEND": 60000.01 + exposure_number * 0.01, "EFFEXPTM": 100.0, "TMEASURE": 100.0, "XPOSURE": 100.0,
        "BUNIT": "MJy/sr", "TARG_RA": RA0, "TARG_DEC": DEC0, "TARGNAME": "SYNTH", "DATE-OBS": "2023-02-25",
        "TIME-OBS": "00:00:00", "CAL_VER": "0.1.0", "CRDS_CTX": "jwst_0001.pmap",
        "FILENAME": f"jw01234001001_02101_{exposure_number:05d}_nrca1_cal.fits",
    }
    kw.update({"PIXAR_SR": PIXAR_SR, "PIXAR_A2": SCALE**2, "PHOTMJSR": 1.0, **(keywords or {})})
    header = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in wcs_header(exp.wcs).items()}
    product = FitsProduct(
        model_type="ImageModel",
        images={"SCI": exp.data, "ERR": exp.err, "DQ": exp.dq, "VAR_POISSON": exp.var_poisson,
                "VAR_RNOISE": exp.var_rnoise, "VAR_FLAT": np.zeros_like(exp.data)},
        hdu_keywords={"ERR": {"BUNIT": "MJy/sr"}},
        extra_meta={} if exp.gwcs is None else {"meta.wcs": exp.gwcs},
    )
    set_keywords(product, {**kw, **header})
    return product


def true_positions(exp: Exposure, sky: Sky) -> tuple[np.ndarray, np.ndarray]:
    return exp.true_wcs.world_to_pixel_values(sky.ra, sky.dec)


@dataclass
class TimeSeries:
    """A synthetic ``_calints``: cube (nints, ny, nx) MJy/sr, its error, DQ, WCS, the
    integration mid-times (MJD), the in-transit integrations and the injected CRs."""

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    wcs: WCS
    mjd: np.ndarray
    in_transit: np.ndarray
    cr_mask: np.ndarray


def make_time_series(*, nints: int = 120, shape=(48, 48), depth: float = 0.02, star_jy: float = 2e-5,
                     fwhm: float = 2.0, n_cr: int = 40, seed: int = 5, jitter_pix: float = 0.005) -> TimeSeries:
    """A star at (RA0, DEC0) on a subarray, dimmed by ``depth`` during the middle third
    of the integrations (a box-shaped transit), with a little pointing jitter, Poisson
    and read noise, and ``n_cr`` cosmic rays (some on the star)."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    wcs = window_wcs(RA0, DEC0, 10.0, SCALE, nx, ny)
    mjd = 60000.0 + np.arange(nints) * 30.0 / 86400.0
    in_transit = (np.arange(nints) >= nints // 3) & (np.arange(nints) < 2 * nints // 3)
    cube = np.zeros((nints, ny, nx))
    for i in range(nints):
        f = star_jy * (1.0 - depth * in_transit[i])
        dx, dy = rng.normal(0, jitter_pix, 2) * SCALE / 3600.0
        sky = Sky(np.array([RA0 + dx / math.cos(math.radians(DEC0))]), np.array([DEC0 + dy]), np.array([f]))
        cube[i] = render(wcs, shape, sky, fwhm)
    to_sb = 1.0 / (PIXAR_SR * 1e6)
    var = (5e-9 * to_sb) ** 2 + np.maximum(cube, 0) * 2e-11 * to_sb
    data = cube + rng.normal(size=cube.shape) * np.sqrt(var)
    cr = np.zeros(cube.shape, bool)
    ci, cy, cx = rng.integers(0, nints, n_cr), rng.integers(2, ny - 2, n_cr), rng.integers(2, nx - 2, n_cr)
    cr[ci, cy, cx] = True
    data[cr] += rng.uniform(50, 500, n_cr) * 5e-9 * to_sb
    return TimeSeries(data.astype(np.float32), np.sqrt(var).astype(np.float32), np.zeros(cube.shape, np.uint32),
                      wcs, mjd, in_transit, cr)


def calints_product(ts: TimeSeries) -> FitsProduct:
    """A ``_calints``-like product of a synthetic time series (NRC_TSIMAGE)."""
    nints = ts.data.shape[0]
    int_times = np.zeros(nints, dtype=[("integration_number", ">i4"), ("int_start_MJD_UTC", ">f8"),
                                      ("int_mid_MJD_UTC", ">f8"), ("int_end_MJD_UTC", ">f8"),
                                      ("int_start_BJD_TDB", ">f8"), ("int_mid_BJD_TDB", ">f8"),
                                      ("int_end_BJD_TDB", ">f8")])
    int_times["integration_number"] = np.arange(1, nints + 1)
    half = 15.0 / 86400.0
    for col, off in (("start", -half), ("mid", 0.0), ("end", half)):
        int_times[f"int_{col}_MJD_UTC"] = ts.mjd + off
        int_times[f"int_{col}_BJD_TDB"] = ts.mjd + off + 0.0008
    product = FitsProduct(
        model_type="CubeModel",
        images={"SCI": ts.data, "ERR": ts.err, "DQ": ts.dq,
                "VAR_POISSON": (ts.err**2 * 0.5).astype(np.float32), "VAR_RNOISE": (ts.err**2 * 0.5).astype(np.float32)},
        tables={"INT_TIMES": int_times}, hdu_keywords={"ERR": {"BUNIT": "MJy/sr"}},
        extra_meta={"meta.wcs": fits_gwcs(ts.wcs, ts.data.shape[-2:])},
    )
    kw = {"TELESCOP": "JWST", "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "FILTER": "F200W", "PUPIL": "CLEAR",
          "EXP_TYPE": "NRC_TSIMAGE", "PROGRAM": "01234", "OBSERVTN": "002", "VISIT": "001", "VISITGRP": "01",
          "SEQ_ID": "1", "ACT_ID": "01", "EXPOSURE": "1", "SUBARRAY": "SUB64P", "NINTS": nints, "INTSTART": 1,
          "INTEND": nints, "EXPSTART": float(ts.mjd[0]), "EFFINTTM": 30.0, "BUNIT": "MJy/sr", "TARG_RA": RA0,
          "TARG_DEC": DEC0, "TARGNAME": "HOST", "TSOVISIT": True, "PIXAR_SR": PIXAR_SR, "PHOTMJSR": 1.0,
          "FILENAME": "jw01234002001_01101_00001_nrca1_calints.fits"}
    header = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in wcs_header(ts.wcs).items()}
    set_keywords(product, {**kw, **header})
    return product
