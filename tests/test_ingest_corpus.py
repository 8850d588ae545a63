"""The bad-telemetry corpus: every kind of bad input a downlink can bring, delivered through
the real receiver and ingest handler (SQLite catalog, local object store), each with its
expected outcome: refused with a reason code, or archived with the flags it deserves.

For every case: no task fails or is dead-lettered, every delivered file is kept byte for
byte in dms-raw, every refusal is a catalog row with its reason code and a detail a person
can act on, and every archived ``_uncal`` carries DATAPROB and DQ as expected. Each case
uses its own program number, so all run in one catalog.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import func, select

from services.ingest.receive import receive_files
from services.registry import embedded_context
from shared.catalog import EventRecord, IngestRejection, Product
from shared.config import Settings
from shared.datamodels import dqflags
from shared.messages import EventType
from shared.plan import Plan
from shared.runtime import dispatch_events
from shared.telemetry import APID, SecondaryHeader, encode_packet
from tests.telemetry_factory import (
    TinyExposure,
    at_time,
    bomb,
    flip,
    header_of,
    payload_of,
    shifted,
    tiny_exposure,
    tiny_plan,
    with_apid,
    with_header,
    with_payload,
    with_primary,
)


@dataclass(frozen=True)
class Delivery:
    """What a case delivers: a plan (a Plan, a JSON-able dict, raw bytes, or none) and a
    telemetry file."""

    telemetry: bytes
    plan: Plan | dict | bytes | None
    plan_name: str | None = None  # default jw<program>_plan.json


@dataclass(frozen=True)
class Expect:
    reasons: tuple[str, ...] = ()  # reason codes of the refusals, sorted
    archived: bool = False  # one _uncal archived
    dataprob: bool = False  # its DATAPROB
    counters: frozenset[str] = frozenset()  # IngestSummary counts that must be > 0
    dropout: bool = False  # GROUPDQ DROPOUT set on some rows
    settings: tuple = ()  # Settings overrides (name, value)


CLEAN = Expect(archived=True)
FLAGGED = Expect(archived=True, dataprob=True)


def flagged(*counters: str, dropout: bool = False) -> Expect:
    return Expect(archived=True, dataprob=True, counters=frozenset(counters), dropout=dropout)


def dropped(*counters: str) -> Expect:
    return flagged(*counters, "missing_rows", dropout=True)


def refused(*reasons: str, **kw) -> Expect:
    return Expect(reasons=tuple(sorted(reasons)), **kw)


@cache
def base(program: str, **kw) -> TinyExposure:
    plan_kw = {k: v for k, v in kw.items() if k in ("instrument", "detector_name", "subarray_name", "readpatt")}
    exp_kw = {k: v for k, v in kw.items() if k not in plan_kw}
    return tiny_exposure(tiny_plan(program=program, **plan_kw), **exp_kw)


def tlm(program: str, packets: Callable[[list[bytes]], list[bytes]] | None = None, **kw) -> Delivery:
    """The base exposure of ``program``, its packets passed through ``packets``, with its plan."""
    t = base(program, **kw)
    return Delivery(b"".join(packets(list(t.packets)) if packets else t.packets), t.plan)


def raw_bytes(program: str, data: bytes) -> Delivery:
    return Delivery(data, base(program).plan)


def bad_plan(change: Callable[[dict], None]) -> Callable[[str], Delivery]:
    def build(program: str) -> Delivery:
        t = base(program)
        plan = t.plan.model_dump(mode="json")
        change(plan)
        return Delivery(b"".join(t.packets), plan)

    return build


def obs_field(**changes) -> Callable[[dict], None]:
    return lambda plan: plan["observations"][0].update(changes)


def exp_field(**changes) -> Callable[[dict], None]:
    return lambda plan: plan["observations"][0]["exposures"][0].update(changes)


def rewrite(p: bytes, seq: int, **changes) -> bytes:
    """Packet ``p`` re-encoded with its own pixels and sequence count ``seq``."""
    h = SecondaryHeader(**{**header_of(p).__dict__, **changes})
    pixels = np.frombuffer(payload_of(p), ">u2").reshape(h.nrows, -1)
    return encode_packet(int.from_bytes(p[:2], "big") & 0x7FF, seq, h, pixels)


PLAN_REFUSED = refused("invalid_plan", "missing_plan")
COARSE_2026 = 2_151_000_000  # about 2026-02 in CCSDS seconds

# name -> (builder(program) -> Delivery, expectation)
CORPUS: dict[str, tuple[Callable[[str], Delivery], Expect]] = {
    # -- empty files and bytes that are not telemetry
    "empty_file": (lambda pr: raw_bytes(pr, b""), refused("empty_file")),
    "random_bytes": (lambda pr: raw_bytes(pr, np.random.default_rng(5).bytes(5000)), refused("no_science_packets")),
    "zero_bytes": (lambda pr: raw_bytes(pr, bytes(4096)), refused("no_science_packets")),
    "text_file": (lambda pr: raw_bytes(pr, b"this is not telemetry\n" * 50), refused("no_science_packets")),
    "three_bytes": (lambda pr: raw_bytes(pr, b"\x0a\xc1\xc0"), refused("no_science_packets")),
    "header_only": (lambda pr: raw_bytes(pr, base(pr).packets[0][:40]), refused("no_science_packets")),
    # -- truncation
    "truncated_last_packet": (lambda pr: raw_bytes(pr, b"".join(base(pr).packets)[:-100]), dropped("fault_truncated")),
    "truncated_at_half": (lambda pr: raw_bytes(pr, (lambda d: d[: len(d) // 2 + 7])(b"".join(base(pr).packets))),
                          dropped("fault_truncated")),
    # -- CRC
    "crc_error_in_payload": (lambda pr: tlm(pr, lambda P: P[:3] + [flip(P[3], 60)] + P[4:]), dropped("fault_crc_mismatch")),
    "crc_error_in_crc_field": (lambda pr: tlm(pr, lambda P: P[:3] + [flip(P[3], len(P[3]) - 1)] + P[4:]),
                               dropped("fault_crc_mismatch")),
    "crc_error_every_packet": (lambda pr: tlm(pr, lambda P: [flip(p, 60) for p in P]), refused("no_science_packets")),
    # -- sequence counts: gaps, wrap-around, duplicates, order
    "dropped_packets": (lambda pr: tlm(pr, lambda P: P[:5] + P[8:]), dropped("sequence_gaps")),
    "first_packet_missing": (lambda pr: tlm(pr, lambda P: P[1:]), dropped()),
    "last_packet_missing": (lambda pr: tlm(pr, lambda P: P[:-1]), dropped()),
    "sequence_gap_without_loss": (lambda pr: tlm(pr, lambda P: [rewrite(p, k + (k >= 10) * 5) for k, p in enumerate(P)]),
                                  flagged("sequence_gaps")),
    "sequence_wraps_around": (lambda pr: tlm(pr, first_sequence=16370), CLEAN),
    "duplicated_packets": (lambda pr: tlm(pr, lambda P: P[:6] + P[4:6] + P[6:]), Expect(archived=True, counters=frozenset({"duplicates"}))),
    "whole_file_twice": (lambda pr: tlm(pr, lambda P: P + P), Expect(archived=True, counters=frozenset({"duplicates"}))),
    # a reorder also reads as a sequence gap, so it sets DATAPROB, though nothing is missing
    "reordered_packets": (lambda pr: tlm(pr, lambda P: P[:4] + [P[6], P[4], P[5]] + P[7:]), flagged("reordered")),
    "reversed_packets": (lambda pr: tlm(pr, lambda P: P[::-1]), Expect(archived=True, counters=frozenset({"reordered"}))),
    "conflicting_duplicate": (lambda pr: tlm(pr, lambda P: P + [encode_packet(0x2C1, len(P), header_of(P[0]), np.zeros((8, 64), np.uint16))]),
                              flagged("conflicting_duplicates")),
    # -- APIDs
    "unknown_apid_only": (lambda pr: tlm(pr, lambda P: [with_apid(p, 0x123) for p in P]), refused("no_science_packets")),
    "unknown_apid_mixed": (lambda pr: tlm(pr, lambda P: P[:2] + [with_apid(P[2], 0x123)] + P[3:]), dropped("fault_unknown_apid")),
    "apid_of_another_instrument": (lambda pr: tlm(pr, lambda P: [with_apid(p, APID.SCIENCE["MIRI"]) for p in P]),
                                   refused("instrument_mismatch")),
    "zeroframe_apid_only": (lambda pr: tlm(pr, lambda P: [with_apid(p, APID.ZEROFRAME["NIRCAM"]) for p in P]),
                            refused("no_science_packets")),
    # -- primary headers and lengths
    "corrupted_length_field": (lambda pr: tlm(pr, lambda P: P[:2] + [flip(P[2], 4)] + P[3:]), dropped("fault_garbled")),
    "bad_version_bits": (lambda pr: tlm(pr, lambda P: P[:2] + [with_primary(P[2], word0_or=0x2000)] + P[3:]), dropped("fault_garbled")),
    "telecommand_type_bit": (lambda pr: tlm(pr, lambda P: P[:2] + [with_primary(P[2], word0_or=0x1000)] + P[3:]), dropped("fault_garbled")),
    "no_secondary_header_flag": (lambda pr: tlm(pr, lambda P: P[:2] + [with_primary(P[2], word0_and=0xF7FF)] + P[3:]),
                                 dropped("fault_garbled")),
    "segmented_sequence_flags": (lambda pr: tlm(pr, lambda P: P[:2] + [with_primary(P[2], word1_and=0x7FFF)] + P[3:]),
                                 dropped("fault_garbled")),
    "garbage_between_packets": (lambda pr: tlm(pr, lambda P: P[:3] + [b"\x0a\xc1junk"] + P[3:]), flagged("fault_garbled")),
    "length_past_end_of_file": (lambda pr: tlm(pr, lambda P: P[:-1] + [P[-1][:4] + b"\xff\xff" + P[-1][6:]]), dropped("fault_truncated")),
    # -- secondary headers
    "zero_rows_declared": (lambda pr: tlm(pr, lambda P: P[:3] + [with_header(P[3], nrows=0)] + P[4:]), dropped("fault_bad_header")),
    "rows_past_any_window": (lambda pr: tlm(pr, lambda P: P[:3] + [with_header(P[3], first_row=4000)] + P[4:]), dropped("fault_bad_header")),
    "rows_past_planned_window": (lambda pr: tlm(pr, lambda P: P[:3] + [with_header(P[3], first_row=60)] + P[4:]), dropped("out_of_range")),
    "integration_out_of_range": (lambda pr: tlm(pr, lambda P: P + [with_header(P[0], integration=9)]), flagged("out_of_range")),
    "group_out_of_range": (lambda pr: tlm(pr, lambda P: P + [with_header(P[0], group=7)]), flagged("out_of_range")),
    "group_zero_on_science": (lambda pr: tlm(pr, lambda P: P + [with_header(P[0], group=0)]), flagged("out_of_range")),
    "unknown_detector": (lambda pr: tlm(pr, lambda P: [with_header(p, detector_code=99) for p in P]), refused("unknown_detector")),
    "other_exposure_number": (lambda pr: tlm(pr, lambda P: [with_header(p, exposure=77) for p in P]), refused("not_in_plan")),
    "other_observation": (lambda pr: tlm(pr, lambda P: [with_header(p, observation=5) for p in P]), refused("not_in_plan")),
    "other_detector_of_same_instrument": (lambda pr: tlm(pr, lambda P: [with_header(p, detector_code=2) for p in P]),
                                          refused("not_in_plan")),
    "program_without_plan": (lambda pr: Delivery(b"".join(base(pr).packets), None), refused("missing_plan")),
    # -- payloads
    "bad_compressed_payload": (lambda pr: tlm(pr, lambda P: P[:1] + [with_payload(P[1], payload_of(P[1])[:-5] + bytes(5))] + P[2:],
                                              compress=True), dropped("fault_bad_payload")),
    "deflate_stream_cut_short": (lambda pr: tlm(pr, lambda P: P[:1] + [with_payload(P[1], payload_of(P[1])[:-20])] + P[2:],
                                                compress=True), dropped("fault_bad_payload")),
    "bytes_after_deflate_stream": (lambda pr: tlm(pr, lambda P: P[:1] + [with_payload(P[1], payload_of(P[1]) + b"tail")] + P[2:],
                                                  compress=True), dropped("fault_bad_payload")),
    "odd_payload_length": (lambda pr: tlm(pr, lambda P: P[:1] + [with_payload(P[1], payload_of(P[1]) + b"x")] + P[2:]),
                           dropped("fault_bad_payload")),
    "one_packet_of_wrong_width": (lambda pr: tlm(pr, lambda P: P[:1] + [with_payload(P[1], bytes(8 * 32 * 2))] + P[2:]),
                                  dropped("fault_bad_payload")),
    "every_packet_wrong_width": (lambda pr: tlm(pr, lambda P: [with_payload(p, bytes(8 * 32 * 2)) for p in P]), refused("plan_mismatch")),
    "compressed_clean": (lambda pr: tlm(pr, compress=True), CLEAN),
    # -- decompression bombs
    "bomb_one_packet": (lambda pr: tlm(pr, lambda P: P[:5] + [bomb(P[5], 64 * 2**20)] + P[6:]), refused("decompression_bomb")),
    "bomb_every_packet": (lambda pr: tlm(pr, lambda P: [bomb(p, 8 * 2**20) for p in P]), refused("decompression_bomb")),
    "bomb_at_the_declared_rows_of_widest_detector": (
        lambda pr: tlm(pr, lambda P: [bomb(p, 8 * 2048 * 2) for p in P]), refused("plan_mismatch")),
    "file_past_inflate_budget": (lambda pr: tlm(pr, compress=True),
                                 refused("decompression_limit", settings=(("ingest_max_inflated_bytes", 30_000),))),
    # -- packet times against the plan's visit window
    "time_at_ccsds_epoch": (lambda pr: tlm(pr, lambda P: [at_time(p, 0) for p in P]), refused("time_outside_window")),
    "time_at_end_of_counter": (lambda pr: tlm(pr, lambda P: [at_time(p, 0xFFFFFFFF) for p in P]), refused("time_outside_window")),
    "one_packet_a_month_late": (lambda pr: tlm(pr, lambda P: P[:4] + [shifted(P[4], 30 * 86400)] + P[5:]),
                                refused("time_outside_window")),
    "two_days_early": (lambda pr: tlm(pr, lambda P: [shifted(p, -2 * 86400) for p in P]), refused("time_outside_window")),
    "an_hour_late_within_tolerance": (lambda pr: tlm(pr, lambda P: [shifted(p, 3600) for p in P]), CLEAN),
    # -- streams beside SCI
    "zeroframe_complete": (lambda pr: tlm(pr, zeroframe=True), CLEAN),
    "zeroframe_first_packet_missing": (lambda pr: tlm(pr, lambda P: P[1:], zeroframe=True),
                                       flagged("missing_zeroframe_rows")),
    "zeroframe_packet_with_bad_crc": (lambda pr: tlm(pr, lambda P: P[:3] + [flip(P[3], 70)] + P[4:], zeroframe=True),
                                      flagged("missing_zeroframe_rows", "fault_crc_mismatch")),
    "miri_refout_packet_missing": (lambda pr: tlm(pr, lambda P: [p for p in P if p is not _first_refout(P)],
                                                  instrument="MIRI", detector_name="MIRIMAGE", subarray_name="SUB64",
                                                  readpatt="FAST"), flagged("missing_rows")),
    # -- plans that do not validate (the telemetry delivered with them waits for a valid one)
    "plan_subarray_bogus": (bad_plan(obs_field(subarray="BOGUS")), PLAN_REFUSED),
    "plan_readpatt_bogus": (bad_plan(obs_field(readpatt="BOGUS")), PLAN_REFUSED),
    "plan_readpatt_of_another_instrument": (bad_plan(obs_field(readpatt="FAST")), PLAN_REFUSED),
    "plan_nints_a_million": (bad_plan(obs_field(nints=10**6)), PLAN_REFUSED),
    "plan_ngroups_two_to_the_31": (bad_plan(obs_field(ngroups=2**31)), PLAN_REFUSED),
    "plan_exposure_too_large": (bad_plan(obs_field(subarray="FULL", ngroups=20, nints=2000)), PLAN_REFUSED),
    "plan_miri_for_nrca1": (bad_plan(obs_field(instrument="MIRI", exp_type="MIR_IMAGE", readpatt="FAST", subarray="SUB64")),
                            PLAN_REFUSED),
    "plan_exp_type_of_another_instrument": (bad_plan(obs_field(exp_type="MIR_IMAGE")), PLAN_REFUSED),
    "plan_exposure_detector_not_observed": (bad_plan(exp_field(detector="NRCA2")), PLAN_REFUSED),
    "plan_start_in_1957": (bad_plan(exp_field(start_time="1957-10-04T19:28:34Z")), PLAN_REFUSED),
    "plan_start_in_2094": (bad_plan(exp_field(start_time="2094-01-01T00:00:00Z")), PLAN_REFUSED),
    "plan_unknown_target": (bad_plan(obs_field(target_id=7)), PLAN_REFUSED),
    "plan_unknown_instrument": (bad_plan(obs_field(instrument="WFC3")), PLAN_REFUSED),
    "plan_not_json": (lambda pr: Delivery(b"".join(base(pr).packets), b"{ this is not json"), PLAN_REFUSED),
    "plan_named_for_another_program": (lambda pr: Delivery(b"".join(base(pr).packets), base(pr).plan, "jw99999_plan.json"),
                                       PLAN_REFUSED),
    # -- a valid plan the telemetry disagrees with
    "plan_subarray_wider_than_rows": (lambda pr: Delivery(b"".join(base(pr).packets), tiny_plan(program=pr, subarray_name="SUB160")),
                                      refused("plan_mismatch")),
}


def _first_refout(packets: list[bytes]) -> bytes:
    return next(p for p in packets if int.from_bytes(p[:2], "big") & 0x7FF == APID.REFOUT["MIRI"])


PROGRAMS = {name: f"{20000 + k:05d}" for k, name in enumerate(sorted(CORPUS))}


@pytest.fixture(scope="module")
def contexts(tmp_path_factory):
    made = {}

    def get(overrides: tuple):
        if overrides not in made:
            var = tmp_path_factory.mktemp("corpus") / "var"
            made[overrides] = embedded_context(Settings(var_dir=var, _env_file=None, **dict(overrides)), services=["ingest"])
        return made[overrides]

    yield get
    for ctx, _ in made.values():
        ctx.catalog.dispose()


def _write(tmp_path, name: str, program: str, d: Delivery):
    paths = []
    if d.plan is not None:
        plan_path = tmp_path / (d.plan_name or f"jw{program}_plan.json")
        if isinstance(d.plan, Plan):
            plan_path.write_text(d.plan.model_dump_json())
        elif isinstance(d.plan, dict):
            plan_path.write_text(json.dumps(d.plan))
        else:
            plan_path.write_bytes(d.plan)
        paths.append(plan_path)
    tlm_path = tmp_path / f"{name}.ccsds"
    tlm_path.write_bytes(d.telemetry)
    paths.append(tlm_path)
    return paths


def test_corpus_has_at_least_fifty_kinds():
    assert len(CORPUS) >= 50


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_telemetry(name, contexts, tmp_path):
    build, expect = CORPUS[name]
    program = PROGRAMS[name]
    ctx, inline = contexts(expect.settings)
    paths = _write(tmp_path, name, program, build(program))
    received = receive_files(ctx, paths)
    dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
    done = inline.run_until_idle()
    # no crash, no retry, no dead letter: bad input is an outcome, not a failure
    assert [o.status for _, o in done] == ["ok"] * len(done), [(t, o.error) for t, o in done]
    # every delivered file is kept untouched
    for r in received:
        assert ctx.store.get_uri(r.stored.uri) == r.path.read_bytes()
    uris = [r.stored.uri for r in received]
    with ctx.catalog.session() as s:
        rejections = s.scalars(select(IngestRejection).where(IngestRejection.raw_uri.in_(uris))).all()
        products = [p.artifacts[0].uri for p in s.scalars(select(Product).where(Product.program_id == program))]
        archived = s.scalars(select(EventRecord).where(EventRecord.type == EventType.PRODUCT_ARCHIVED,
                                                       EventRecord.subject.like(f"jw{program}%"))).all()
        archived_data = [e.data for e in archived]
    assert tuple(sorted(r.reason for r in rejections)) == expect.reasons, [(r.reason, r.detail) for r in rejections]
    for r in rejections:
        assert len(r.detail) > 30 and r.raw_sha256, r.detail  # a sentence a person can act on
    assert len(products) == (1 if expect.archived else 0)
    if not expect.archived:
        return
    [data] = archived_data
    summary = data.get("ingest") or {}
    for counter in expect.counters:
        assert summary.get(counter), f"expected {counter} in {summary}"
    with fits.open(io.BytesIO(ctx.store.get_uri(products[0]))) as hdul:
        assert hdul[0].header["DATAPROB"] is expect.dataprob
        names = [h.name for h in hdul]
        assert ("GROUPDQ" in names) is expect.dropout
        if expect.dropout:
            assert (hdul["GROUPDQ"].data & dqflags.GROUP["DROPOUT"]).any()


def test_missing_zeroframe_rows_stay_zero_and_flag_the_file(contexts, tmp_path):
    """The issue's case: the first packet (a ZEROFRAME block) lost. Its rows stay 0, which the
    public pipeline reads as "no zero frame here", and DATAPROB says the file is incomplete."""
    program = "29001"
    t = base(program, zeroframe=True)
    ctx, inline = contexts(())
    paths = _write(tmp_path, "zf", program, Delivery(b"".join(t.packets[1:]), t.plan))
    received = receive_files(ctx, paths)
    dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
    inline.run_until_idle()
    with ctx.catalog.session() as s:
        [product] = s.scalars(select(Product).where(Product.program_id == program)).all()
        uri = product.artifacts[0].uri
    with fits.open(io.BytesIO(ctx.store.get_uri(uri))) as hdul:
        zf = hdul["ZEROFRAME"].data
        assert hdul[0].header["DATAPROB"] is True and hdul[0].header["ZEROFRAM"] is True
        assert (zf[0, :8] == 0).all() and (zf[0, 8:] == t.zeroframe[0, 8:]).all() and (zf[1] == t.zeroframe[1]).all()


def test_bomb_payload_is_never_expanded_past_its_rows():
    """A 64 MiB deflate bomb in one packet: inflation stops at the packet's declared rows."""
    import tracemalloc

    from services.ingest.pipeline import ingest_telemetry

    t = base("29002")
    data = b"".join(t.packets[:5] + [bomb(t.packets[5], 64 * 2**20)] + t.packets[6:])
    assert len(data) < 200_000
    tracemalloc.start()
    out = ingest_telemetry(data, lambda p: t.plan, created=t.plan.observations[0].exposures[0].start_time,
                           software_version="test", segment_bytes=2**31)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [r.reason for r in out.rejections] == ["decompression_bomb"] and not out.files
    assert "expands beyond" in out.rejections[0].detail
    assert peak < 8 * 2**20, peak  # the bomb would be 64 MiB


def test_zlib_bomb_helper_really_is_one():
    t = base("29003")
    packet = bomb(t.packets[0], 2**20)
    assert len(packet) < 2000 and len(zlib.decompress(payload_of(packet))) == 2**20


def test_one_bad_plan_does_not_stop_the_other_files(embedded_settings, tmp_path, capsys):
    """`dms ingest` with a bad plan among good files: the bad plan is kept and refused with
    its reason; the other program's plan and telemetry are stored and archived; the bad
    program's telemetry is stored and waits for a valid plan."""
    from services.console import ingest_paths

    ctx, inline = embedded_context(embedded_settings, services=["ingest"])
    tmp_path = tmp_path / "delivery"
    tmp_path.mkdir()
    good = base("01111")
    bad = base("02222")
    plan = bad.plan.model_dump(mode="json")
    plan["observations"][0]["subarray"] = "BOGUS"
    (tmp_path / "jw02222_plan.json").write_text(json.dumps(plan))
    (tmp_path / "jw01111_plan.json").write_text(good.plan.model_dump_json())
    (tmp_path / "good.ccsds").write_bytes(b"".join(good.packets))
    (tmp_path / "bad.ccsds").write_bytes(b"".join(bad.packets))
    ingest_paths(ctx, inline, sorted(tmp_path.iterdir()))
    out = capsys.readouterr().err
    assert "REJECTED jw02222_plan.json" in out and "unknown subarray 'BOGUS'" in out
    with ctx.catalog.session() as s:
        assert [p.program_id for p in s.scalars(select(Product))] == ["01111"]
        reasons = {r.reason: r for r in s.scalars(select(IngestRejection))}
    assert set(reasons) == {"invalid_plan", "missing_plan"}
    assert "BOGUS" in reasons["invalid_plan"].detail
    # the telemetry's refusal says why there is no plan
    assert "jw02222_plan.json" in reasons["missing_plan"].detail and "refused" in reasons["missing_plan"].detail
    # a corrected plan and a re-queue archive it
    plan["observations"][0]["subarray"] = "SUB64P"
    (tmp_path / "jw02222_plan.json").write_text(json.dumps(plan))
    ingest_paths(ctx, inline, [tmp_path / "jw02222_plan.json", tmp_path / "bad.ccsds"], requeue=True)
    with ctx.catalog.session() as s:
        assert sorted(p.program_id for p in s.scalars(select(Product))) == ["01111", "02222"]
    ctx.catalog.dispose()


@pytest.mark.parametrize("change", [
    {"subarray": "BOGUS"}, {"readpatt": "BOGUS"}, {"nints": 10**6}, {"ngroups": 2**31},
])
def test_a_stored_plan_that_is_invalid_refuses_the_telemetry_not_the_worker(embedded_settings, tmp_path, change):
    """A plan already in dms-raw (stored before these checks existed) that does not
    validate: the ingest task refuses the telemetry with ``invalid_plan``; it does not crash,
    allocate the impossible cube, or dead-letter."""
    from shared.catalog import TaskFailure
    from shared.naming import object_key
    from shared.storage import Bucket

    ctx, inline = embedded_context(embedded_settings, services=["ingest"])
    t = base("03333")
    plan = t.plan.model_dump(mode="json")
    plan["observations"][0].update(change)
    path = tmp_path / "jw03333_plan.json"
    path.write_text(json.dumps(plan))
    ctx.store.put_file(Bucket.RAW, object_key("03333", 0, 1, path.name), path, "application/json")
    (tmp_path / "t.ccsds").write_bytes(b"".join(t.packets))
    received = receive_files(ctx, [tmp_path / "t.ccsds"])
    dispatch_events(ctx.catalog, ctx.transport, event_ids=[r.event_id for r in received if r.event_id])
    done = inline.run_until_idle()
    assert [o.status for _, o in done] == ["ok"]
    with ctx.catalog.session() as s:
        [rej] = s.scalars(select(IngestRejection)).all()
        assert not s.scalars(select(TaskFailure)).all()
    assert rej.reason == "invalid_plan" and next(iter(change)) in rej.detail
    ctx.catalog.dispose()


def test_dms_ingest_sends_each_arrival_before_storing_the_next_file(embedded_settings, tmp_path):
    """`dms ingest` of a plan and two telemetry files with a broker: the first file's
    arrival reaches the broker while the second is not yet in the raw store (each arrival
    is sent when it is recorded, not when every file has been), and each event once."""
    from services.console import ingest_paths
    from shared.runtime import ServiceContext

    class Broker:
        def __init__(self):
            self.sent: list[tuple[str, str, set[str]]] = []

        def send(self, task, event):
            stored = set(ctx.store.list_keys("dms-raw"))
            self.sent.append((task, event.subject, {k.rsplit("/", 1)[-1] for k in stored}))

    broker = Broker()
    ctx = ServiceContext.from_settings(embedded_settings, transport=broker)
    ctx.catalog.upgrade()
    plan = tiny_plan(program="01111", exposures=2)
    first, second = tiny_exposure(plan), tiny_exposure(plan, exposure=2)
    delivery = tmp_path / "delivery"
    delivery.mkdir()
    (delivery / "jw01111_plan.json").write_text(plan.model_dump_json())
    (delivery / "a.ccsds").write_bytes(b"".join(first.packets))
    (delivery / "b.ccsds").write_bytes(b"".join(second.packets))
    ingest_paths(ctx, None, sorted(delivery.iterdir()))
    arrivals = [(subject, stored) for task, subject, stored in broker.sent if task == "ingest.telemetry"]
    assert [subject for subject, _ in arrivals] == ["a.ccsds", "b.ccsds"]
    assert "a.ccsds" in arrivals[0][1] and "b.ccsds" not in arrivals[0][1]
    with ctx.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(EventRecord).where(EventRecord.dispatched_at.is_(None))) == 0
    ctx.catalog.dispose()
