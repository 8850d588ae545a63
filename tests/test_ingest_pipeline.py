"""SDP pipeline on hand-built telemetry: assembly, keywords, segmentation, and a corpus of
bad telemetry where every fault gives a clear rejection or a flagged product, never a crash."""

from __future__ import annotations

import struct
import warnings
import zlib
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.io import fits

from services.ingest.pipeline import ingest_telemetry, plan_segments
from shared.datamodels import dqflags, write_product
from shared.telemetry import (
    CRC_SIZE,
    PRIMARY_HEADER_SIZE,
    SECONDARY_HEADER_SIZE,
    SecondaryHeader,
    crc16,
    encode_packet,
)
from tests.telemetry_factory import flip, tiny_exposure, tiny_plan, with_apid, with_header

CREATED = datetime(2026, 3, 2, tzinfo=UTC)


def run(data: bytes, plan=None, segment_bytes: int = 2_000_000_000, use_plan: bool = True):
    plan_for = (lambda program: plan if plan is not None and plan.program == program else None) if use_plan else (lambda p: None)
    return ingest_telemetry(data, plan_for, created=CREATED, software_version="test", segment_bytes=segment_bytes)


def test_clean_exposure_round_trips(tmp_path):
    tiny = tiny_exposure()
    out = run(b"".join(tiny.packets), tiny.plan)
    assert not out.rejections
    [f] = out.files
    assert f.name.format() == "jw01234001001_01101_00001_nrca1_uncal.fits"
    np.testing.assert_array_equal(f.product.images["SCI"], tiny.cube)
    assert "GROUPDQ" not in f.product.images
    kw = f.product.keywords
    assert kw["DATAPROB"] is False
    assert (kw["PROGRAM"], kw["OBSERVTN"], kw["VISIT"], kw["EXPOSURE"]) == ("01234", "001", "001", "00001")
    assert (kw["NINTS"], kw["NGROUPS"], kw["SUBARRAY"], kw["SUBSIZE1"]) == (2, 3, "SUB64P", 64)
    assert kw["TARGNAME"] == "NGC 1234" and kw["CRVAL1"] == pytest.approx(53.16)
    assert kw["TGROUP"] == pytest.approx(kw["TFRAME"])  # RAPID: one frame per group
    assert kw["EXPEND"] > kw["EXPSTART"]
    assert kw["DATE-OBS"] == "2026-03-01" and kw["TIME-OBS"].startswith("12:00:00")
    path = write_product(tmp_path / f.name.format(), f.product)
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NoTypeWarning / ValidationWarning
        with datamodels.open(path) as m:
            assert type(m).__name__ == "Level1bModel"
            assert m.data.shape == (2, 3, 64, 64) and m.data.dtype == np.uint16
            assert m.meta.exposure.ngroups == 3 and m.meta.instrument.detector == "NRCA1"
            assert m.meta.wcsinfo.ra_ref == pytest.approx(53.16)
            assert len(m.group) == 6 and len(m.int_times) == 2
            assert m.int_times["int_start_BJD_TDB"][0] != m.int_times["int_start_MJD_UTC"][0]
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "GROUP", "INT_TIMES", "ASDF"]
        assert hdul[0].header["DATAMODL"] == "Level1bModel"
        assert hdul["SCI"].header["BUNIT"] == "DN"


def test_compressed_packets_decode_to_the_same_cube():
    tiny = tiny_exposure(tiny_exposure().plan, compress=True)
    [f] = run(b"".join(tiny.packets), tiny.plan).files
    np.testing.assert_array_equal(f.product.images["SCI"], tiny.cube)


def test_miri_refout_is_written():
    plan = tiny_plan(instrument="MIRI", detector_name="MIRIMAGE", subarray_name="SUB64", readpatt="FAST")
    tiny = tiny_exposure(plan)
    [f] = run(b"".join(tiny.packets), plan).files
    np.testing.assert_array_equal(f.product.images["REFOUT"], tiny.refout)
    assert f.product.images["SCI"].shape == (2, 3, 64, 72)


def test_segmentation_splits_whole_integrations():
    assert plan_segments(100, 10, 10_000) == [(1, 10)]
    assert plan_segments(100, 10, 350) == [(1, 3), (4, 6), (7, 9), (10, 10)]
    assert plan_segments(1000, 3, 10) == [(1, 1), (2, 2), (3, 3)]
    plan = tiny_plan(nints=3)
    tiny = tiny_exposure(plan)
    per_int = 3 * 64 * 64 * 2
    out = run(b"".join(tiny.packets), plan, segment_bytes=2 * per_int)
    names = [f.name.format() for f in out.files]
    assert names == ["jw01234001001_01101_00001-seg001_nrca1_uncal.fits",
                     "jw01234001001_01101_00001-seg002_nrca1_uncal.fits"]
    k1, k2 = (f.product.keywords for f in out.files)
    assert (k1["EXSEGNUM"], k1["EXSEGTOT"], k1["INTSTART"], k1["INTEND"]) == (1, 2, 1, 2)
    assert (k2["EXSEGNUM"], k2["INTSTART"], k2["INTEND"]) == (2, 3, 3)
    np.testing.assert_array_equal(out.files[1].product.images["SCI"], tiny.cube[2:3])
    assert len(out.files[1].product.tables["GROUP"]) == 3


# ---------------------------------------------------------------- the bad-telemetry corpus


def _corrupt_compressed(packet: bytes) -> bytes:
    body = bytearray(packet[:-CRC_SIZE])
    body[-5:] = b"\x00\x00\x00\x00\x00"  # breaks the deflate stream; CRC recomputed
    return bytes(body) + struct.pack(">H", crc16(bytes(body)))


T = tiny_exposure()
P = T.packets
N = len(P)
TC = tiny_exposure(compress=True)
OTHER_PROGRAM = tiny_plan(program="04321")

# name -> (bytes, expected rejection reason or None, report counters that must be set)
CORPUS = {
    "empty_file": (b"", "empty_file", {}),
    "random_garbage": (np.random.default_rng(5).bytes(5000), "no_science_packets", {"fault_garbled"}),
    "truncated_last_packet": (b"".join(P)[:-100], None, {"fault_truncated", "missing_rows"}),
    "crc_error": (b"".join(P[:3] + [flip(P[3], 60)] + P[4:]), None, {"fault_crc_mismatch", "missing_rows"}),
    "dropped_packets": (b"".join(P[:5] + P[8:]), None, {"sequence_gaps", "missing_rows"}),
    "duplicated_packets": (b"".join(P[:6] + P[4:6] + P[6:]), None, {"duplicates"}),
    "reordered_packets": (b"".join(P[:4] + [P[6], P[4], P[5]] + P[7:]), None, {"reordered"}),
    "corrupted_length_field": (b"".join(P[:2] + [flip(P[2], 4)] + P[3:]), None, {"fault_garbled", "missing_rows"}),
    "garbage_between_packets": (b"".join(P[:3]) + b"\x0a\xc1junk" + b"".join(P[3:]), None, {"fault_garbled"}),
    "unknown_apid_only": (b"".join(with_apid(p, 0x123) for p in P), "no_science_packets", {"fault_unknown_apid"}),
    "unknown_apid_mixed": (b"".join(P[:2] + [with_apid(P[2], 0x123)] + P[3:]), None, {"fault_unknown_apid", "missing_rows"}),
    "bad_compressed_payload": (b"".join(TC.packets[:1] + [_corrupt_compressed(TC.packets[1])] + TC.packets[2:]), None, {"fault_bad_payload", "missing_rows"}),
    "conflicting_duplicate": (b"".join(P + [encode_packet(0x2C1, N, SecondaryHeader.unpack(P[0][6:38]), np.zeros((8, 64), np.uint16))]), None, {"conflicting_duplicates"}),
    "rows_out_of_range": (b"".join(P + [with_header(P[0], integration=9)]), None, {"out_of_range"}),
    "not_in_plan": (b"".join(with_header(p, exposure=77) for p in P), "not_in_plan", {}),
    "missing_plan": (b"".join(P), "missing_plan", {}),
    "wrong_row_width": (b"".join(encode_packet(0x2C1, k, SecondaryHeader.unpack(p[6:38]), np.zeros((8, 32), np.uint16)) for k, p in enumerate(P)), "plan_mismatch", {}),
    "unknown_detector": (b"".join(with_header(p, detector_code=99) for p in P), "unknown_detector", {}),
    "instrument_mismatch": (b"".join(with_apid(p, 0x2C4) for p in P), "instrument_mismatch", {}),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_telemetry_is_rejected_or_flagged(case):
    data, reason, counters = CORPUS[case]
    out = run(data, T.plan, use_plan=case != "missing_plan")
    summary = out.report.summary()
    for counter in counters:
        assert summary.get(counter), f"{case}: expected {counter} in {summary}"
    if reason is not None:
        assert [r.reason for r in out.rejections] == [reason], out.rejections
        assert not out.files
        assert len(out.rejections[0].detail) > 20  # a sentence a person can act on
        return
    assert not out.rejections, out.rejections
    [f] = out.files
    kw = f.product.keywords
    sci = f.product.images["SCI"]
    assert sci.shape == T.cube.shape
    if counters & {"missing_rows"}:
        assert kw["DATAPROB"] is True
        gdq = f.product.images["GROUPDQ"]
        missing = gdq & dqflags.GROUP["DROPOUT"] > 0
        assert missing.any()
        # every pixel that arrived is exactly what was sent
        np.testing.assert_array_equal(sci[~missing], T.cube[~missing])
    elif case in ("duplicated_packets", "reordered_packets"):
        # harmless faults: the cube is complete and exact, nothing needs flagging
        np.testing.assert_array_equal(sci, T.cube)
        assert "GROUPDQ" not in f.product.images
    else:
        assert kw["DATAPROB"] is True


def test_corpus_covers_at_least_ten_fault_kinds():
    assert len(CORPUS) >= 10


def test_compression_payload_really_is_deflate():
    raw = TC.packets[0][PRIMARY_HEADER_SIZE + SECONDARY_HEADER_SIZE : -CRC_SIZE]
    assert len(zlib.decompress(raw)) == 8 * 64 * 2
