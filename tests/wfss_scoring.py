"""What the wide-field slitless tests share: each source's spectrum in an exposure's
``_x1d`` beside the spectrum a perfect extraction of its star recovers (the simulator's
truth), element by element, and which elements other stars' light contaminates
(``tests/test_wfss_accuracy.py`` states the criteria and tolerances)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from scipy.special import ndtr

from services.simulator.spectrograph import (
    SourceSpectrum,
    SpectralLine,
    at_source,
    observed_spectrum,
    wfss_grism,
)
from services.simulator.wfss import through_blocking_filter
from shared.spectra.wfss import SPREAD_LINES

OTHER_BAD_PIXEL = 2**30
MATCH_ARCSEC = 0.15
CONTAMINATION = 0.01  # another star's light in the aperture, relative to the source's: not scored for flux
OVERLAP = 0.05  # ... and where a listed star's must be flagged


def truth_spectrum(text: str) -> SourceSpectrum:
    d = json.loads(text)
    return SourceSpectrum(d["flux_jy"], d["slope"], tuple(SpectralLine(*line) for line in d["lines"]), d["reference"])


class Scored:
    """One source's spectrum in one exposure's ``_x1d`` beside its truth."""

    def __init__(self, row, stars: Table, k: int, models: list, spectra: list, listed: set[int]):
        n = int(row["N_ALONGDISP"])
        self.source_id = int(row["SOURCE_ID"])
        self.star = int(stars["id"][k])
        self.wavelength = np.asarray(row["WAVELENGTH"][:n], np.float64)
        self.flux = np.asarray(row["FLUX"][:n], np.float64)
        self.error = np.asarray(row["FLUX_ERROR"][:n], np.float64)
        self.flagged = (np.asarray(row["DQ"][:n]) & OTHER_BAD_PIXEL) > 0
        half = 0.5 * (np.asarray(row["NPIXELS"][:n], np.float64) - 1.0)
        model = models[k]
        self.model = model
        self.pixel = np.round(model.pixel(self.wavelength)).astype(int)  # the element's spectral pixel
        s = self.pixel.astype(np.float64)
        self.truth = observed_spectrum(model, spectra[k], s)
        own = self.truth * model.electrons_per_jy(s)  # e-/s of the source per element
        centre = model.trace(s)
        self.contaminated = np.zeros(n, bool)  # by any star
        self.by_listed = np.zeros(n, bool)  # by a star the catalog lists
        self.near_listed = np.zeros(n, bool)  # a listed star's trace within both apertures and 2 px
        for j, other in enumerate(models):
            if j == k:
                continue
            on = (s >= other.span[0] - 10) & (s <= other.span[1] + 10)  # its light: the band and the LSF's reach
            if not on.any():
                continue
            light = np.zeros(n)
            light[on] = observed_spectrum(other, spectra[j], s[on]) * other.electrons_per_jy(s[on])
            sigma = other.profile_sigma(other.wavelength(s))
            offset = other.trace(s) - centre
            inside = ndtr((half + 0.5 - offset) / sigma) - ndtr((-half - 0.5 - offset) / sigma)
            self.contaminated |= on & (light * inside >= CONTAMINATION * own)
            if int(stars["id"][j]) in listed:
                self.by_listed |= on & (light * inside >= OVERLAP * own)
                reach = (s >= other.span[0] - SPREAD_LINES - 1) & (s <= other.span[1] + SPREAD_LINES + 1)
                self.near_listed |= reach & (np.abs(offset) < 2.0 * half.max() + 2.0)
        self.clean = ~self.contaminated & ~self.flagged & np.isfinite(self.flux)
        clean = self.clean
        self.snr = float(np.median(self.truth[clean] / self.error[clean])) if clean.sum() else 0.0
        self.ratio = float(np.median(self.flux[clean] / self.truth[clean])) if clean.sum() else np.nan

    @property
    def scored(self) -> bool:
        return self.snr >= 5.0 and int(self.clean.sum()) >= 15


def exposure_scores(products: Path, names: list[str], truth_dir: Path) -> dict[str, list[Scored]]:
    """Every source of every dispersed exposure's ``_x1d`` among ``names`` (files in
    ``products``), with its truth (the simulation's ``truth_dir``)."""
    out = {}
    for name in names:
        if not name.endswith("_x1d.fits") or not name.startswith("jw") or "-o" in name:
            continue
        stem = name.removesuffix("_x1d.fits")
        path = products / name
        header = fits.getheader(path)
        grism = wfss_grism(header["EXP_TYPE"], header["FILTER"], header["PUPIL"])
        x0, y0 = header["SUBSTRT1"] - 1.0, header["SUBSTRT2"] - 1.0
        stars = Table.read(truth_dir / f"{stem}_truth_stars.ecsv")
        models = [at_source(grism, float(x) + x0, float(y) + y0) for x, y in zip(stars["x"], stars["y"], strict=True)]
        spectra = [through_blocking_filter(truth_spectrum(t), grism) for t in stars["spectrum"]]
        rows = fits.getdata(path, "EXTRACT1D")

        def star_of(ra: float, dec: float, stars: Table = stars) -> int | None:
            d = np.hypot((stars["ra"] - ra) * np.cos(np.radians(dec)), stars["dec"] - dec) * 3600.0
            k = int(np.argmin(d))
            return k if d[k] < MATCH_ARCSEC else None

        matched = {int(r["SOURCE_ID"]): star_of(float(r["SOURCE_RA"]), float(r["SOURCE_DEC"])) for r in rows}
        assert all(k is not None for k in matched.values()), (stem, matched)
        listed = {int(stars["id"][k]) for k in matched.values()}
        out[stem] = [Scored(r, stars, matched[int(r["SOURCE_ID"])], models, spectra, listed) for r in rows]
    return out
