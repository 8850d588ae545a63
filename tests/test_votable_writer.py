"""The archive's VOTable rows (services.archive.vo.votable): every datatype, nulls, special
values and text XML cannot carry, read back by astropy as written."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime

import numpy as np
from astropy.io.votable import parse_single_table

from services.archive.vo.votable import VOField, result_votable

FIELDS = [VOField("d", "double"), VOField("f", "float"), VOField("s", "short"), VOField("i", "int"),
          VOField("l", "long"), VOField("b", "boolean"), VOField("t", "unicodeChar"), VOField("c", "char")]


def _read(document: bytes):
    return parse_single_table(io.BytesIO(document)).to_table()


def test_values_of_every_datatype_come_back_as_written():
    rows = [(0.1 + 0.2, 0.1, -3, 2**31 - 1, 2**40, True, "a<b & \"c\" é", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
            (1e-300, 3.0e38, 7, -1, -(2**62), False, "", "x"),
            (None, None, None, None, None, None, None, None)]
    t = _read(result_votable(FIELDS, rows, infos={"total": 3}))
    assert len(t) == 3
    assert t["d"][0] == 0.1 + 0.2 and t["d"][1] == 1e-300
    assert t["f"][0] == np.float32(0.1) and t["f"][1] == np.float32(3.0e38)
    assert list(t["s"][:2]) == [-3, 7] and list(t["i"][:2]) == [2**31 - 1, -1] and list(t["l"][:2]) == [2**40, -(2**62)]
    assert list(t["b"][:2]) == [True, False]
    assert t["t"][0] == "a<b & \"c\" é" and t["c"][0] == "2026-01-02T03:04:05.000"
    assert all(t[name].mask[2] for name in ("d", "f", "s", "i", "l", "b"))


def test_special_values_and_characters_xml_cannot_carry():
    rows = [(math.nan, 1e39, 0, 0, 0, True, "bell\x07 tab\t nul\x00 end", "ok"),
            (-math.inf, -math.inf, 0, 0, 0, False, "\ufffe", "ok")]
    t = _read(result_votable(FIELDS, rows))
    assert t["d"].mask[0] or math.isnan(t["d"][0])
    assert t["f"][0] == np.inf and t["d"][1] == -np.inf and t["f"][1] == -np.inf
    assert t["t"][0] == "bell tab\t nul end" and t["t"][1] == ""


def test_an_empty_result_is_a_table_with_no_rows():
    document = result_votable(FIELDS, [], overflow=True)
    assert len(_read(document)) == 0 and b'value="OVERFLOW"' in document
