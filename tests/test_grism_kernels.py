"""NIRCam grism time series: the trace from the public NIRCAMGrismModel SPECWCS
(shared.spectra.grism), read through the reference loader, and the PHOTOM row of a grism
order; an observation's simultaneous channel in the plan (shared.plan)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.modeling.models import Mapping, Polynomial1D

from services.stage2.steps.photom import select_photom_row
from shared.instruments import subarray
from shared.plan import Channel, Observation, PlannedExposure, Pointing
from shared.refdata.errors import ReferenceFileError
from shared.refdata.loading import load_reference
from shared.refdata.window import Window
from shared.spectra.grism import grism_trace

# a linear law: dx = DX0 + SPAN t, wavelength = 4.0 + 0.0010035 dx, dy = 0.002 dx + 1e-6 dx^2
DX0, SPAN, DISP = -120.0, 1100.0, 0.0010035


def _tree(curvature: float = 0.0) -> dict:
    t_of_dx = Mapping((2,), n_inputs=3) | Polynomial1D(1, c0=-DX0 / SPAN, c1=1.0 / SPAN)
    return {
        "orders": [1],
        "displ": [Polynomial1D(1, c0=4.0 + DISP * DX0, c1=DISP * SPAN)],
        "dispx": [Mapping((2,), n_inputs=3) | Polynomial1D(1, c0=DX0, c1=SPAN)],
        # dy as a polynomial of t: 0.002 dx + curvature dx^2 with dx = DX0 + SPAN t
        "dispy": [Mapping((2,), n_inputs=3) | Polynomial1D(
            2, c0=0.002 * DX0 + curvature * DX0**2, c1=0.002 * SPAN + 2 * curvature * DX0 * SPAN,
            c2=curvature * SPAN**2)],
        "invdispx": [t_of_dx],
    }


def test_trace_follows_the_dispersion_model():
    x0, y0 = 899.3, 33.2  # window pixel of the source (a window at full-frame row 1)
    trace = grism_trace(_tree(1e-6), x0, y0, xstart=1, ystart=1, nx=2048, ny=64)
    assert trace.dispaxis == 1 and trace.ref == (y0, x0)
    cols = trace.rows
    dx = cols - x0
    assert cols[0] == int(np.ceil(x0 + DX0)) and cols[-1] == int(np.floor(x0 + DX0 + SPAN))
    np.testing.assert_allclose(trace.wavelength[cols], 4.0 + DISP * dx, atol=1e-12)
    np.testing.assert_allclose(trace.x[cols], y0 + 0.002 * dx + 1e-6 * dx**2, atol=1e-9)
    assert np.all(np.isnan(trace.wavelength[: cols[0]])) and np.all(np.isnan(trace.x[cols[-1] + 1:]))


def test_trace_in_a_window_elsewhere_on_the_detector():
    """The window's SUBSTRT moves the full-frame position the model is evaluated at; the
    trace on it is the same light."""
    full = grism_trace(_tree(), 899.3, 33.2 + 80, xstart=1, ystart=1, nx=2048, ny=256)
    cut = grism_trace(_tree(), 899.3 - 100, 33.2, xstart=101, ystart=81, nx=1500, ny=64)
    np.testing.assert_allclose(cut.wavelength[cut.rows], full.wavelength[cut.rows + 100], atol=1e-12)
    np.testing.assert_allclose(cut.x[cut.rows] + 80, full.x[cut.rows + 100], atol=1e-9)


def test_trace_leaving_the_window_has_no_wavelength():
    trace = grism_trace(_tree(), 899.3, 0.1, nx=2048, ny=64)  # the tilt takes it below row 0 bluewards
    assert np.all(trace.x[trace.rows] >= 0) and trace.rows.size < 1100
    nowhere = grism_trace(_tree(), 899.3, 500.0, nx=2048, ny=64)
    assert nowhere.rows.size == 0


def test_trace_without_the_inverse_model_inverts_by_sampling():
    # NIRISS's files carry no invdispx/invdispy: t is interpolated from dispx over its span
    exact = grism_trace(_tree(), 899.3, 33.0, nx=2048, ny=64)
    sampled = grism_trace({**_tree(), "invdispx": None}, 899.3, 33.0, nx=2048, ny=64)
    assert np.array_equal(exact.rows, sampled.rows)
    assert np.nanmax(np.abs(exact.wavelength - sampled.wavelength)) < 1e-9
    assert np.nanmax(np.abs(exact.x - sampled.x)) < 1e-6


@pytest.mark.parametrize("broken, message", [
    ({"dispy": None}, "lacks dispy"),
    ({"orders": [2]}, "no order 1"),
    ({"displ": []}, "do not give order 1"),
])
def test_broken_models_are_named(broken, message):
    with pytest.raises(ValueError, match=message):
        grism_trace({**_tree(), **broken}, 900.0, 33.0, nx=2048, ny=64)


def test_specwcs_asdf_is_read_with_its_models(tmp_path):
    from stdatamodels.jwst.datamodels import NIRCAMGrismModel

    model = NIRCAMGrismModel()
    model.meta.instrument.name, model.meta.instrument.detector = "NIRCAM", "NRCALONG"
    model.meta.instrument.filter, model.meta.instrument.pupil = "F444W", "GRISMR"
    model.meta.exposure.type, model.meta.reftype = "NRC_TSGRISM", "specwcs"
    model.meta.description, model.meta.author, model.meta.pedigree = "test", "test", "GROUND"
    model.meta.useafter = "2022-01-01T00:00:00"
    model.meta.input_units, model.meta.output_units = "pixel", "micron"
    tree = _tree()
    model.orders, model.displ, model.dispx = tree["orders"], tree["displ"], tree["dispx"]
    model.dispy, model.invdispx = tree["dispy"], tree["invdispx"]
    model.invdispl = [Polynomial1D(1, c0=-(4.0 + DISP * DX0) / (DISP * SPAN), c1=1.0 / (DISP * SPAN))]
    model.invdispy = [Mapping((2,), n_inputs=3) | Polynomial1D(1, c0=-DX0 / SPAN, c1=1.0 / (0.002 * SPAN))]
    path = tmp_path / "jwst_nircam_specwcs_test.asdf"
    model.save(path)
    ref = load_reference("specwcs", path, Window(1, 1, 2048, 64), (2048, 2048))
    trace = grism_trace(ref.tree, 899.3, 33.2, nx=2048, ny=64)
    np.testing.assert_allclose(trace.wavelength[trace.rows], 4.0 + DISP * (trace.rows - 899.3), atol=1e-12)
    # a FITS SPECWCS of the slit modes is still read as tables
    with pytest.raises(ReferenceFileError, match="not a readable FITS file"):
        (tmp_path / "broken.fits").write_bytes(b"not fits at all" * 300)
        load_reference("specwcs", tmp_path / "broken.fits", Window(1, 1, 2048, 64), (2048, 2048))


def test_photom_row_of_the_grism_order():
    dtype = [("filter", "S12"), ("pupil", "S15"), ("order", "<i2"), ("photmjsr", "<f4"), ("uncertainty", "<f4")]
    table = np.array([(b"F444W", b"GRISMR", 2, 5.0, 0.0), (b"F444W", b"GRISMR", 1, 3.0, 0.0),
                      (b"F444W", b"GRISMC", 1, 4.0, 0.0)], dtype=dtype)
    row = select_photom_row(table, filter="f444w", pupil="GRISMR", order=1)
    assert row is not None and row.index == 1 and row.photmjsr == 3.0
    assert select_photom_row(table, filter="F444W", pupil="GRISMR", order=3) is None
    assert select_photom_row(table, filter="F322W2", pupil="GRISMR", order=1) is None


def _observation(**extra) -> Observation:
    pointing = Pointing(ra=10.0, dec=-20.0, roll=0.0)
    start = "2025-03-01T00:00:00Z"
    exposures = [PlannedExposure(visit=1, exposure=1, detector=d, start_time=start, pointing=pointing)
                 for d in ("NRCALONG", "NRCA1")]
    return Observation(number=2, target_id=1, template="NIRCam Grism Time Series", instrument="NIRCAM",
                       exp_type="NRC_TSGRISM", detectors=["NRCALONG", "NRCA1"], filter="F444W", pupil="GRISMR",
                       readpatt="RAPID", ngroups=3, nints=10, subarray="SUB64P", tsovisit=True,
                       exposures=exposures, **extra)


def test_simultaneous_channel_splits_the_observation():
    obs = _observation(simultaneous=Channel(detectors=["nrca1"], exp_type="nrc_tsimage", filter="f210m",
                                            pupil="wlp8"))
    long, short = obs.channels()
    assert (long.exp_type, long.filter, long.pupil, long.detectors) == ("NRC_TSGRISM", "F444W", "GRISMR",
                                                                        ["NRCALONG"])
    assert (short.exp_type, short.filter, short.pupil, short.detectors) == ("NRC_TSIMAGE", "F210M", "WLP8",
                                                                            ["NRCA1"])
    assert [e.detector for e in long.exposures] == ["NRCALONG"] and [e.detector for e in short.exposures] == ["NRCA1"]
    assert short.simultaneous is None and obs.for_detector("NRCA1") == short
    assert _observation().channels() == [_observation()]


@pytest.mark.parametrize("channel, message", [
    (dict(detectors=["NRCA2"], exp_type="NRC_TSIMAGE", filter="F210M"), "not among the observation's detectors"),
    (dict(detectors=["NRCA1", "NRCALONG"], exp_type="NRC_TSIMAGE", filter="F210M"), "every detector"),
    (dict(detectors=["NRCA1"], exp_type="NIS_IMAGE", filter="F210M"), "not a NIRCAM type"),
])
def test_simultaneous_channel_is_checked(channel, message):
    with pytest.raises(ValueError, match=message):
        _observation(simultaneous=Channel(**channel))


def test_window_placed_per_detector():
    """The grism's window on the short-wave detector read with it: the same size and
    outputs (one timing), placed where the target images there."""
    assert subarray("NIRCAM", "SUB64P", "NRCA1") == subarray("NIRCAM", "SUB64P")
    lw, sw = subarray("NIRCAM", "SUBGRISM64", "NRCALONG"), subarray("NIRCAM", "SUBGRISM64", "NRCA1")
    assert (lw.xsize, lw.ysize, lw.noutputs) == (sw.xsize, sw.ysize, sw.noutputs)
    assert lw.ystart == 1 and sw.ystart == 85
