"""calwebb_spec3's steps for MIRI's integral-field unit (``MIR_MRS``), declared in
:data:`services.stage3.spec3.SPEC3` beside the slit modes': the dithered exposures of an
observation (each detector's ``_cal``, spec2's) flagged against each other and combined
into a cube and a spectrum per channel and band.

- outlier_detection: per detector, the public step's ``ifu`` mode
  (:func:`services.stage3.steps.outlier_detection.flag_outliers_ifu`): pixels that differ
  from their neighbours across the slices in every dithered exposure are flagged
  DO_NOT_USE|OUTLIER (and NaN) in all of them; the members so flagged are the ``_crf``.
  A detector with one exposure is left as it is.
- cube_build: a cube per channel and band the members hold (the public default,
  ``output_type='band'``), each from every member's pixels of that channel
  (:func:`shared.spectra.ifu_cube.channel_cube`, the 3-D drizzle), the pixels placed on
  the sky by each member's own gwcs (``meta.wcs``, spec2's assign_wcs:
  :func:`shared.spectra.ifu.gwcs_footprints`), spaxel size, wavelength step and range from
  CUBEPAR unless ``scalexy``/``scalew`` say otherwise;
- extract_1d: each cube's spectrum (:func:`shared.spectra.ifu_cube.cube_spectrum`), as
  spec2 extracts its one cube's.

Products, named after the association's product and the channel and band as the public
pipeline names them: ``<product>_ch1-short_s3d`` (an IFUCubeModel) and
``<product>_ch1-short_x1d`` (a MultiSpecModel).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.stage3.level3 import level3_keywords
from services.stage3.steps.outlier_detection import apply_outliers, flag_outliers_ifu
from shared.datamodels import FitsProduct, card_value, set_cards
from shared.datamodels.spectra import s3d_product, x1d_product
from shared.errors import InputError
from shared.pipeline import Skip, SkipKind, StepArgs
from shared.refdata import ReferenceFileError
from shared.spectra.ifu import GeometryError, gwcs_channels, gwcs_footprints
from shared.spectra.ifu_cube import (
    ExposurePixels,
    IfuCube,
    channel_cube,
    cube_spectrum,
    cubepar_row,
)

__all__ = ["IFU3_EXP_TYPES", "ChannelProducts", "Ifu3State", "IfuMember", "cube_build", "extract_1d",
           "ifu_members", "ifu_products", "outlier_detection"]

IFU3_EXP_TYPES = frozenset({"MIR_MRS"})
_VARIANCES = ("VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")


@dataclass
class IfuMember:
    """One member (a ``_cal``): its arrays, keywords, detector, band and gwcs."""

    name: str
    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    variances: dict[str, np.ndarray]
    keywords: dict
    detector: str
    band: str
    gwcs: Any


@dataclass
class Ifu3State:
    """The members as the IFU steps pass them along, the cubes (cube_build) and their
    spectra (extract_1d), each with the members it was built from."""

    members: list[IfuMember]
    cubes: list[tuple[IfuCube, list[int]]] = field(default_factory=list)
    spectra: list[tuple[np.ndarray, dict[str, Any]]] = field(default_factory=list)


def ifu_members(products: Sequence[FitsProduct]) -> list[IfuMember]:
    """The members as the steps see them; InputError naming a member that is not a
    flux-calibrated MRS ``_cal`` with its gwcs."""
    members = []
    for product in products:
        kw = dict(product.keywords)
        name = str(kw.get("FILENAME") or "a member")
        missing = [n for n in ("SCI", "ERR", "DQ") if n not in product.images]
        if missing:
            raise InputError(f"{name} lacks the {', '.join(missing)} array(s) of a calibrated IFU exposure")
        unit = str(kw.get("BUNIT") or card_value(product, "BUNIT") or "")
        if unit != "MJy/sr":
            raise InputError(f"{name} is in {unit or 'no unit'}, not MJy/sr: spec2's photom did not run")
        wcs = product.extra_meta.get("meta.wcs")
        if wcs is None:
            raise InputError(f"{name} has no gwcs (meta.wcs): spec2's assign_wcs did not place it on the sky "
                             "(no pointing?)")
        sci = np.asarray(product.images["SCI"], np.float64)
        if sci.ndim != 2:
            raise InputError(f"{name}: SCI of shape {sci.shape} is not one image")
        members.append(IfuMember(
            name, sci, np.asarray(product.images["ERR"], np.float64), np.asarray(product.images["DQ"], np.uint32),
            {k: np.asarray(product.images[k], np.float64) for k in _VARIANCES if k in product.images}, kw,
            str(kw.get("DETECTOR") or "").upper(), str(kw.get("BAND") or "").strip().upper(), wcs))
    return members


def outlier_detection(s, a: StepArgs) -> Skip | None:
    """Per detector with two or more members: the pixels bad in every one of them."""
    by_detector: dict[str, list[IfuMember]] = defaultdict(list)
    for m in s.ifu.members:
        by_detector[m.detector].append(m)
    if all(len(group) < 2 for group in by_detector.values()):
        return Skip("one exposure per detector: nothing to compare it with", SkipKind.NOT_APPLICABLE)
    p = a.params
    counts = []
    for detector, group in sorted(by_detector.items()):
        if len(group) < 2:
            counts.append(f"{detector}: one exposure, not compared")
            continue
        mask = flag_outliers_ifu([m.sci for m in group], [m.dq for m in group],
                                 dispaxis=int(group[0].keywords.get("DISPAXIS") or 2),
                                 kernel_size=p.kernel_size, threshold_percent=p.threshold_percent)
        for m in group:
            m.dq, (m.sci, m.err, *variances) = apply_outliers(mask, m.dq, m.sci, m.err, *m.variances.values())
            m.variances = dict(zip(m.variances, variances, strict=True))
        counts.append(f"{detector}: {int(mask.sum())} pixel(s) in each of {len(group)} exposures")
    a.note("outlier_detection: " + "; ".join(counts))
    return None


def cube_build(s, a: StepArgs) -> Skip | None:
    """A cube per channel and band of the members, from all of their pixels of it."""
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, m in enumerate(s.ifu.members):
        try:
            channels = gwcs_channels(m.gwcs)
        except GeometryError as exc:
            raise InputError(f"{m.name}: {exc}") from exc
        for c in channels:
            groups[(c, m.band)].append(i)
    table = a.refs["cubepar"].tables.get("CUBEPAR")
    s.ifu.cubes = []
    for (channel, band), indices in sorted(groups.items()):
        row = None if table is None else cubepar_row(table, channel, band)
        if row is None:
            raise ReferenceFileError(f"CUBEPAR reference {a.refs['cubepar'].filename} has no row for channel "
                                     f"{channel} band {band or '(no BAND)'}")
        pixels = []
        for i in indices:
            m = s.ifu.members[i]
            try:
                footprints = gwcs_footprints(m.gwcs, channel)
            except GeometryError as exc:
                raise InputError(f"{m.name}: {exc}") from exc
            pixels.append(ExposurePixels.of(footprints, m.sci, m.err, m.dq))
        cube = channel_cube(pixels, channel, band, row, a.params)
        s.ifu.cubes.append((cube, indices))
        g = cube.grid
        a.note(f"cube_build: channel {channel} {band}: {len(indices)} exposures, {g.nx} x {g.ny} spaxels of "
               f"{g.spaxel:g}\", {g.nw} wavelengths {g.wl_edges[0]:.4f}-{g.wl_edges[-1]:.4f} um")
    return None


def extract_1d(s, a: StepArgs) -> Skip | None:
    """Each cube's spectrum, as spec2 extracts its cube's."""
    if not s.ifu.cubes:
        return Skip("no cube was built (cube_build did not run)", SkipKind.NO_INPUT)
    first = s.ifu.members[0].keywords
    kind = str(first.get("SRCTYPE") or "EXTENDED").upper()
    target = None
    if kind == "POINT":
        try:
            target = (float(first["TARG_RA"]), float(first["TARG_DEC"]))
        except (KeyError, TypeError, ValueError):
            a.note("extract_1d: a point source without TARG_RA/TARG_DEC: the whole field is summed")
    p = a.params
    s.ifu.spectra = [cube_spectrum(cube, kind, target, p.ifu_rscale, p.ifu_bkg_annulus) for cube, _ in s.ifu.cubes]
    how = f"a circle of {p.ifu_rscale:g} FWHM about the target" if target is not None else "every spaxel with data"
    a.note(f"extract_1d: {kind.lower()} source, {how}; {len(s.ifu.spectra)} cube(s)")
    return None


@dataclass(frozen=True)
class ChannelProducts:
    """One channel and band's ``_s3d`` and ``_x1d`` (None when their step did not run),
    and the name part they carry (``ch1-short``)."""

    name: str
    s3d: FitsProduct
    x1d: FitsProduct | None


def ifu_products(state: Ifu3State, products: Sequence[FitsProduct], cards: Mapping[str, Any],
                 flagged: bool, crf_cards: Mapping[str, Any]) -> tuple[list[FitsProduct], list[ChannelProducts]]:
    """(the members' ``_crf`` when outlier detection ran (``flagged``), each channel's
    products) with the run's ``cards`` (provenance, step statuses, references)."""
    crf = []
    if flagged:
        for product, m in zip(products, state.members, strict=True):
            one = product.detached()
            one.images = {**one.images, "SCI": m.sci.astype(np.float32), "ERR": m.err.astype(np.float32), "DQ": m.dq,
                          **{k: v.astype(np.float32) for k, v in m.variances.items()}}
            set_cards(one, crf_cards)
            crf.append(one)
    out = []
    for j, (cube, indices) in enumerate(state.cubes):
        keywords, _ = level3_keywords([products[i] for i in indices])
        header = {**keywords, **cards}
        s3d = s3d_product(cube, header)
        x1d = None
        if j < len(state.spectra):
            table, where = state.spectra[j]
            slit = {"SLTNAME": f"CH{cube.channel}-{cube.band}", **where}
            x1d = x1d_product([(table, slit)], {**header, "CHANNEL": str(cube.channel), "BAND": cube.band})
        out.append(ChannelProducts(f"ch{cube.channel}-{cube.band.lower()}", s3d, x1d))
    return crf, out
