"""Compose the preview steps over a loaded product: one PNG preview and one JPEG thumbnail.

    image      display_image -> downsample -> stretch -> grey RGB -> annotated PNG + thumbnail
    segm       display_image -> labels to colours -> PNG + thumbnail
    spectrum   spectrum_series (-> median for x1dints) -> plot PNG + line thumbnail
    lightcurve time_axis + series -> plot PNG + point thumbnail
    jitter     centroid offsets from their mean (x, y, mas) vs time -> plot PNG + line thumbnail

Pure over its inputs: the same source and title give the same bytes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from services.preview.load import (
    ImageSource,
    JitterSource,
    LightCurveSource,
    Source,
    SpectrumSource,
)
from services.preview.steps.display import display_image, downsample
from services.preview.steps.orientation import sky_orientation
from services.preview.steps.plots import (
    PlotData,
    Series,
    axis_label,
    median_spectrum,
    render_plot_png,
    render_plot_thumbnail_rgb,
    spectrum_series,
    time_axis,
)
from services.preview.steps.render_image import grey_rgb, image_layout, label_rgb, render_image_png
from services.preview.steps.stretch import StretchParams, stretch
from services.preview.steps.thumbnail import thumbnail_jpeg

__all__ = ["Preview", "jitter_plot", "make_preview"]

_DOT = " \u00b7 "


@dataclass(frozen=True)
class Preview:
    """The rendered preview: ``png`` (longest side 1024 px) and ``jpeg`` (128 x 128), the
    ``kind`` drawn (image, segmentation, spectrum, lightcurve) and a one-line ``note``."""

    png: bytes
    jpeg: bytes
    kind: str
    note: str


def make_preview(source: Source, *, title: str, params: StretchParams | None = None) -> Preview:
    """Render ``source`` (from :func:`services.preview.load.load_source`); ``title`` is the
    first line of the preview, normally the product's file name."""
    if isinstance(source, ImageSource):
        return _image(source, title, params or StretchParams())
    if isinstance(source, SpectrumSource):
        return _plot(_spectrum_plot(source), "spectrum", title, source.info)
    if isinstance(source, LightCurveSource):
        return _plot(_lightcurve_plot(source), "lightcurve", title, source.info)
    if isinstance(source, JitterSource):
        return _plot(jitter_plot(source), "jitter", title, source.info)
    raise TypeError(f"no preview for {type(source).__name__}")


def _image(src: ImageSource, title: str, params: StretchParams) -> Preview:
    disp = display_image(src.sci, src.suffix, src.dq, src.groupdq)
    layout = image_layout(disp.image.shape)
    f = layout.factor
    if src.suffix == "segm":
        rgb = label_rgb(disp.image[::f, ::f])
        kind = "segmentation"
        shown = f"{int(np.nanmax(disp.image, initial=0))} segments"
    else:
        image, mask = downsample(disp.image, disp.mask, f)
        st = stretch(image, mask, params)
        rgb = grey_rgb(st)
        kind = "image"
        unit = f" {src.bunit}" if src.bunit else ""
        shown = f"{st.interval}+asinh {st.vmin:.4g} to {st.vmax:.4g}{unit}"
        if disp.mask.any():
            shown += f", {int(disp.mask.sum())} masked px in blue"
    parts = [src.info, disp.note, shown]
    if f > 1:
        parts.append(f"binned {f}x{f}")
    if layout.stretched_aspect:
        parts.append("aspect stretched")
    note = _DOT.join(p for p in parts if p)
    wavelength = None
    if src.wavelength is not None:  # the wavelength at each displayed (binned) column
        n = disp.image.shape[1] // f * f
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns off the slit have no wavelength
            wavelength = np.nanmean(src.wavelength[:n].reshape(-1, f), axis=1) if n else None
    png = render_image_png(rgb, layout, title=title, subtitle=note,
                           orientation=sky_orientation(src.wcs, disp.image.shape), wavelength=wavelength)
    aspect = layout.box_width / layout.box_height
    jpeg = thumbnail_jpeg(rgb[::-1], aspect=aspect)
    return Preview(png=png, jpeg=jpeg, kind=kind, note=note)


def _spectrum_plot(src: SpectrumSource) -> PlotData:
    spectra = [
        spectrum_series(w.values, fl.values, e.values if e is not None else None, dq, label)
        for w, fl, e, dq, label in zip(src.wavelength, src.flux, src.error, src.dq, src.labels, strict=True)
    ]
    note = ""
    if src.suffix == "x1dints" and len(spectra) > 1:
        note = f"median of {len(spectra)} integrations"
        spectra = [median_spectrum(spectra)]
        spectra[0] = Series(spectra[0].x, spectra[0].y, spectra[0].error, "")
    elif len(spectra) > 8:
        note = f"first 8 of {len(spectra)} spectra"
    spectra = [s for s in spectra if s.x.size]
    return PlotData(
        series=tuple(spectra),
        xlabel=axis_label("Wavelength", src.wavelength[0].unit),
        ylabel=axis_label("Flux", src.flux[0].unit),
        style="line",
        note=note,
    )


def _lightcurve_plot(src: LightCurveSource) -> PlotData:
    x, xlabel = time_axis(src.time.values, src.time.name, src.time.unit)
    series = []
    for flux, err in zip(src.fluxes, src.errors, strict=True):
        y = flux.values
        e = err.values if err is not None else None
        keep = np.isfinite(x) & np.isfinite(y)
        series.append(Series(x[keep], y[keep], None if e is None else np.nan_to_num(e[keep]),
                             flux.name if len(src.fluxes) > 1 else ""))
    names = ", ".join(f.name for f in src.fluxes)
    ylabel = axis_label(names if len(src.fluxes) == 1 else "Flux", src.fluxes[0].unit)
    return PlotData(series=tuple(s for s in series if s.x.size), xlabel=xlabel, ylabel=ylabel,
                    style="points", note=f"{len(x)} points")


def jitter_plot(src: JitterSource) -> PlotData:
    """The pointing jitter: the guide star's offsets from its mean position along the FGS
    ideal x and y (mas) against seconds since the first centroid; flagged samples left out."""
    good = src.good & np.isfinite(src.x) & np.isfinite(src.y)
    if not good.any():
        return PlotData(series=(), xlabel=f"Time since {src.start} [s]", ylabel="Offset [mas]", note="no good centroid")
    dx = (src.x - src.x[good].mean()) * 1000.0
    dy = (src.y - src.y[good].mean()) * 1000.0
    rms = float(np.sqrt(np.mean(dx[good] ** 2 + dy[good] ** 2)))
    t = src.seconds[good]
    return PlotData(
        series=(Series(t, dx[good], None, "ideal x"), Series(t, dy[good], None, "ideal y")),
        xlabel=f"Time since {src.start} [s]", ylabel="Guide star offset [mas]", style="line",
        note=f"{int(good.sum())} centroids, rms radial {rms:.3g} mas",
    )


def _plot(plot: PlotData, kind: str, title: str, info: str) -> Preview:
    png = render_plot_png(plot, title=title, subtitle=info)
    jpeg = thumbnail_jpeg(render_plot_thumbnail_rgb(plot), background=(255, 255, 255))
    return Preview(png=png, jpeg=jpeg, kind=kind, note=_DOT.join(p for p in (info, plot.note) if p))
