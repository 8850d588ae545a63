"""Association rules as pure functions: candidates, pool rows, Level-2/3 associations,
ASN JSON, completion, and agreement with the public association generator."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from datetime import UTC, timedelta

import pytest

from services.associations.asn import asn_bytes, asn_document
from services.associations.builder import (
    AssociationParams,
    LastEmitted,
    evaluate,
    spec_key,
    to_emit,
)
from services.associations.candidates import all_candidates
from services.associations.pool import POOL_COLUMNS, pool_bytes
from services.associations.state import CurrentPool, ProgramState
from shared.naming import parse_association, parse_level3, parse_pool
from shared.plan import DitherPattern
from tests.associations_factory import T0, exposure_ids, make_plan, observation, snapshot


def science_and_background_plan():
    """o001 and o002 one field in F200W (a mosaic), o003 its background, o004 a TSO."""
    return make_plan(
        [observation(1), observation(2), observation(3, is_background=True, target=2),
         observation(4, tsovisit=True, nints=3, detectors=("NRCA1",))],
        candidates=[("MOSAIC", [1, 2]), ("BACKGROUND", [2, 3])],
    )


def everything(plan, suffixes=("uncal", "rate", "rateints", "cal", "calints")) -> ProgramState:
    ids = [i for o in plan.observations for i in exposure_ids(plan, o.number)]
    return snapshot(plan, {s: ids for s in suffixes})


def by_key(evaluation):
    return {spec_key(a.spec): a for a in evaluation.associations}


# ---------------------------------------------------------------- candidates


def test_candidates_observation_plan_and_discovered():
    plan = make_plan([observation(1), observation(2), observation(3, filter="F150W"), observation(5, filter="F150W"),
                      observation(6, filter="F150W", target=2)],
                     candidates=[("MOSAIC", [3, 5])])
    plain = all_candidates(plan)
    assert [(c.acid, c.type, c.observations) for c in plain] == [
        ("o001", "OBSERVATION", (1,)), ("o002", "OBSERVATION", (2,)), ("o003", "OBSERVATION", (3,)),
        ("o005", "OBSERVATION", (5,)), ("o006", "OBSERVATION", (6,)), ("c1000", "MOSAIC", (3, 5))]
    discovered = all_candidates(plan, discover=True)[len(plain):]
    # o003+o005 are already the mosaic c1000; o006 is another target: only o001+o002 are new
    assert [(c.acid, c.observations) for c in discovered] == [("a3001", (1, 2))]


# ---------------------------------------------------------------- pool


def test_pool_rows_follow_the_real_pool_columns():
    plan = science_and_background_plan()
    present = exposure_ids(plan, 1) + exposure_ids(plan, 2)[:1]
    state = snapshot(plan, {"uncal": present, "rate": exposure_ids(plan, 1), "cal": exposure_ids(plan, 1)},
                     segments={exposure_ids(plan, 2)[0]: 2})
    ev = evaluate(plan, state)
    rows = ev.pool.rows
    assert [r["FILENAME"] for r in rows] == [f"{i}_uncal.fits" for i in present]
    first = rows[0]
    assert list(first) == list(POOL_COLUMNS) and len(POOL_COLUMNS) == 64
    assert first["PROGRAM"] == "1234" and first["OBS_NUM"] == "1" and first["VISIT_ID"] == "01234001001"
    assert first["OBS_ID"] == "V01234001001P0000000001101"
    assert first["ASN_CANDIDATE"] == "[('o001', 'OBSERVATION'), ('c1000', 'MOSAIC')]"
    assert (first["BKGDTARG"], first["TSOVISIT"], first["IS_PSF"]) == ("F", "F", "F")
    assert (first["PATTTYPE"], first["NUMDTHPT"], first["PATT_NUM"]) == ("4-POINT", "2", "1")
    assert (first["TARGETID"], first["TARGNAME"], first["EXP_TYPE"], first["DETECTOR"]) == (
        "1", "NGC 1234", "NRC_IMAGE", "NRCA1")
    assert first["EXSEGTOT"] == "NULL" and first["GRATING"] == "NULL" and first["NGROUPS"] == "3"
    segmented = rows[-1]
    assert segmented["EXSEGTOT"] == "2"
    assert segmented["ASN_CANDIDATE"] == "[('o002', 'OBSERVATION'), ('c1000', 'MOSAIC'), ('c1001', 'BACKGROUND')]"
    # the latest _uncal/_rate archive time (the 5th exposure in plan order) names the pool
    assert ev.pool.filename == "jw01234_20260301t120005_pool.csv"
    assert parse_pool(ev.pool.filename).created == (T0 + timedelta(seconds=5)).replace(tzinfo=None)
    text = pool_bytes(ev.pool).decode()
    assert text.splitlines()[0] == "|".join(POOL_COLUMNS) and len(text.splitlines()) == 1 + len(present)


def test_pool_name_and_bytes_depend_only_on_the_exposures():
    plan = science_and_background_plan()
    ids = exposure_ids(plan, 1)
    a = evaluate(plan, snapshot(plan, {"uncal": ids, "rate": ids}))
    b = evaluate(plan, snapshot(plan, {"uncal": ids, "rate": ids, "cal": ids}))  # a _cal does not move it
    assert a.pool.filename == b.pool.filename and pool_bytes(a.pool) == pool_bytes(b.pool)
    c = evaluate(plan, snapshot(plan, {"uncal": ids + exposure_ids(plan, 2)[:1], "rate": ids}))
    assert c.pool.filename != a.pool.filename
    assert evaluate(plan, snapshot(plan, {})).pool is None


def test_a_different_pool_in_the_same_second_gets_a_later_name():
    # Two exposures archived within one second: the second pool must not reuse the first
    # one's name (a second revision of a pool is no pool of its own), while the same pool
    # evaluated again keeps its name.
    plan = science_and_background_plan()
    ids = exposure_ids(plan, 1)
    first = evaluate(plan, snapshot(plan, {"uncal": ids[:1]}))
    made = CurrentPool(first.pool.name, hashlib.sha256(pool_bytes(first.pool)).hexdigest())
    later_input = snapshot(plan, {"uncal": ids[:2]})
    in_that_second = ProgramState(plan.program, {k: replace(r, products={
        s: tuple(replace(p, archived_at=first.pool.created.replace(tzinfo=UTC, microsecond=500_000))
                 for p in files) for s, files in r.products.items()}) for k, r in later_input.exposures.items()},
        pool=made)
    second = evaluate(plan, in_that_second)
    assert second.pool.created == first.pool.created + timedelta(seconds=1)
    assert parse_pool(second.pool.filename).created > parse_pool(first.pool.filename).created
    again = evaluate(plan, replace(snapshot(plan, {"uncal": ids[:1]}), pool=made))
    assert again.pool.filename == first.pool.filename
    # a pool whose inputs are later than the current one's keeps the stamp of its inputs
    assert evaluate(plan, replace(later_input, pool=made)).pool.filename == evaluate(plan, later_input).pool.filename


def test_pool_reads_back_in_the_public_pool_reader(tmp_path):
    pytest.importorskip("jwst")
    from jwst.associations import AssociationPool

    plan = science_and_background_plan()
    ev = evaluate(plan, everything(plan))
    path = tmp_path / ev.pool.filename
    path.write_bytes(pool_bytes(ev.pool))
    pool = AssociationPool.read(str(path))
    assert len(pool) == len(ev.pool.rows) == 14
    assert pool.colnames == [c.lower() for c in POOL_COLUMNS]
    assert pool[0]["asn_candidate"] == "[('o001', 'observation'), ('c1000', 'mosaic')]"
    assert pool[0]["targname"] == "ngc 1234" and pool[0]["grating"] == "null"


# ---------------------------------------------------------------- Level 2


def test_level2_science_background_and_tso():
    plan = science_and_background_plan()
    o2, o3 = exposure_ids(plan, 2), exposure_ids(plan, 3)
    # backgrounds of NRCA1 arrived, those of NRCA2 not yet
    bkg_a1 = [i for i in o3 if i.endswith("nrca1")]
    ev = evaluate(plan, snapshot(plan, {"rate": exposure_ids(plan, 1) + o2 + bkg_a1,
                                        "rateints": exposure_ids(plan, 4)}))
    specs = by_key(ev)
    plain = specs[("o001", "image2", exposure_ids(plan, 1)[0])].spec
    assert plain.complete and plain.asn_rule == "candidate_Asn_Lv2Image" and plain.target == "1"
    assert [(p.name, [(m.expname, m.exptype) for m in p.members]) for p in plain.products] == [
        (exposure_ids(plan, 1)[0], [(f"{exposure_ids(plan, 1)[0]}_rate.fits", "science")])]
    # o002 is in the BACKGROUND candidate c1001: its Lv2 is made there, with NRCA1 backgrounds
    with_bkg = specs[("c1001", "image2", o2[0])].spec
    assert [(m.expname, m.exptype) for m in with_bkg.members] == [
        (f"{o2[0]}_rate.fits", "science"), *((f"{b}_rate.fits", "background") for b in bkg_a1)]
    waiting_bkg = specs[("c1001", "image2", o2[1])].spec
    assert waiting_bkg.complete and [m.exptype for m in waiting_bkg.members] == ["science"]
    assert waiting_bkg.optional_waiting == tuple(f"{b}_rate.fits" for b in o3 if b.endswith("nrca2"))
    assert ("o002", "image2", o2[0]) not in specs
    # the background observation is calibrated on its own
    own = specs[("o003", "image2", o3[0])].spec
    assert own.complete and own.asn_rule == "candidate_Asn_Lv2ImageSpecial"
    assert not specs[("o003", "image2", o3[1])].spec.complete  # its NRCA2 _rate is not there
    tso = specs[("o004", "tso-image2", exposure_ids(plan, 4)[0])].spec
    assert tso.asn_rule == "candidate_Asn_Lv2ImageTSO" and tso.members[0].expname.endswith("_rateints.fits")


def _lrs_observation(number: int):
    """A MIRI LRS slit observation with two nods along the slit."""
    return observation(number, instrument="MIRI", detectors=("MIRIMAGE",), subarray="FULL",
                       filter="P750L").model_copy(update={
                           "exp_type": "MIR_LRS-FIXEDSLIT", "template": "MIRI Low Resolution Spectroscopy",
                           "dither": DitherPattern(pattern_type="ALONG-SLIT-NOD", offsets=[(-1.0, 0.0), (1.0, 0.0)])})


def _nirspec_fs_observation(number: int):
    """A NIRSpec fixed-slit observation (S200A1, the prism) with three nods along the slit."""
    return observation(number, instrument="NIRSPEC", detectors=("NRS1",), subarray="SUBS200A1",
                       filter="CLEAR", npoints=3).model_copy(update={
                           "template": "NIRSpec Fixed Slit Spectroscopy",
                           "dither": DitherPattern(pattern_type="3-POINT-NOD",
                                                   offsets=[(0.0, 0.0), (0.0, -1.0), (0.0, 1.0)])})


def _nirspec_mos_observation(number: int):
    """A NIRSpec MOS observation (the prism, FULL) nodded in its three-shutter slitlets."""
    return observation(number, instrument="NIRSPEC", detectors=("NRS1",), subarray="FULL", filter="CLEAR",
                       npoints=3).model_copy(update={
                           "exp_type": "NRS_MSASPEC", "fixed_slit": None,
                           "template": "NIRSpec MultiObject Spectroscopy",
                           "msa_metadata": f"jw01234{number:03d}001_01_msa.fits",
                           "dither": DitherPattern(pattern_type="3-POINT-NOD",
                                                   offsets=[(0.0, 0.0), (0.0, 0.53), (0.0, -0.53)])})


def test_lrs_nods_are_each_others_background_and_wait_for_each_other():
    from jwst.associations import load_asn

    plan = make_plan([_lrs_observation(1)])
    a, b = exposure_ids(plan, 1)
    specs = by_key(evaluate(plan, snapshot(plan, {"rate": [a]})))
    assert set(specs) == {("o001", "spec2", a), ("o001", "spec2", b),  # no image2 or image3 for spectra
                          ("o001", "spec3", "jw01234-o001_t001_miri_p750l")}
    for eid in (a, b):
        spec = specs[("o001", "spec2", eid)].spec
        assert not spec.complete and spec.waiting == (f"{b}_rate.fits",)  # nod b's rate is not there yet
    ev = evaluate(plan, snapshot(plan, {"rate": [a, b]}))
    for eid, other in ((a, b), (b, a)):
        item = by_key(ev)[("o001", "spec2", eid)]
        assert item.spec.complete and item.spec.asn_rule == "candidate_Asn_Lv2MIRLRSFixedSlitNod"
        assert [(m.expname, m.exptype) for m in item.spec.members] == [
            (f"{eid}_rate.fits", "science"), (f"{other}_rate.fits", "background")]
        asn = load_asn(item.content(ev.pool, "0.1.0").decode())  # the public pipeline reads it
        assert asn["asn_type"] == "spec2" and asn["products"][0]["name"] == eid
    # Level 3: the target's spectrum from every nod's _cal
    spec3 = by_key(evaluate(plan, snapshot(plan, {"rate": [a, b], "cal": [a, b], "x1d": [a]})))[
        ("o001", "spec3", "jw01234-o001_t001_miri_p750l")].spec
    assert not spec3.complete and spec3.waiting == (f"{b}_x1d.fits",)
    ev = evaluate(plan, snapshot(plan, {"rate": [a, b], "cal": [a, b], "x1d": [a, b]}))
    item = by_key(ev)[("o001", "spec3", "jw01234-o001_t001_miri_p750l")]
    assert item.spec.complete and item.spec.asn_rule == "candidate_Asn_Lv3SpectralTarget"
    assert [(m.expname, m.exptype) for m in item.spec.members] == [
        (f"{a}_cal.fits", "science"), (f"{a}_x1d.fits", "background"),
        (f"{b}_cal.fits", "science"), (f"{b}_x1d.fits", "background")]
    assert load_asn(item.content(ev.pool, "0.1.0").decode())["asn_type"] == "spec3"
    assert not any(key[1] in ("image2", "image3") for key in by_key(ev))


def test_level2_waits_for_every_segment_and_makes_one_product_each():
    plan = make_plan([observation(1, detectors=("NRCA1",), npoints=1)])
    eid = exposure_ids(plan, 1)[0]
    state = snapshot(plan, {"uncal": [eid], "rate": [eid]}, segments={eid: 2})
    spec = evaluate(plan, state).associations[0].spec
    stem = "jw01234001001_01101_00001"
    assert eid == f"{stem}_nrca1"
    assert [p.name for p in spec.products] == [f"{stem}-seg001_nrca1", f"{stem}-seg002_nrca1"]
    partial = replace(state.exposures[eid], products={**state.exposures[eid].products,
                                                       "rate": state.exposures[eid].files("rate")[:1]})
    spec = evaluate(plan, ProgramState(plan.program, {eid: partial})).associations[0].spec
    assert not spec.complete and spec.waiting == (f"{stem}-seg001_nrca1_rate.fits", f"{stem}-seg002_nrca1_rate.fits")


# ---------------------------------------------------------------- Level 3


def test_level3_complete_only_when_every_member_exists():
    plan = science_and_background_plan()
    o1 = exposure_ids(plan, 1)
    ev = evaluate(plan, snapshot(plan, {"cal": o1[:-1]}))
    spec = by_key(ev)[("o001", "image3", "jw01234-o001_t001_nircam_clear-f200w-sub64p")].spec
    assert not spec.complete and spec.waiting == (f"{o1[-1]}_cal.fits",)
    assert spec.expected == tuple(f"{i}_cal.fits" for i in o1)
    ev = evaluate(plan, snapshot(plan, {"cal": o1}))
    spec = by_key(ev)[("o001", "image3", "jw01234-o001_t001_nircam_clear-f200w-sub64p")].spec
    assert spec.complete and spec.asn_rule == "candidate_Asn_Lv3Image" and spec.target == "t001"
    assert [m.expname for m in spec.members] == [f"{i}_cal.fits" for i in o1]
    assert {m.asn_candidate for m in spec.members} == {"[('o001', 'observation'), ('c1000', 'mosaic')]"}


def test_level3_mosaic_tso_and_exclusions():
    plan = science_and_background_plan()
    ev = evaluate(plan, everything(plan))
    level3 = {spec_key(a.spec): a.spec for a in ev.associations if a.spec.level == 3}
    assert set(level3) == {
        ("o001", "image3", "jw01234-o001_t001_nircam_clear-f200w-sub64p"),
        ("o002", "image3", "jw01234-o002_t001_nircam_clear-f200w-sub64p"),
        ("c1000", "image3", "jw01234-c1000_t000_nircam_clear-f200w-sub64p"),
        ("o004", "tso3", "jw01234-o004_t001_nircam_clear-f200w-sub64p"),
    }  # no image3 for the background observation o003, none for c1001 (one science observation)
    mosaic = level3[("c1000", "image3", "jw01234-c1000_t000_nircam_clear-f200w-sub64p")]
    assert mosaic.asn_rule == "candidate_Asn_Lv3ImageMosaic"
    assert len(mosaic.members) == 8 and {m.expname[:15] for m in mosaic.members} == {
        "jw01234001001_0", "jw01234002001_0"}
    tso = level3[("o004", "tso3", "jw01234-o004_t001_nircam_clear-f200w-sub64p")]
    assert tso.asn_rule == "candidate_Asn_Lv3TSO" and all(m.expname.endswith("_calints.fits") for m in tso.members)
    for name in level3:
        assert parse_level3(f"{name[2]}_i2d.fits").acid == name[0]


def test_discover_mode_adds_a3_candidates_for_multi_observation_groups():
    plan = make_plan([observation(1), observation(2), observation(3, instrument="MIRI", filter="F770W",
                                                                  detectors=("MIRIMAGE",), subarray="SUB64")])
    assert not [a for a in evaluate(plan, everything(plan)).associations if a.spec.acid.startswith("a")]
    ev = evaluate(plan, everything(plan), AssociationParams(discover=True))
    found = [a.spec for a in ev.associations if a.spec.acid.startswith("a")]
    assert [(s.acid, s.asn_rule, s.name, len(s.members)) for s in found] == [
        ("a3001", "discover_Asn_Lv3Image", "jw01234-a3001_t001_nircam_clear-f200w-sub64p", 8)]
    miri = by_key(ev)[("o003", "image3", "jw01234-o003_t001_miri_f770w-sub64")].spec
    assert miri.complete  # MIRI has no pupil: one optical element


# ---------------------------------------------------------------- ASN JSON and names


def test_asn_json_keys_names_and_sequences():
    plan = science_and_background_plan()
    ev = evaluate(plan, everything(plan))
    for item in ev.associations:
        doc = json.loads(item.content(ev.pool, "1.2.3"))
        assert list(doc) == ["asn_type", "asn_rule", "version_id", "code_version", "degraded_status", "program",
                             "constraints", "asn_id", "target", "asn_pool", "products"]
        assert doc["program"] == "01234" and doc["asn_pool"] == ev.pool.filename
        assert doc["code_version"] == "1.2.3" and doc["version_id"] == ev.pool.stamp
        assert doc["degraded_status"] == "No known degraded exposures in association."
        name = parse_association(item.filename)
        assert (name.program, name.acid, name.asn_type, name.created) == (
            "01234", doc["asn_id"], doc["asn_type"], ev.pool.created)
        for product in doc["products"]:
            for m in product["members"]:
                keys = ["expname", "exptype", "exposerr"] + (["asn_candidate"] if item.spec.level == 3 else [])
                assert list(m) == keys and m["exposerr"] == "null"
                assert m["exptype"] in ({"science", "background"} if item.spec.level == 2 else {"science"})
    # sequences count 1.. per candidate and type, in product order
    o1 = sorted((a.sequence, a.spec.name) for a in ev.associations if spec_key(a.spec)[:2] == ("o001", "image2"))
    assert o1 == [(k + 1, n) for k, n in enumerate(sorted(exposure_ids(plan, 1)))]
    assert len({a.filename for a in ev.associations}) == len(ev.associations)


def test_every_asn_loads_in_the_public_pipeline():
    pytest.importorskip("jwst")
    from jwst.associations import load_asn

    plan = science_and_background_plan()
    ev = evaluate(plan, everything(plan), AssociationParams(discover=True))
    assert len(ev.associations) == 14 + 4  # image2 and tso-image2, then image3 and tso3
    for item in ev.associations:
        asn = load_asn(item.content(ev.pool, "0.1.0").decode())
        assert asn["asn_id"] == item.spec.acid and asn["asn_type"] == item.spec.asn_type
        assert [p["name"] for p in asn["products"]] == [p.name for p in item.spec.products]
        assert sum(len(p["members"]) for p in asn["products"]) == len(item.spec.members)


# ---------------------------------------------------------------- completion and revisions


def test_to_emit_same_state_nothing_late_member_and_revision_something():
    plan = science_and_background_plan()
    o1 = exposure_ids(plan, 1)
    first = evaluate(plan, snapshot(plan, {"uncal": o1, "rate": o1, "cal": o1}))
    emitted = to_emit(first, {})
    assert {a.spec.asn_type for a in emitted} == {"image2", "image3"}
    last = {spec_key(a.spec): LastEmitted(a.spec.signature, a.version) for a in emitted}
    assert to_emit(first, last) == []  # the same state again: nothing
    # a reprocessed _cal (revision 2, archived later): the image3 again, with a newer version_id
    again = snapshot(plan, {"uncal": o1, "rate": o1})
    newer = snapshot(plan, {"cal": o1}, revision=2)
    merged = ProgramState(plan.program, {
        k: replace(r, products={**r.products, "cal": tuple(replace(p, archived_at=p.archived_at + timedelta(hours=1))
                                                             for p in newer.exposures[k].files("cal"))})
        for k, r in again.exposures.items()})
    second = evaluate(plan, merged)
    redo = to_emit(second, last)
    assert [a.spec.asn_type for a in redo] == ["image3"]
    before = next(a for a in emitted if a.spec.asn_type == "image3")
    assert redo[0].filename == before.filename  # same pool: a new revision of the same file
    assert redo[0].content(second.pool, "0") != before.content(first.pool, "0")
    assert redo[0].version > before.version
    # reprocessed within the same second: the version still moves on, so the bytes differ
    same_second = evaluate(plan, ProgramState(plan.program, {
        k: replace(r, products={**r.products, "cal": newer.exposures[k].files("cal")})
        for k, r in again.exposures.items()}))
    (redo,) = to_emit(same_second, last)
    assert redo.spec.signature != last[spec_key(redo.spec)].signature
    assert by_key(same_second)[spec_key(redo.spec)].version == before.version == "20260301t120004"
    assert redo.version == "20260301t120005"


def test_asn_document_of_an_incomplete_level3_lists_what_exists():
    plan = science_and_background_plan()
    o1 = exposure_ids(plan, 1)
    ev = evaluate(plan, snapshot(plan, {"rate": o1, "cal": o1[:2]}))
    spec = by_key(ev)[("o001", "image3", "jw01234-o001_t001_nircam_clear-f200w-sub64p")].spec
    doc = asn_document(spec, program="01234", pool_filename=ev.pool.filename, version="v", code_version="c")
    assert [m["expname"] for m in doc["products"][0]["members"]] == [f"{i}_cal.fits" for i in o1[:2]]
    assert to_emit(ev, {}) and all(a.spec.level == 2 for a in to_emit(ev, {}))
    assert asn_bytes(doc).endswith(b"}\n")


# ---------------------------------------------------------------- the public generator


def _ours(ev) -> set[tuple]:
    """Our associations as :func:`_public` gives the generator's."""
    return {(a.spec.acid, a.spec.asn_type, p.name, a.spec.asn_rule, frozenset((m.expname, m.exptype)
                                                                              for m in p.members))
            for a in ev.associations for p in a.spec.products}


def _public(pool_path, discover: bool):
    from jwst.associations import AssociationPool
    from jwst.associations.generator.generate_per_candidate import generate_per_candidate

    logging.getLogger("jwst").setLevel(logging.WARNING)
    asns = generate_per_candidate(AssociationPool.read(str(pool_path)), None, discover=discover)
    return {(a["asn_id"], a["asn_type"], p["name"], a["asn_rule"], frozenset((m["expname"], m["exptype"])
                                                                             for m in p["members"]))
            for a in asns for p in a["products"]}


@pytest.mark.parametrize("discover", [False, True])
def test_same_associations_as_the_public_generator(tmp_path, discover):
    """Our pool fed to the public per-candidate generator gives the associations our
    rules give (Asn_Lv3ImageBackground, an image3 of background observations, is not
    made here)."""
    pytest.importorskip("jwst")
    plan = make_plan(
        [observation(1), observation(2), observation(3, is_background=True, target=2),
         observation(4, tsovisit=True, nints=3, detectors=("NRCA1",)), observation(5, filter="F150W"),
         observation(6, filter="F150W", target=2)],
        candidates=[("MOSAIC", [5, 6]), ("BACKGROUND", [2, 3])],
    )
    ev = evaluate(plan, everything(plan), AssociationParams(discover=discover))
    path = tmp_path / ev.pool.filename
    path.write_bytes(pool_bytes(ev.pool))
    theirs = {a for a in _public(path, discover) if a[3] != "candidate_Asn_Lv3ImageBackground"}
    ours = _ours(ev)
    assert ours == theirs
    assert any(a[0] == "c1001" for a in ours) and any(a[0] == "c1000" for a in ours)
    assert any(a[0].startswith("a3") for a in ours) == discover


def test_lrs_associations_as_the_public_generator(tmp_path):
    """The MIRI LRS nods' pool: the public generator's spec2 (Asn_Lv2MIRLRSFixedSlitNod)
    and spec3 (Asn_Lv3SpectralTarget) associations are ours, member for member."""
    pytest.importorskip("jwst")
    plan = make_plan([_lrs_observation(1)])
    ev = evaluate(plan, everything(plan, ("uncal", "rate", "cal", "x1d")))
    path = tmp_path / ev.pool.filename
    path.write_bytes(pool_bytes(ev.pool))
    ours = _ours(ev)
    assert {a[1] for a in ours} == {"spec2", "spec3"} and len(ours) == 3
    assert ours == _public(path, False)


def test_nirspec_fixed_slit_associations_as_the_public_generator(tmp_path):
    """A NIRSpec fixed-slit observation's pool: the public generator's spec2 (Asn_Lv2NRSFSS,
    each nod with the others as background) and spec3 (Asn_Lv3NRSFSS, named with the
    placeholders of the source and the slit) associations are ours, member for member."""
    pytest.importorskip("jwst")
    from jwst.associations import load_asn

    plan = make_plan([_nirspec_fs_observation(1)])
    ev = evaluate(plan, everything(plan, ("uncal", "rate", "cal", "x1d")))
    path = tmp_path / ev.pool.filename
    path.write_bytes(pool_bytes(ev.pool))
    ours = _ours(ev)
    assert sorted(a[1] for a in ours) == ["spec2", "spec2", "spec2", "spec3"]
    assert ours == _public(path, False)
    for item in ev.associations:
        assert load_asn(item.content(ev.pool, "0.1.0").decode())["asn_type"] == item.spec.asn_type


def test_nirspec_mos_associations_as_the_public_generator(tmp_path):
    """A NIRSpec MOS observation's pool: the public generator's spec2 associations
    (Asn_Lv2NRSMSA, each nod with the others as background) and its spec3
    (Asn_Lv3SpectralSource, named with the placeholder of the source in the target's
    place) are ours, member for member."""
    pytest.importorskip("jwst")
    from jwst.associations import load_asn

    plan = make_plan([_nirspec_mos_observation(1)])
    ev = evaluate(plan, everything(plan, ("uncal", "rate", "cal", "x1d")))
    path = tmp_path / ev.pool.filename
    path.write_bytes(pool_bytes(ev.pool))
    ours = _ours(ev)
    assert sorted(a[1] for a in ours) == ["spec2", "spec2", "spec2", "spec3"]
    assert {a[3] for a in ours} == {"candidate_Asn_Lv2NRSMSA", "candidate_Asn_Lv3SpectralSource"}
    assert {a[2] for a in ours if a[1] == "spec3"} == {"jw01234-o001_{source_id}_nirspec_clear-prism"}
    assert ours == _public(path, False)
    for item in ev.associations:
        assert load_asn(item.content(ev.pool, "0.1.0").decode())["asn_type"] == item.spec.asn_type


def _mrs_observation(number: int):
    """A MIRI MRS observation (both detectors, band SHORT) with the 4-POINT dither."""
    return observation(number, instrument="MIRI", detectors=("MIRIFUSHORT", "MIRIFULONG"), subarray="FULL",
                       filter="N/A", npoints=4).model_copy(update={
                           "exp_type": "MIR_MRS", "band": "SHORT",
                           "template": "MIRI Medium Resolution Spectroscopy",
                           "dither": DitherPattern(pattern_type="4-POINT", optimized_for="POINT-SOURCE",
                                                   offsets=[(0.1, 0.5), (-0.1, -0.5), (0.05, -0.5), (-0.05, 0.5)])})


def test_mrs_associations_as_the_public_generator(tmp_path):
    """A MIRI MRS observation's pool: the public generator's spec2 associations
    (Asn_Lv2Spec, one per exposure, its _rate the science member) and its spec3
    (Asn_Lv3MIRMRS: every exposure's _cal, both detectors, named without optical
    elements) are ours, member for member."""
    pytest.importorskip("jwst")
    plan = make_plan([_mrs_observation(1)])
    ev = evaluate(plan, everything(plan, ("uncal", "rate", "cal", "x1d")))
    path = tmp_path / ev.pool.filename
    path.write_bytes(pool_bytes(ev.pool))
    ours = _ours(ev)
    theirs = _public(path, False)
    assert sorted(a[1] for a in ours) == ["spec2"] * 8 + ["spec3"]
    assert ours == theirs
