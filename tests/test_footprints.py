"""Sky footprints of product files (S_REGION, or the readout window about the pointing) and
reading them back (centre, containment), on tiny files written here."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from shared.footprints import (
    circle_region,
    file_region,
    parse_region,
    polygon_centre,
    polygon_contains,
    polygon_radius,
    region_centre,
    region_contains,
    regions_overlap,
)
from shared.instruments import detector


def _write(path, primary: dict, sci: dict | None) -> None:
    hdus = [fits.PrimaryHDU()]
    hdus[0].header.update(primary)
    if sci is not None:
        hdus.append(fits.ImageHDU(np.zeros((2, 2), np.float32), name="SCI"))
        hdus[1].header.update(sci)
    fits.HDUList(hdus).writeto(path)


def test_the_s_region_keyword_wins(tmp_path):
    region = "POLYGON ICRS 10.0 20.0 10.1 20.0 10.1 20.1 10.0 20.1"
    _write(tmp_path / "a_cal.fits", {"SUBSIZE1": 160, "SUBSIZE2": 160, "DETECTOR": "NRCA1"},
           {"S_REGION": region, "RA_REF": 50.0, "DEC_REF": 0.0, "ROLL_REF": 0.0})
    assert file_region(tmp_path / "a_cal.fits") == region


def test_before_calibration_the_window_about_its_pointing(tmp_path):
    _write(tmp_path / "a_uncal.fits", {"SUBSIZE1": 160, "SUBSIZE2": 80, "DETECTOR": "NRCA1"},
           {"RA_REF": 359.999, "DEC_REF": -27.5, "ROLL_REF": 30.0})
    region = file_region(tmp_path / "a_uncal.fits")
    shape, numbers = parse_region(region)
    assert shape == "POLYGON" and len(numbers) == 8
    ra, dec = region_centre(region)  # across RA 0/360
    assert ra == pytest.approx(359.999, abs=1e-6) and dec == pytest.approx(-27.5, abs=1e-6)
    assert region_contains(region, 359.999, -27.5)
    # the window's sides: 160 and 80 pixels of the detector's scale
    corners = np.radians(np.reshape(numbers, (4, 2)))
    scale = detector("NRCA1").pixel_scale

    def side(a, b):
        return np.degrees(np.arccos(np.sin(a[1]) * np.sin(b[1]) + np.cos(a[1]) * np.cos(b[1]) * np.cos(a[0] - b[0])))

    assert side(corners[0], corners[1]) * 3600 == pytest.approx(160 * scale, rel=1e-4)
    assert side(corners[1], corners[2]) * 3600 == pytest.approx(80 * scale, rel=1e-4)
    outside = 359.999 + 100 * scale / 3600 / np.cos(np.radians(27.5))
    assert not region_contains(region, outside % 360, -27.5)


def test_files_that_say_nothing_of_the_sky_have_no_footprint(tmp_path):
    (tmp_path / "junk.fits").write_bytes(b"not a FITS file")
    _write(tmp_path / "table.fits", {"DETECTOR": "NRCA1"}, None)
    (tmp_path / "a_cat.ecsv").write_text("# %ECSV 1.0\n")
    for name in ("junk.fits", "table.fits", "a_cat.ecsv"):
        assert file_region(tmp_path / name) is None


def test_circles_and_bad_regions():
    region = circle_region(10.0, 89.99, 0.02)
    assert region_contains(region, 190.0, 89.995)  # across the pole
    assert not region_contains(region, 10.0, 89.95)
    assert region_centre(region) == (10.0, 89.99)
    for bad in ("", "BOX ICRS 1 2 3 4", "POLYGON ICRS 1 2 3", "CIRCLE 1 2"):
        with pytest.raises(ValueError):
            parse_region(bad)


def test_regions_overlap_by_edges_corners_and_containment():
    square = "POLYGON ICRS 10 10 10.1 10 10.1 10.1 10 10.1"
    # a circle inside, one reaching an edge (0.1 deg of RA at dec 10 is 0.0985 deg), one short of it
    assert regions_overlap("CIRCLE ICRS 10.05 10.05 0.01", square)
    assert regions_overlap("CIRCLE ICRS 10.2 10.05 0.1", square)
    assert not regions_overlap("CIRCLE ICRS 10.2 10.05 0.09", square)
    # a circle covering the whole square, and the square as the first region
    assert regions_overlap("CIRCLE ICRS 10.05 10.05 1", square) and regions_overlap(square, "CIRCLE ICRS 10.05 10.05 1")
    # polygons: crossing edges, one inside the other, apart
    assert regions_overlap(square, "POLYGON ICRS 10.05 10.05 10.2 10.05 10.2 10.2")
    assert regions_overlap("POLYGON ICRS 9 9 11 9 11 11 9 11", square)
    assert regions_overlap(square, "POLYGON ICRS 9 9 11 9 11 11 9 11")
    assert not regions_overlap(square, "POLYGON ICRS 10.2 10.2 10.3 10.2 10.3 10.3")
    # circles: by the sum of their radii
    assert regions_overlap("CIRCLE ICRS 0 0 1", "CIRCLE ICRS 1.9 0 1")
    assert not regions_overlap("CIRCLE ICRS 0 0 1", "CIRCLE ICRS 2.1 0 1")
    # across RA 0
    assert regions_overlap("CIRCLE ICRS 359.99 0 0.02", "POLYGON ICRS 0 -0.01 0.01 -0.01 0.01 0.01 0 0.01")


def test_containment_is_for_points_near_the_region_and_far_from_it():
    square = "POLYGON ICRS 10 10 10.1 10 10.1 10.1 10 10.1"
    assert region_contains(square, 10.05, 10.05)
    # the antipode of the square's centre, and a point a quarter of the sky away, are outside
    # (on a tangent plane about the tested point the square's vertices fall behind the plane and
    # project onto their antipodes' places: the antipode was found inside)
    assert not region_contains(square, 190.05, -10.05)
    assert not region_contains(square, 100.05, 10.05)
    # a circle, likewise: its antipode is 180 degrees away, not 0
    assert region_contains("CIRCLE ICRS 10 10 1", 10.5, 10.2)
    assert not region_contains("CIRCLE ICRS 10 10 1", 190.0, -10.0)
    assert not region_contains("CIRCLE ICRS 10 10 1", 190.5, -10.2)


def test_polygon_edges_are_great_circle_arcs_about_the_centre():
    # an edge from (0, 60) to (90, 60) bulges north of dec 60 along its great circle
    vertices = [(0.0, 60.0), (90.0, 60.0), (45.0, 40.0)]
    assert polygon_contains(vertices, 45.0, 61.0) and not polygon_contains(vertices, 45.0, 72.0)
    # across the pole and across RA 0; the centre is the vertices' mean direction
    cap = [(0.0, 80.0), (90.0, 80.0), (180.0, 80.0), (270.0, 80.0)]
    assert polygon_contains(cap, 123.0, 89.0) and not polygon_contains(cap, 45.0, 70.0)
    assert polygon_centre(cap)[1] == pytest.approx(90.0)
    assert polygon_radius(cap) == pytest.approx(10.0)
    assert polygon_contains([(359.9, -0.1), (0.1, -0.1), (0.1, 0.1), (359.9, 0.1)], 0.0, 0.0)
    with pytest.raises(ValueError, match="cancel out"):
        polygon_contains([(0.0, 0.0), (120.0, 0.0), (240.0, 0.0)], 0.0, 90.0)
    with pytest.raises(ValueError, match="hemisphere"):
        polygon_contains([(0.0, 0.0), (90.0, 0.0), (180.0, 0.0), (270.0, 0.0), (45.0, -10.0)], 0.0, 0.0)
