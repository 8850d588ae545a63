"""One exposure of one detector: sky -> electron rate -> ramps, with its truth.

:func:`simulate_exposure` is deterministic in (seed, plan, identifiers): calling it again
returns the same arrays, which is how tests compare decoded telemetry with what the
simulator produced.

An imaging exposure sees the target's star field and a flat sky. A slit exposure (MIRI
LRS MIR_LRS-FIXEDSLIT, NIRSpec NRS_FIXEDSLIT) sees the target alone, dispersed by its slit
spectrograph (:mod:`.spectrograph`), over the sky spectrum that fills the slit: the
target's position in the slit comes from the true pointing (its RA/Dec through the
window's gwcs, :meth:`.spectrograph.SlitSpectrograph.place`: along the slit the offset of
the spatial pixel from the reference point's, across it the spectral pixel's, times the
pixel scale; LRS ``along = (x - (IMX - 1)) * 0.11"``, NIRSpec ``along = (y - (IMY - 1)) *
0.1"``), so pointing errors move it along and across the slit; target acquisition leaves
it within ``acquisition_error_arcsec`` of where the plan puts it. Both the source and the
sky are multiplied by the relative pixel area, as the imaging sky is (the FLAT reference
carries it, so a flat-fielded rate is electrons per nominal pixel); the PSF is the
spectrograph's (the pointing jitter's widening, a few mas against 0.03-0.47", is not
applied to the slit scene).

A spectroscopic time series, the MIRI LRS slitless one (MIR_LRS-SLITLESS, SLITLESSPRISM)
or NIRSpec's bright-object one (NRS_BRIGHTOBJ, SUB2048), is a slit exposure of its
spectrograph (:data:`.spectrograph.LRS_SLITLESS`: no slit loss, the whole band's sky on
every pixel; :data:`.spectrograph.NIRSPEC_BOTS`: G395M through S1600A1, whose slit cuts the
light and the sky as any slit's) whose target is the TSO host star: with a transit, the
light the planet blocks at full transit (the target's spectrum times the depth per
wavelength, through the same slit) is rendered too, and integration ``i`` sees the target
out of transit less ``k_i`` times that (``k_i`` the trapezoid's shape at its mid time,
:func:`.transit.light_curve`); the truth holds the mean over the integrations and
:class:`SlitTransitTruth`, its white light over the spectrograph's white-light band.
NIRISS SOSS (NIS_SOSS, SUBSTRIP256) is such a time series with two spectral orders in its
window (:func:`.spectrograph.spectral_orders`): each order renders the target (and the
blocked light, and its own slitless sky) into the window and the orders add up; the
target's place, measured from order 1's reference point, moves both traces alike; the
white light, and so the light curve's depth, is order 1's (:attr:`SlitTruth.orders` keeps
each order's electrons per column). NIRCam's grism time series (NRC_TSGRISM, SUBGRISM64
on NRCALONG, :data:`.spectrograph.NIRCAM_GRISM_TSO`) is such a time series with one order,
slitless as the LRS's.

A NIRSpec MOS exposure (NRS_MSASPEC, PRISM/CLEAR, NRS1 or NRS2 FULL) sees what its
observation's MSA metadata file opens at its dither point (:class:`.msa.MsaExposure`):
every slitlet of the quadrants its detector sees (NRS1: 1 and 3, NRS2: 2 and 4;
:data:`.spectrograph.MSA_QUADRANTS`) is a :func:`.spectrograph.msa_slitlet` holding its source (the MSA
source's spectrum, :func:`.msa.mos_source_spectrum`) at the file's estimated place in the
primary shutter: across the slitlet ``(x - 0.5) * 0.27"``, along it ``(primary - mean
column + y - 0.5) * 0.53"`` from the slitlet's centre, both moved by the exposure's true
pointing error (target acquisition, ``acquisition_error_arcsec``: the window centre's
shift (dx, dy) moves every source by (-dx, -dy) on the detector; a roll error's rotation
of the field is not applied to the sources); every open shutter, and every failed-open
one of those quadrants (:func:`.msa.failed_open_shutters`, a one-shutter slit where no
slitlet is planned), is filled by the sky. A shutter the file lists CLOSED (stuck
closed; the planner never opens one, another MSA plan may) passes nothing: a slitlet is
rendered as its runs of neighbouring open shutters (:func:`lit_shutter_runs`), each a slit
of its own, the source in the run holding its shutter. Each slitlet is rendered only over the window its spectrum can
reach (its spectral span +-15 columns, its length +-12 rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from shared.ephemeris import Ephemeris
from shared.imaging_wcs import TelescopePointing, fits_approximation, imaging_gwcs, v23tosky
from shared.instruments import (
    DetectorInfo,
    ExposureTiming,
    Subarray,
    detector,
    exposure_timing,
    subarray,
)
from shared.naming import ExposureName
from shared.plan import Observation, Plan, PlannedExposure, Pointing
from shared.spectra.msa import Slitlet
from shared.wcs import wcs_header

from .description import DEFAULT_SPECTRUM, SimulationSpec, TransitSpec
from .detector_model import (
    DetectorModel,
    apply_nonlinearity,
    make_detector_model,
    readout_channels,
    refout_row_parity,
)
from .distortion import (
    detector_distortion,
    detector_distortion_model,
    relative_area_window,
    window_v2v3,
)
from .ephemeris import simulated_ephemeris
from .guiding import exposure_blur, visit_jitter
from .mrs import (
    MRS_EXP_TYPE,
    PointSource,
    channels_on,
    point_source_truth,
    render_mrs,
    v2v3_to_alpha_beta,
)
from .msa import MsaExposure
from .optics import (
    ab_magnitude,
    default_sky_level,
    jy_per_electron,
    pivot_wavelength,
    psf_fwhm_arcsec,
)
from .pointing import pointing_error, reference_point_offset, tangent_project, true_pointing
from .ramps import (
    CosmicRays,
    FrameSchedule,
    PixelModel,
    ResetDecay,
    draw_cosmic_rays,
    draw_drifts,
    simulate_ramp,
    simulate_refout,
)
from .seeding import Stream, generator
from .sky import StarList, render_stars, star_population, stars_in_region
from .spectrograph import (
    MSA_QUADRANTS,
    MSA_SHUTTER_PITCH,
    NRS_MOS_EXP_TYPE,
    ModulatedSpectrum,
    SlitSource,
    SlitSpectrograph,
    SourceSpectrum,
    msa_slitlet,
    render_slit,
    slit_spectrograph,
    spectral_orders,
    wfss_grism,
)
from .transit import HostStar, LightCurve, light_curve, white_light_depth
from .wfss import WfssTruth, region_margin, wfss_scene

__all__ = [
    "ExposureSimulation",
    "ExposureTruth",
    "HostTruth",
    "MosSlitletTruth",
    "MosTruth",
    "MrsChannelTruth",
    "MrsTruth",
    "OrderTruth",
    "SlitTransitTruth",
    "SlitTruth",
    "StarTruth",
    "exposure_name",
    "host_star_id",
    "lit_shutter_runs",
    "simulate_exposure",
    "window_box",
    "window_gwcs",
]

_MARGIN_PIX = 2.0  # beyond the PSF radius, when collecting stars around a window


@dataclass(frozen=True)
class StarTruth:
    """Stars that put light in the window; all shape (n,).

    ``x``/``y`` 0-based window pixels; ``flux`` e-/s (whole star, unit flat; for a TSO
    host star with a transit, the mean over the integrations); ``flux_jy`` the same in Jy
    (:func:`optics.jy_per_electron`) and ``abmag`` as an AB magnitude;
    ``flux_in_window`` e-/s landing inside the window; ``rate`` DN/s the star adds to the
    truth rate image (sum over the window of its pixels x flat / gain); ``peak_dn`` linear
    DN above bias (star + sky + dark) in the pixel holding the centre at the last read
    frame of an integration (NaN when the centre is outside); ``saturated`` whether that
    pixel reaches the saturation threshold within an integration.
    """

    id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    flux_jy: np.ndarray
    abmag: np.ndarray
    flux_in_window: np.ndarray
    rate: np.ndarray
    peak_dn: np.ndarray
    saturated: np.ndarray


@dataclass(frozen=True)
class HostTruth:
    """The host star of a TSO exposure: ``flux`` e-/s out of transit, ``x``/``y`` 0-based
    window pixels, and its light curve (relative flux per integration). A spectroscopic time
    series' host is the target: ``flux`` its e-/s over the spectral pixels of the
    spectrograph's white-light band (NIRISS SOSS: order 1's; before the pixel area), ``x``/``y`` where it would
    image undispersed, the curve its white light."""

    id: int
    flux: float
    x: float
    y: float
    curve: LightCurve
    host: HostStar


@dataclass(frozen=True)
class SlitTruth:
    """The source of a slit exposure (:mod:`.spectrograph`).

    ``model`` the slit; ``source`` its spectrum and where the true pointing put it in the
    slit (``along``, ``across`` arcsec from the slit centre); ``x``/``y`` the target's
    0-based full-frame pixel (the true pointing's gwcs); ``sky_scale`` the factor on the
    slit's default sky spectrum (:meth:`.spectrograph.SlitSpectrograph.sky`; 0: no sky);
    ``pixel_electrons`` one per spectral pixel of the window (rows of an LRS window,
    columns of a NIRSpec one): the source's photo-electrons per second in it before the
    pixel area (what the spectrograph put there); ``sky`` (ny, nx): the sky's
    photo-electrons per second per pixel, pixel area included (part of
    ``ExposureTruth.flux``); ``orders`` every spectral order of the mode
    (:func:`.spectrograph.spectral_orders`), the first the slit's own (``model``,
    ``pixel_electrons`` and the transit's ``blocked_electrons``): one for every mode but
    NIRISS SOSS, whose two orders share the window (``pixel_electrons`` and ``sky`` are then
    order 1's, resp. the sum of the orders').
    """

    model: SlitSpectrograph
    source: SlitSource
    x: float
    y: float
    sky_scale: float
    pixel_electrons: np.ndarray
    sky: np.ndarray
    transit: SlitTransitTruth | None = None
    orders: tuple[OrderTruth, ...] = ()


@dataclass(frozen=True)
class OrderTruth:
    """One spectral order of a slit exposure's source: ``model`` the order's spectrograph;
    ``pixel_electrons`` per spectral pixel of the window (a NIRISS SOSS column) the
    photo-electrons per second the source put there through this order alone, before the
    pixel area; ``blocked_electrons`` the same for the light a transit blocks at full
    transit (None without a transit)."""

    model: SlitSpectrograph
    pixel_electrons: np.ndarray
    blocked_electrons: np.ndarray | None = None


@dataclass(frozen=True)
class SlitTransitTruth:
    """The transit of a spectroscopic time series' host star (the slit exposure's source).

    ``transit`` as described (grey ``depth`` or ``depth_spectrum``); ``blocked`` (ny, nx)
    the photo-electrons per second per pixel the planet blocks at full transit (the host's
    spectrum times the depth, rendered through the spectrograph, every order of it; pixel
    area included); ``blocked_electrons`` per spectral pixel of the window, e-/s before the
    pixel area (as :attr:`SlitTruth.pixel_electrons`, so their ratio is the depth each row
    sees through the line-spread function; NIRISS SOSS: order 1's, each order's in
    :attr:`SlitTruth.orders`); ``depth_electrons`` and ``depth_fnu`` the white-light depth
    over the spectrograph's ``white_light_band`` (NIRISS SOSS: order 1's) weighted by
    electrons (a box sum of the rates) and by f_nu (a sum of the calibrated spectrum over
    spectral pixels); ``band_electrons`` the host's e-/s in that band out of transit
    (before the pixel area).
    """

    transit: TransitSpec
    blocked: np.ndarray
    blocked_electrons: np.ndarray
    depth_electrons: float
    depth_fnu: float
    band_electrons: float


@dataclass(frozen=True)
class MosSlitletTruth:
    """One slitlet of a MOS exposure: ``model`` its spectrograph (that of its open shutters
    around the source's, :func:`lit_shutter_runs`), ``slitlet`` its shutters
    and source (from the MSA metadata file), ``source`` the source's spectrum and where it
    sits (``along``, ``across`` arcsec from the slitlet's centre, pointing error
    included), ``star_id`` its catalog star; ``pixel_electrons`` one per spectral pixel of
    ``model.pixels()``: the source's photo-electrons per second in that column (summed
    over the slitlet's rows) before the pixel area."""

    model: SlitSpectrograph
    slitlet: Slitlet
    source: SlitSource
    star_id: int
    pixel_electrons: np.ndarray


@dataclass(frozen=True)
class MosTruth:
    """The MSA scene of a MOS exposure: its dither point, its slitlets with a source on the
    detector (NRS1: quadrants 1 and 3, NRS2: 2 and 4), the failed-open shutters that lit the sky where no slitlet was planned (one-shutter
    spectrographs), the pointing shift (dx, dy) arcsec that moved the sources by (-dx,
    -dy), ``sky_scale`` the factor on the default sky and ``sky`` (ny, nx) the sky's
    photo-electrons per second per pixel, pixel area included (part of
    ``ExposureTruth.flux``)."""

    dither_point: int
    slitlets: tuple[MosSlitletTruth, ...]
    failed_open: tuple[SlitSpectrograph, ...]
    shift: tuple[float, float]
    sky_scale: float
    sky: np.ndarray


@dataclass(frozen=True)
class MrsChannelTruth:
    """One channel of an MRS exposure's detector: its number, the slice ``k`` (1-based) whose
    centre is nearest the target's beta, and per row of the detector (0-1023) the
    wavelength (um) of that slice and ``fnu`` (Jy) the target's spectrum seen through the
    channel's line-spread function (:func:`.mrs.point_source_truth`)."""

    channel: int
    slice: int
    wavelength: np.ndarray
    fnu: np.ndarray


@dataclass(frozen=True)
class MrsTruth:
    """The scene of a MIRI MRS exposure (:mod:`.mrs`): ``band``; ``alpha``/``beta`` arcsec
    where the true pointing put the target in the channels' local frame (``v2``/``v3`` its
    telescope coordinates); ``source`` (ny, nx) the target's photo-electrons per second per
    pixel (what :func:`.mrs.render_mrs` gives; no pixel-area term: the slicer's geometry is
    the whole geometry); ``sky`` (ny, nx) the sky's, ``sky_scale`` the factor on the model's
    thermal background (0: none); ``channels`` the truth spectrum of each channel;
    ``spectrum`` the source's."""

    band: str
    alpha: float
    beta: float
    v2: float
    v3: float
    source: np.ndarray
    sky: np.ndarray
    sky_scale: float
    channels: tuple[MrsChannelTruth, ...]
    spectrum: SourceSpectrum


@dataclass(frozen=True)
class ExposureTruth:
    """Noiseless truth of a window, arrays of shape (ny, nx) unless stated.

    ``flux``      photo-electrons/s per pixel from sky + stars, before the flat (the sky
                  is ``sky_level * area``: uniform surface brightness; a slit exposure:
                  the dispersed source + the slit's sky, times ``area``);
    ``rate``      DN/s: ``flux * flat / gain`` (what a perfect detector-1 slope gives after
                  dark subtraction; the mean over integrations for a variable host star);
    ``dark``      DN/s: ``dark current (e-/s) / gain``;
    ``stars``     DN/s from stars only (``rate`` minus the sky; a slit exposure: its source);
    ``flat``, ``gain`` the detector model in the window; ``area`` relative pixel area;
    ``sky_level`` e-/s per nominal pixel (a slit exposure: in the slit at its reference
    point's spectral pixel); ``psf_fwhm`` pixels; ``wcs`` SCI-header WCS
    keywords of the window at the TRUE pointing: the TAN-SIP approximation of the gwcs the
    stars were placed through (distortion included), and its RA_REF/DEC_REF/ROLL_REF/
    V2_REF/V3_REF; ``pointing`` the true pointing, ``pointing_offset`` (dx, dy)
    arcsec along detector x/y from the planned one and ``roll_error`` degrees;
    ``drifts`` DN, shape (nints, ngroups, namps, 2): the offset added to every pixel of an
    amplifier (reference pixels included) per group, by column parity (row parity, MIRI);
    ``host`` the TSO host star (None without one); ``reset_decay`` the MIRI reset-switch
    charge decay applied to integrations 2..NINTS (None: none); ``jitter_rms_mas`` the rms
    radial pointing jitter about its mean over the exposure (true, not as measured) from
    ``jitter_samples`` 16 Hz samples, by which ``psf_fwhm`` was widened (0: unguided);
    ``slit`` the source of a slit exposure (None: imaging); ``mos`` the MSA scene of a
    NIRSpec MOS exposure (None otherwise); ``wfss`` the dispersed field of a wide-field
    slitless exposure (None otherwise: its ``star_table`` lists the stars whose spectra
    it renders, at their undispersed places, and ``sky_level`` is its sky's median).
    """

    flux: np.ndarray
    rate: np.ndarray
    dark: np.ndarray
    stars: np.ndarray
    flat: np.ndarray
    gain: np.ndarray
    sky_level: float
    psf_fwhm: float
    wavelength: float
    star_table: StarTruth
    jumps: CosmicRays
    wcs: dict
    drifts: np.ndarray
    area: np.ndarray
    pointing: Pointing
    pointing_offset: tuple[float, float]
    roll_error: float
    host: HostTruth | None = None
    reset_decay: ResetDecay | None = None
    jitter_rms_mas: float = 0.0
    jitter_samples: int = 0
    slit: SlitTruth | None = None
    mos: MosTruth | None = None
    wfss: WfssTruth | None = None
    mrs: MrsTruth | None = None


@dataclass(frozen=True)
class ExposureSimulation:
    """Everything simulated for one exposure of one detector.

    ``sci`` uint16 (nints, ngroups, ny, nx); ``zeroframe`` uint16 (nints, ny, nx) for
    near-IR detectors; ``refout`` uint16 (nints, ngroups, ny/4, nx) for MIRI.
    """

    name: ExposureName
    program: int
    observation: Observation
    exposure: PlannedExposure
    detector: DetectorInfo
    subarray: Subarray
    timing: ExposureTiming
    schedule: FrameSchedule
    start_time: datetime
    sci: np.ndarray
    zeroframe: np.ndarray | None
    refout: np.ndarray | None
    truth: ExposureTruth


def exposure_name(plan: Plan, obs: Observation, exp: PlannedExposure, suffix: str = "uncal") -> ExposureName:
    """The JWST name of an exposure (``.exposure_id`` names its telemetry and truth)."""
    return ExposureName(
        program=plan.program, observation=obs.number, visit=exp.visit, visit_group=exp.visit_group,
        sequence=exp.sequence, activity=f"{exp.activity:02d}", exposure=exp.exposure,
        detector=exp.detector.lower(), suffix=suffix,
    )


def _exposure_entropy(seed: int, plan: Plan, obs: Observation, exp: PlannedExposure, det: DetectorInfo) -> tuple[int, ...]:
    return (seed, Stream.EXPOSURE, int(plan.program), obs.number, exp.visit, exp.visit_group,
            exp.sequence, exp.activity, exp.exposure, det.code)


def _pointing_identifiers(plan: Plan, obs: Observation, exp: PlannedExposure) -> tuple[int, ...]:
    """What an exposure's pointing error is drawn from: the exposure's identifiers; a
    wide-field slitless visit's exposures, its direct images and dispersed exposures,
    share one draw (the visit's: one guide star holds them, so the sources keep their
    places between them to the dither's exactness, which the dispersed exposures'
    spectra are found by)."""
    if obs.direct_image is not None:
        return (int(plan.program), obs.number, exp.visit, exp.visit_group, exp.sequence)
    return (int(plan.program), obs.number, exp.visit, exp.visit_group, exp.sequence, exp.activity, exp.exposure)


def host_star_id(target_id: int) -> int:
    """Star id of a target's TSO host star (no sky tile uses tile index -50000)."""
    return target_id * 10**15


def _with_host(stars: StarList, target, flux: float) -> StarList:
    return StarList(
        id=np.append(stars.id, np.int64(host_star_id(target.id))), ra=np.append(stars.ra, target.ra),
        dec=np.append(stars.dec, target.dec), flux=np.append(stars.flux, flux),
    )


def simultaneous_host(host: HostStar, spectrum: SourceSpectrum, obs: Observation) -> HostStar:
    """The host star of a spectroscopic time series as an imaging channel read at the same
    time sees it (``obs`` that channel's view): a star of the electrons per second its
    spectrum's f_nu at the filter's pivot wavelength gives through the filter, with the
    same transit."""
    pivot = pivot_wavelength(obs.instrument, obs.filter, obs.pupil)
    flux_jy = float(spectrum(np.array([pivot]))[0])
    return HostStar(flux=flux_jy / jy_per_electron(obs.instrument, obs.filter, obs.pupil), transit=host.transit)


def window_gwcs(det: DetectorInfo, sub: Subarray, pointing: Pointing):
    """The gwcs of a readout window whose centre (V2/V3 of the detector's distortion model)
    points at ``pointing`` (RA, Dec, roll of +V3): how the optics put the sky on it."""
    v2_ref, v3_ref = window_v2v3(det, sub)
    return imaging_gwcs(detector_distortion_model(det),
                        TelescopePointing(pointing.ra, pointing.dec, pointing.roll, v2_ref, v3_ref),
                        xstart=sub.xstart, ystart=sub.ystart, xsize=sub.xsize, ysize=sub.ysize)


def window_box(gw, target, nx: int, ny: int, margin: float | tuple[float, float, float, float]
               ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Bounding box, in the target's standard coordinates (arcsec), of a window grown by
    ``margin`` pixels, or by (left, right, bottom, top) pixels (``gw``: the window's gwcs)."""
    left, right, bottom, top = (margin,) * 4 if np.isscalar(margin) else margin
    xs = np.array([-left, nx - 1 + right, nx - 1 + right, -left])
    ys = np.array([-bottom, -bottom, ny - 1 + top, ny - 1 + top])
    ra, dec = gw(xs, ys, with_bounding_box=False)
    xi, eta = tangent_project(target.ra, target.dec, ra, dec)
    return (float(xi.min()), float(xi.max())), (float(eta.min()), float(eta.max()))


def simulate_exposure(
    plan: Plan,
    obs: Observation,
    exp: PlannedExposure,
    knobs: SimulationSpec,
    *,
    model: DetectorModel | None = None,
    noiseless: bool = False,
    host: HostStar | None = None,
    ephemeris: Ephemeris | None = None,
    spectrum: SourceSpectrum | None = None,
    msa: MsaExposure | None = None,
) -> ExposureSimulation:
    """Simulate one planned exposure of one detector.

    Parameters
    ----------
    plan, obs, exp
        The plan, the observation and the exposure (from the plan).
    knobs : SimulationSpec
        Seeds, sky, pointing-error and cosmic-ray parameters.
    model : DetectorModel, optional
        Full-frame model of ``exp.detector`` (made from ``knobs.detector_seed`` if absent).
    noiseless : bool
        No Poisson noise, read noise, drifts or cosmic rays (for tests of the truth). The
        pointing error is kept (it is where the telescope pointed, not noise).
    host : HostStar, optional
        The TSO host star of the observation (:func:`runner.host_star` builds it from the
        description); None: no extra star.
    ephemeris : Ephemeris, optional
        The observatory's ephemeris, which times the host's light curve (default: the
        simulated halo orbit over the plan, :func:`ephemeris.simulated_ephemeris`).
    spectrum : SourceSpectrum, optional
        The target's spectrum in a slit exposure (:func:`runner.target_spectrum`
        gives the description's); None: :data:`description.DEFAULT_SPECTRUM`. Ignored by
        imaging exposures.
    msa : MsaExposure, optional
        What the MSA opens at this exposure's dither point (:func:`.msa.msa_exposure`);
        required by, and only by, a NIRSpec MOS exposure.
    """
    det = detector(exp.detector)
    whole = obs  # the telescope points the whole observation (its aperture); a detector of a
    obs = obs.for_exposure(exp)  # a simultaneous channel, or a direct image, takes its own mode and window
    sub = subarray(obs.instrument, obs.subarray, exp.detector)
    timing = exposure_timing(obs.instrument, sub, obs.readpatt, obs.ngroups, obs.nints)
    schedule = FrameSchedule.for_exposure(obs.instrument, sub, obs.readpatt, obs.ngroups, obs.nints)
    model = model or make_detector_model(det, knobs.detector_seed)
    if model.detector.name != det.name:
        raise ValueError(f"detector model of {model.detector.name} given for {det.name}")
    win = model.window(sub)
    ny, nx = sub.ysize, sub.xsize

    # Where the telescope really pointed, and the window's gwcs there: the detector's
    # distortion to (V2, V3), then the true pointing of the window centre (V2_REF, V3_REF).
    # a slit observation starts with a target acquisition, which leaves the target within
    # its (much smaller) error of the slit's reference point
    slit_model = slit_spectrograph(obs.exp_type, obs.fixed_slit)
    mos = obs.exp_type.upper() == NRS_MOS_EXP_TYPE
    if mos != (msa is not None):
        raise ValueError(f"observation {obs.number} ({obs.exp_type}): the MSA configuration (msa) is given for, and "
                         "only for, a NIRSpec MOS exposure")
    if mos and det.name not in MSA_QUADRANTS:
        raise ValueError(f"a NIRSpec MOS exposure is simulated on NRS1 (MSA quadrants 1 and 3) or NRS2 (2 and 4), "
                         f"not {det.name}")
    mrs = obs.exp_type.upper() == MRS_EXP_TYPE
    if mrs and not obs.band:
        raise ValueError(f"observation {obs.number} ({MRS_EXP_TYPE}) names no band")
    spectral = slit_model is not None or mos or mrs
    acquired = spectral or slit_spectrograph(whole.exp_type, whole.fixed_slit) is not None  # a channel: the grism's
    rms = knobs.acquisition_error_arcsec if acquired else knobs.pointing_error_arcsec
    error = pointing_error(knobs.seed, _pointing_identifiers(plan, whole, exp), rms, knobs.roll_error_deg)
    offset = reference_point_offset(det, [detector(n) for n in whole.detectors], sub,
                                    slit_spectrograph(whole.exp_type, whole.fixed_slit))
    true, dx, dy = true_pointing(exp.pointing, error, offset)
    gw = window_gwcs(det, sub, true)
    v2_ref, v3_ref = window_v2v3(det, sub)
    area = relative_area_window(detector_distortion(det), sub.xstart, sub.ystart, nx, ny)
    if mrs:  # the slicer's geometry is the whole geometry (its PHOTOM's pixel sizes); no imaging distortion
        area = np.ones((ny, nx))

    # Sky: stars through the window's WCS, plus a background of uniform surface brightness;
    # in a slit, the target alone over the slit's sky; in the MSA, its slitlets' sources.
    target = plan.target(obs.target_id)
    # the sky's reference: the slit, or a shutter (every MSA shutter shares its prism and sky)
    sky_model = msa_slitlet(MSA_QUADRANTS[det.name][0], 1, (1,)) if mos else slit_model
    grism = wfss_grism(obs.exp_type, obs.filter, obs.pupil)  # a wide-field slitless exposure's
    if mrs:  # the middle of the band of the detector's first channel
        wavelength = float(np.mean(channels_on(det.name)[0].bands[obs.band]))
    elif spectral:  # its reference wavelength
        wavelength = float(sky_model.wavelength(sky_model.s_ref))
    else:
        wavelength = pivot_wavelength(obs.instrument, obs.filter, obs.pupil)
    fwhm = psf_fwhm_arcsec(wavelength, obs.pupil) / det.pixel_scale
    # Fine guidance: the pointing wanders by the jitter during the exposure, which widens
    # the PSF by the jitter's variance over the exposure's time.
    jitter_var, jitter_rms, jitter_samples = 0.0, 0.0, 0
    if obs.guide_star(exp.visit) is not None and knobs.jitter_mas > 0:
        jitter = visit_jitter(plan, obs, exp.visit, knobs.seed, knobs.jitter_mas, knobs.jitter_time_s)
        jitter_var, jitter_rms, jitter_samples = exposure_blur(jitter, exp.start_time, timing.duration)
        sigma_pix2 = jitter_var / (1000.0 * det.pixel_scale) ** 2
        if not spectral:  # the slit scene is drawn with the spectrograph's PSF
            fwhm = float(np.sqrt(fwhm**2 + 8.0 * np.log(2.0) * sigma_pix2))
    if spectral:
        stars = StarList(id=np.zeros(0, np.int64), ra=np.zeros(0), dec=np.zeros(0), flux=np.zeros(0))
    else:
        psf_radius = 6.0 * fwhm / 2.3548 + 1.0
        # a WFSS window sees stars beyond it whose spectra reach it
        margin = psf_radius + _MARGIN_PIX if grism is None else \
            tuple(m + psf_radius + _MARGIN_PIX for m in region_margin(grism))
        xi_range, eta_range = window_box(gw, target, nx, ny, margin)
        stars = stars_in_region(target, knobs.seed, star_population(plan, target.id, knobs), xi_range, eta_range)
    curve = None
    ephemeris = ephemeris or simulated_ephemeris(plan)
    if host is not None and host.flux is None and not spectral:
        # the imaging channel of a spectroscopic time series (NIRCam's short wave beside its
        # grism): the target's spectrum at the filter's pivot, and the transit's depth there
        host = simultaneous_host(host, spectrum or DEFAULT_SPECTRUM.source_spectrum(), obs)
    if host is not None and host.flux is not None:  # an imaging time series' host star
        curve = light_curve(host, obs, target, exp.start_time, schedule, ephemeris,
                            depth=None if host.transit is None or not host.transit.chromatic
                            else float(host.transit.depth_at(wavelength)))
        stars = _with_host(stars, target, host.flux * float(np.mean(curve.relative)))
    sx, sy = _world_to_pixel(gw, stars)
    sky_level = knobs.sky_level if knobs.sky_level is not None else default_sky_level(obs.instrument, wavelength)
    wfss = None
    if grism is not None:  # the stars dispersed; the direct images' filter reads their fluxes
        direct = whole.direct_image
        photometry = (obs.instrument, direct.filter, direct.pupil) if direct is not None else \
            (obs.instrument, obs.filter, obs.pupil)
        wfss_image, wfss = wfss_scene(grism, stars, sx, sy, sub,
                                      sky_level / default_sky_level(obs.instrument, wavelength), area, knobs.seed,
                                      photometry)
        stars, sx, sy = wfss.stars, wfss.x, wfss.y
    weights = np.divide(win.flat, win.gain, dtype=np.float64)
    rendered = render_stars(sx, sy, stars.flux, fwhm, (ny, nx), weights=weights)
    slit = mos_truth = mrs_truth = None
    if spectral:
        # the description's sky level scales the sky spectrum as it would the imaging sky
        sky_scale = sky_level / default_sky_level(obs.instrument, wavelength)
        if mrs:
            mrs_truth = _mrs_scene(det.name, obs.band, true, v2_ref, v3_ref, target,
                                   spectrum or DEFAULT_SPECTRUM.source_spectrum(), sky_scale)
            source_image = mrs_truth.source
            flux = mrs_truth.source + mrs_truth.sky
        elif mos:
            source_image, mos_truth = _mos_scene(msa, det.name, sub, (dx, dy), sky_scale, area)
            flux = source_image + mos_truth.sky
        else:
            transit = host.transit if host is not None else None
            source_image, slit = _slit_scene(slit_model, gw, target, sub,
                                             spectrum or DEFAULT_SPECTRUM.source_spectrum(), sky_scale, area,
                                             transit=transit)
            if host is not None:  # a spectroscopic time series: the target is the host star
                curve = light_curve(host, obs, target, exp.start_time, schedule, ephemeris,
                                    depth=None if slit.transit is None else slit.transit.depth_electrons)
                if slit.transit is not None:  # the mean over the integrations, as a variable star's
                    source_image = source_image - float(np.mean(curve.shape)) * slit.transit.blocked
            flux = source_image + slit.sky
        centre = np.array([sky_model.s_ref]) if sky_model is not None else None
        if mrs:  # the median sky of the slices' pixels
            lit = mrs_truth.sky > 0
            sky_level = float(np.median(mrs_truth.sky[lit])) if lit.any() else 0.0
        elif sky_model.slitless:  # the whole band's sky (of every order) on the reference point's row
            sky_level = float(sum(m.slitless_sky_electrons(centre, lambda wl, m=m: sky_scale * m.sky(wl))[0]
                                  for m in spectral_orders(sky_model)))
        else:
            sky_level = float(sky_model.sky_electrons(centre, sky_scale * sky_model.sky(sky_model.wavelength(centre)))[0])
    elif wfss is not None:
        source_image = wfss_image
        flux = wfss_image + wfss.sky
        sky_level = float(np.median(wfss.sky / area))
    else:
        source_image = rendered.image
        flux = rendered.image + sky_level * area
    detected = flux * win.flat
    electron_rate = detected + win.dark
    truth_rate = detected / win.gain
    truth_dark = win.dark / win.gain
    star_rate = source_image * weights
    host_truth = None
    if curve is not None and slit is not None:  # the spectrum's light changes from one integration to the next
        band = slit.transit.band_electrons if slit.transit is not None else _band_electrons(slit, sub)
        host_truth = HostTruth(int(host_star_id(target.id)), band, slit.x - (sub.xstart - 1),
                               slit.y - (sub.ystart - 1), curve, host)
        if slit.transit is not None:
            change = -(curve.shape - float(np.mean(curve.shape)))
            electron_rate = electron_rate[None] + change[:, None, None] * (slit.transit.blocked * win.flat)[None]
    elif curve is not None:
        host_truth = HostTruth(int(host_star_id(target.id)), host.flux, float(sx[-1]), float(sy[-1]), curve, host)
        if host.transit is not None:  # the host's flux changes from one integration to the next
            unit = render_stars(sx[-1:], sy[-1:], np.ones(1), fwhm, (ny, nx)).image * win.flat
            change = host.flux * (curve.relative - float(np.mean(curve.relative)))
            electron_rate = electron_rate[None] + change[:, None, None] * unit[None]

    # Random streams of this exposure.
    entropy = _exposure_entropy(knobs.seed, plan, obs, exp, det)
    sensitive = ~win.refpix & (win.flat > 0)
    if noiseless or knobs.cosmic_ray_rate == 0:
        crs = CosmicRays.none()
    else:
        crs = draw_cosmic_rays(generator(*entropy, 1), schedule, sensitive, knobs.cosmic_ray_rate,
                               (knobs.cosmic_ray_min_dn, knobs.cosmic_ray_max_dn))
    channels, nchannels = readout_channels(det, sub)
    p = model.params
    drifts = draw_drifts(generator(*entropy, 2), obs.nints, obs.ngroups, nchannels // 2,
                         p.drift_common, p.drift_amplifier, p.drift_parity)
    if noiseless:
        drifts = np.zeros_like(drifts)
    pixels = PixelModel(gain=win.gain, bias=win.bias, read_noise=win.read_noise, nonlin=win.nonlin,
                        full_well=win.full_well, channels=channels)
    reset_decay = ResetDecay.of(p) if obs.nints > 1 else None
    ramp = simulate_ramp(electron_rate, pixels, schedule, drifts, crs, (*entropy, 3),
                         zeroframe=det.instrument in ("NIRCAM", "NIRISS", "NIRSPEC"), noiseless=noiseless,
                         reset_decay=reset_decay)
    refout = None
    if det.has_refout:
        refout = simulate_refout(win.refout_level(), float(np.median(win.read_noise)), refout_row_parity(sub),
                                 drifts, schedule, generator(*entropy, 4), noiseless=noiseless)

    # Star truth: stars that put light in the window (WFSS: whose spectra reach it).
    keep = np.arange(len(stars)) if wfss is not None else np.flatnonzero(rendered.captured > 1e-9)
    xk, yk = sx[keep], sy[keep]
    ix, iy = np.floor(xk + 0.5).astype(int), np.floor(yk + 0.5).astype(int)
    inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    ixc, iyc = np.clip(ix, 0, nx - 1), np.clip(iy, 0, ny - 1)
    peak = (truth_rate + truth_dark)[iyc, ixc] * schedule.last_frame_time
    raw_peak = win.bias[iyc, ixc] + apply_nonlinearity(peak, win.nonlin[iyc, ixc])
    # (a slit exposure has no stars, and its prism no flat-spectrum photometry)
    flux_jy = stars.flux[keep] * (0.0 if spectral else jy_per_electron(obs.instrument, obs.filter, obs.pupil))
    star_table = StarTruth(
        id=stars.id[keep], ra=stars.ra[keep], dec=stars.dec[keep], x=xk, y=yk,
        flux=stars.flux[keep], flux_jy=flux_jy, abmag=ab_magnitude(flux_jy),
        flux_in_window=stars.flux[keep] * rendered.captured[keep],
        rate=rendered.weighted[keep],
        peak_dn=np.where(inside, peak, np.nan),
        saturated=inside & (raw_peak >= win.saturation[iyc, ixc]),
    )
    wcs_kw = {**wcs_header(fits_approximation(gw, (ny, nx))), "RA_REF": true.ra, "DEC_REF": true.dec,
              "ROLL_REF": true.roll, "V2_REF": v2_ref, "V3_REF": v3_ref}
    truth = ExposureTruth(
        flux=flux.astype(np.float32), rate=truth_rate.astype(np.float32), dark=truth_dark.astype(np.float32),
        stars=star_rate.astype(np.float32), flat=np.asarray(win.flat), gain=np.asarray(win.gain),
        sky_level=float(sky_level), psf_fwhm=float(fwhm), wavelength=float(wavelength),
        star_table=star_table, jumps=crs, wcs=wcs_kw, drifts=drifts, area=area.astype(np.float32),
        pointing=true, pointing_offset=(dx, dy), roll_error=error.droll, host=host_truth,
        reset_decay=reset_decay, jitter_rms_mas=jitter_rms, jitter_samples=jitter_samples, slit=slit,
        mos=mos_truth, wfss=wfss, mrs=mrs_truth,
    )
    return ExposureSimulation(
        name=exposure_name(plan, obs, exp), program=int(plan.program), observation=obs, exposure=exp,
        detector=det, subarray=sub, timing=timing, schedule=schedule, start_time=exp.start_time,
        sci=ramp.sci, zeroframe=ramp.zeroframe, refout=refout, truth=truth,
    )


def _slit_scene(model: SlitSpectrograph, gw, target, sub: Subarray, spectrum: SourceSpectrum, sky_scale: float,
                area: np.ndarray, transit: TransitSpec | None = None) -> tuple[np.ndarray, SlitTruth]:
    """The slit scene of a window: the target's photo-electrons per second per pixel
    (pixel area included) and its truth (the sky's image with it).

    ``gw`` the window's gwcs at the true pointing, which places the target in the slit;
    ``sky_scale`` the factor on the slit's default sky (0: no sky); ``transit`` a
    spectroscopic time series' transit of the target: the light it blocks at full transit
    is rendered too, through the same slit (:class:`SlitTransitTruth`; the image returned
    is the target out of transit). A mode with several spectral orders (NIRISS SOSS,
    :func:`.spectrograph.spectral_orders`) renders each into the window and sums them:
    the target's place, measured from the mode's reference point (order 1's), moves every
    order's trace alike, and each order adds its own sky.
    """
    x, y = gw.invert(target.ra, target.dec, with_bounding_box=False)
    xt, yt = float(x) + sub.xstart - 1.0, float(y) + sub.ystart - 1.0  # full frame, 0-based
    along, across = model.place(xt, yt)
    source = SlitSource(spectrum, along=along, across=across)
    window = (sub.xstart - 1, sub.ystart - 1, sub.xsize, sub.ysize)

    def spectral_sum(image: np.ndarray, order: SlitSpectrograph) -> np.ndarray:
        return image.sum(axis=0) if order.dispaxis == 1 else image.sum(axis=1)  # each spectral pixel's

    image = sky_image = None
    per_order = []
    for order in spectral_orders(model):
        def sky(wavelength: np.ndarray, order: SlitSpectrograph = order) -> np.ndarray:
            return sky_scale * order.sky(wavelength)

        scene = render_slit(order, [source], window, sky_mjy_sr=sky if sky_scale > 0 else None)
        part = scene.image - scene.sky
        image = part if image is None else image + part
        sky_image = scene.sky if sky_image is None else sky_image + scene.sky
        per_order.append((order, spectral_sum(part, order)))
    per_pixel = per_order[0][1]
    transit_truth, blocked_per_order = None, [None] * len(per_order)
    if transit is not None:
        blocking = SlitSource(ModulatedSpectrum(spectrum, transit.depth_at), along=along, across=across)
        blocked = None
        for k, (order, _) in enumerate(per_order):
            part = render_slit(order, [blocking], window).image
            blocked = part if blocked is None else blocked + part
            blocked_per_order[k] = spectral_sum(part, order)
        blocked_per_pixel = blocked_per_order[0]
        s, wavelength, band = _window_spectrum(model, sub, across)
        per_jy = model.electrons_per_jy(s)
        white = model.white_light_band
        transit_truth = SlitTransitTruth(
            transit=transit, blocked=blocked * area, blocked_electrons=blocked_per_pixel,
            depth_electrons=white_light_depth(wavelength, per_pixel, blocked_per_pixel, white),
            depth_fnu=white_light_depth(wavelength, per_pixel / per_jy, blocked_per_pixel / per_jy, white),
            band_electrons=float(per_pixel[band].sum()))
    orders = tuple(OrderTruth(order, electrons, blocked_e)
                   for (order, electrons), blocked_e in zip(per_order, blocked_per_order, strict=True))
    truth = SlitTruth(model=model, source=source, x=xt, y=yt, sky_scale=float(sky_scale), pixel_electrons=per_pixel,
                      sky=sky_image * area, transit=transit_truth, orders=orders)
    return image * area, truth


def _mrs_scene(detector_name: str, band: str, true: Pointing, v2_ref: float, v3_ref: float, target,
               spectrum: SourceSpectrum, sky_scale: float) -> MrsTruth:
    """The MRS scene of a full-frame exposure of ``detector_name`` in ``band``: the target, a
    point source of ``spectrum``, where the true pointing ``true`` (of the MRS reference point
    ``v2_ref``, ``v3_ref``) puts it, its (RA, Dec) through the inverse of
    :func:`shared.imaging_wcs.v23tosky` to (V2, V3), then :func:`.mrs.v2v3_to_alpha_beta`;
    and the model's thermal sky times ``sky_scale`` (0: none); all through the detector's
    fringes."""
    sky = v23tosky(TelescopePointing(true.ra, true.dec, true.roll, v2_ref, v3_ref))
    v2, v3 = (float(v) for v in sky.inverse(target.ra, target.dec))
    alpha, beta = (float(v) for v in v2v3_to_alpha_beta(v2, v3, detector_name))
    source = PointSource(spectrum, alpha=alpha, beta=beta)
    channels = channels_on(detector_name)
    sky_fn = None
    if sky_scale > 0:
        def sky_fn(wavelength, _channel=channels[0]):  # the same power law for every channel
            return sky_scale * _channel.sky(wavelength)
    scene = render_mrs(detector_name, band, points=[source], sky_mjy_sr=sky_fn, fringes=True)
    rows = np.arange(scene.image.shape[0], dtype=np.float64)
    truths = []
    for channel in channels:
        k = int(np.clip(round(beta / channel.slice_width + 0.5 * (channel.n_slices + 1)), 1, channel.n_slices))
        sl = channel.slice(k, band)
        truths.append(MrsChannelTruth(channel=channel.channel, slice=k, wavelength=sl.wavelength(rows),
                                      fnu=point_source_truth(source, sl, rows)))
    return MrsTruth(band=band, alpha=alpha, beta=beta, v2=v2, v3=v3, source=scene.image - scene.sky, sky=scene.sky,
                    sky_scale=float(sky_scale), channels=tuple(truths), spectrum=spectrum)


def _window_spectrum(model: SlitSpectrograph, sub: Subarray, across: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per spectral pixel of the window: its 0-based full-frame spectral pixel, the
    wavelength (um) of the light a source ``across`` arcsec from the reference point puts
    there (NaN off the spectrum's pixels, ``model.span``: the truth's tables hold those),
    and whether that is in the spectrograph's white-light band."""
    start, size = (sub.xstart, sub.xsize) if model.dispaxis == 1 else (sub.ystart, sub.ysize)
    s = np.arange(size, dtype=np.float64) + (start - 1)
    on_spectrum = (s >= model.span[0]) & (s <= model.span[1])
    wavelength = np.where(on_spectrum, model.wavelength(s - across / model.pixel_scale), np.nan)
    low, high = model.white_light_band
    return s, wavelength, (wavelength >= low) & (wavelength <= high)


def _band_electrons(slit: SlitTruth, sub: Subarray) -> float:
    """The e-/s of a slit exposure's source in the white-light band (before the pixel area)."""
    _, _, band = _window_spectrum(slit.model, sub, slit.source.across)
    return float(slit.pixel_electrons[band].sum())


_MOS_MARGIN_COLUMNS = 15  # beyond a slitlet's spectral span: 10 sigma of the widest LSF (1.1 px)
_MOS_MARGIN_ROWS = 12  # beyond a slitlet's ends: 10 sigma of the 5.3 um PSF (0.71 px) and the acquisition error


def _slitlet_window(model: SlitSpectrograph, sub: Subarray) -> tuple[int, int, int, int] | None:
    """The part of the readout window (0-based full-frame ``xstart, ystart, xsize,
    ysize``) a slitlet's light can reach; None when it misses the window."""
    s = model.pixels()
    trace = model.trace(s)
    half = 0.5 * model.slit_length_px
    x_lo = max(int(model.span[0]) - _MOS_MARGIN_COLUMNS, sub.xstart - 1)
    x_hi = min(int(model.span[1]) + _MOS_MARGIN_COLUMNS, sub.xstart - 1 + sub.xsize - 1)
    y_lo = max(int(np.floor(trace.min() - half)) - _MOS_MARGIN_ROWS, sub.ystart - 1)
    y_hi = min(int(np.ceil(trace.max() + half)) + _MOS_MARGIN_ROWS, sub.ystart - 1 + sub.ysize - 1)
    if x_hi < x_lo or y_hi < y_lo:
        return None
    return x_lo, y_lo, x_hi - x_lo + 1, y_hi - y_lo + 1


def lit_shutter_runs(slitlet: Slitlet) -> tuple[tuple[int, ...], ...]:
    """The runs of neighbouring open shutters (columns) of a slitlet, in order: the slitlet
    itself when every shutter is open; a closed one (``slitlet.closed``, stuck closed)
    passes no light, so it splits the slitlet or shortens it at an end."""
    runs: list[list[int]] = []
    for c in slitlet.columns:
        if c in slitlet.closed:
            continue
        if runs and runs[-1][-1] == c - 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return tuple(tuple(run) for run in runs)


def _mos_scene(msa: MsaExposure, detector_name: str, sub: Subarray, shift: tuple[float, float], sky_scale: float,
               area: np.ndarray) -> tuple[np.ndarray, MosTruth]:
    """The MSA scene of a window of ``detector_name`` (see the module docstring): the
    sources' photo-electrons per second per pixel (pixel area included) and the truth (the
    sky's image with it). ``shift`` (dx, dy) arcsec: the window centre's true pointing
    shift."""
    quadrants = MSA_QUADRANTS[detector_name]
    image = np.zeros((sub.ysize, sub.xsize))
    sky = np.zeros_like(image)
    dx, dy = shift
    pitch_x, pitch_y = MSA_SHUTTER_PITCH

    def add(model: SlitSpectrograph, sources: list[SlitSource]) -> np.ndarray | None:
        win = _slitlet_window(model, sub)
        if win is None:
            return None
        scene = render_slit(model, sources, win,
                            sky_mjy_sr=(lambda wl: sky_scale * model.sky(wl)) if sky_scale > 0 else None)
        x0, y0 = win[0] - (sub.xstart - 1), win[1] - (sub.ystart - 1)
        part = scene.image - scene.sky
        image[y0:y0 + win[3], x0:x0 + win[2]] += part
        sky[y0:y0 + win[3], x0:x0 + win[2]] += scene.sky
        columns = model.pixels().astype(int) - win[0]
        per_column = np.full(columns.size, np.nan)
        inside = (columns >= 0) & (columns < win[2])
        per_column[inside] = part.sum(axis=0)[columns[inside]]
        return per_column

    slitlets, open_now = [], set()
    for sl in msa.slitlets:
        if sl.quadrant not in quadrants:
            continue  # on the other detector
        open_now.update((sl.quadrant, sl.row, c) for c in sl.columns)
        runs = lit_shutter_runs(sl)  # a failed-closed shutter lets nothing through
        for run in runs:
            if sl.primary not in run:  # the sky alone (a background slitlet's every run)
                add(msa_slitlet(sl.quadrant, sl.row, run), [])
        if sl.primary is None:
            continue
        if sl.source_id not in msa.spectra:
            raise ValueError(f"MSA slitlet {sl.slitlet_id}: source {sl.source_id} has no spectrum (not in SOURCE_INFO)")
        lit = next(run for run in runs if sl.primary in run)
        model = msa_slitlet(sl.quadrant, sl.row, lit)
        # the source's place from its primary shutter's centre, in pitches (NaN: the centre)
        along = (sl.primary - float(np.mean(lit)) + sl.source_y) * pitch_y - dy
        across = sl.source_x * pitch_x - dx
        source = SlitSource(msa.spectra[sl.source_id], along=along, across=across)
        per_column = add(model, [source])
        slitlets.append(MosSlitletTruth(model=model, slitlet=sl, source=source, star_id=msa.star_ids[sl.source_id],
                                        pixel_electrons=per_column))
    failed = []
    for q, r, c in msa.failed_open:
        if q not in quadrants or (q, r, c) in open_now:
            continue
        model = msa_slitlet(q, r, (c,))
        add(model, [])
        failed.append(model)
    truth = MosTruth(dither_point=msa.dither_point, slitlets=tuple(slitlets), failed_open=tuple(failed),
                     shift=(float(dx), float(dy)),
                     sky_scale=float(sky_scale), sky=sky * area)
    return image * area, truth


def _world_to_pixel(gw, stars: StarList) -> tuple[np.ndarray, np.ndarray]:
    """0-based window pixels of the stars through the window's gwcs (its inverse: the
    distortion's fitted inverse, better than 1e-6 pixel)."""
    if len(stars) == 0:
        return np.zeros(0), np.zeros(0)
    x, y = gw.invert(stars.ra, stars.dec, with_bounding_box=False)
    return np.asarray(x, np.float64), np.asarray(y, np.float64)
