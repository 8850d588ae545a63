"""Stage 2's kernels over a cube of integrations (a time series's ``_rateints``), as they
were made to spare memory: they compute in float64, as before, into float32 results
without float64 temporaries the size of the cube (numpy casts through its small buffers),
and give the same bits as the float64 formulas; mark_invalid writes NaN in place in the
arrays a step has just made and never into DQ; a run leaves the science product's own
arrays as they were. What they hold is measured by ``python -m benchmarks tso``
(docs/performance.md: flat_field's traced peak went from 22 cubes to 7), not here."""

from __future__ import annotations

import numpy as np
import pytest

from services.stage2.pipeline import run_image2
from services.stage2.steps.invalid import mark_invalid
from services.stage2.steps.pathloss import apply_pathloss
from services.stage2.steps.photom import apply_photom
from shared.arrays import float32_op, total_error
from shared.datamodels.dqflags import PIXEL
from shared.flatfield import apply_flat
from shared.refdata import load_reference
from tests.stage2_fixtures import FULL, WINDOW, rate_product, write_reference_files

SHAPE = (40, 32, 512)  # integrations of a 32-row window


def cube(seed: int, *, nan: float = 0.01, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0.0, 2.0, SHAPE).astype(dtype)
    a[rng.random(SHAPE) < nan] = np.nan
    return a


def image(seed: int, low: float = 0.5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, 2.0, SHAPE[1:])


def test_float32_op_is_the_float64_result_rounded_without_a_float64_copy():
    a, factor = cube(1), image(2)
    for op in (np.multiply, np.divide):
        out = float32_op(op, a, factor)
        assert out.dtype == np.float32 and out.shape == SHAPE
        np.testing.assert_array_equal(out, op(a.astype(np.float64), factor).astype(np.float32))
    # a number, and a float32 factor: still float64 arithmetic
    np.testing.assert_array_equal(float32_op(np.multiply, a, 0.3), (a.astype(np.float64) * 0.3).astype(np.float32))
    f32 = image(3).astype(np.float32)
    np.testing.assert_array_equal(float32_op(np.divide, a, f32),
                                  (a.astype(np.float64) / f32.astype(np.float64)).astype(np.float32))


def test_total_error_sums_in_float64_into_one_accumulator():
    v = [cube(4), cube(5), cube(6)]
    err = total_error(v[0], None, v[1], v[2])
    expected = np.sqrt(np.sum([x.astype(np.float64) for x in v], axis=0)).astype(np.float32)
    np.testing.assert_array_equal(err, expected)
    with pytest.raises(ValueError, match="at least one variance"):
        total_error(None, None)


def test_mark_invalid_in_place_writes_the_arrays_given_and_never_dq():
    dq = np.zeros(SHAPE, np.uint32)
    dq[0, 0, :5] = PIXEL["DO_NOT_USE"]
    dq_before = dq.copy()
    arrays = {"sci": cube(7), "err": cube(8, nan=0.0), "var_flat": None}
    nans = np.isnan(arrays["sci"]) | (dq != 0)
    copies = {k: v.copy() for k, v in arrays.items() if v is not None}
    copied = mark_invalid(dq, arrays)
    for k, v in copies.items():  # the copying form leaves its inputs alone
        np.testing.assert_array_equal(arrays[k], v)
    r = mark_invalid(dq, arrays, in_place=True)
    assert r.arrays["sci"] is arrays["sci"] and r.arrays["err"] is arrays["err"] and r.arrays["var_flat"] is None
    np.testing.assert_array_equal(dq, dq_before)
    assert r.n_invalid == copied.n_invalid == int(nans.sum())
    np.testing.assert_array_equal(r.dq, copied.dq)
    assert np.all((r.dq[nans] & PIXEL["DO_NOT_USE"]) != 0) and not np.any(r.dq[~nans])
    for k in ("sci", "err"):
        np.testing.assert_array_equal(np.isnan(r.arrays[k]), nans)
        np.testing.assert_array_equal(r.arrays[k], copied.arrays[k])


def test_flat_pathloss_and_photom_of_a_cube_give_the_float64_formulas_bits():
    sci, vp, vr, err = cube(9), cube(10, nan=0.0), cube(11, nan=0.0), cube(12, nan=0.0)
    dq = np.zeros(SHAPE, np.uint32)
    flat, flat_err = image(13).astype(np.float32), (0.01 * image(14)).astype(np.float32)
    flat[3, :4] = np.nan
    r = apply_flat(sci, dq, vp, vr, flat, None, flat_err)
    f64, e64 = np.where(np.isnan(flat), 1.0, flat).astype(np.float64), flat_err.astype(np.float64)
    out = sci.astype(np.float64) / f64
    np.testing.assert_array_equal(r.sci, out.astype(np.float32))
    np.testing.assert_array_equal(r.var_poisson, (vp.astype(np.float64) / (f64 * f64)).astype(np.float32))
    np.testing.assert_array_equal(r.var_flat, (out * out * e64 * e64 / (f64 * f64)).astype(np.float32))
    wavelength = np.linspace(2.8, 5.2, np.prod(SHAPE[1:])).reshape(SHAPE[1:])
    table, vector = np.linspace(3.0, 5.0, 30), np.linspace(1.1, 1.3, 30)
    p = apply_pathloss(sci, err, {"VAR_POISSON": vp, "VAR_RNOISE": vr}, wavelength, table, vector)
    corr = np.interp(wavelength, table, vector, left=1.0, right=1.0)
    np.testing.assert_array_equal(p.sci, (sci.astype(np.float64) * corr).astype(np.float32))
    conversion = 1e-3 * image(15)
    ph = apply_photom(sci, err, {"VAR_POISSON": vp, "VAR_RNOISE": vr}, conversion)
    np.testing.assert_array_equal(ph.variances["VAR_RNOISE"],
                                  (vr.astype(np.float64) * conversion * conversion).astype(np.float32))


def test_image2_on_integrations_leaves_its_input_as_it_was(tmp_path):
    refs = {t: load_reference(t, path, WINDOW, FULL) for t, path in write_reference_files(tmp_path).items()}
    rateints = rate_product(nints=200)
    before = {k: v.copy() for k, v in rateints.images.items()}
    out = run_image2(rateints, refs)
    assert out.statuses["flat_field"] == out.statuses["photom"] == "COMPLETE"
    for k, v in before.items():  # the state began with the product's own arrays, and left them alone
        np.testing.assert_array_equal(rateints.images[k], v)
    cal = out.cal.images
    assert all(cal[k] is not rateints.images[k] for k in before)
