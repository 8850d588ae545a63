"""shared.changes: what changed between two revisions of a product, with figures worked out
by hand from the changes each test makes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable

from shared.changes import REL_FLOOR_FRACTION, compare_catalogs, compare_files, summary
from shared.datamodels import FitsProduct, SpectrumTable, dqflags, write_output

DNU = dqflags.PIXEL["DO_NOT_USE"]
SAT = dqflags.PIXEL["SATURATED"]
JUMP = dqflags.PIXEL["JUMP_DET"]
RATE = "jw01234001001_01101_00001_nrca1_rate.fits"
CAT = "jw01234-o001_t001_nircam_f200w_cat.ecsv"
KW = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE"}


def _pair(tmp_path, name: str, old, new):
    """Write two revisions of ``name`` (FitsProduct or table) and return their paths."""
    paths = tmp_path / "r1" / name, tmp_path / "r2" / name
    for path, content in zip(paths, (old, new), strict=True):
        write_output(path, content)
    return paths


def _image(sci, dq=None, model_type="ImageModel") -> FitsProduct:
    images = {"SCI": sci}
    if dq is not None:
        images["DQ"] = dq
    return FitsProduct(model_type, keywords=dict(KW), images=images)


def _rate_pair():
    """A 20x50 _rate (old SCI = 100 + column) and its new revision:
    rows 0-9 (500 pixels) x1.01, row 19 columns 0-19 (20 pixels) x1.05, the rest as before;
    excluded: 5 pixels NaN in old (row 15), 1 NaN in new (row 16), DO_NOT_USE on row 0
    columns 0-3 in both and on row 1 columns 0-3 in new only (8 pixels of the x1.01 half,
    set to 1e6 in new so that they would dominate every figure if they were compared).
    DQ: +4 DO_NOT_USE (row 1), +3 JUMP_DET (row 5), -2 SATURATED (row 7): 9 pixels."""
    old = np.tile(100.0 + np.arange(50, dtype=np.float32), (20, 1)).astype(np.float32)
    new = old.copy()
    new[:10] *= np.float32(1.01)
    new[19, :20] *= np.float32(1.05)
    old[15, 30:35] = np.nan
    new[16, 40] = np.nan
    old_dq, new_dq = np.zeros((20, 50), np.uint32), np.zeros((20, 50), np.uint32)
    old_dq[0, :4] = new_dq[0, :4] = DNU
    new_dq[1, :4] = DNU
    new[0:2, :4] = 1e6
    new_dq[5, 10:13] = JUMP
    old_dq[7, :2] = SAT
    return old, new, old_dq, new_dq


def test_rate_figures_over_good_pixels(tmp_path):
    old, new, old_dq, new_dq = _rate_pair()
    changes = compare_files(*_pair(tmp_path, RATE, _image(old, old_dq), _image(new, new_dq)))
    # 1000 pixels - 6 NaN - 8 DO_NOT_USE = 986 compared: 474 unchanged, 492 at 1 %, 20 at 5 %.
    # Sorted, the median (elements 492 and 493) is 1 %; p99 (position 985 * 0.99 = 975.15,
    # elements 975 and 976) is 5 %; the largest change is 5 % of 119 (row 19, column 19).
    sci = changes["sci"]
    assert sci["pixels"] == 986
    assert sci["median_rel"] == pytest.approx(0.01, rel=1e-5)
    assert sci["p99_rel"] == pytest.approx(0.05, rel=1e-5)
    assert sci["max_abs"] == pytest.approx(0.05 * 119, rel=1e-5)
    assert changes["dq_changed_fraction"] == pytest.approx(9 / 1000)
    assert changes["dq_flags_changed"] == {"DO_NOT_USE": 4, "JUMP_DET": 3, "SATURATED": -2}
    assert changes["comparable"] is True
    assert json.loads(json.dumps(changes, allow_nan=False)) == changes
    assert summary(changes) == ("SCI median 1 % (p99 5 %), DQ changed on 0.9 % of pixels: "
                                "DO_NOT_USE +4, JUMP_DET +3, SATURATED -2")


def test_identical_revisions(tmp_path):
    old, _, old_dq, _ = _rate_pair()
    changes = compare_files(*_pair(tmp_path, RATE, _image(old, old_dq), _image(old.copy(), old_dq.copy())))
    # 1000 pixels - 5 NaN (row 15) - 4 DO_NOT_USE (row 0) = 991
    assert changes["sci"] == {"median_rel": 0.0, "p99_rel": 0.0, "max_abs": 0.0, "pixels": 991}
    assert changes["dq_changed_fraction"] == 0.0 and changes["dq_flags_changed"] == {}
    assert summary(changes) == "SCI unchanged, DQ unchanged"


def test_zero_old_values_use_the_floor(tmp_path):
    # old: 8 pixels at 10, 2 pixels at 0; new adds 0.5 everywhere. The floor is 1 % of the
    # median nonzero |old| (10): 0.1. Relative changes: 8 x 0.05 and 2 x 0.5 / 0.1 = 5.
    old = np.array([[10.0] * 8 + [0.0, 0.0]], np.float32)
    assert REL_FLOOR_FRACTION == 0.01
    changes = compare_files(*_pair(tmp_path, RATE, _image(old), _image(old + 0.5)))
    assert changes["sci"]["median_rel"] == pytest.approx(0.05)
    # p99: position 9 * 0.99 = 8.91 between sorted elements 8 and 9, both 5.
    assert changes["sci"]["p99_rel"] == pytest.approx(5.0)
    assert changes["sci"]["max_abs"] == pytest.approx(0.5)
    # no DQ in either revision: no DQ figures
    assert changes["dq_changed_fraction"] is None and changes["dq_flags_changed"] is None


def test_all_zero_old_has_no_relative_change(tmp_path):
    old = np.zeros((3, 4), np.float32)
    changes = compare_files(*_pair(tmp_path, RATE, _image(old), _image(old + 2.0)))
    assert changes["sci"] == {"median_rel": None, "p99_rel": None, "max_abs": 2.0, "pixels": 12}
    assert summary(changes) == "SCI max |change| 2 (old values all zero)"


def test_calints_cube(tmp_path):
    # 3 integrations of 4x5; integration 1 x1.02, integration 2 unchanged except one
    # DO_NOT_USE pixel in old (set to 0 in new). 59 compared: 20 at 2 %, 39 at 0.
    old = np.full((3, 4, 5), 50.0, np.float32)
    new = old.copy()
    new[1] *= np.float32(1.02)
    old_dq = np.zeros((3, 4, 5), np.uint32)
    old_dq[2, 3, 4] = DNU
    new[2, 3, 4] = 0.0
    new_dq = old_dq.copy()
    new_dq[0, 0, :2] |= JUMP
    name = RATE.replace("_rate", "_calints")
    changes = compare_files(*_pair(tmp_path, name, _image(old, old_dq, "CubeModel"),
                                   _image(new, new_dq, "CubeModel")))
    assert changes["sci"]["pixels"] == 59
    assert changes["sci"]["median_rel"] == 0.0
    # p99: position 58 * 0.99 = 57.42, sorted elements 57 and 58 are both 2 %.
    assert changes["sci"]["p99_rel"] == pytest.approx(0.02, rel=1e-5)
    assert changes["sci"]["max_abs"] == pytest.approx(1.0, rel=1e-5)
    assert changes["dq_changed_fraction"] == pytest.approx(2 / 60)
    assert changes["dq_flags_changed"] == {"JUMP_DET": 2}


def test_ramp_pixeldq_and_groupdq(tmp_path):
    # SCI (1, 3, 2, 4): every group +1 % in new. PIXELDQ DO_NOT_USE on pixel (0, 0) excludes
    # its 3 groups; GROUPDQ DO_NOT_USE on group 2 of pixel (1, 3) excludes one more: 24 - 4 = 20.
    old = np.full((1, 3, 2, 4), 200.0, np.float32)
    new = old * np.float32(1.01)
    new[0, :, 0, 0] = new[0, 2, 1, 3] = -5.0  # excluded, would give 102.5 %
    pixeldq = np.zeros((2, 4), np.uint32)
    pixeldq[0, 0] = DNU
    groupdq = np.zeros((1, 3, 2, 4), np.uint8)
    new_groupdq = groupdq.copy()
    new_groupdq[0, 2, 1, 3] = DNU
    new_groupdq[0, 1, 0, 1:3] = JUMP

    def ramp(sci, gdq):
        return FitsProduct("RampModel", keywords=dict(KW),
                           images={"SCI": sci, "PIXELDQ": pixeldq, "GROUPDQ": gdq})

    changes = compare_files(*_pair(tmp_path, RATE.replace("_rate", "_ramp"), ramp(old, groupdq), ramp(new, new_groupdq)))
    assert changes["sci"]["pixels"] == 20
    assert changes["sci"]["median_rel"] == pytest.approx(0.01, rel=1e-5)
    assert changes["sci"]["max_abs"] == pytest.approx(2.0, rel=1e-5)
    assert changes["dq_changed_fraction"] == 0.0 and changes["dq_flags_changed"] == {}
    assert changes["groupdq_changed_fraction"] == pytest.approx(3 / 24)
    assert changes["groupdq_flags_changed"] == {"DO_NOT_USE": 1, "JUMP_DET": 2}
    assert summary(changes) == "SCI median 1 % (p99 1 %), DQ unchanged, GROUPDQ changed on 12 % of pixels: JUMP_DET +2, DO_NOT_USE +1"


def test_uncal_uint16_does_not_wrap(tmp_path):
    # new is 10 DN below old: a uint16 difference would wrap to 65526.
    old = np.full((1, 2, 3, 3), 1000, np.uint16)
    new = old - np.uint16(10)
    name = RATE.replace("_rate", "_uncal")
    changes = compare_files(*_pair(tmp_path, name, _image(old, model_type="Level1bModel"),
                                   _image(new, model_type="Level1bModel")))
    assert changes["sci"] == {"median_rel": pytest.approx(0.01), "p99_rel": pytest.approx(0.01),
                              "max_abs": 10.0, "pixels": 18}


def test_no_pixel_in_common(tmp_path):
    old = np.full((2, 2), np.nan, np.float32)
    changes = compare_files(*_pair(tmp_path, RATE, _image(old), _image(np.ones((2, 2), np.float32))))
    assert changes["sci"] == {"median_rel": None, "p99_rel": None, "max_abs": None, "pixels": 0}
    assert summary(changes) == "SCI: no pixel usable in both revisions"


def test_shape_mismatch(tmp_path):
    changes = compare_files(*_pair(tmp_path, RATE, _image(np.ones((20, 50), np.float32)),
                                   _image(np.ones((20, 40), np.float32))))
    assert changes == {"comparable": False, "why": "SCI shape (20, 50) differs from (20, 40)."}
    assert summary(changes) == "not comparable: SCI shape (20, 50) differs from (20, 40)."


def test_dq_that_does_not_fit_sci(tmp_path):
    sci = np.ones((4, 5), np.float32)
    changes = compare_files(*_pair(tmp_path, RATE, _image(sci, np.zeros((4, 5), np.uint32)),
                                   _image(sci, np.zeros((5, 4), np.uint32))))
    assert changes == {"comparable": False, "why": "DQ shape (5, 4) does not fit SCI shape (4, 5)."}


def test_segmentation_map(tmp_path):
    # old: segments 1 and 2 (4 + 2 pixels); new: relabelled (7, 3) and segment 7 grown by
    # one pixel, plus a new segment 9 of 1 pixel: footprint changed on 2 of 30 pixels.
    old = np.zeros((5, 6), np.int32)
    old[0, :4], old[3, 2:4] = 1, 2
    new = np.zeros((5, 6), np.int32)
    new[0, :5], new[3, 2:4], new[4, 5] = 7, 3, 9
    name = "jw01234-o001_t001_nircam_f200w_segm.fits"
    changes = compare_files(*_pair(tmp_path, name, _image(old, model_type="SegmentationMapModel"),
                                   _image(new, model_type="SegmentationMapModel")))
    assert changes == {"comparable": True, "kind": "segmentation", "segments_old": 2, "segments_new": 3,
                       "source_pixels_old": 6, "source_pixels_new": 8,
                       "footprint_changed_fraction": pytest.approx(2 / 30)}
    assert summary(changes) == "segmentation: 2 -> 3 segments, footprint changed on 6.7 % of pixels"


def test_fits_without_sci(tmp_path):
    table = np.array([(1.0, 2.0)], dtype=[("WAVELENGTH", ">f8"), ("FLUX", ">f8")])
    x1d = FitsProduct("MultiSpecModel", keywords=dict(KW), spectra=[SpectrumTable(table)])
    changes = compare_files(*_pair(tmp_path, RATE.replace("_rate", "_x1d"), x1d, x1d))
    assert changes == {"comparable": False, "why": "MultiSpecModel has no SCI image to compare (tables only: EXTRACT1D)."}


def test_unreadable_file_gives_a_reason(tmp_path):
    old, new = _pair(tmp_path, RATE, _image(np.ones((2, 2), np.float32)), _image(np.ones((2, 2), np.float32)))
    new.write_bytes(b"not a FITS file")
    changes = compare_files(old, new)
    assert changes["comparable"] is False
    assert changes["why"].startswith(f"{RATE} could not be compared (MalformedProductError: {RATE}: not a readable")
    assert str(tmp_path) not in changes["why"]
    assert compare_files(old, tmp_path / "missing" / RATE)["comparable"] is False


def test_other_files_are_not_compared(tmp_path):
    for name in ("jw01234-o001_20250301t120000_image3_00001_asn.json", "jw01234-o001_t001_nircam_f200w_phot.ecsv"):
        (tmp_path / name).write_text("{}")
        assert compare_files(tmp_path / name, tmp_path / name) is None


# ---------------------------------------------------------------------------- catalogs

RA0, DEC0 = 53.16, -27.78


def _catalog(ra, dec, flux=None) -> QTable:
    t = QTable()
    t["label"] = np.arange(1, len(ra) + 1, dtype=np.int32)
    t["sky_centroid"] = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
    if flux is not None:
        t["aper_total_flux"] = np.asarray(flux, float) * u.Jy
    return t


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """n sources 2 arcsec apart along declination."""
    return np.full(n, RA0), DEC0 + np.arange(n) * 2.0 / 3600.0


def test_catalog_matching(tmp_path):
    # old: 10 sources. new: sources 0-6 moved north by 0, 0, 0, 10, 20, 30, 50 mas with fluxes
    # x 1, 1.02, 1.02, 1.02, 0.99, 1, 1.04; source 7 moved by 150 mas (beyond 100 mas: lost
    # and added); 8 and 9 gone; three new sources 20 arcsec east.
    ra, dec = _grid(10)
    flux = np.linspace(1e-6, 1e-5, 10)
    moves_mas = np.array([0, 0, 0, 10, 20, 30, 50, 150])
    new_ra = np.concatenate([ra[:8], np.full(3, RA0 + 20.0 / 3600.0)])
    new_dec = np.concatenate([dec[:8] + moves_mas / 3.6e6, dec[:3]])
    scale = np.array([1.0, 1.02, 1.02, 1.02, 0.99, 1.0, 1.04, 1.0])
    new_flux = np.concatenate([flux[:8] * scale, [1e-6] * 3])
    changes = compare_files(*_pair(tmp_path, CAT, _catalog(ra, dec, flux), _catalog(new_ra, new_dec, new_flux)))
    assert changes == {
        "comparable": True, "kind": "catalog", "sources_old": 10, "sources_new": 11,
        "added": 4, "lost": 3, "matched": 7,
        "moved_median_mas": pytest.approx(10.0, abs=1e-6), "moved_max_mas": pytest.approx(50.0, abs=1e-6),
        # signed changes -1 %, 0, 0, 2 %, 2 %, 2 %, 4 %: median 2 %
        "flux_column": "aper_total_flux", "flux_median_rel": pytest.approx(0.02, rel=1e-9),
    }
    assert json.loads(json.dumps(changes, allow_nan=False))["matched"] == 7
    assert summary(changes) == "catalog: 4 added, 3 lost, 7 matched, median move 10 mas, median flux change +2 %"


def test_catalog_pairs_each_old_source_once(tmp_path):
    # Two new sources 10 and 60 mas from the same old source: the nearer is matched.
    ra, dec = _grid(1)
    new_dec = dec[0] + np.array([60.0, 10.0]) / 3.6e6
    changes = compare_catalogs(_catalog(ra, dec), _catalog(np.full(2, RA0), new_dec))
    assert (changes["matched"], changes["added"], changes["lost"]) == (1, 1, 0)
    assert changes["moved_max_mas"] == pytest.approx(10.0, abs=1e-6)
    assert "flux_median_rel" not in changes
    # a wider radius changes nothing: one old source still pairs once
    assert compare_catalogs(_catalog(ra, dec), _catalog(np.full(2, RA0), new_dec), radius_arcsec=1.0)["matched"] == 1


def test_catalog_radius(tmp_path):
    ra, dec = _grid(3)
    new = _catalog(ra, dec + 0.3 / 3600.0)
    assert compare_catalogs(_catalog(ra, dec), new)["matched"] == 0
    assert compare_catalogs(_catalog(ra, dec), new, radius_arcsec=0.5)["moved_median_mas"] == pytest.approx(300.0, abs=1e-6)


def test_catalog_with_ra_dec_columns_and_isophotal_flux(tmp_path):
    ra, dec = _grid(4)
    old = QTable({"ra": ra * u.deg, "dec": dec * u.deg, "isophotal_flux": [1.0, 2.0, 4.0, -1.0] * u.mJy})
    new = QTable({"ra": ra * u.deg, "dec": dec * u.deg, "isophotal_flux": [1.1e-3, 2.2e-3, 4.4e-3, 5.0] * u.Jy})
    changes = compare_files(*_pair(tmp_path, CAT, old, new))
    # in mJy: 1.1, 2.2, 4.4 -> +10 % each; the negative old flux is left out
    assert changes["matched"] == 4 and changes["moved_max_mas"] == pytest.approx(0.0, abs=1e-6)
    assert changes["flux_column"] == "isophotal_flux"
    assert changes["flux_median_rel"] == pytest.approx(0.1)


def test_catalog_empty_old(tmp_path):
    ra, dec = _grid(3)
    changes = compare_files(*_pair(tmp_path, CAT, QTable(), _catalog(ra, dec, [1.0, 2.0, 3.0])))
    assert (changes["sources_old"], changes["added"], changes["lost"], changes["matched"]) == (0, 3, 0, 0)
    assert changes["moved_median_mas"] is None and changes["moved_max_mas"] is None
    assert summary(changes) == "catalog: 3 added, 0 lost, 0 matched"


def test_catalog_without_positions(tmp_path):
    old = QTable({"label": [1, 2]})
    ra, dec = _grid(2)
    changes = compare_files(*_pair(tmp_path, CAT, old, _catalog(ra, dec)))
    assert changes == {"comparable": False,
                       "why": "the old catalog has no sky positions (sky_centroid, or ra and dec)."}


def test_summary_of_nothing():
    assert summary(None) == "not compared"
