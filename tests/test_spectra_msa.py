"""NIRSpec MOS pieces of the pipeline: the slitlets an exposure opened (from the MSA
metadata), where shutters image (the MOS SPECWCS geometry), the shutters stuck open
(MSAOPER) and their footprint, the source type from stellarity."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from services.stage2.steps.msaflagopen import flag_failed_open
from services.stage2.steps.pathloss import msa_aperture
from services.stage2.steps.srctype import slitlet_source_type
from shared.datamodels.dqflags import PIXEL
from shared.spectra.msa import (
    MsaGeometry,
    Slitlet,
    failed_open_shutters,
    open_slitlets,
    shutter_footprint,
)

SHUTTER_DTYPE = [("slitlet_id", "i2"), ("msa_metadata_id", "i2"), ("shutter_quadrant", "i2"), ("shutter_row", "i2"),
                 ("shutter_column", "i2"), ("source_id", "i4"), ("background", "U1"), ("shutter_state", "U6"),
                 ("estimated_source_in_shutter_x", "f4"), ("estimated_source_in_shutter_y", "f4"),
                 ("dither_point_index", "i2"), ("primary_source", "U1"), ("fixed_slit", "U5")]
SOURCE_DTYPE = [("program", "i4"), ("source_id", "i4"), ("source_name", "U20"), ("alias", "U31"), ("ra", "f8"),
                ("dec", "f8"), ("stellarity", "f8")]
CARDS = {"MSAX0": 300.0, "ROWPITCH": 2.7, "COLPITCH": 5.3, "Q1Y0": 100.0, "Q3Y0": 1030.0, "SHUTWID": 0.2,
         "SHUTPTCH": 0.53, "PIXSCALE": 0.1}


def _plan(nod=(0, 1, -1)):
    """Two sources' three-shutter slitlets nodded over three dither points, a background
    slitlet of two shutters, and another configuration's shutter."""
    rows = []
    for point, shift in enumerate(nod, start=1):
        for slitlet, (q, r, c, source, x, y) in enumerate(((1, 40, 60, 7, 0.3, 0.6), (3, 200, 20, 9, 0.5, 0.45)), 1):
            for d in (-1, 0, 1):
                primary = d == shift
                rows.append((slitlet, 5, q, r, c + d, source, "N" if primary else "Y", "OPEN", x if primary else np.nan,
                             y if primary else np.nan, point, "Y" if primary else "N", "NONE"))
        for c in (100, 101):
            rows.append((3, 5, 1, 300, c, 0, "Y", "OPEN", np.nan, np.nan, point, "N", "NONE"))
    rows.append((1, 6, 1, 10, 10, 7, "N", "OPEN", 0.5, 0.5, 1, "Y", "NONE"))
    sources = np.array([(1234, 7, "1234_7", "a", 53.1, -27.8, 0.9), (1234, 9, "1234_9", "b", 53.2, -27.7, 0.2)],
                       SOURCE_DTYPE)
    return np.array(rows, SHUTTER_DTYPE), sources


def test_the_slitlets_of_an_exposure_follow_its_configuration_and_dither_point():
    shutters, sources = _plan()
    first = open_slitlets(shutters, sources, 5, 1, program="1234")
    assert [s.slitlet_id for s in first] == [1, 2, 3]
    one, two, background = first
    assert (one.quadrant, one.row, one.columns, one.primary, one.source_id) == (1, 40, (59, 60, 61), 60, 7)
    assert one.source_x == pytest.approx(-0.2) and one.source_y == pytest.approx(0.1)
    assert (one.source_name, one.source_ra, one.stellarity) == ("1234_7", 53.1, 0.9)
    assert one.shutter_state == "1x1" and one.name == "1" and one.shutter_id == 40 + 59 * 365
    assert (two.quadrant, two.source_id) == (3, 9)
    # a background slitlet: no primary shutter, its source id its slitlet id, as the public pipeline names it
    assert background.primary is None and background.source_id == 3 and background.source_name == "1234_BKG3"
    assert background.shutter_state == "11" and background.columns == (100, 101)
    # the nod: the source sits in the shutter above at point 2, below at point 3
    assert open_slitlets(shutters, sources, 5, 2)[0].primary == 61
    assert open_slitlets(shutters, sources, 5, 3)[0].shutter_state == "x11"
    # the other configuration
    assert [(s.slitlet_id, s.columns) for s in open_slitlets(shutters, sources, 6, 1)] == [(1, (10,))]


@pytest.mark.parametrize("point", [1, 2, 3])
def test_a_slitlet_is_read_back_from_its_slit_keywords(point):
    """What extract_2d writes on a slitlet's cutout (the public slit keywords) gives the
    slitlet back, as stage 3 reads it: its shutters, its source and the source's place."""
    shutters, sources = _plan()
    for slitlet in open_slitlets(shutters, sources, 5, point, program="1234"):
        assert Slitlet.from_keywords(slitlet.keywords()) == slitlet


@pytest.mark.parametrize(("change", "message"), [
    ({"SHUTTRID": None}, "no SHUTTRID keyword: not a MOS slit"),
    ({"SHUTSTA": "1y1"}, "SHUTSTA '1y1' / SHUTTRID"),
    ({"SHUTSTA": "xx1"}, "SHUTSTA 'xx1'"),
    ({"MSAQUAD": "Q1"}, "a MOS slit keyword is not a number"),
])
def test_a_slit_without_a_slitlets_keywords_is_refused_with_why(change, message):
    shutters, sources = _plan()
    kw = open_slitlets(shutters, sources, 5, 1)[0].keywords() | change
    kw = {k: v for k, v in kw.items() if v is not None}
    with pytest.raises(ValueError, match=re.escape(message)):
        Slitlet.from_keywords(kw)


def test_a_shutter_without_an_estimated_place_holds_its_source_at_the_centre():
    shutters, sources = _plan()
    shutters["estimated_source_in_shutter_x"] = np.nan
    assert open_slitlets(shutters, sources, 5, 1)[0].source_x == 0.0


@pytest.mark.parametrize(("change", "message"), [
    (lambda t, s: (t[(t["msa_metadata_id"] == 5)], s, 5, 4), "opens no shutter for MSA configuration 5 at dither point 4"),
    (lambda t, s: (t[t["shutter_column"] != 60], s, 5, 1), "not consecutive shutters of one row"),
    (lambda t, s: (_set(t, t["slitlet_id"] == 1, "primary_source", "Y"), s, 5, 1), "3 shutters hold the primary"),
    (lambda t, s: (t, s[s["source_id"] != 9], 5, 1), "its source 9 is not in SOURCE_INFO"),
    (lambda t, s: (_drop(t, "dither_point_index"), s, 5, 1), "no dither_point_index column"),
])
def test_an_msa_plan_the_pipeline_cannot_follow_is_refused_with_why(change, message):
    shutters, sources = _plan()
    with pytest.raises(ValueError, match=message):
        open_slitlets(*change(shutters, sources))


def _set(table, where, column, value):
    table = table.copy()
    table[column][where] = value
    return table


def _drop(table, column):
    names = [n for n in table.dtype.names if n != column]
    return table[names]


def test_shutters_image_at_their_quadrants_place_and_a_slitlet_at_its_middle():
    g = MsaGeometry.from_cards(CARDS)
    assert g.reference_point(1, 1, 1) == (300.0, 100.0)
    assert g.reference_point(3, 365, 171) == pytest.approx((300.0 + 2.7 * 364, 1030.0 + 5.3 * 170))
    shutters, sources = _plan()
    one = open_slitlets(shutters, sources, 5, 2)[0]  # nodded: the source in column 61
    assert g.slitlet_reference(one) == pytest.approx(g.reference_point(1, 40, 60))
    along, across = g.source_offset(one)
    assert along == pytest.approx((1 + 0.1) * 5.3) and across == pytest.approx(-0.2 * 2.7)
    assert g.half_length(3) == pytest.approx(7.95)
    assert g.source_offset(open_slitlets(shutters, sources, 5, 1)[2]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="quadrant 2 does not image on this detector"):
        g.reference_point(2, 1, 1)
    with pytest.raises(ValueError, match="no MSA geometry card ROWPITCH"):
        MsaGeometry.from_cards({k: v for k, v in CARDS.items() if k != "ROWPITCH"})
    with pytest.raises(ValueError, match="no quadrant images on this detector"):
        MsaGeometry.from_cards({k: v for k, v in CARDS.items() if k not in ("Q1Y0", "Q3Y0")})
    with pytest.raises(ValueError, match="not a number"):
        MsaGeometry.from_cards({**CARDS, "MSAX0": "left"})


def test_the_failed_open_shutters_are_those_open_in_any_state():
    msaoper = {"msaoper": [
        {"Q": 1, "x": 40, "y": 12, "state": "open", "TA state": "open", "Internal state": "normal"},
        {"Q": 3, "x": 7, "y": 150, "state": "closed", "TA state": "closed", "Internal state": "open"},
        {"Q": 1, "x": 9, "y": 9, "state": "closed", "TA state": "closed", "Internal state": "normal"},
    ]}
    assert failed_open_shutters(msaoper) == [(1, 40, 12), (3, 7, 150)]
    with pytest.raises(ValueError, match="no 'msaoper' list"):
        failed_open_shutters({"shutters": []})
    with pytest.raises(ValueError, match="MSAOPER shutter 0: no quadrant Q"):
        failed_open_shutters({"msaoper": [{"Q": 1, "x": "left", "y": 2, "state": "open"}]})


def _shutter_table():
    """A shutter's trace in the SPECWCS layout: wavelength rising along x over 200 columns
    from -50 to +149 about the reference point, the trace rising 0.01 px per column."""
    d = np.arange(-50.0, 150.0)
    table = np.zeros(d.size, dtype=[(c, "<f8") for c in ("x_center", "y_center", "wavelength")])
    table["x_center"], table["y_center"], table["wavelength"] = d, 0.01 * d, 2.0 + 0.01 * d
    return table


def test_a_failed_open_shutters_spectrum_is_flagged_and_nothing_else():
    g = MsaGeometry.from_cards(CARDS)
    shape = (64, 400)  # a window from full-frame (201, 91): quadrant 1's row 20, column 1's image at y 100
    stuck = [(1, 20, 1), (2, 20, 1), (1, 20, 40)]  # the second on another detector, the third off the window
    mask = shutter_footprint(_shutter_table(), g, stuck, shape, xstart=201, ystart=91)
    imx, imy = g.reference_point(1, 20, 1)  # 351.3, 100
    x0, y0 = imx - 201, imy - 91  # 0-based window pixel of the reference point
    cols = np.flatnonzero(mask.any(axis=0))
    assert cols[0] == math.ceil(x0 - 50) and cols[-1] == math.floor(x0 + 149)
    rows = np.flatnonzero(mask[:, int(round(x0))])
    assert abs(rows.mean() - y0) < 0.5 and rows.size in (5, 6)  # one pitch, 5.3 px, about the trace
    assert mask.sum() == pytest.approx(200 * 5.3, rel=0.05)
    dq = np.zeros(shape, np.uint32)
    dq[0, 0] = PIXEL["DO_NOT_USE"]
    flagged, n = flag_failed_open(dq, mask)
    assert n == mask.sum() and np.array_equal(flagged & PIXEL["MSA_FAILED_OPEN"] > 0, mask)
    assert flagged[0, 0] & PIXEL["DO_NOT_USE"] and dq[5, 150] == 0  # the input is left alone
    with pytest.raises(ValueError, match="not the DQ's shape"):
        flag_failed_open(dq, mask[:10])


@pytest.mark.parametrize(("stellarity", "kind"), [(0.9, "POINT"), (0.75, "EXTENDED"), (0.1, "EXTENDED"),
                                                  (-1.0, "POINT")])
def test_a_mos_source_is_typed_by_its_stellarity(stellarity, kind):
    assert slitlet_source_type(stellarity)[0] == kind


def test_an_msa_metadata_file_is_read_or_refused_with_why(tmp_path):
    from astropy.io import fits

    from shared.datamodels.msa import read_msa_metadata

    shutters, sources = _plan()
    good = tmp_path / "jw01234001001_01_msa.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(shutters, name="SHUTTER_INFO"),
                  fits.BinTableHDU(sources, name="SOURCE_INFO")]).writeto(good)
    msa = read_msa_metadata(good)
    assert msa.filename == good.name and len(msa.shutter_info) == len(shutters)
    assert [s.slitlet_id for s in open_slitlets(msa.shutter_info, msa.source_info, 5, 1)] == [1, 2, 3]
    half = tmp_path / "half_msa.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(shutters, name="SHUTTER_INFO")]).writeto(half)
    with pytest.raises(ValueError, match="half_msa.fits: no SOURCE_INFO table"):
        read_msa_metadata(half)
    text = tmp_path / "text_msa.fits"
    text.write_text("not FITS")
    with pytest.raises(ValueError, match="text_msa.fits: not a readable FITS file"):
        read_msa_metadata(text)


# --- failed-closed shutters ------------------------------------------------------------------


def _with_closed(shutters, column, state="CLOSED"):
    """The plan with the shutter of ``column`` in slitlet 1 (quadrant 1, row 40) listed as
    ``state`` at every dither point."""
    shutters = shutters.copy()
    shutters["shutter_state"][(shutters["slitlet_id"] == 1) & (shutters["shutter_column"] == column)
                              & (shutters["msa_metadata_id"] == 5)] = state
    return shutters


def test_a_shutter_listed_closed_stays_in_its_slitlet_as_a_closed_one():
    """A failed-closed shutter the plan lists CLOSED: the slitlet keeps its extent (the
    public cutout spans every listed shutter), its shutter state has a '0' there, and the
    keywords read back give the same slitlet."""
    shutters, sources = _plan()
    shutters = _with_closed(shutters, 61)
    one, two, _ = open_slitlets(shutters, sources, 5, 1, program="1234")
    assert (one.columns, one.closed, one.open_columns, one.primary) == ((59, 60, 61), (61,), (59, 60), 60)
    assert one.shutter_state == "1x0" and one.keywords()["SHUTSTA"] == "1x0"
    assert two.closed == () and two.shutter_state == "1x1"
    assert open_slitlets(shutters, sources, 5, 3)[0].shutter_state == "x10"
    for point in (1, 3):
        for slitlet in open_slitlets(shutters, sources, 5, point, program="1234"):
            assert Slitlet.from_keywords(slitlet.keywords()) == slitlet
    # any other state, or no shutter_state column, is an open shutter (the public reader takes every row)
    assert open_slitlets(_with_closed(_plan()[0], 61, "OPEN"), sources, 5, 1)[0].shutter_state == "1x1"
    assert open_slitlets(_drop(shutters, "shutter_state"), sources, 5, 1)[0].shutter_state == "1x1"


@pytest.mark.parametrize(("closed", "point", "message"), [
    ((61,), 2, "the shutter holding its source (column 61) is CLOSED"),
    ((59, 60, 61), 1, "every shutter of it is CLOSED"),
])
def test_a_slitlet_that_could_show_nothing_is_refused_with_why(closed, point, message):
    shutters, sources = _plan()
    for column in closed:
        shutters = _with_closed(shutters, column)
    with pytest.raises(ValueError, match=re.escape(message)):
        open_slitlets(shutters, sources, 5, point)


@pytest.mark.parametrize("state", ["000", "0", "10x0x"])
def test_a_shutter_state_without_an_open_shutter_or_with_two_sources_is_refused(state):
    shutters, sources = _plan()
    kw = open_slitlets(shutters, sources, 5, 1)[0].keywords() | {"SHUTSTA": state}
    with pytest.raises(ValueError, match="do not describe a slitlet"):
        Slitlet.from_keywords(kw)


def test_failed_closed_shutters_are_not_flagged_as_open():
    msaoper = {"msaoper": [
        {"Q": 1, "x": 40, "y": 12, "state": "open", "TA state": "open", "Internal state": "open"},
        {"Q": 2, "x": 5, "y": 6, "state": "closed", "TA state": "closed", "Internal state": "closed"},
        {"Q": 4, "x": 300, "y": 100, "state": "closed", "TA state": "closed", "Internal state": "closed"},
    ]}
    assert failed_open_shutters(msaoper) == [(1, 40, 12)]


@pytest.mark.parametrize("state", ["x", "1x1", "x1", "1x", "0x1", "1x0", "0x0", "11x", "x11", "10x01", "1x01"])
def test_the_pathloss_aperture_of_a_slitlet_is_the_public_steps_choice(state):
    """The PATHLOSS aperture (by its number of shutters) and the SRCYPOS shift of a MOS
    slitlet are those the public pathloss step takes for its shutter state: MOS1X1 when
    the source's shutter has no open neighbour, MOS1X3 else, moved down (-1) or up (+1)
    when only one neighbour is open."""
    from jwst.pathloss.pathloss import shutter_above_is_closed, shutter_below_is_closed

    below, above = shutter_below_is_closed(state), shutter_above_is_closed(state)
    public = (1 if below and above else 3, -1.0 if below and not above else 1.0 if above and not below else 0.0)
    assert msa_aperture(state) == public
    with pytest.raises(ValueError, match="no source shutter"):
        msa_aperture("11")
