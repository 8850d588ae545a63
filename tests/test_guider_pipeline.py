"""calwebb_guider's kernels and declarations on tiny arrays: the count rate of each guiding
mode, its variances, the window a guider reads, the flat-field kernel shared with stage 2,
the refusal of products the pipeline cannot read, and the routes of guide-star products.
(The run of the whole system on a simulated program is in tests/test_guidestar.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.detector1.guider import GUIDER, check_guider_raw
from services.detector1.steps.guider_cds import guider_count_rate
from shared.datamodels import FitsProduct
from shared.errors import InputError, is_retriable
from shared.flatfield import apply_flat
from shared.instruments import guide_window
from shared.messages import EventType, ProductArchived, ProductRef, new_event
from shared.routing import routes_for

GAIN = np.full((3, 4), 2.0)
RN = np.full((3, 4), 8.0)  # CDS read noise, DN


def _ramp(nints: int, reads: list[float]) -> np.ndarray:
    """(nints, len(reads), 3, 4): every pixel reads ``reads`` (DN) in every integration."""
    return np.broadcast_to(np.array(reads, float)[None, :, None, None], (nints, len(reads), 3, 4)).copy()


@pytest.mark.parametrize("mode", ["FGS_ACQ1", "FGS_ACQ2", "FGS_TRACK"])
def test_acq_and_track_rate_is_last_minus_first_per_integration(mode):
    data = _ramp(3, [100.0, 160.0])
    data[1, 1] += 30.0  # integration 2 gets 30 DN more
    r = guider_count_rate(data, mode, 0.5, GAIN, RN)
    assert r.rate.shape == (3, 3, 4) and r.interval == 0.5
    assert np.allclose(r.rate[0], 120.0) and np.allclose(r.rate[1], 180.0) and np.allclose(r.rate[2], 120.0)
    # read noise of one CDS pair over 0.5 s; Poisson rate / (gain t)
    assert np.allclose(r.var_rnoise, (8.0 / 0.5) ** 2)
    assert np.allclose(r.var_poisson[0], 120.0 / (2.0 * 0.5))
    assert np.allclose(r.err**2, r.var_rnoise + r.var_poisson, rtol=1e-6)


def test_id_rate_is_the_minimum_of_the_integrations():
    data = _ramp(2, [1000.0, 1300.0])
    data[0, 1, 0, 0] += 500.0  # a cosmic ray in integration 1 of one pixel
    data[1, 1, 2, 3] -= 100.0
    r = guider_count_rate(data, "FGS_ID-IMAGE", 0.3, GAIN, RN)
    assert r.rate.shape == (1, 3, 4)
    assert r.rate[0, 0, 0] == pytest.approx(1000.0)  # the hit integration is not used
    assert r.rate[0, 2, 3] == pytest.approx(200.0 / 0.3)
    assert r.rate[0, 1, 1] == pytest.approx(1000.0)
    assert guider_count_rate(data, "FGS_ID-STACK", 0.3, GAIN, RN).rate.shape == (1, 3, 4)


def test_fine_guide_rate_with_two_reads_and_with_many():
    two = guider_count_rate(_ramp(4, [50.0, 66.0]), "FGS_FINEGUIDE", 1 / 16, GAIN, RN)
    assert np.allclose(two.rate, 16.0 * 16) and two.interval == pytest.approx(1 / 16)
    # 10 reads of a 2 DN/read ramp: means of reads 7-10 and 1-4 are 6 reads apart
    ten = guider_count_rate(_ramp(1, [2.0 * i for i in range(10)]), "FGS_FINEGUIDE", 0.1, GAIN, RN)
    assert ten.interval == pytest.approx(0.6) and np.allclose(ten.rate, 20.0)
    assert np.allclose(ten.var_rnoise, 8.0**2 / (4 * 0.6**2))  # means of 4 reads


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="4-D"):
        guider_count_rate(np.zeros((2, 3, 4)), "FGS_ACQ1", 0.5, GAIN, RN)
    with pytest.raises(ValueError, match="at least 2 reads"):
        guider_count_rate(_ramp(2, [1.0]), "FGS_ACQ1", 0.5, GAIN, RN)
    with pytest.raises(ValueError, match="not a guide-star mode"):
        guider_count_rate(_ramp(2, [1.0, 2.0]), "NRC_IMAGE", 0.5, GAIN, RN)
    with pytest.raises(ValueError, match="positive time"):
        guider_count_rate(_ramp(2, [1.0, 2.0]), "FGS_ACQ1", 0.0, GAIN, RN)
    with pytest.raises(ValueError, match="cut to the window"):
        guider_count_rate(_ramp(2, [1.0, 2.0]), "FGS_ACQ1", 0.5, np.ones((4, 4)), RN)


def test_negative_rates_have_no_poisson_variance_and_bad_gain_none():
    gain = GAIN.copy()
    gain[0, 0] = np.nan
    r = guider_count_rate(_ramp(1, [100.0, 90.0]), "FGS_TRACK", 1.0, gain, RN)
    assert np.all(r.var_poisson == 0) and np.all(np.isfinite(r.err))
    r = guider_count_rate(_ramp(1, [100.0, 190.0]), "FGS_TRACK", 1.0, gain, RN)
    assert r.var_poisson[0, 0, 0] == 0 and r.var_poisson[0, 1, 1] == pytest.approx(45.0)


def test_guider_flat_divides_the_rate_planes_and_keeps_the_variances():
    rate = np.full((2, 3, 4), 100.0, np.float32)
    var = np.full_like(rate, 4.0)
    flat = np.full((3, 4), 2.0, np.float32)
    flat[1, 2] = np.nan
    r = apply_flat(rate, np.zeros((3, 4), np.uint32), var, var, flat, None, np.full((3, 4), 0.02, np.float32))
    assert r.dq.shape == (3, 4) and r.sci.shape == (2, 3, 4)
    assert np.allclose(r.sci[:, 0, 0], 50.0) and r.sci[0, 1, 2] == 100.0  # no flat there: uncorrected
    assert r.dq[1, 2] == (2**18 | 1) and r.n_no_flat == 1
    assert r.var_poisson[0, 0, 0] == pytest.approx(1.0)
    assert r.err[0, 0, 0] == pytest.approx(np.sqrt(1.0 + 1.0 + 50.0**2 * 0.02**2 / 4.0), rel=1e-6)


@pytest.mark.parametrize("size", [8, 32, 128])
def test_guide_window_is_centred_on_the_planned_position_and_inside_the_detector(size):
    w = guide_window("GUIDER1", 0.0, 0.0, size)
    assert (w.xsize, w.ysize) == (size, size) and w.name == f"GS{size}"
    assert abs((w.xstart - 1 + (size - 1) / 2) - 1023.5) <= 0.5
    shifted = guide_window("GUIDER2", 6.9, -13.8, size)  # +100 and -200 pixels
    assert shifted.xstart - w.xstart == 100 and shifted.ystart - w.ystart == -200
    edge = guide_window("GUIDER1", 500.0, -500.0, size)  # off the detector: kept inside
    assert edge.xstart + size - 1 == 2044 and edge.ystart == 5
    with pytest.raises(ValueError, match="not an FGS guider"):
        guide_window("NRCA1", 0.0, 0.0, size)


def test_pipeline_declares_the_public_steps_and_references():
    keywords = {"INSTRUME": "FGS", "EXP_TYPE": "FGS_TRACK"}
    assert [s.name for s in GUIDER.sequence(keywords)] == ["dq_init", "guider_cds", "flat_field"]
    assert GUIDER.reftypes(keywords) == ("mask", "gain", "readnoise", "flat")
    assert GUIDER.sequence({"INSTRUME": "NIRCAM", "EXP_TYPE": "NRC_IMAGE"}) == ()


def _raw(**changes) -> FitsProduct:
    keywords = {"INSTRUME": "FGS", "EXP_TYPE": "FGS_ACQ2", "TGROUP": 0.05, "FILENAME": "x_uncal.fits"}
    images = {"SCI": np.zeros((5, 2, 32, 32), np.float32), "DQ": np.zeros((32, 32), np.uint32)}
    for key, value in changes.items():
        (images if key in ("SCI", "DQ") else keywords)[key] = value
    return FitsProduct("GuiderRawModel", keywords, {k: v for k, v in images.items() if v is not None})


@pytest.mark.parametrize("change, match", [
    ({"SCI": np.zeros((5, 32, 32), np.float32)}, "SCI has shape (5, 32, 32)"),
    ({"SCI": np.zeros((5, 1, 32, 32), np.float32)}, "ngroups >= 2"),
    ({"SCI": None}, "no SCI array"),
    ({"DQ": np.zeros((8, 8), np.uint32)}, "DQ has shape (8, 8)"),
    ({"TGROUP": None}, "TGROUP None"),
    ({"EXP_TYPE": "FGS_IMAGE"}, "not a guide-star mode"),
    ({"INSTRUME": "NIRCAM"}, "not FGS"),
])
def test_a_product_calwebb_guider_cannot_read_is_refused_with_the_reason(change, match):
    check_guider_raw(_raw(), "x_uncal.fits")
    with pytest.raises(InputError, match=match.replace("(", r"\(").replace(")", r"\)")) as raised:
        check_guider_raw(_raw(**change), "x_uncal.fits")
    assert "x_uncal.fits: cannot run calwebb_guider" in str(raised.value)
    assert not is_retriable(raised.value)  # dead-lettered with the reason, never retried


def _archived(filename: str, suffix: str):
    ref = ProductRef(uri=f"file:///archive/{filename}", filename=filename, suffix=suffix, sha256="0" * 64, size=1,
                     program="01234", observation=1)
    return new_event(ProductArchived(product=ref, level=1, data_release=datetime(2026, 1, 1, tzinfo=UTC)), "/test",
                     subject=filename)


@pytest.mark.parametrize("suffix", ["gs-id-image", "gs-acq1", "gs-acq2", "gs-track", "gs-fg"])
def test_guide_star_products_are_routed_to_calwebb_guider_and_their_cal_nowhere_but_out(suffix):
    middle = "gs-id_1_image" if suffix == "gs-id-image" else f"{suffix}_2025060120032"
    raw = _archived(f"jw01234001001_{middle}_uncal.fits", suffix)
    assert sorted(r.task for r in routes_for(raw)) == sorted(
        ["detector1.run", "notifier.match"] + (["preview.make"] if suffix == "gs-fg" else []))
    cal = _archived(f"jw01234001001_{middle}_cal.fits", f"{suffix}-cal")
    tasks = sorted(r.task for r in routes_for(cal))
    # never associations, stage 2 or detector1 again; a fine-guide _cal gets its jitter preview
    assert tasks == sorted(["notifier.match"] + (["preview.make"] if suffix == "gs-fg" else []))
    assert EventType.PRODUCT_ARCHIVED == cal.type


@pytest.mark.parametrize("raw, cal, suffix", [
    ("jw01234001001_gs-acq1_2025060120032_uncal.fits", "jw01234001001_gs-acq1_2025060120032_cal.fits", "gs-acq1-cal"),
    ("jw01234001001_gs-id_1_image_uncal.fits", "jw01234001001_gs-id_1_image_cal.fits", "gs-id-image-cal"),
    ("jw01234001001_gs-fg_2025060120032_uncal.fits", "jw01234001001_gs-fg_2025060120032_cal.fits", "gs-fg-cal"),
    ("full_uncal.fits", "full_cal.fits", "cal"),  # a local file not named by the convention
])
def test_the_cal_is_named_after_its_raw_product_and_auxiliary(raw, cal, suffix):
    from services.detector1.guider import GuiderOutput
    from shared.pipeline import RunRecord

    (out,) = GuiderOutput(FitsProduct("GuiderCalModel"), RunRecord("guider"), "N/A").outputs(raw)
    assert (out.filename, out.suffix, out.product_type) == (cal, suffix, "AUXILIARY")
    assert GuiderOutput(None, RunRecord("guider"), "N/A").outputs(raw) == []
