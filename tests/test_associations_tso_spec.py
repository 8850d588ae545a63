"""Associations of spectroscopic time series: the MIRI LRS slitless (Level 2 by the LRS's
own rule, Asn_MIRLRSTAConfirm; Level 3 tso3), and tso-spec2 (Asn_Lv2SpecTSO) with tso3 for
the other time-series spectrographs; each compared with the public generator on our pool."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest

from services.associations.builder import evaluate, spec_key
from services.associations.pool import pool_bytes
from shared.plan import Channel, DitherPattern, Observation
from tests.associations_factory import exposure_ids, make_plan, observation, snapshot

pytest.importorskip("jwst")

ALL = ("uncal", "rate", "rateints", "cal", "calints")
SLITLESS_PRODUCT = "jw01234-o001_t001_miri_p750l-slitlessprism"


def lrs_slitless(number: int, *, nints: int = 4, exposures: int = 2, tsovisit: bool = True) -> Observation:
    """A MIRI LRS slitless time series (P750L, SLITLESSPRISM, undithered)."""
    return observation(number, instrument="MIRI", detectors=("MIRIMAGE",), filter="P750L", subarray="SLITLESSPRISM",
                       nints=nints, npoints=exposures).model_copy(update={
                           "exp_type": "MIR_LRS-SLITLESS", "template": "MIRI Low Resolution Spectroscopy",
                           "tsovisit": tsovisit,
                           "dither": DitherPattern(pattern_type="NONE", offsets=[(0.0, 0.0)] * exposures)})


def _spectrograph(number: int, instrument: str, exp_type: str, detectors: tuple[str, ...], *, filter: str,
                  pupil: str, subarray: str, nints: int = 3, fixed_slit: str | None = None) -> Observation:
    """A time-series spectroscopic observation of one exposure per detector."""
    base = observation(number, detectors=("NRCA1",), npoints=1, nints=nints, tsovisit=True)
    exposures = [replace_exposure(base.exposures[0], d) for d in detectors]
    return base.model_copy(update={
        "instrument": instrument, "exp_type": exp_type, "detectors": list(detectors), "filter": filter,
        "pupil": pupil, "subarray": subarray, "fixed_slit": fixed_slit, "template": f"{instrument} Time Series",
        "dither": DitherPattern(pattern_type="NONE", offsets=[(0.0, 0.0)]), "exposures": exposures})


def replace_exposure(exp, detector: str):
    return exp.model_copy(update={"detector": detector})


def _write_pool(ev, tmp_path):
    path = tmp_path / ev.pool.filename
    path.write_bytes(pool_bytes(ev.pool))
    return path


def _ours(ev) -> set[tuple]:
    return {(a.spec.acid, a.spec.asn_type, p.name, a.spec.asn_rule, frozenset((m.expname, m.exptype)
                                                                              for m in p.members))
            for a in ev.associations for p in a.spec.products}


def _public(pool_path) -> set[tuple]:
    from jwst.associations import AssociationPool
    from jwst.associations.generator.generate_per_candidate import generate_per_candidate

    logging.getLogger("jwst").setLevel(logging.WARNING)
    asns = generate_per_candidate(AssociationPool.read(str(pool_path)), None, discover=False)
    return {(a["asn_id"], a["asn_type"], p["name"], a["asn_rule"], frozenset((m["expname"], m["exptype"])
                                                                             for m in p["members"]))
            for a in asns for p in a["products"]}


def _loads_in_the_public_pipeline(ev) -> None:
    from jwst.associations import load_asn

    for item in ev.associations:
        asn = load_asn(item.content(ev.pool, "0.1.0").decode())
        assert asn["asn_type"] == item.spec.asn_type and asn["asn_rule"] == item.spec.asn_rule
        assert [p["name"] for p in asn["products"]] == [p.name for p in item.spec.products]


# ---------------------------------------------------------------- MIRI LRS slitless


def test_lrs_slitless_time_series_as_the_public_generator(tmp_path):
    """Two exposures of a MIRI LRS slitless time series: a spec2 per exposure (the LRS's
    Asn_MIRLRSTAConfirm, as the public rules route this mode: never tso-spec2) with its
    _rateints, and one tso3 of both _calints named with the subarray; the public generator
    makes the same from our pool, member for member and name for name."""
    plan = make_plan([lrs_slitless(1)])
    a, b = exposure_ids(plan, 1)
    ev = evaluate(plan, snapshot(plan, {s: [a, b] for s in ALL}))
    ours = _ours(ev)
    assert ours == {
        ("o001", "spec2", a, "candidate_Asn_MIRLRSTAConfirm", frozenset({(f"{a}_rateints.fits", "science")})),
        ("o001", "spec2", b, "candidate_Asn_MIRLRSTAConfirm", frozenset({(f"{b}_rateints.fits", "science")})),
        ("o001", "tso3", SLITLESS_PRODUCT, "candidate_Asn_Lv3TSO",
         frozenset({(f"{a}_calints.fits", "science"), (f"{b}_calints.fits", "science")})),
    }
    assert ours == _public(_write_pool(ev, tmp_path))
    _loads_in_the_public_pipeline(ev)
    tso3 = next(x for x in ev.associations if x.spec.asn_type == "tso3")
    doc = json.loads(tso3.content(ev.pool, "0.1.0"))
    assert doc["target"] == "t001" and doc["asn_id"] == "o001"
    assert "_tso3_00001_asn.json" in tso3.filename
    row = ev.pool.rows[0]  # what the public rules read: the mode, TSOVISIT, NINTS, the subarray
    assert (row["EXP_TYPE"], row["TSOVISIT"], row["NINTS"], row["SUBARRAY"], row["FILTER"], row["PUPIL"]) == (
        "MIR_LRS-SLITLESS", "T", "4", "SLITLESSPRISM", "P750L", "NULL")


def test_lrs_slitless_waits_for_every_member():
    plan = make_plan([lrs_slitless(1)])
    a, b = exposure_ids(plan, 1)
    specs = {spec_key(x.spec): x.spec for x in evaluate(plan, snapshot(plan, {"rateints": [a], "calints": [a]})
                                                       ).associations}
    assert specs[("o001", "spec2", a)].complete
    assert specs[("o001", "spec2", b)].waiting == (f"{b}_rateints.fits",)
    tso3 = specs[("o001", "tso3", SLITLESS_PRODUCT)]
    assert not tso3.complete and tso3.waiting == (f"{b}_calints.fits",)
    assert tso3.expected == (f"{a}_calints.fits", f"{b}_calints.fits")


def test_a_segmented_exposure_gives_a_product_per_segment(tmp_path):
    """One exposure delivered in three segments: its spec2 holds a product per segment (each
    segment's _rateints), and tso3 every segment's _calints. The public generator makes
    the same products from a pool that lists each segment as a row (it has no rule of its
    own for segments: it associates whatever files the pool names)."""
    plan = make_plan([lrs_slitless(1, exposures=1, nints=6)])
    (eid,) = exposure_ids(plan, 1)
    ev = evaluate(plan, snapshot(plan, {s: [eid] for s in ALL}, segments={eid: 3}))
    stem, det = eid.rsplit("_", 1)
    segs = [f"{stem}-seg{k:03d}_{det}" for k in (1, 2, 3)]
    spec2 = next(x.spec for x in ev.associations if x.spec.asn_type == "spec2")
    assert [(p.name, [m.expname for m in p.members]) for p in spec2.products] == [
        (s, [f"{s}_rateints.fits"]) for s in segs]
    tso3 = next(x.spec for x in ev.associations if x.spec.asn_type == "tso3")
    assert [m.expname for m in tso3.members] == [f"{s}_calints.fits" for s in segs]
    assert ev.pool.rows[0]["EXSEGTOT"] == "3"
    per_segment = replace(ev.pool, rows=tuple({**ev.pool.rows[0], "FILENAME": f"{s}_uncal.fits"} for s in segs))
    path = tmp_path / ev.pool.filename
    path.write_bytes(pool_bytes(per_segment))
    assert _ours(ev) == _public(path)
    _loads_in_the_public_pipeline(ev)


def test_one_integration_and_no_time_series(tmp_path):
    """A slitless time series of one integration keeps the public rules (spec2 and tso3),
    with the _rate/_cal stage 1 and 2 write for it (no _rateints exists for one
    integration; the public generator would still name _rateints). A slitless exposure
    outside a time series gets the spec2 alone: Level 3 leaves it out, as the public rules do."""
    plan = make_plan([lrs_slitless(1, nints=1, exposures=1)])
    (eid,) = exposure_ids(plan, 1)
    ev = evaluate(plan, snapshot(plan, {s: [eid] for s in ALL}))
    assert {(k[1], m.expname) for x in ev.associations for k in [spec_key(x.spec)] for m in x.spec.members} == {
        ("spec2", f"{eid}_rate.fits"), ("tso3", f"{eid}_cal.fits")}
    public = _public(_write_pool(ev, tmp_path))
    assert {(a[1], a[3], a[2]) for a in public} == {(a[1], a[3], a[2]) for a in _ours(ev)}
    assert {m for a in public for m, _ in a[4]} == {f"{eid}_rateints.fits", f"{eid}_calints.fits"}

    plan = make_plan([lrs_slitless(1, tsovisit=False)])
    ev = evaluate(plan, snapshot(plan, {s: exposure_ids(plan, 1) for s in ALL}))
    assert {(x.spec.asn_type, x.spec.asn_rule) for x in ev.associations} == {
        ("spec2", "candidate_Asn_MIRLRSTAConfirm")}
    assert all(m.expname.endswith("_rate.fits") for x in ev.associations for m in x.spec.members)
    (tmp_path / "non_tso").mkdir()
    assert _ours(ev) == _public(_write_pool(ev, tmp_path / "non_tso"))


# ---------------------------------------------------------------- tso-spec2


def test_tso_spec2_and_tso3_of_the_other_spectrographs_as_the_public_generator(tmp_path):
    """tso-spec2 (Asn_Lv2SpecTSO) per exposure and tso3 per observation for NIRCam's grism
    time series (NRC_TSGRISM is a time series by its type), NIRSpec's bright-object mode on
    both detectors (the prism lights NRS1 only: NRS2 is left out of both) and NIRISS SOSS
    (one integration: tso-spec2 but no tso3; F277W: nothing), as the public generator."""
    plan = make_plan([
        _spectrograph(1, "NIRCAM", "NRC_TSGRISM", ("NRCALONG",), filter="F322W2", pupil="GRISMR",
                      subarray="SUB64P").model_copy(update={"tsovisit": False}),
        _spectrograph(2, "NIRSPEC", "NRS_BRIGHTOBJ", ("NRS1", "NRS2"), filter="CLEAR", pupil="PRISM",
                      subarray="SUB2048", fixed_slit="S1600A1"),
        _spectrograph(3, "NIRSPEC", "NRS_BRIGHTOBJ", ("NRS1", "NRS2"), filter="F290LP", pupil="G395H",
                      subarray="SUB2048", fixed_slit="S1600A1"),
        _spectrograph(4, "NIRISS", "NIS_SOSS", ("NIS",), filter="CLEAR", pupil="GR700XD", subarray="SUB256",
                      nints=1),
        _spectrograph(5, "NIRISS", "NIS_SOSS", ("NIS",), filter="F277W", pupil="GR700XD", subarray="SUB256"),
    ])
    ids = [i for o in plan.observations for i in exposure_ids(plan, o.number)]
    ev = evaluate(plan, snapshot(plan, {s: ids for s in ALL}))
    ours = _ours(ev)
    assert sorted((a[0], a[1]) for a in ours) == [
        ("o001", "tso-spec2"), ("o001", "tso3"), ("o002", "tso-spec2"), ("o002", "tso3"),
        ("o003", "tso-spec2"), ("o003", "tso-spec2"), ("o003", "tso3"), ("o004", "tso-spec2")]
    assert not any("nrs2" in m for a in ours if a[0] == "o002" for m, _ in a[4])
    names = {a[0]: a[2] for a in ours if a[1] == "tso3"}
    assert names == {"o001": "jw01234-o001_t001_nircam_f322w2-grismr-sub64p",
                     "o002": "jw01234-o002_t001_nirspec_clear-prism-s1600a1-sub2048",
                     "o003": "jw01234-o003_t001_nirspec_f290lp-g395h-s1600a1-sub2048"}
    public = _public(_write_pool(ev, tmp_path))
    # one integration: the public generator names a _rateints that stage 1 does not write; ours is the _rate
    (soss,) = [a for a in ours if a[0] == "o004"]
    assert soss[4] == {(f"{exposure_ids(plan, 4)[0]}_rate.fits", "science")}
    assert (*soss[:4], frozenset({(f"{exposure_ids(plan, 4)[0]}_rateints.fits", "science")})) in public
    assert ours - {soss} == {a for a in public if a[0] != "o004"}
    _loads_in_the_public_pipeline(ev)


def test_grism_time_series_with_its_short_wave_imaging_as_the_public_generator(tmp_path):
    """NIRCam's grism time series and the short-wave imaging read beside it (one observation,
    the plan's simultaneous channel: NRCA1 in NRC_TSIMAGE with its own filter and pupil):
    tso-spec2 for the grism's exposure, tso-image2 for the short wave's, and a tso3 for
    each channel named after its own optical elements, as the public generator makes them
    from the pool (which lists each exposure with its own EXP_TYPE, FILTER and PUPIL)."""
    grism = _spectrograph(1, "NIRCAM", "NRC_TSGRISM", ("NRCALONG", "NRCA1"), filter="F444W", pupil="GRISMR",
                          subarray="SUBGRISM64")
    plan = make_plan([grism.model_copy(update={"simultaneous": Channel(
        detectors=["NRCA1"], exp_type="NRC_TSIMAGE", filter="F212N", pupil="WLP8")})])
    ids = exposure_ids(plan, 1)
    ev = evaluate(plan, snapshot(plan, {s: ids for s in ALL}))
    ours = _ours(ev)
    assert sorted((a[1], a[2]) for a in ours) == [
        ("tso-image2", "jw01234001001_01101_00001_nrca1"), ("tso-spec2", "jw01234001001_01101_00001_nrcalong"),
        ("tso3", "jw01234-o001_t001_nircam_f212n-wlp8-subgrism64"),
        ("tso3", "jw01234-o001_t001_nircam_f444w-grismr-subgrism64")]
    members = {a[2]: {m for m, _ in a[4]} for a in ours if a[1] == "tso3"}
    assert members["jw01234-o001_t001_nircam_f212n-wlp8-subgrism64"] == {f"{ids[1]}_calints.fits"}
    assert members["jw01234-o001_t001_nircam_f444w-grismr-subgrism64"] == {f"{ids[0]}_calints.fits"}
    assert ours == _public(_write_pool(ev, tmp_path))
    _loads_in_the_public_pipeline(ev)


def test_imaging_time_series_keeps_its_rules():
    plan = make_plan([observation(1, tsovisit=True, nints=3, detectors=("NRCA1",))])
    ev = evaluate(plan, snapshot(plan, {s: exposure_ids(plan, 1) for s in ALL}))
    assert sorted((x.spec.asn_type, x.spec.asn_rule) for x in ev.associations) == [
        ("tso-image2", "candidate_Asn_Lv2ImageTSO"), ("tso-image2", "candidate_Asn_Lv2ImageTSO"),
        ("tso3", "candidate_Asn_Lv3TSO")]


def test_routing_sends_the_time_series_associations_to_stage2_and_stage3():
    from datetime import UTC, datetime

    from shared.messages import Event, ProductArchived, ProductRef, new_event
    from shared.routing import routes_for

    def asn_event(asn_type: str, acid: str) -> Event:
        name = f"jw01234-{acid}_20260301t120000_{asn_type}_00001_asn.json"
        ref = ProductRef(uri=f"file:///{name}", filename=name, suffix="asn", sha256="0" * 64, size=1, revision=1,
                         program="01234", asn_id=acid)
        payload = ProductArchived(product=ref, level=2, data_release=datetime(2027, 1, 1, tzinfo=UTC),
                                  asn_type=asn_type, asn_id=acid, asn_rule="r", products=("p",))
        return new_event(payload, "/test")

    tasks = {t: {r.task for r in routes_for(asn_event(t, "o001"))} for t in ("tso-spec2", "spec2", "tso3")}
    assert "stage2.run" in tasks["tso-spec2"] and "stage2.run" in tasks["spec2"]
    assert "stage3.run" in tasks["tso3"] and "stage2.run" not in tasks["tso3"]
