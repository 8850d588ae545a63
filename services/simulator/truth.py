"""Truth files written beside the telemetry, so later stages can be scored.

Per exposure and detector (``<exposure_id>`` as in the telemetry file name):

- ``<exposure_id>_truth_rate.fits``: PRIMARY header (identifiers, timing, definitions, WCS)
  and image extensions, float32, shape (ny, nx) of the readout window:
  ``SCI``   DN/s: photo-electrons/s from sky + stars times the flat, divided by the gain;
            what a perfect detector-1 ``_rate`` holds (dark subtracted);
  ``DARK``  DN/s: dark current / gain (0 on reference pixels);
  ``STARS`` DN/s: the stars' part of SCI;
  ``FLUX``  e-/s: photo-electrons per second per pixel from sky + stars, before the flat
            (the sky is SKYLEVEL x AREA: uniform surface brightness);
  ``FLAT``  relative QE; ``GAIN`` e-/DN; ``AREA`` relative pixel area (distortion);
  and a ``DRIFTS`` table (INTEGRATION, GROUP 1-based; AMPLIFIER 0-based; PARITY 0 even,
  1 odd full-frame column, row for MIRI; OFFSET DN added to every pixel of that amplifier
  and parity, reference pixels included).
- ``<exposure_id>_truth_stars.ecsv``: one row per star that puts light in the window.
- ``<exposure_id>_truth_jumps.ecsv``: one row per injected cosmic ray.
- ``<exposure_id>_truth_lightcurve.ecsv`` (TSO exposures with a host star): one row per
  integration: mid time, relative flux and flux of the host star, its pixel position.
- ``<exposure_id>_truth_spectrum.ecsv`` (slit exposures: MIRI LRS, NIRSpec fixed slits
  and bright-object time series):
  one row per spectral pixel of the spectrum (the slit's ``span``: detector rows of the
  LRS, columns of NIRSpec): wavelengths, the source's intrinsic and observed f_nu, the
  slit's transmission, the trace, the electrons and the sky; meta: where the source sits
  in the slit, its continuum and lines (with the resolution element at each), the slit.
  The columns are named for the axes: the LRS table has ``row``, ``trace_x``,
  ``source_x``; a NIRSpec table ``column``, ``trace_y``, ``source_y``. The rate file of
  such an exposure also has a ``SKY`` image (e-/s, pixel area included: the slit's sky
  part of FLUX), and its STARS image is the source's part of SCI. NIRISS SOSS, whose two
  spectral orders share the window's columns: the rows of order 1's columns, then order
  2's, an ``order`` column (int) first, each row the order's own (its wavelengths, trace,
  electrons per Jy, the electrons it put in the column, its share of the slitless sky:
  a pixel sees the sum of the orders'); the meta the first order's (``slit`` its
  reference point), the lines listed per order, and ``orders``: each order's reference
  point (IMX, IMY), span of columns and band.
- ``<exposure_id>_truth_transmission.ecsv`` (spectroscopic time series with a transit:
  MIRI LRS slitless, NIRSpec bright objects): one row per spectral pixel of the spectrum
  (LRS row, NIRSpec column): wavelengths, the depth at full transit (intrinsic, and
  ``observed_depth``: the blocked light over the host's light in the pixel, through the
  line-spread function), the host's and the blocked electrons; meta: the white-light
  depths over the spectrograph's white-light band (``white_light_band_um``: LRS 5-12 um,
  NIRSpec G395M its whole spectrum, 2.87-5.10 um; electron- and f_nu-weighted) and the
  transit. Such an exposure's light curve is the white light over that band; its
  spectrum truth is the slit's table (LRS slitless: transmission 1 and the slitless sky).
  NIRISS SOSS: the rows of each order with its ``order`` (and ``orders`` in the meta), as
  its spectrum truth; the white light is order 1's whole band (0.867-2.855 um) and the
  light curve (``_truth_lightcurve.ecsv``) order 1's white light. NIRCam's grism time
  series (NRC_TSGRISM), one order: its spectrum and transmission tables name it too (an
  ``order`` column, 1, first, and ``orders`` in the meta), the rest as a NIRSpec table
  (``column``, ``trace_y``, ``source_y``; transmission 1 and the slitless sky); its white
  light is the whole F444W band, 3.88-4.98 um.
- ``<exposure_id>_truth_spectrum_s<source_id, 5 digits>.ecsv`` (NIRSpec MOS exposures):
  one per MSA source whose slitlet is on the detector, in the NIRSpec fixed-slit table's
  layout (its slitlet is the slit: ``trace_y`` the slitlet centre's trace), the meta
  adding the MSA source id, catalog star id, slitlet id, quadrant, row, columns, the
  primary shutter's column and the source's estimated place in it (0-1), and the
  dither point. The rate file has the ``SKY`` image (the open and failed-open shutters'
  sky) and STARS is the sources' part of SCI.

The PRIMARY header's WCS is the TRUE one (pointing error and distortion included, TAN-SIP);
TRUE_RA/TRUE_DEC/TRUE_ROL give the true pointing, PNT_DX/PNT_DY the injected shift of the
window centre (arcsec along detector x/y) and PNT_DROL the roll error; the ``_uncal``
headers carry the commanded pointing of the plan.

Per program: ``truth.json`` (seed, parameters, description, files).
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack
from astropy.time import Time

from .exposure import ExposureSimulation, OrderTruth
from .spectrograph import SPECTRAL_ORDERS, observed_spectrum

__all__ = ["transit_summary", "write_exposure_truth", "write_lightcurve_truth", "write_mos_truth",
           "write_spectrum_truth", "write_transmission_truth", "write_truth_index"]

_IMAGE_UNITS = {
    "SCI": ("DN/s", "(sky+stars) e-/s * flat / gain: expected slope after dark subtraction"),
    "DARK": ("DN/s", "dark current / gain"),
    "STARS": ("DN/s", "stars only: stars e-/s * flat / gain"),
    "FLUX": ("electron/s", "photo-electrons/s from sky + stars before the flat"),
    "FLAT": ("", "relative quantum efficiency (0 on dead and reference pixels)"),
    "GAIN": ("electron/DN", "gain"),
    "AREA": ("", "pixel area on the sky relative to a nominal pixel (distortion)"),
    "SKY": ("electron/s", "slit: the slit's sky e-/s (pixel area included), part of FLUX"),
}


def _primary_header(sim: ExposureSimulation) -> fits.Header:
    t = sim.truth
    h = fits.Header()
    h["TELESCOP"] = "JWST"
    h["ORIGIN"] = "jwst-dms simulator"
    h["FILETYPE"] = ("TRUTH", "noiseless truth of a simulated exposure")
    h["EXPID"] = (sim.name.exposure_id, "exposure id")
    h["PROGRAM"] = f"{sim.program:05d}"
    h["OBSERVTN"] = f"{sim.observation.number:03d}"
    h["VISIT"] = f"{sim.exposure.visit:03d}"
    h["EXPOSURE"] = f"{sim.exposure.exposure:05d}"
    h["INSTRUME"] = sim.detector.instrument
    h["DETECTOR"] = sim.detector.name
    h["FILTER"] = sim.observation.filter
    h["PUPIL"] = sim.observation.pupil
    h["SUBARRAY"] = sim.subarray.name
    h["SUBSTRT1"] = sim.subarray.xstart
    h["SUBSTRT2"] = sim.subarray.ystart
    h["SUBSIZE1"] = sim.subarray.xsize
    h["SUBSIZE2"] = sim.subarray.ysize
    h["READPATT"] = sim.observation.readpatt
    h["NINTS"] = sim.schedule.nints
    h["NGROUPS"] = sim.schedule.ngroups
    h["NFRAMES"] = sim.schedule.nframes
    h["GROUPGAP"] = sim.schedule.groupgap
    h["TFRAME"] = (sim.schedule.tframe, "[s] frame time")
    h["TGROUP"] = (sim.schedule.tgroup, "[s] group time")
    start = sim.start_time.astimezone(UTC)
    h["DATE-BEG"] = (start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "UTC start of the exposure")
    h["EXPSTART"] = (Time(start).mjd, "[d] UTC MJD start of the exposure")
    h["SKYLEVEL"] = (t.sky_level, "[electron/s/pixel] sky before the flat")
    h["PSFFWHM"] = (t.psf_fwhm, "[pixel] FWHM of the Gaussian PSF")
    h["WAVELEN"] = (t.wavelength, "[um] pivot wavelength")
    h["NSTARS"] = (len(t.star_table.id), "stars putting light in the window")
    h["NJUMPS"] = (len(t.jumps), "injected cosmic rays")
    for key, value in t.wcs.items():
        h[key] = value
    h["TRUE_RA"] = (t.pointing.ra, "[deg] true RA of the window centre")
    h["TRUE_DEC"] = (t.pointing.dec, "[deg] true Dec of the window centre")
    h["TRUE_ROL"] = (t.pointing.roll, "[deg] true roll (PA of detector +y)")
    h["PNT_DX"] = (t.pointing_offset[0], "[arcsec] injected shift along detector x")
    h["PNT_DY"] = (t.pointing_offset[1], "[arcsec] injected shift along detector y")
    h["PNT_DROL"] = (t.roll_error, "[deg] injected roll error")
    if t.slit is not None:
        spatial, spectral = ("y", "x") if t.slit.model.dispaxis == 1 else ("x", "y")
        h["SRCALONG"] = (t.slit.source.along, f"[arcsec] source along the slit (detector {spatial})")
        h["SRCACROS"] = (t.slit.source.across, f"[arcsec] source across the slit (det. {spectral})")
        h["SRC_X"] = (t.slit.x, "[pixel] source, 0-based full-frame column")
        h["SRC_Y"] = (t.slit.y, "[pixel] source, 0-based full-frame row")
        h["SKYSCALE"] = (t.slit.sky_scale, "factor on the slit's default sky spectrum")
        if t.slit.model.slit is not None:
            h["FXD_SLIT"] = (t.slit.model.slit, "NIRSpec fixed slit")
    if t.mrs is not None:
        h["BAND"] = (t.mrs.band, "MRS band")
        h["SRCALPHA"] = (t.mrs.alpha, "[arcsec] source alpha, MRS local frame")
        h["SRCBETA"] = (t.mrs.beta, "[arcsec] source beta, MRS local frame")
        h["SRC_V2"] = (t.mrs.v2, "[arcsec] source V2")
        h["SRC_V3"] = (t.mrs.v3, "[arcsec] source V3")
        h["SKYSCALE"] = (t.mrs.sky_scale, "factor on the MRS model's thermal sky")
    if t.mos is not None:
        h["NSLITLET"] = (len(t.mos.slitlets), "MSA slitlets on the detector")
        h["NFAILOPN"] = (len(t.mos.failed_open), "failed-open shutters lit (no slitlet there)")
        h["SKYSCALE"] = (t.mos.sky_scale, "factor on the slitlets' default sky spectrum")
    if t.reset_decay is not None:
        h["RSCDSCAL"] = (t.reset_decay.scale, "RSCD offset / previous int. signal at group 1")
        h["RSCDTAU"] = (t.reset_decay.tau, "[group] RSCD e-folding length")
        h["RSCDLMAX"] = (t.reset_decay.level_max, "[DN] cap on the previous int. signal")
    h.add_comment("SCI = (sky + stars) [e-/s] * FLAT / GAIN [DN/s]: the slope")
    h.add_comment("detector-1 should recover after superbias, refpix, linearity and")
    h.add_comment("dark corrections.")
    h.add_comment("DARK = dark current / GAIN [DN/s]; STARS = stars-only part of SCI.")
    h.add_comment("Pixel coordinates are 0-based in the readout window.")
    return h


def write_exposure_truth(sim: ExposureSimulation, directory: Path) -> list[Path]:
    """Write the three truth files of one exposure; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = sim.name.exposure_id
    t = sim.truth
    hdus = [fits.PrimaryHDU(header=_primary_header(sim))]
    arrays = {"SCI": t.rate, "DARK": t.dark, "STARS": t.stars, "FLUX": t.flux, "FLAT": t.flat, "GAIN": t.gain,
              "AREA": t.area}
    if t.slit is not None or t.mos is not None or t.wfss is not None or t.mrs is not None:
        arrays["SKY"] = (t.slit or t.mos or t.wfss or t.mrs).sky
    for name, data in arrays.items():
        hdu = fits.ImageHDU(np.asarray(data, np.float32), name=name)
        unit, what = _IMAGE_UNITS[name]
        hdu.header["BUNIT"] = unit
        hdu.header["CONTENT"] = what[:68]
        hdus.append(hdu)
    i, g, a, par = (ix.ravel() for ix in np.indices(t.drifts.shape))
    drifts = fits.BinTableHDU.from_columns(
        [
            fits.Column("INTEGRATION", "J", array=i + 1),
            fits.Column("GROUP", "J", array=g + 1),
            fits.Column("AMPLIFIER", "J", array=a),
            fits.Column("PARITY", "J", array=par),
            fits.Column("OFFSET", "D", unit="DN", array=t.drifts.ravel()),
        ],
        name="DRIFTS",
    )
    drifts.header["CONTENT"] = "per-group amplifier offsets (refpix drifts)"
    drifts.header["PARITYOF"] = ("ROW" if sim.detector.instrument == "MIRI" else "COLUMN", "full-frame parity")
    hdus.append(drifts)
    rate_path = directory / f"{stem}_truth_rate.fits"
    fits.HDUList(hdus).writeto(rate_path, overwrite=True)

    s = t.star_table
    stars = Table(
        {
            "id": s.id.astype(np.int64), "ra": s.ra, "dec": s.dec, "x": s.x, "y": s.y,
            "flux": s.flux, "flux_jy": s.flux_jy, "abmag": s.abmag, "flux_in_window": s.flux_in_window,
            "rate": s.rate, "peak_dn": s.peak_dn, "saturated": s.saturated.astype(bool),
        },
        units={"ra": "deg", "dec": "deg", "x": "pix", "y": "pix", "flux": "electron/s", "flux_jy": "Jy",
               "abmag": "mag(AB)", "flux_in_window": "electron/s", "rate": "DN/s", "peak_dn": "DN"},
    )
    stars.meta.update({
        "exposure_id": stem,
        "psf_fwhm_pix": t.psf_fwhm,
        "description": {
            "x, y": "0-based pixel position of the centre in the readout window",
            "flux": "whole-star photo-electrons/s (unit flat; a transited host star: mean over integrations)",
            "flux_jy": "flux * jy_per_electron(instrument, filter, pupil): flat-spectrum flux density, Jy",
            "abmag": "-2.5 log10(flux_jy / 3631 Jy)",
            "flux_in_window": "part of flux falling inside the window, e-/s",
            "rate": "DN/s the star adds to truth_rate SCI (sum of its pixels * flat / gain)",
            "peak_dn": "linear DN above bias (star+sky+dark) in the centre pixel at the last read frame",
            "saturated": "the centre pixel reaches the saturation threshold in an integration",
        },
    })
    if t.wfss is not None:  # the dispersed field: each star's spectrum, its undispersed place
        stars["spectrum"] = t.wfss.spectra_json()
        stars.meta["grism"] = t.wfss.grism.label
        stars.meta["sky_scale"] = t.wfss.sky_scale
        stars.meta["description"]["x, y"] = "0-based pixel of the star's undispersed image in the readout window"
        stars.meta["description"]["spectrum"] = ("JSON: continuum flux_jy at reference um, slope, lines "
                                                 "[[um, fwhm um, peak relative to the continuum]]")
    stars_path = directory / f"{stem}_truth_stars.ecsv"
    stars.write(stars_path, format="ascii.ecsv", overwrite=True)

    j = t.jumps
    jumps = Table(
        {
            "integration": j.integration.astype(np.int32), "group": j.group.astype(np.int32),
            "y": j.y.astype(np.int32), "x": j.x.astype(np.int32), "amplitude_dn": j.amplitude_dn,
        },
        units={"amplitude_dn": "DN"},
    )
    jumps.meta.update({
        "exposure_id": stem,
        "description": "cosmic rays: 1-based integration and first group containing the charge, "
        "0-based y/x in the window, deposit in linear DN (electrons / gain)",
    })
    jumps_path = directory / f"{stem}_truth_jumps.ecsv"
    jumps.write(jumps_path, format="ascii.ecsv", overwrite=True)
    return [rate_path, stars_path, jumps_path]


def write_spectrum_truth(sim: ExposureSimulation, directory: Path) -> Path | None:
    """Write ``<exposure_id>_truth_spectrum.ecsv`` of a slit exposure (None for any
    other): one row per spectral pixel of the spectrum, see the module docstring."""
    slit = sim.truth.slit
    if sim.truth.mrs is not None:
        return _write_mrs_spectrum_truth(sim, directory)
    if slit is None:
        return None
    tables = []
    for order in _orders(slit):
        pixel_electrons = _on_spectrum(order.model, sim, order.pixel_electrons)
        tables.append(_spectrum_table(order.model, slit.source, slit.sky_scale, pixel_electrons, slit.x, slit.y))
    table = _orders_table(tables, [o.model for o in _orders(slit)]) if _named_orders(slit) else tables[0]
    table.meta = {"exposure_id": sim.name.exposure_id, **table.meta}
    path = Path(directory) / f"{sim.name.exposure_id}_truth_spectrum.ecsv"
    table.write(path, format="ascii.ecsv", overwrite=True)
    return path


def _write_mrs_spectrum_truth(sim: ExposureSimulation, directory: Path) -> Path:
    """``<exposure_id>_truth_spectrum.ecsv`` of a MIRI MRS exposure: one row per detector
    row and channel of the detector (``channel`` 1 and 2 on MIRIFUSHORT, 3 and 4 on
    MIRIFULONG), the wavelength of the slice nearest the target's beta there and the
    target's f_nu seen through the channel's line-spread function."""
    mrs = sim.truth.mrs
    rows = np.arange(mrs.channels[0].wavelength.size)
    table = Table(
        {
            "channel": np.concatenate([np.full(rows.size, c.channel, np.int32) for c in mrs.channels]),
            "slice": np.concatenate([np.full(rows.size, 100 * c.channel + c.slice, np.int32) for c in mrs.channels]),
            "y": np.concatenate([rows] * len(mrs.channels)).astype(np.int32),
            "wavelength": np.concatenate([c.wavelength for c in mrs.channels]),
            "observed_jy": np.concatenate([c.fnu for c in mrs.channels]),
        },
        units={"wavelength": "um", "observed_jy": "Jy"},
    )
    table["flux_jy"] = mrs.spectrum(np.asarray(table["wavelength"], np.float64))
    table["flux_jy"].unit = "Jy"
    table.meta = {
        "exposure_id": sim.name.exposure_id,
        "band": mrs.band,
        "alpha_arcsec": mrs.alpha,
        "beta_arcsec": mrs.beta,
        "v2_arcsec": mrs.v2,
        "v3_arcsec": mrs.v3,
        "sky_scale": mrs.sky_scale,
        "description": {
            "channel": "MRS channel",
            "slice": "public slice number (100 channel + k) of the slice whose centre is nearest the source's beta",
            "y": "0-based full-frame row of the detector (the spectral pixel)",
            "wavelength": "wavelength of that slice at this row (the SPECWCS reference's)",
            "observed_jy": "the source's f_nu seen through the channel's line-spread function: what a perfect "
                           "extraction of the row's wavelength recovers",
            "flux_jy": "intrinsic f_nu at wavelength",
            "alpha_arcsec, beta_arcsec": "where the true pointing put the source in the channels' local frame",
        },
    }
    path = Path(directory) / f"{sim.name.exposure_id}_truth_spectrum.ecsv"
    table.write(path, format="ascii.ecsv", overwrite=True)
    return path


def _orders(slit) -> tuple[OrderTruth, ...]:
    """The spectral orders of a slit exposure's source (one but for NIRISS SOSS's two)."""
    blocked = None if slit.transit is None else slit.transit.blocked_electrons
    return slit.orders or (OrderTruth(slit.model, slit.pixel_electrons, blocked),)


def _named_orders(slit) -> bool:
    """Whether a slit exposure's truth tables name the spectral order of each row (an
    ``order`` column: the modes of :data:`.spectrograph.SPECTRAL_ORDERS`, NIRISS SOSS's
    two orders, NIRCam's grism its order 1)."""
    return len(_orders(slit)) > 1 or slit.model.exp_type in SPECTRAL_ORDERS


def _on_spectrum(model, sim: ExposureSimulation, per_window_pixel: np.ndarray) -> np.ndarray:
    """Values per spectral pixel of the window taken at the spectrum's pixels
    (``model.pixels()``; NaN where those are outside the window)."""
    pixels = model.pixels()
    window_start = (sim.subarray.xstart if model.dispaxis == 1 else sim.subarray.ystart) - 1
    in_window = pixels.astype(int) - window_start
    out = np.full(pixels.size, np.nan)
    inside = (in_window >= 0) & (in_window < per_window_pixel.size)
    out[inside] = per_window_pixel[in_window[inside]]
    return out


def _orders_table(tables: list[Table], models) -> Table:
    """One table of a mode's spectral orders (NIRISS SOSS; the module docstring): an
    ``order`` column first, then each order's rows in turn; the first order's meta, with
    every order's lines (each naming its order) and each order's reference point, span
    and band (``orders``)."""
    for table, model in zip(tables, models, strict=True):
        table.add_column(np.full(len(table), model.order, np.int32), name="order", index=0)
    out = vstack(tables, metadata_conflicts="silent")
    meta = dict(tables[0].meta)
    spectral = "column" if models[0].dispaxis == 1 else "row"
    if "lines" in meta:
        meta["lines"] = [{"order": model.order, **line}
                         for table, model in zip(tables, models, strict=True) for line in table.meta["lines"]]
    meta["orders"] = [{"order": m.order, "imx": m.imx, "imy": m.imy, "span": [int(v) for v in m.span],
                       "band_um": [float(v) for v in m.band]} for m in models]
    description = dict(meta.get("description", {}))
    if len(models) == 1:  # the mode's one order (NIRCam's grism: order 1)
        description["order"] = (f"the spectral order of the row, the mode's only one (orders: its reference point "
                                f"IMX/IMY, 1-based, its {spectral}s and its band)")
    else:
        description["order"] = (f"the spectral order of the row: the orders share the window's {spectral}s, each its "
                                f"own trace, wavelengths and throughput (orders: each one's reference point IMX/IMY, "
                                f"1-based, its {spectral}s and its band)")
    for key in ("wavelength", "electrons_per_jy", "source_e_per_s", "sky_e_per_s", "blocked_e_per_s"):
        if key in description and len(models) > 1:
            description[key] += " (this order's)"
    meta["description"] = description
    out.meta = meta
    return out


def write_mos_truth(sim: ExposureSimulation, directory: Path) -> list[tuple[dict, Path]]:
    """Write ``<exposure_id>_truth_spectrum_s<source_id>.ecsv`` for every MSA slitlet of a
    MOS exposure on its detector (none for any other exposure); returns (its MSA
    identification, path) per slitlet, in slitlet order."""
    mos = sim.truth.mos
    if mos is None:
        return []
    out = []
    for st in mos.slitlets:
        sl, model = st.slitlet, st.model
        # the undispersed image of the source: the reference point moved by its place
        x = model.imx - 1.0 + st.source.across / model.pixel_scale
        y = model.imy - 1.0 + st.source.along / model.pixel_scale
        table = _spectrum_table(model, st.source, mos.sky_scale, st.pixel_electrons, x, y)
        ident = {"source_id": sl.source_id, "star_id": st.star_id, "slitlet_id": sl.slitlet_id,
                 "quadrant": sl.quadrant, "row": sl.row, "columns": list(sl.columns), "primary_column": sl.primary,
                 "estimated_source_in_shutter_x": sl.source_x + 0.5, "estimated_source_in_shutter_y": sl.source_y + 0.5,
                 "dither_point": mos.dither_point}
        table.meta.update({"exposure_id": sim.name.exposure_id, "msa": ident,
                           "pointing_shift_arcsec": list(mos.shift)})
        table.meta["description"]["msa"] = (
            "the MSA source (source_id of the MSA metadata file; star_id its catalog star), its slitlet (slitlet_id; "
            "quadrant, row, columns as SHUTTER_INFO), the shutter holding it at this dither point "
            "(primary_column) and its estimated place there (0-1 of the pitch: x along the rows, y along the "
            "column); along/across_arcsec add the true pointing shift (pointing_shift_arcsec, window centre, "
            "detector x/y) with the opposite sign")
        path = Path(directory) / f"{sim.name.exposure_id}_truth_spectrum_s{sl.source_id:05d}.ecsv"
        table.write(path, format="ascii.ecsv", overwrite=True)
        out.append((ident, path))
    return out


def _spectrum_table(model, src, sky_scale: float, pixel_electrons: np.ndarray, x: float, y: float) -> Table:
    """The truth spectrum of a source in a slit (the module docstring): one row per
    spectral pixel of ``model.pixels()``; ``pixel_electrons`` the source's e-/s per pixel
    there (NaN outside the window); ``x``, ``y`` its undispersed 0-based full-frame pixel."""
    spectral, spatial = ("column", "y") if model.dispaxis == 1 else ("row", "x")
    pixels = model.pixels()
    shift = src.across / model.pixel_scale
    wavelength = model.wavelength(pixels)
    source_wavelength = model.wavelength(pixels - shift)
    sky = sky_scale * model.sky(wavelength)
    if model.slitless:  # every pixel sees the whole band's sky
        sky_e = model.slitless_sky_electrons(pixels, lambda wl: sky_scale * model.sky(wl))
    else:
        sky_e = model.sky_electrons(pixels, sky)
    trace = model.trace(pixels)
    table = Table(
        {
            spectral: pixels.astype(np.int32),
            "wavelength": wavelength,
            "source_wavelength": source_wavelength,
            "flux_jy": src.spectrum(source_wavelength),
            "observed_jy": observed_spectrum(model, src.spectrum, pixels, src.across),
            "transmission": model.slit_transmission(source_wavelength, src.across),
            f"trace_{spatial}": trace,
            f"source_{spatial}": trace + src.along / model.pixel_scale,
            "electrons_per_jy": model.electrons_per_jy(pixels),
            "source_e_per_s": pixel_electrons,
            "sky_mjy_sr": sky,
            "sky_e_per_s": sky_e,
        },
        units={"wavelength": "um", "source_wavelength": "um", "flux_jy": "Jy", "observed_jy": "Jy",
               f"trace_{spatial}": "pix", f"source_{spatial}": "pix", "electrons_per_jy": "electron/(s Jy)",
               "source_e_per_s": "electron/s", "sky_mjy_sr": "MJy/sr", "sky_e_per_s": "electron/s"},
    )
    along_axis, across_axis = ("+y", "+x") if model.dispaxis == 1 else ("+x", "+y")
    table.meta.update({
        "along_arcsec": src.along,
        "across_arcsec": src.across,
        f"shift_{spectral}s": shift,
        "x": x,
        "y": y,
        "continuum": {"flux_jy": src.spectrum.flux_jy, "reference_wavelength_um": src.spectrum.reference,
                      "slope": src.spectrum.slope},
        "lines": [{"wavelength": line.wavelength, "fwhm": line.fwhm, "strength": line.strength,
                   "resolution_element_um": float(model.resolution_element(line.wavelength)),
                   spectral: float(model.pixel(line.wavelength) + shift)}
                  for line in src.spectrum.lines],
        "sky_scale": sky_scale,
        "slit": {"exp_type": model.exp_type, "name": model.slit or model.aperture, "aperture": model.aperture,
                 "detector": model.detector, "filter": model.filter, "grating": model.grating,
                 "dispaxis": model.dispaxis, "imx": model.imx, "imy": model.imy, "width_arcsec": model.slit_width,
                 "length_arcsec": model.slit_length, "pixel_scale_arcsec": model.pixel_scale},
        "description": {
            spectral: f"0-based full-frame {spectral} of {model.detector}",
            "wavelength": f"wavelength of a slit-centred source at this {spectral} (the SPECWCS reference's)",
            "source_wavelength": f"wavelength of this source's light at this {spectral}: its offset across the "
                                 f"slit moves its spectrum by shift_{spectral}s {spectral}s",
            "flux_jy": "intrinsic f_nu at source_wavelength",
            "observed_jy": f"f_nu seen through the line-spread function: what a perfect extraction of the {spectral} "
                           "recovers with the slit-centred calibration once the slit loss is corrected",
            "transmission": "fraction of the source's light the slit passes (path loss) at source_wavelength",
            f"trace_{spatial}": f"0-based full-frame {spatial} where the slit centre images at this {spectral}",
            f"source_{spatial}": f"0-based full-frame {spatial} of the source's trace at this {spectral}",
            "electrons_per_jy": f"photo-electrons/s into this {spectral} per Jy of a slit-centred source, before "
                                "slit loss",
            "source_e_per_s": f"photo-electrons/s the source puts into this {spectral} of the window (before the "
                              "pixel area and the flat), about observed_jy * electrons_per_jy * transmission",
            "sky_mjy_sr": "sky surface brightness filling the slit at wavelength",
            "sky_e_per_s": ("photo-electrons/s per pixel from the sky, the whole band dispersed onto every pixel of "
                            f"the {spectral} (no slit; before the pixel area and the flat)") if model.slitless else (
                           "photo-electrons/s per pixel inside the slit from the sky (before the pixel area and the "
                           "flat)"),
            "along_arcsec, across_arcsec": f"source offset from the slit centre along the slit (detector "
                                           f"{along_axis}) and across it (detector {across_axis}), from the true "
                                           "pointing",
            "x, y": "the source's 0-based full-frame pixel (where the slit centre would image it undispersed)",
            "lines": f"the source's lines; resolution_element_um the FWHM of the line-spread function there, "
                     f"{spectral} the (fractional) {spectral} of its centre for this source",
        },
    })
    return table


def write_truth_index(path: Path, index: dict) -> Path:
    """Write ``truth.json`` (keys sorted, so the same run writes the same bytes)."""
    path = Path(path)
    path.write_text(json.dumps(index, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path


def transit_summary(curve, transit) -> dict:
    """The truth's account of a transit: ``depth`` the one the light curve is scaled to
    (the grey depth, or a depth spectrum's electron-weighted white-light depth), the
    depth spectrum when given, the trapezoid's timing and its mid-time."""
    summary = {"depth": curve.depth, "duration_s": transit.duration_s, "ingress_s": transit.ingress,
               "mid_time_s_after_observation_start": curve.mid_time_s, "mid_time_bjd_tdb": curve.mid_time_bjd_tdb}
    if transit.chromatic:
        summary["depth_spectrum"] = [[float(w), float(d)] for w, d in transit.depth_spectrum]
    return summary


def write_transmission_truth(sim: ExposureSimulation, directory: Path) -> Path | None:
    """Write ``<exposure_id>_truth_transmission.ecsv`` of a spectroscopic time series with
    a transit (None for any other exposure): one row per spectral pixel of the spectrum
    (NIRISS SOSS: of each order, with its ``order``; see the module docstring)."""
    slit = sim.truth.slit
    if slit is None or slit.transit is None:
        return None
    model, tr = slit.model, slit.transit
    spectral = "column" if model.dispaxis == 1 else "row"
    orders = _orders(slit)
    tables = [_transmission_table(order, slit.source.across, tr.transit, sim) for order in orders]
    named = _named_orders(slit)
    table = _orders_table(tables, [o.model for o in orders]) if named else tables[0]
    several = len(tables) > 1
    first = " of order 1" if several else ""
    curve = sim.truth.host.curve
    description = {
        spectral: f"0-based full-frame {spectral} of {model.detector}",
        "wavelength": f"wavelength at this {spectral} for a source at the reference point (the "
                      f"{'SPECTRACE' if several else 'SPECWCS'}'s)",
        "source_wavelength": f"wavelength of the host's light at this {spectral} (its true place)",
        "depth": "the transit depth at full transit at source_wavelength: the description's depth_spectrum "
                 "(or grey depth)",
        "observed_depth": f"blocked_e_per_s / source_e_per_s: the depth this {spectral} sees, the host's "
                          "spectrum times the depth seen through the line-spread function over the spectrum "
                          "seen through it (what a perfect extraction of in- and out-of-transit spectra gives)",
        "source_e_per_s": f"the host's photo-electrons/s in this {spectral} out of transit (before the pixel "
                          "area and the flat)",
        "blocked_e_per_s": f"the photo-electrons/s the planet blocks in this {spectral} at full transit",
        "white_light_depth": f"sum of blocked_e_per_s / sum of source_e_per_s over the {spectral}s{first} whose "
                             "source_wavelength is in white_light_band_um (a box sum of the rates)",
        "white_light_depth_fnu": f"the same with each {spectral}'s electrons divided by its electrons_per_jy (a "
                                 f"sum of the calibrated spectrum, Jy, over those {spectral}s)",
    }
    if named:
        description["order"] = table.meta["description"]["order"]
    if several:
        for key in ("source_e_per_s", "blocked_e_per_s"):
            description[key] += " through this order"
    table.meta = {
        "exposure_id": sim.name.exposure_id,
        **({"orders": table.meta["orders"]} if named else {}),
        "white_light_band_um": list(model.white_light_band),
        "white_light_depth": tr.depth_electrons,
        "white_light_depth_fnu": tr.depth_fnu,
        "transit": transit_summary(curve, tr.transit),
        "description": description,
    }
    path = Path(directory) / f"{sim.name.exposure_id}_truth_transmission.ecsv"
    table.write(path, format="ascii.ecsv", overwrite=True)
    return path


def _transmission_table(order: OrderTruth, across: float, transit, sim: ExposureSimulation) -> Table:
    """The transmission truth of one spectral order: per spectral pixel of its spectrum,
    the wavelengths, the intrinsic and observed depths, the host's and the blocked
    electrons (the module docstring)."""
    model = order.model
    pixels = model.pixels()
    source_e = _on_spectrum(model, sim, order.pixel_electrons)
    blocked_e = _on_spectrum(model, sim, order.blocked_electrons)
    spectral = "column" if model.dispaxis == 1 else "row"
    source_wavelength = model.wavelength(pixels - across / model.pixel_scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = blocked_e / source_e
    return Table(
        {
            spectral: pixels.astype(np.int32),
            "wavelength": model.wavelength(pixels),
            "source_wavelength": source_wavelength,
            "depth": transit.depth_at(source_wavelength),
            "observed_depth": observed,
            "source_e_per_s": source_e,
            "blocked_e_per_s": blocked_e,
        },
        units={"wavelength": "um", "source_wavelength": "um", "source_e_per_s": "electron/s",
               "blocked_e_per_s": "electron/s"},
    )


def write_lightcurve_truth(sim: ExposureSimulation, directory: Path) -> Path | None:
    """Write ``<exposure_id>_truth_lightcurve.ecsv`` of an exposure with a host star
    (None without one)."""
    host = sim.truth.host
    if host is None:
        return None
    start_mjd = Time(sim.start_time.astimezone(UTC)).mjd
    table = Table(
        {
            "integration": np.arange(1, len(host.curve.relative) + 1, dtype=np.int32),
            "mid_mjd_utc": start_mjd + host.curve.mid_s / 86400.0,
            "mid_bjd_tdb": host.curve.mid_bjd_tdb,
            "relative_flux": host.curve.relative,
            "host_flux": host.flux * host.curve.relative,
            "x": np.full(len(host.curve.relative), host.x),
            "y": np.full(len(host.curve.relative), host.y),
        },
        units={"mid_mjd_utc": "d", "mid_bjd_tdb": "d", "host_flux": "electron/s", "x": "pix", "y": "pix"},
    )
    transit = host.host.transit
    slit = sim.truth.slit
    spectral = slit is not None  # a spectroscopic time series: the host's light is its spectrum
    pixels = ("rows" if slit.model.dispaxis == 2 else "columns") if spectral else ""
    where = ("the slitless reference point" if slit.model.slitless else "the slit's reference point") if spectral \
        else ""
    if spectral and len(_orders(slit)) > 1:  # NIRISS SOSS: the white light is order 1's
        pixels, where = f"order 1 {pixels}", "order 1's reference point"
    table.meta.update({
        "exposure_id": sim.name.exposure_id,
        "host_star_id": host.id,
        "host_flux_out_of_transit": host.flux,
        "transit": None if transit is None else transit_summary(host.curve, transit),
        **({"white_light_band_um": list(slit.model.white_light_band)} if spectral else {}),
        "description": {
            "mid_mjd_utc": "mid time of the integration (INT_TIMES convention), UTC MJD",
            "mid_bjd_tdb": "the same instant at the solar-system barycentre (light arrival at the observatory, "
                           "its ephemeris), TDB, as MJD",
            "relative_flux": "host flux / out-of-transit flux, constant within the integration" + (
                f"; the white light: the spectrum's {pixels} in white_light_band_um, 1 - depth * (fraction of the "
                "full depth reached), depth the electron-weighted white-light depth" if spectral else ""),
            "host_flux": "host star photo-electrons/s in this integration" + (
                " in white_light_band_um (before the pixel area and the flat)" if spectral else ""),
            "x, y": "0-based window pixel of the host star (true pointing" + (
                f"; undispersed, where {where} images)" if spectral else ")"),
        },
    })
    path = Path(directory) / f"{sim.name.exposure_id}_truth_lightcurve.ecsv"
    table.write(path, format="ascii.ecsv", overwrite=True)
    return path
