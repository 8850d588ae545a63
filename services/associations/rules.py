"""Imaging association rules: which associations the plan calls for, and which of their
members the catalog holds.

- ``image2`` (Asn_Lv2Image): one association per science exposure, its ``_rate`` as the
  science member (one product per segment) and, when the exposure's observation is in a
  BACKGROUND candidate, the ``_rate`` of that candidate's background exposures with the
  same detector, filter, pupil and subarray as background members (acid: the BACKGROUND
  candidate). Background observations get their own ``image2`` too (Asn_Lv2ImageSpecial),
  so their ``_cal`` exist; their ``_rate`` serve as background members directly.
- ``tso-image2`` (Asn_Lv2ImageTSO): the same for TSO exposures, with ``_rateints``.
- ``tso-spec2`` (Asn_Lv2SpecTSO): one association per TSO spectroscopic exposure of the
  types without a rule of their own (NIRSpec bright object, NIRISS SOSS, NIRCam grism time
  series, ...), its ``_rateints`` the one science member
  (:func:`services.associations.candidates.tso_spec2_takes`).
- ``spec2`` of the MIRI LRS slitless (Asn_MIRLRSTAConfirm): the public rules take this mode
  out of tso-spec2 and give it this rule of the LRS, TSO or not: one association per
  exposure, its ``_rateints`` (TSO) or ``_rate`` the one science member.
- ``spec2`` of the MIRI MRS (Asn_Lv2Spec): one association per exposure (each detector's),
  its ``_rate`` the one science member.
- ``spec3`` of the MIRI MRS (Asn_Lv3MIRMRS): per observation candidate, the ``_cal`` of
  every exposure of the target (both detectors, every dither), all required, named
  without optical elements (``jw<p>-o<nnn>_t<nnn>_miri``; stage 3 adds each cube's
  channel and band, ``_ch1-short_s3d``). Multi-observation candidates are not planned
  for the MRS yet.
- ``spec2`` (Asn_Lv2MIRLRSFixedSlitNod for the MIRI LRS slit, Asn_Lv2NRSFSS for NIRSpec's
  fixed slits, Asn_Lv2NRSMSA for its MOS): one association per exposure of a nodded slit observation, its ``_rate``
  as the science member and the ``_rate`` of the observation's other exposures of the
  detector (the other nod positions) as background members, all required: nod
  subtraction is how the slit's sky is removed.
- ``spec3`` (Asn_Lv3SpectralTarget; Asn_Lv3NRSFSS for NIRSpec's fixed slits,
  Asn_Lv3SpectralSource for its MOS): per observation candidate of a nodded slit
  observation, the ``_cal`` of its nods (science) and, for the LRS, their ``_x1d``
  (background, as its public rule lists them; the NIRSpec rules list the ``_cal`` alone),
  all required, named for the target (``jw<p>-o<nnn>_t<nnn>_miri_p750l``; NIRSpec's fixed
  slits with the placeholders of the source and slit,
  ``jw<p>-o<nnn>_t<nnn>-{source_id}_nirspec_clear-prism-{slit_name}-subs200a1``; MOS with
  the source's in the target's place, ``jw<p>-o<nnn>_{source_id}_nirspec_clear-prism``:
  one product set per source).
- ``spec2`` of wide-field slitless spectroscopy (Asn_Lv2WFSSNIS, Asn_Lv2WFSSNRC): one
  association per dispersed exposure of an observation with direct images, its ``_rate``
  the science member, then the Level-3 products of the observation's direct images, named
  as the public rule names them (:func:`wfss_catalog_members`): their ``_i2d``
  (direct_image), ``_cat.ecsv`` (sourcecat) and ``_segm`` (segmap). The source catalog is
  required: spec2 finds the spectra of the sources it lists, so the association waits for
  the direct images' image3; the ``_i2d`` and ``_segm`` (archived before the catalog by
  the same image3 run) are members when archived, and one that arrives later makes a new
  association, as a late background does.
- ``spec3`` (Asn_Lv3WFSSNIS, Asn_Lv3WFSSNRC): per observation candidate of a wide-field
  slitless observation, the ``_cal`` of its dispersed exposures, all required, named
  without the subarray (``jw<p>-o<nnn>_t<nnn>_niriss_f150w-gr150r``,
  ``jw<p>-o<nnn>_t<nnn>_nircam_f444w-grismr``). The direct images keep their own
  ``image2`` and ``image3`` (their exposures are imaging: :meth:`Observation.channels`).
- ``image3`` (Asn_Lv3Image): per candidate, science exposures grouped by instrument,
  filter, pupil, subarray and target; background and TSO excluded. MOSAIC candidates
  (Asn_Lv3ImageMosaic) group without the target (named ``t000``). Proposal and discovered candidates need
  two or more observations, and a group with the same members as an earlier one is
  dropped, so an observation's image3 is made once.
- ``tso3`` (Asn_Lv3TSO): TSO exposures of an observation candidate, with ``_calints``:
  imaging, and spectroscopy but the IFU and the paths the public rule leaves out
  (:func:`services.associations.candidates.tso3_takes`); the MIRI LRS slitless named
  ``jw<p>-o<nnn>_t<nnn>_miri_p750l-slitlessprism``.

A time series of one integration has no ``_rateints``/``_calints`` (stage 1 writes them only
for NINTS > 1): its members are its ``_rate``/``_cal``, where the public generator would
name ``_rateints``/``_calints`` all the same.

Every planned association is returned, complete or not; ``AsnSpec.waiting`` lists the
required members that are not archived yet.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

from services.associations.candidates import (
    LRS_SLITLESS,
    MRS,
    NODDED_SLIT_EXP_TYPES,
    NODDED_SLIT_RULES,
    SPECTRAL_EXP_TYPES,
    WFSS_RULES,
    Candidate,
    NoddedSlitRules,
    candidate_text,
    candidates_of,
    is_imaging,
    is_tso,
    tso3_takes,
    tso_spec2_takes,
)
from services.associations.planned import planned_names
from services.associations.state import ExposureRecord, ProductRecord, ProgramState
from shared.naming import Level3Name, ProductNaming, parse_exposure
from shared.plan import Observation, Plan

__all__ = ["WFSS_MEMBER_TYPES", "AsnProduct", "AsnSpec", "Member", "build_specs", "level2_specs", "level3_specs",
           "nod_specs", "wfss_catalog_members", "wfss_specs"]

# The members a wide-field slitless spec2 takes from its direct images' Level-3 products:
# exptype -> the product's suffix and extension.
WFSS_MEMBER_TYPES = {"direct_image": ("i2d", "fits"), "sourcecat": ("cat", "ecsv"), "segmap": ("segm", "fits")}
# Of those, the one an association cannot do without.
WFSS_REQUIRED = "sourcecat"


@dataclass(frozen=True)
class Member:
    expname: str
    exptype: str  # science, background; direct_image, sourcecat, segmap (wide-field slitless spec2)
    revision: int
    archived_at: datetime
    asn_candidate: str | None = None  # Level 3 only: the exposure's pool ASN_CANDIDATE


@dataclass(frozen=True)
class AsnProduct:
    name: str
    members: tuple[Member, ...]


@dataclass(frozen=True)
class AsnSpec:
    """One association the rules call for and what the catalog holds of it."""

    acid: str
    asn_type: str
    asn_rule: str
    level: int
    name: str  # Lv2: the exposure id; Lv3: the product name
    target: str
    constraints: str
    products: tuple[AsnProduct, ...]
    expected: tuple[str, ...]  # required member files
    waiting: tuple[str, ...]  # required member files not archived yet
    optional_waiting: tuple[str, ...] = ()  # Lv2 background members not archived yet

    @property
    def complete(self) -> bool:
        return not self.waiting and bool(self.products)

    @property
    def members(self) -> tuple[Member, ...]:
        return tuple(m for p in self.products for m in p.members)

    @property
    def signature(self) -> list[list]:
        """The member set (filename, revision, exptype), sorted: what identifies an ASN's content."""
        return sorted([m.expname, m.revision, m.exptype] for m in self.members)


def _suffixes(obs: Observation) -> tuple[str, str]:
    """(Lv2 input, Lv3 input) suffixes: per-integration products for TSO with NINTS > 1
    (stage 1 writes ``_rateints`` only then)."""
    return ("rateints", "calints") if is_tso(obs) and obs.nints > 1 else ("rate", "cal")


def _stem(filename: str) -> str:
    """A file name without its suffix: the Level-2 product name."""
    name = parse_exposure(filename)
    return name.format()[: -len(f"_{name.suffix}.{name.ext}")]


def _members(rec: ExposureRecord | None, suffix: str, exptype: str, asn_candidate: str | None = None
             ) -> tuple[Member, ...]:
    """The members one exposure gives (one per segment), or () until every segment exists."""
    if rec is None or not rec.has(suffix):
        return ()
    return tuple(Member(p.filename, exptype, p.revision, p.archived_at, asn_candidate) for p in rec.files(suffix))


def _expected(rec: ExposureRecord | None, name, suffix: str) -> tuple[str, ...]:
    if rec is None:
        return (name.with_suffix(suffix).format(),)
    return tuple(rec.file_name(suffix, seg) for seg in rec.segments)


def _constraints(**values) -> str:
    return "\n".join(f"{k}={str(v).lower()!r}" for k, v in values.items() if v not in (None, ""))


def _optical(obs: Observation) -> dict:
    return dict(instrument=obs.instrument, opt_elem=obs.filter,
                opt_elem2=obs.pupil if obs.pupil != "N/A" else None, subarray=obs.subarray)


def _background_for(plan: Plan, obs: Observation, candidates: list[Candidate]
                    ) -> tuple[Candidate | None, list[Observation]]:
    """The first BACKGROUND candidate spanning ``obs`` and its background observations
    with the same optical path."""
    for cand in candidates:
        if cand.type == "BACKGROUND" and obs.number in cand.observations:
            bkg = [plan.observation(n) for n in cand.observations if _has_obs(plan, n)]
            return cand, [b for b in bkg if b.is_background and _optical(b) == _optical(obs)]
    return None, []


def _has_obs(plan: Plan, number: int) -> bool:
    return any(o.number == number for o in plan.observations)


def _level2_rule(obs: Observation) -> tuple[str, str] | None:
    """(asn_type, rule) of the one-exposure Level-2 rule that takes ``obs``, or None (the
    nodded slits have :func:`nod_specs`)."""
    if is_imaging(obs):
        if is_tso(obs):
            return "tso-image2", "candidate_Asn_Lv2ImageTSO"
        return "image2", "candidate_Asn_Lv2ImageSpecial" if obs.is_background else "candidate_Asn_Lv2Image"
    if obs.exp_type.upper() == LRS_SLITLESS and not obs.is_background:
        return "spec2", "candidate_Asn_MIRLRSTAConfirm"
    if obs.exp_type.upper() == MRS and not is_tso(obs):
        return "spec2", "candidate_Asn_Lv2Spec"
    if any(tso_spec2_takes(obs, d) for d in obs.detectors):
        return "tso-spec2", "candidate_Asn_Lv2SpecTSO"
    return None


def _level2_takes(obs: Observation, asn_type: str, detector: str) -> bool:
    """Whether the rule takes the exposure on ``detector`` (tso-spec2 leaves out paths that
    put no light on a detector)."""
    return asn_type != "tso-spec2" or tso_spec2_takes(obs, detector)


def level2_specs(plan: Plan, state: ProgramState, candidates: list[Candidate]) -> list[AsnSpec]:
    """One ``image2``/``tso-image2``/``tso-spec2`` association per planned exposure (``spec2``
    for the MIRI LRS slitless)."""
    specs = []
    # an observation with a simultaneous channel: each channel's exposures by their own rule
    for obs in (c for whole in plan.observations for c in whole.channels()):
        kind = _level2_rule(obs)
        if kind is None:
            continue
        asn_type, rule = kind
        suffix = _suffixes(obs)[0]
        with_bkg = asn_type == "image2" and not obs.is_background
        bkg_cand, bkg_obs = _background_for(plan, obs, candidates) if with_bkg else (None, [])
        acid = bkg_cand.acid if bkg_cand else f"o{obs.number:03d}"
        for exp, name in planned_names(plan, obs):
            if not _level2_takes(obs, asn_type, exp.detector):
                continue
            rec = state.exposure(name.exposure_id)
            science = _members(rec, suffix, "science")
            background: list[Member] = []
            optional_waiting: list[str] = []
            for b in bkg_obs:
                for bexp, bname in planned_names(plan, b):
                    if bexp.detector != exp.detector:
                        continue
                    brec = state.exposure(bname.exposure_id)
                    found = _members(brec, "rate", "background")
                    background.extend(found)
                    if not found:
                        optional_waiting.extend(_expected(brec, bname, "rate"))
            products = tuple(AsnProduct(_stem(m.expname), (m, *background)) for m in science)
            expected = _expected(rec, name, suffix)
            specs.append(AsnSpec(
                acid=acid, asn_type=asn_type, asn_rule=rule, level=2,
                name=name.exposure_id, target=str(obs.target_id),
                constraints=_constraints(program=int(plan.program), **_optical(obs), exp_type=obs.exp_type,
                                         asn_candidate=acid),
                products=products, expected=expected, waiting=() if science else expected,
                optional_waiting=tuple(optional_waiting),
            ))
    return specs


def nod_specs(plan: Plan, state: ProgramState) -> list[AsnSpec]:
    """One ``spec2`` association per exposure of a nodded slit observation (MIRI LRS,
    NIRSpec fixed slit)."""
    specs = []
    for obs in plan.observations:
        if obs.exp_type.upper() not in NODDED_SLIT_EXP_TYPES:
            continue
        acid = f"o{obs.number:03d}"
        planned = planned_names(plan, obs)
        for exp, name in planned:
            rec = state.exposure(name.exposure_id)
            science = _members(rec, "rate", "science")
            background: list[Member] = []
            expected = list(_expected(rec, name, "rate"))
            waiting = [] if science else list(expected)
            for other, oname in planned:
                if oname.exposure_id == name.exposure_id or other.detector != exp.detector:
                    continue
                orec = state.exposure(oname.exposure_id)
                found = _members(orec, "rate", "background")
                background.extend(found)
                expected.extend(_expected(orec, oname, "rate"))
                if not found:
                    waiting.extend(_expected(orec, oname, "rate"))
            products = () if waiting else tuple(AsnProduct(_stem(m.expname), (m, *background)) for m in science)
            specs.append(AsnSpec(
                acid=acid, asn_type="spec2", asn_rule=f"candidate_{NODDED_SLIT_RULES[obs.exp_type.upper()].level2}", level=2,
                name=name.exposure_id, target=str(obs.target_id),
                constraints=_constraints(program=int(plan.program), **_optical(obs), exp_type=obs.exp_type,
                                         patttype=obs.dither.pattern_type, asn_candidate=acid),
                products=products, expected=tuple(expected), waiting=tuple(waiting),
            ))
    return specs


def wfss_catalog_members(plan: Plan, obs: Observation) -> dict[str, str]:
    """The Level-3 products of a wide-field slitless observation's direct images that its
    Level-2 associations name (exptype -> file name), as the public rule names them: the
    product of the observation candidate and target with the direct images' optical
    elements and their subarray when not FULL, the name of their ``image3`` product (the
    public NIRCam rule leaves the subarray out: NIRCam's WFSS is taken full frame, where
    the two agree; in a subarray its name is of no product). (The public rule takes them
    from the direct image closest to the dispersed exposure; an observation's direct
    images share their filter and pupil, so every one gives the same name, the name of
    their ``image3`` product.) Empty for an observation without direct images."""
    direct = obs.direct_image
    if obs.exp_type.upper() not in WFSS_RULES or direct is None:
        return {}
    base = Level3Name.build(plan.program, f"o{obs.number:03d}", f"t{obs.target_id:03d}", obs.instrument,
                            [direct.filter, direct.pupil], obs.subarray, "i2d")
    return {exptype: replace(base, suffix=suffix, ext=ext).format()
            for exptype, (suffix, ext) in WFSS_MEMBER_TYPES.items()}


def _level3_member(record: ProductRecord | None, exptype: str) -> Member | None:
    return None if record is None else Member(record.filename, exptype, record.revision, record.archived_at)


def wfss_specs(plan: Plan, state: ProgramState) -> list[AsnSpec]:
    """One ``spec2`` association per dispersed exposure of a wide-field slitless
    observation with direct images (Asn_Lv2WFSSNIS, Asn_Lv2WFSSNRC; not a time series,
    which tso-spec2 takes): its ``_rate`` and the Level-3 products of the direct images
    (:func:`wfss_catalog_members`), complete when the ``_rate`` and the source catalog are
    archived."""
    specs = []
    for whole in plan.observations:
        rules = WFSS_RULES.get(whole.exp_type.upper())
        catalog = wfss_catalog_members(plan, whole)
        if rules is None or not catalog or is_tso(whole):
            continue
        acid = f"o{whole.number:03d}"
        found = {exptype: _level3_member(state.product(name), exptype) for exptype, name in catalog.items()}
        lv3_members = tuple(m for m in found.values() if m is not None)
        optional_waiting = tuple(name for exptype, name in catalog.items()
                                 if found[exptype] is None and exptype != WFSS_REQUIRED)
        # the dispersed exposures (the direct images are imaging, associated by the imaging rules)
        for obs in (c for c in whole.channels() if c.exp_type == whole.exp_type):
            for _, name in planned_names(plan, obs):
                rec = state.exposure(name.exposure_id)
                science = _members(rec, "rate", "science")
                rate = _expected(rec, name, "rate")
                expected = (*rate, catalog[WFSS_REQUIRED])
                waiting = (() if science else rate) + (() if found[WFSS_REQUIRED] else (catalog[WFSS_REQUIRED],))
                products = () if waiting else tuple(AsnProduct(_stem(m.expname), (m, *lv3_members)) for m in science)
                specs.append(AsnSpec(
                    acid=acid, asn_type="spec2", asn_rule=f"candidate_{rules.level2}", level=2,
                    name=name.exposure_id, target=str(obs.target_id),
                    constraints=_constraints(program=int(plan.program), **_optical(obs), exp_type=obs.exp_type,
                                             asn_candidate=acid),
                    products=products, expected=expected, waiting=waiting, optional_waiting=optional_waiting,
                ))
    return specs


def _lv3_groups(plan: Plan, cand: Candidate) -> list[tuple[str, list[Observation]]]:
    """(asn_type, observations) groups of one candidate, in key order."""
    # each channel of an observation on its own: its mode, filter and pupil make its group
    observations = [c for n in cand.observations if _has_obs(plan, n) for c in plan.observation(n).channels()]
    groups: dict[tuple, list[Observation]] = defaultdict(list)
    for obs in observations:
        if obs.is_background:
            continue
        if obs.exp_type.upper() in NODDED_SLIT_EXP_TYPES:
            if cand.kind == "o":
                # the public Level-3 rule of the mode: the observation's nods, per target
                groups[("spec3", obs.instrument, obs.filter, obs.pupil, obs.subarray, obs.target_id)].append(obs)
            continue
        if obs.exp_type.upper() == MRS and not is_tso(obs):
            if cand.kind == "o":
                # Asn_Lv3MIRMRS: the observation's exposures of the target, every detector and band
                groups[("spec3", obs.instrument, None, None, None, obs.target_id)].append(obs)
            continue
        if obs.exp_type.upper() in WFSS_RULES and not is_tso(obs):
            if cand.kind == "o":
                # Asn_Lv3WFSSNIS/NRC: the observation's dispersed exposures, per grism and target
                groups[("spec3", obs.instrument, obs.filter, obs.pupil, obs.subarray, obs.target_id)].append(obs)
            continue
        if obs.exp_type.upper() in SPECTRAL_EXP_TYPES:
            if cand.kind == "o" and any(tso3_takes(obs, d) for d in obs.detectors):
                # Asn_Lv3TSO: observation candidates only, grouped as for imaging TSO
                groups[("tso3", obs.instrument, obs.filter, obs.pupil, obs.subarray, obs.target_id)].append(obs)
            continue
        if not is_imaging(obs):
            continue
        tso = is_tso(obs)
        if tso and cand.kind != "o":
            continue  # Asn_Lv3TSO takes observation candidates only
        target = None if cand.type == "MOSAIC" else obs.target_id
        groups[("tso3" if tso else "image3", obs.instrument, obs.filter, obs.pupil, obs.subarray,
                target or 0)].append(obs)
    out = []
    for key in sorted(groups):
        obs_list = groups[key]
        if cand.kind != "o" and len({o.number for o in obs_list}) < 2:
            continue  # multi-observation candidates need more than one observation
        out.append((key[0], obs_list))
    return out


def _lv3_product(plan: Plan, cand: Candidate, target: str, first: Observation, asn_type: str,
                 slit: NoddedSlitRules | None) -> str:
    """The Level-3 product name; a time series through a fixed slit (NIRSpec's bright-object
    S1600A1) has its slit after the optical elements, as the public naming gives; a
    wide-field slitless one has no subarray (its public rule does not constrain it)."""
    if first.exp_type.upper() == MRS:  # no optical elements: the cubes carry their channel and band
        return f"jw{plan.program}-{cand.acid}_{target}_{first.instrument}".lower()
    subarray = None if first.exp_type.upper() in WFSS_RULES else first.subarray
    name = Level3Name.build(plan.program, cand.acid, target, first.instrument, [first.filter, first.pupil],
                            subarray, "i2d", naming=ProductNaming.TARGET if slit is None else slit.naming)
    if asn_type == "tso3" and first.fixed_slit:
        name = replace(name, optical_elements=(*name.optical_elements, first.fixed_slit.lower()))
    return name.product_name


def _lv3_takes(asn_type: str, obs: Observation, detector: str) -> bool:
    """Whether a Level-3 association of ``asn_type`` takes the exposure of ``obs`` on
    ``detector`` (a spectroscopic tso3 leaves out paths that put no light on it)."""
    return not (asn_type == "tso3" and obs.exp_type.upper() in SPECTRAL_EXP_TYPES) or tso3_takes(obs, detector)


def _lv3_rule(cand: Candidate, asn_type: str, first: Observation) -> str:
    if asn_type == "spec3":
        if first.exp_type.upper() == MRS:
            return "candidate_Asn_Lv3MIRMRS"
        wfss = WFSS_RULES.get(first.exp_type.upper())
        return f"candidate_{wfss.level3 if wfss else NODDED_SLIT_RULES[first.exp_type.upper()].level3}"
    if asn_type == "tso3":
        return "candidate_Asn_Lv3TSO"
    if cand.kind == "a":
        return "discover_Asn_Lv3Image"
    return "candidate_Asn_Lv3ImageMosaic" if cand.type == "MOSAIC" else "candidate_Asn_Lv3Image"


def level3_specs(plan: Plan, state: ProgramState, candidates: list[Candidate]) -> list[AsnSpec]:
    """``image3``/``tso3``/``spec3`` associations of every candidate; complete when every
    planned member's ``_cal`` (``_calints``) is archived."""
    specs = []
    seen: set[tuple[str, frozenset[str]]] = set()
    for cand in candidates:
        for asn_type, obs_list in _lv3_groups(plan, cand):
            planned = [(o, exp, name) for o in obs_list for exp, name in planned_names(plan, o)
                       if _lv3_takes(asn_type, o, exp.detector)]
            key = (asn_type, frozenset(name.exposure_id for _, _, name in planned))
            if not planned or key in seen:
                continue
            seen.add(key)
            first = obs_list[0]
            slit = NODDED_SLIT_RULES.get(first.exp_type.upper())
            # A mosaic is not constrained on target; the generator names it t000.
            target = "t000" if cand.type == "MOSAIC" else f"t{first.target_id:03d}"
            product = _lv3_product(plan, cand, target, first, asn_type, slit)
            members: list[Member] = []
            expected: list[str] = []
            waiting: list[str] = []
            for obs, _, name in planned:
                suffix = _suffixes(obs)[1]
                rec = state.exposure(name.exposure_id)
                text = candidate_text(candidates_of(obs.number, candidates)).lower()
                roles = [(suffix, "science")]
                if slit is not None and slit.x1d_members:
                    roles.append(("x1d", "background"))  # each nod's spectrum too, as the LRS's public rule lists it
                for member_suffix, exptype in roles:
                    found = _members(rec, member_suffix, exptype, text)
                    members.extend(found)
                    exp_files = _expected(rec, name, member_suffix)
                    expected.extend(exp_files)
                    if not found:
                        waiting.extend(exp_files)
            targets = sorted({o.target_id for o in obs_list})
            specs.append(AsnSpec(
                acid=cand.acid, asn_type=asn_type, asn_rule=_lv3_rule(cand, asn_type, first), level=3, name=product,
                target=target,
                constraints=_constraints(program=int(plan.program), **_optical(first),
                                         target=",".join(map(str, targets)), asn_candidate=cand.acid),
                products=(AsnProduct(product, tuple(members)),) if members else (),
                expected=tuple(expected), waiting=tuple(waiting),
            ))
    return specs


def build_specs(plan: Plan, state: ProgramState, candidates: list[Candidate]) -> list[AsnSpec]:
    """Every association the plan calls for: Level 2, then Level 3."""
    return (level2_specs(plan, state, candidates) + nod_specs(plan, state) + wfss_specs(plan, state)
            + level3_specs(plan, state, candidates))
