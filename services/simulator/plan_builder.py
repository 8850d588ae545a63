"""Program description -> observation plan (:class:`shared.plan.Plan`).

Numbering: one visit per observation (visit 1), visit group 1, sequence 1, activity 1;
the exposure number is the dither point (1..N); one :class:`PlannedExposure` per (dither
point, detector), the detectors of one dither point being read out at the same time.
Consecutive dither points start DURATION + ``dither_overhead_s`` apart; an observation
without a start time starts ``observation_gap_s`` after the previous one ends (the first
at :data:`DEFAULT_START`). A NIRCam time-series observation (``tsovisit``) without an
explicit ``exp_type`` is NRC_TSIMAGE. A slit observation (MIRI LRS MIR_LRS-FIXEDSLIT,
NIRSpec NRS_FIXEDSLIT and NRS_BRIGHTOBJ) points the slit's reference point at the target
(:func:`pointing.reference_point`; the plan's ``aperture``: MIRIM_SLIT, NRS_<slit>_SLIT;
slitless, the mode's reference point: MIRIM_SLITLESSPRISM, NIRISS SOSS's NIS_SUBSTRIP256,
NIRCam's grism time series' NRCA5_GRISM64_F444W, whose short-wave imaging read meanwhile,
``short_wave``, is the plan's ``simultaneous`` channel: NRC_TSIMAGE on NRCA1)
and its nods (PATTTYPE ALONG-SLIT-NOD; 2-POINT-NOD, 3-POINT-NOD) move the target along
the slit. A NIRSpec MOS observation (NRS_MSASPEC) names its MSA metadata file
(``msa_metadata``) and puts the target at its detectors' window centre; its
3-SHUTTER-SLITLET nod (PATTTYPE 3-POINT-NOD, the public data model's value for NIRSpec's
nods) and 2-SHUTTER-SLITLET nod (PATTTYPE 2-POINT-NOD) step the telescope by one shutter
pitch along the slitlets. A wide-field slitless observation (NIS_WFSS, NRC_WFSS) takes a
direct image of the field first (activity 1, exposure 1, at the first dither point:
NIS_IMAGE through CLEAR and the blocking filter, NRC_IMAGE through the blocking filter and
CLEAR; the plan's ``direct_image``), then its dispersed exposures (activity 2, the
exposure number the dither point). A MIRI MRS observation (MIR_MRS) carries its ``band``
and points the MRS reference point (aperture MIRIFU_CENTER, the centre of MIRIFUSHORT's and
MIRIFULONG's windows alike) at the target; its 4-POINT dither (PATTTYPE 4-POINT) puts the
target at the four (alpha, beta) of :data:`.description.MRS_4POINT_ALPHA_BETA`. Proposal candidates get ids c1000, c1001, ... in
the order of the description. Every visit of an observation that is not a dark gets a
guide star (:func:`guiding.select_guide_star`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.instruments import detector, exposure_timing, subarray
from shared.naming import MsaMetadataName
from shared.plan import (
    Aperture,
    Channel,
    DirectImage,
    DitherPattern,
    Observation,
    Plan,
    PlannedCandidate,
    PlannedExposure,
    Target,
    candidate_id,
)

from .description import MOS_RENDERED, DescriptionError, ProgramDescription
from .guiding import guided, select_guide_star
from .mrs import MRS_EXP_TYPE
from .mrs import reference_point as mrs_reference_point
from .optics import TEMPLATES
from .pointing import detector_pointings, slit_v2v3
from .spectrograph import (
    GRISM_TSO_SHORT_WAVE_DETECTOR,
    GRISM_TSO_SHORT_WAVE_EXP_TYPE,
    LRS_EXP_TYPE,
    NIS_SOSS_EXP_TYPE,
    NRC_TSGRISM_EXP_TYPE,
    NRS_BOTS_EXP_TYPE,
    NRS_FS_EXP_TYPE,
    NRS_MOS_EXP_TYPE,
    WFSS_EXP_TYPES,
    wfss_grism,
)

__all__ = ["DEFAULT_START", "MOS_EXP_TYPE", "build_plan", "default_exp_type", "planned_only", "rendered_mos"]

DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
_TSO_EXP_TYPES = {"NIRCAM": "NRC_TSIMAGE"}
_SPECTROSCOPY_TEMPLATES = {LRS_EXP_TYPE: "MIRI Low Resolution Spectroscopy",
                           MRS_EXP_TYPE: "MIRI Medium Resolution Spectroscopy",
                           NRS_FS_EXP_TYPE: "NIRSpec Fixed Slit Spectroscopy",
                           NRS_BOTS_EXP_TYPE: "NIRSpec Bright Object Time Series",
                           NIS_SOSS_EXP_TYPE: "NIRISS SOSS",
                           NRC_TSGRISM_EXP_TYPE: "NIRCam Grism Time Series",
                           "NIS_WFSS": "NIRISS Wide Field Slitless Spectroscopy",
                           "NRC_WFSS": "NIRCam Wide Field Slitless Spectroscopy"}
#: The direct images' EXP_TYPE of a wide-field slitless observation, per instrument.
_DIRECT_IMAGE_EXP_TYPES = {"NIRISS": "NIS_IMAGE", "NIRCAM": "NRC_IMAGE"}


def _direct_image(instrument: str, exp_type: str, filter_: str, pupil: str) -> DirectImage:
    """The direct images of a WFSS observation (module docstring): its blocking filter
    without the grism, in activity 1."""
    grism = wfss_grism(exp_type, filter_, pupil)
    optics = ("CLEAR", grism.filter) if instrument == "NIRISS" else (grism.filter, "CLEAR")
    return DirectImage(exp_type=_DIRECT_IMAGE_EXP_TYPES[instrument], filter=optics[0], pupil=optics[1], activities=[1])
MOS_EXP_TYPE = NRS_MOS_EXP_TYPE  # a NIRSpec MOS observation: planned with its MSA metadata file


def rendered_mos(obs: Observation) -> bool:
    """A MOS observation the simulator renders (the prism behind CLEAR, on NRS1)."""
    return obs.exp_type.upper() == MOS_EXP_TYPE and (obs.filter, obs.pupil) == MOS_RENDERED


def planned_only(obs: Observation) -> bool:
    """An observation planned (with its MSA metadata file) but not simulated: MOS with a
    filter/grating other than the prism's."""
    return obs.exp_type.upper() == MOS_EXP_TYPE and not rendered_mos(obs)


def default_exp_type(instrument: str, detector_exp_type: str, tsovisit: bool) -> str:
    """EXP_TYPE of an observation that does not name one: the detector's imaging type, or
    the time-series imaging type of a TSO visit where the instrument has one."""
    return _TSO_EXP_TYPES.get(instrument, detector_exp_type) if tsovisit else detector_exp_type


# PATTTYPE values of the public data models for the description's pattern names.
_PATTTYPES = {("NIRCAM", "4-POINT-BOX"): "INTRAMODULEBOX", ("NIRISS", "4-POINT-BOX"): "4-POINT",
              ("MIRI", "4-POINT-BOX"): "4-POINT-SETS", ("MIRI", "ALONG-SLIT-NOD"): "ALONG-SLIT-NOD",
              ("NIRSPEC", "2-POINT-NOD"): "2-POINT-NOD", ("NIRSPEC", "3-POINT-NOD"): "3-POINT-NOD",
              ("NIRSPEC", "3-SHUTTER-SLITLET"): "3-POINT-NOD", ("NIRSPEC", "2-SHUTTER-SLITLET"): "2-POINT-NOD",
              ("MIRI", "4-POINT"): "4-POINT"}
#: The SIAF aperture at the MRS reference point (V2_REF/V3_REF of MIRIFUSHORT and MIRIFULONG).
MRS_APERTURE = "MIRIFU_CENTER"


def patttype(instrument: str, pattern: str, npoints: int) -> str:
    """The PATTTYPE keyword for a description's dither pattern (an enumerated value in
    the public data models, so the products validate)."""
    if pattern == "NONE":
        return "NONE"
    if (instrument, pattern) in _PATTTYPES:
        return _PATTTYPES[(instrument, pattern)]
    if pattern == "N-POINT-LINE":
        return {2: "2-POINT", 4: "4-POINT"}.get(npoints, "CYCLING")
    return pattern if pattern in ("FULL", "FULLBOX", "INTRAMODULE", "INTRAMODULEX", "INTRASCA", "CYCLING",
                                  "SUBARRAY-DITHER", "2-POINT", "4-POINT") else "N/A"


def _mrs_aperture(detector_name: str) -> Aperture:
    """The MRS observation's aperture: the MRS reference point, where every channel's
    local frame is centred and where the windows' centres point (both detectors')."""
    v2, v3 = mrs_reference_point(detector_name)
    return Aperture(name=MRS_APERTURE, v2_ref=v2, v3_ref=v3)


def build_plan(desc: ProgramDescription) -> Plan:
    """The plan of a validated description; every exposure listed explicitly.

    Raises
    ------
    DescriptionError
        Two observations overlap in time.
    """
    knobs = desc.simulation
    targets = [
        Target(id=k + 1, name=t.name, ra=t.ra, dec=t.dec, aliases=t.aliases) for k, t in enumerate(desc.targets)
    ]
    observations = []
    cursor = DEFAULT_START
    previous_end: datetime | None = None
    for index, spec in enumerate(desc.observations):
        number = desc.observation_number(index)
        target = targets[desc.target_id(spec.target) - 1]
        dets = [detector(name) for name in spec.detectors]
        sub = subarray(spec.instrument, spec.subarray)
        timing = exposure_timing(spec.instrument, sub, spec.readpatt, spec.ngroups, spec.nints)
        offsets = spec.offsets()
        slit = spec.spectrograph
        start = spec.start_time or cursor
        if previous_end is not None and start < previous_end:
            raise DescriptionError(
                f"observations[{index}].start_time: {start.isoformat()} is before the previous "
                f"observation ends ({previous_end.isoformat()})",
                [(f"observations[{index}].start_time", "overlaps the previous observation")],
            )
        step = timedelta(seconds=timing.duration + knobs.dither_overhead_s)
        exp_type = spec.exp_type or default_exp_type(spec.instrument, dets[0].exp_type, spec.tsovisit)
        pointings = detector_pointings(target.ra, target.dec, spec.roll, dets, sub, offsets, slit)
        wfss = exp_type in WFSS_EXP_TYPES  # a direct image first (activity 1), then the grism's (activity 2)
        exposures = [
            PlannedExposure(
                visit=1, visit_group=1, sequence=1, activity=2 if wfss else 1,
                exposure=point + 1, detector=d.name, dither_point=point + 1,
                start_time=start + (point + wfss) * step,
                pointing=pointings[point][d.name],
            )
            for point in range(len(offsets))
            for d in dets
        ]
        if wfss:
            exposures = [PlannedExposure(visit=1, visit_group=1, sequence=1, activity=1, exposure=1, detector=d.name,
                                         dither_point=1, start_time=start, pointing=pointings[0][d.name])
                         for d in dets] + exposures
        template = spec.template or _SPECTROSCOPY_TEMPLATES.get(exp_type) or TEMPLATES.get(
            spec.instrument, "NIRSpec MultiObject Spectroscopy")
        observation = (
            Observation(
                number=number,
                target_id=target.id,
                template=template,
                instrument=spec.instrument,
                exp_type=exp_type,
                detectors=[d.name for d in dets],
                filter=spec.filter,
                pupil=spec.pupil or ("N/A" if spec.instrument == "MIRI" else "CLEAR"),
                readpatt=spec.readpatt,
                ngroups=spec.ngroups,
                nints=spec.nints,
                subarray=sub.name,
                dither=DitherPattern(pattern_type=patttype(spec.instrument, spec.dither.pattern, len(offsets)),
                                     offsets=offsets, optimized_for=spec.dither.optimized_for),
                tsovisit=spec.tsovisit,
                is_background=spec.is_background,
                is_psf=spec.is_psf,
                pre_image_for=list(spec.pre_image_for),
                msa_metadata=MsaMetadataName(desc.program_id, number).format() if exp_type.upper() == MOS_EXP_TYPE
                else None,
                aperture=Aperture(name=slit.aperture, v2_ref=slit_v2v3(slit)[0], v3_ref=slit_v2v3(slit)[1],
                                  x_ref=slit.imx, y_ref=slit.imy)
                if slit is not None else _mrs_aperture(dets[0].name) if exp_type == MRS_EXP_TYPE else None,
                fixed_slit=spec.fixed_slit,
                band=spec.band,
                exposures=exposures,
                # NIRCam's grism time series: the short-wave detector imaging the target meanwhile
                simultaneous=Channel(detectors=[GRISM_TSO_SHORT_WAVE_DETECTOR], exp_type=GRISM_TSO_SHORT_WAVE_EXP_TYPE,
                                     filter=spec.short_wave.filter, pupil=spec.short_wave.pupil)
                if spec.short_wave is not None else None,
                direct_image=_direct_image(spec.instrument, exp_type, spec.filter, spec.pupil or "CLEAR")
                if wfss else None,
            )
        )
        if guided(observation):
            first = {}
            for e in exposures:
                first.setdefault(e.visit, e)
            observation = observation.model_copy(update={"guide_stars": [
                select_guide_star(knobs.seed, int(desc.program_id), number, visit, e.pointing.ra, e.pointing.dec)
                for visit, e in sorted(first.items())]})
        observations.append(observation)
        end = start + (len(offsets) + wfss) * step - timedelta(seconds=knobs.dither_overhead_s)
        previous_end = end
        cursor = end + timedelta(seconds=knobs.observation_gap_s)
    return Plan(
        program=desc.program_id,
        title=desc.title,
        pi_name=desc.pi,
        pi_user=desc.pi_user,
        category=desc.category,
        eap_months=desc.eap_months,
        eap_waiver=desc.eap_waiver,
        authorized_users=list(desc.authorized_users),
        targets=targets,
        observations=observations,
        candidates=[
            PlannedCandidate(id=candidate_id(k), type=c.type, observations=list(c.observations))
            for k, c in enumerate(desc.candidates)
        ],
    )
