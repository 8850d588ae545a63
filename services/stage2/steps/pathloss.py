"""pathloss: correct a point source for the light the slit's jaws stop.

The public MIRI LRS PATHLOSS reference (``MirLrsPathlossModel``) holds, per wavelength (a
table row), a 2-D grid of the *correction* (the factor to multiply by: 1 / the fraction
of a point source's light the slit passes) over the source's position in the slit; the
extension's WCS gives the grid's axes (axis 1: along the slit, axis 2: across it; CRPIX,
CRVAL, CDELT, here in pixels from the slit centre). As in the public pipeline, the
correction at the source's position is interpolated bilinearly in the grid for every
table wavelength, then linearly in wavelength onto each pixel's wavelength; SCI and ERR
are multiplied by it and the variances by its square. A source outside the grid is
corrected as if at the slit centre (and says so); pixels without a wavelength, or beyond
the table's wavelengths, are left as they are.

NIRSpec's public PATHLOSS (``PathlossModel``) holds, per aperture (EXTVER, named by its
APERTURE card), a point-source cube PS of the *fraction* of the light the slit passes
over (wavelength, y, x): x the source's place across the slit (along the dispersion) in
units of the slit's width, y along it in units of its length, both from its centre (the
SRCXPOS and SRCYPOS of a NIRSpec product), wavelength in metres, on the WCS of the
extension (axes 1, 2, 3). :func:`nirspec_pathloss` turns it into the same correction
(1 / the fraction) per wavelength at the source; the rest is as above. A MOS slitlet's
aperture is chosen from its shutter state as the public step chooses it
(:func:`msa_aperture`): MOS1X1 (``shutters`` 1) when the source's shutter has no open
neighbour, else MOS1X3 (3), its upper or lower part when only one neighbour is open (a
two-shutter slitlet, or a three-shutter one with a shutter stuck closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from shared.arrays import float32_op

__all__ = ["PathlossGrid", "PathlossResult", "apply_pathloss", "msa_aperture", "nirspec_pathloss", "pathloss_vector"]


@dataclass(frozen=True)
class PathlossGrid:
    """The grid's axes: position of index 0 and step, along (axis 1) and across (axis 2)."""

    along0: float
    along_step: float
    across0: float
    across_step: float

    @classmethod
    def from_wcs(cls, header: Mapping) -> PathlossGrid:
        try:
            return cls(float(header["CRVAL1"]) - (float(header["CRPIX1"]) - 1.0) * float(header["CDELT1"]),
                       float(header["CDELT1"]),
                       float(header["CRVAL2"]) - (float(header["CRPIX2"]) - 1.0) * float(header["CDELT2"]),
                       float(header["CDELT2"]))
        except KeyError as exc:
            raise ValueError(f"the PATHLOSS extension has no {exc.args[0]}: its grid is unknown") from None


@dataclass(frozen=True)
class PathlossResult:
    sci: np.ndarray
    err: np.ndarray
    variances: dict[str, np.ndarray]
    correction: np.ndarray  # per pixel (1 where none applied)
    centred: bool  # True when the source was outside the grid and the centre was used


def pathloss_vector(correction: np.ndarray, grid: PathlossGrid, along: float, across: float
                    ) -> tuple[np.ndarray, bool]:
    """The correction per table wavelength at the source's position (pixels from the slit
    centre), and whether the centre had to stand in for a position outside the grid."""
    corr = np.asarray(correction, np.float64)
    if corr.ndim != 3:
        raise ValueError(f"a point-source PATHLOSS grid is (wavelength, across, along); got shape {corr.shape}")
    _, n_across, n_along = corr.shape
    i = (along - grid.along0) / grid.along_step
    j = (across - grid.across0) / grid.across_step
    centred = not (0 <= i <= n_along - 1 and 0 <= j <= n_across - 1)
    if centred:
        i, j = -grid.along0 / grid.along_step, -grid.across0 / grid.across_step
    i0, j0 = min(int(i), n_along - 2), min(int(j), n_across - 2)
    di, dj = i - i0, j - j0
    vec = ((1 - di) * (1 - dj) * corr[:, j0, i0] + di * (1 - dj) * corr[:, j0, i0 + 1]
           + (1 - di) * dj * corr[:, j0 + 1, i0] + di * dj * corr[:, j0 + 1, i0 + 1])
    return vec, centred


def _axis(cards: Mapping, n: int, size: int) -> np.ndarray:
    try:
        crpix, crval, cdelt = (float(cards[f"{k}{n}"]) for k in ("CRPIX", "CRVAL", "CDELT"))
    except KeyError as exc:
        raise ValueError(f"the PS extension has no {exc.args[0]}: its grid is unknown") from None
    return crval + (np.arange(size, dtype=np.float64) + 1.0 - crpix) * cdelt


def nirspec_pathloss(cubes: list[tuple[Mapping, np.ndarray]], aperture: str | int, srcxpos: float, srcypos: float
                     ) -> tuple[np.ndarray, np.ndarray, bool]:
    """(wavelength um, correction, centred) of a point source at (``srcxpos``,
    ``srcypos``) in NIRSpec's fixed slit ``aperture`` (its name) or MOS slitlet of
    ``aperture`` shutters (the aperture whose SHUTTERS card says so, as the public step
    picks it), from the PS cubes (cards, data) of a public PATHLOSS file (see the module
    docstring).

    Raises
    ------
    ValueError
        No cube for the aperture, or one that is not (wavelength, y, x) with its WCS.
    """
    if isinstance(aperture, int):
        wanted = f"of {aperture} shutter(s)"
        found = [(c, d) for c, d in cubes if _int_card(c.get("SHUTTERS")) == aperture]
    else:
        wanted = aperture.strip().upper()
        found = [(c, d) for c, d in cubes if str(c.get("APERTURE", "")).strip().upper() == wanted]
    if not found:
        names = sorted({f"{str(c.get('APERTURE', '?')).strip()}" + (f" ({c['SHUTTERS']} shutters)" if "SHUTTERS" in c
                                                                    else "") for c, _ in cubes})
        raise ValueError(f"no point-source (PS) correction for aperture {wanted} (it has {', '.join(names)})")
    cards, data = found[0]
    frac = np.asarray(data, np.float64)
    if frac.ndim != 3:
        raise ValueError(f"a PS cube is (wavelength, y, x); got shape {frac.shape}")
    nw, ny, nx = frac.shape
    x, y = _axis(cards, 1, nx), _axis(cards, 2, ny)
    wavelength = _axis(cards, 3, nw) * 1.0e6  # m -> um
    correction = np.where(frac > 0, 1.0 / np.where(frac > 0, frac, 1.0), np.nan)
    # as the MIRI grid: (wavelength, across = x, along = y), axis steps from x and y
    grid = PathlossGrid(along0=float(y[0]), along_step=float(y[1] - y[0]) if ny > 1 else 1.0,
                        across0=float(x[0]), across_step=float(x[1] - x[0]) if nx > 1 else 1.0)
    vector, centred = pathloss_vector(np.swapaxes(correction, 1, 2), grid, srcypos, srcxpos)
    return wavelength, vector, centred


def msa_aperture(shutter_state: str) -> tuple[int, float]:
    """(shutters of the PATHLOSS aperture, shift of SRCYPOS) for a MOS slitlet of public
    shutter state ``shutter_state`` (SHUTSTA: ``x`` the source's shutter, ``1`` open,
    ``0`` closed), as the public pathloss step picks them: a source whose shutter has no
    open neighbour (the slitlet's ends count as closed) is corrected with the one-shutter
    aperture; any other with the three-shutter aperture, at its place moved one shutter
    down (-1) when only the neighbour below is closed, up (+1) when only the one above is,
    so that the source sits at the open end of the three-shutter grid.

    Raises
    ------
    ValueError
        No ``x`` in the state: a background slitlet has no source to correct.
    """
    state = str(shutter_state).strip()
    at = state.find("x")
    if at < 0:
        raise ValueError(f"shutter state {state!r} has no source shutter ('x'): nothing to correct")
    below_closed = at == 0 or state[at - 1] == "0"
    above_closed = at == len(state) - 1 or state[at + 1] == "0"
    if below_closed and above_closed:
        return 1, 0.0
    return 3, (-1.0 if below_closed else 1.0 if above_closed else 0.0)


def _int_card(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def apply_pathloss(sci: np.ndarray, err: np.ndarray, variances: dict[str, np.ndarray], wavelength: np.ndarray,
                   table_wavelength: np.ndarray, vector: np.ndarray, *, centred: bool = False) -> PathlossResult:
    """Multiply by the correction ``vector`` (at ``table_wavelength``) interpolated onto
    each pixel's ``wavelength`` (NaN: no correction there)."""
    tw = np.asarray(table_wavelength, np.float64)
    order = np.argsort(tw)
    wl = np.asarray(wavelength, np.float64)
    corr = np.interp(np.nan_to_num(wl, nan=-1.0), tw[order], np.asarray(vector, np.float64)[order],
                     left=np.nan, right=np.nan)
    corr = np.where(np.isfinite(corr) & np.isfinite(wl), corr, 1.0)
    corr2 = corr * corr  # the variances' factor, an image broadcast over a time series's integrations
    return PathlossResult(
        sci=float32_op(np.multiply, sci, corr),
        err=float32_op(np.multiply, err, corr),
        variances={k: float32_op(np.multiply, v, corr2) for k, v in variances.items()},
        correction=corr.astype(np.float32), centred=centred,
    )
