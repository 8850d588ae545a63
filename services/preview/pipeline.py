"""Compose the preview steps over a loaded product: one PNG preview and one JPEG thumbnail.

    image      display_image -> downsample -> stretch -> grey RGB -> annotated PNG + thumbnail
    cube       (s3d) display_image's white light -> stretch -> grey RGB beside the brightest
               spaxel's spectrum -> PNG + white-light thumbnail
    segm       display_image -> labels to colours -> PNG + thumbnail
    spectrum   spectrum_series -> plot PNG + line thumbnail
    waterfall  (x1dints) per slit/order: each integration / median spectrum -> grey image
               against wavelength and integration PNG + image thumbnail
    lightcurve time_axis + series (white light: / median) -> plot PNG + point thumbnail
    jitter     centroid offsets from their mean (x, y, mas) vs time -> plot PNG + line thumbnail

Pure over its inputs: the same source and title give the same bytes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from services.preview.load import (
    TIME_COLUMNS,
    WHITELIGHT,
    ImageSource,
    JitterSource,
    LightCurveSource,
    Source,
    SpectrumSource,
)
from services.preview.steps.cube_view import brightest_spaxel, render_cube_png
from services.preview.steps.display import DO_NOT_USE, display_image, downsample
from services.preview.steps.orientation import sky_orientation
from services.preview.steps.plots import (
    PlotData,
    Series,
    axis_label,
    render_plot_png,
    render_plot_thumbnail_rgb,
    spectrum_series,
    time_axis,
)
from services.preview.steps.render_image import grey_rgb, image_layout, label_rgb, render_image_png
from services.preview.steps.stretch import StretchParams, stretch
from services.preview.steps.thumbnail import thumbnail_jpeg
from services.preview.steps.waterfall import (
    WaterfallPlot,
    describe,
    panel_aspect,
    render_waterfall_png,
    waterfall,
)

__all__ = ["MAX_PANELS", "Preview", "jitter_plot", "lightcurve_plot", "make_preview", "waterfall_plot"]

#: Most slits or orders a waterfall preview stacks.
MAX_PANELS = 3

_DOT = " \u00b7 "


@dataclass(frozen=True)
class Preview:
    """The rendered preview: ``png`` (longest side 1024 px) and ``jpeg`` (128 x 128), the
    ``kind`` drawn (image, segmentation, cube, spectrum, waterfall, lightcurve, jitter) and a
    one-line ``note``."""

    png: bytes
    jpeg: bytes
    kind: str
    note: str


def make_preview(source: Source, *, title: str, params: StretchParams | None = None) -> Preview:
    """Render ``source`` (from :func:`services.preview.load.load_source`); ``title`` is the
    first line of the preview, normally the product's file name."""
    if isinstance(source, ImageSource) and source.suffix == "s3d" and source.sci.ndim == 3:
        return _cube(source, title, params or StretchParams())
    if isinstance(source, ImageSource):
        return _image(source, title, params or StretchParams())
    if isinstance(source, SpectrumSource) and source.series:
        return _waterfall(waterfall_plot(source), title, source.info)
    if isinstance(source, SpectrumSource):
        return _plot(_spectrum_plot(source), "spectrum", title, source.info)
    if isinstance(source, LightCurveSource):
        return _plot(lightcurve_plot(source), "lightcurve", title, source.info)
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


def _cube(src: ImageSource, title: str, params: StretchParams) -> Preview:
    """An IFU cube: its white-light image beside its brightest spaxel's spectrum."""
    disp = display_image(src.sci, src.suffix, src.dq)
    st = stretch(disp.image, disp.mask, params)
    rgb = grey_rgb(st)
    spaxel = brightest_spaxel(disp.image)
    spectrum = None
    if spaxel is not None:
        spectrum = np.asarray(src.sci[:, spaxel[1], spaxel[0]], np.float64)
        if src.dq is not None:
            spectrum = np.where((np.asarray(src.dq[:, spaxel[1], spaxel[0]]) & DO_NOT_USE) != 0, np.nan, spectrum)
    nw = src.sci.shape[0]
    wavelength = src.wavelength if src.wavelength is not None else np.arange(nw, dtype=np.float64)
    unit = f" {src.bunit}" if src.bunit else ""
    span = (f"{np.nanmin(wavelength):.3f}-{np.nanmax(wavelength):.3f} um" if src.wavelength is not None
            else "no wavelength axis: plane numbers")
    shown = f"{src.sci.shape[2]} x {src.sci.shape[1]} spaxels, {nw} planes {span}"
    note = _DOT.join(p for p in (src.info, shown, f"{st.interval}+asinh {st.vmin:.4g} to {st.vmax:.4g}{unit}") if p)
    png = render_cube_png(rgb, spaxel, wavelength, spectrum, bunit=src.bunit, title=title, subtitle=note)
    jpeg = thumbnail_jpeg(rgb[::-1])
    return Preview(png=png, jpeg=jpeg, kind="cube", note=note)


def _spectrum_plot(src: SpectrumSource) -> PlotData:
    spectra = [
        spectrum_series(w.values, fl.values, e.values if e is not None else None, dq, label)
        for w, fl, e, dq, label in zip(src.wavelength, src.flux, src.error, src.dq, src.labels, strict=True)
    ]
    note = ""
    if len(spectra) > 8:
        note = f"first 8 of {len(spectra)} spectra"
    spectra = [s for s in spectra if s.x.size]
    return PlotData(
        series=tuple(spectra),
        xlabel=axis_label("Wavelength", src.wavelength[0].unit),
        ylabel=axis_label("Flux", src.flux[0].unit),
        style="line",
        note=note,
    )


def waterfall_plot(src: SpectrumSource) -> WaterfallPlot:
    """The waterfall of a time series of spectra (``x1dints``): per slit or order (up to
    :data:`MAX_PANELS`), each integration's flux over the median spectrum.

    Raises ValueError (saying which spectrum and why) when no series has a usable point.
    """
    panels, unusable = [], []  # unusable: (label, why)
    for s in src.series:
        try:
            panels.append(waterfall(s.wavelength, s.flux, s.dq, s.integration, s.time, s.label))
        except ValueError as exc:
            unusable.append((s.label, str(exc)))
    if not panels:
        raise ValueError("; ".join(f"{label}: {why}" if label else why for label, why in unusable))
    shown = tuple(panels[:MAX_PANELS])
    extra = [f"first {MAX_PANELS} of {len(panels)} spectra"] if len(panels) > MAX_PANELS else []
    extra += [f"{label or 'a spectrum'} not shown (no usable flux)" for label, _ in unusable]
    return WaterfallPlot(panels=shown, ylabel=shown[0].row_label, note=_DOT.join([describe(shown), *extra]))


def lightcurve_plot(src: LightCurveSource) -> PlotData:
    """The light curve: each flux column against time in hours since the first point. A
    white-light table's columns (orders, detectors) are shown relative to their median, so
    they share the axis and a transit reads as a fractional depth."""
    times = src.times or [src.time] * len(src.fluxes)
    names = {t.name for t in times}
    name = times[0].name if len(names) == 1 else next((b for b in TIME_COLUMNS if times[0].name.startswith(b)),
                                                       times[0].name)
    x_all, xlabel = time_axis(np.concatenate([t.values for t in times]), name, times[0].unit)
    xs = np.split(x_all, np.cumsum([t.values.size for t in times])[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column has no median
        medians = [float(np.nanmedian(f.values)) for f in src.fluxes]
    relative = all(WHITELIGHT.match(f.name) for f in src.fluxes) and all(m > 0 for m in medians)
    series = []
    for x, flux, err, median in zip(xs, src.fluxes, src.errors, medians, strict=True):
        scale = median if relative else 1.0
        y = flux.values / scale
        e = err.values / scale if err is not None else None
        keep = np.isfinite(x) & np.isfinite(y)
        series.append(Series(x[keep], y[keep], None if e is None else np.nan_to_num(e[keep]),
                             flux.name if len(src.fluxes) > 1 else ""))
    rows = max(t.values.size for t in times)
    if relative:
        ylabel = "White-light flux / median"
        unit = f" {src.fluxes[0].unit}" if src.fluxes[0].unit else ""
        note = f"{rows} points" + _DOT + "median " + ", ".join(
            f"{f.name} {m:.4g}{unit}" for f, m in zip(src.fluxes, medians, strict=True))
    else:
        labels = ", ".join(f.name for f in src.fluxes)
        ylabel = axis_label(labels if len(src.fluxes) == 1 else "Flux", src.fluxes[0].unit)
        note = f"{rows} points"
    return PlotData(series=tuple(s for s in series if s.x.size), xlabel=xlabel, ylabel=ylabel,
                    style="points", note=note)


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


def _waterfall(plot: WaterfallPlot, title: str, info: str) -> Preview:
    png, pictures = render_waterfall_png(plot, title=title, subtitle=info)
    jpeg = thumbnail_jpeg(pictures[0][::-1], aspect=panel_aspect(len(plot.panels)))
    return Preview(png=png, jpeg=jpeg, kind="waterfall", note=_DOT.join(p for p in (info, plot.note) if p))


def _plot(plot: PlotData, kind: str, title: str, info: str) -> Preview:
    png = render_plot_png(plot, title=title, subtitle=info)
    jpeg = thumbnail_jpeg(render_plot_thumbnail_rgb(plot), background=(255, 255, 255))
    return Preview(png=png, jpeg=jpeg, kind=kind, note=_DOT.join(p for p in (info, plot.note) if p))
