"""The simulator's MIRI MRS (services/simulator/mrs.py): its layout, its wavelengths and the
light it puts on the detector, against the model's own stated facts."""

from __future__ import annotations

import numpy as np
import pytest

from services.simulator import mrs
from services.simulator.spectrograph import JY_PER_MJY_SR_ARCSEC2, SourceSpectrum


def test_channels_sit_in_their_halves_without_overlap():
    for detector, pair in (("MIRIFUSHORT", (1, 2)), ("MIRIFULONG", (3, 4))):
        assert tuple(c.channel for c in mrs.channels_on(detector)) == pair
    for channel in mrs.CHANNELS.values():
        spans = [s.column_range for s in channel.slices("SHORT")]
        left = channel.channel in (1, 4)
        lo_limit, hi_limit = (4, 515) if left else (516, 1027)
        assert spans[0][0] >= lo_limit and spans[-1][1] <= hi_limit, (channel.channel, spans[0], spans[-1])
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))
        # the slicer's field fits in a slice's columns
        assert channel.columns * channel.alpha_scale >= channel.field_length
    with pytest.raises(ValueError, match="MIRIFUSHORT and MIRIFULONG"):
        mrs.channels_on("MIRIMAGE")


def test_slice_map_numbers_and_betas():
    labels = mrs.slice_map("MIRIFULONG", "MEDIUM")
    found = set(np.unique(labels)) - {0}
    assert found == {300 + k for k in range(1, 17)} | {400 + k for k in range(1, 13)}
    ch = mrs.CHANNELS[3]
    betas = [s.beta for s in ch.slices("MEDIUM")]
    assert np.allclose(np.diff(betas), ch.slice_width)
    assert betas[0] == pytest.approx(-betas[-1])


@pytest.mark.parametrize("channel,band", [(1, "SHORT"), (2, "MEDIUM"), (4, "LONG")])
def test_wavelength_law(channel, band):
    ch = mrs.CHANNELS[channel]
    lo, hi = ch.bands[band]
    middle = ch.slice(ch.n_slices // 2 + 1 if ch.n_slices % 2 else 1, band)
    if ch.n_slices % 2:  # the middle slice is not shifted: the band's ends at rows 6 and 1017
        assert middle.row_shift == 0.0
        assert middle.wavelength(np.array([6.0, 1017.0])) == pytest.approx([lo, hi], abs=1e-12)
    for sl in (ch.slice(1, band), ch.slice(ch.n_slices, band)):
        assert abs(sl.row_shift) == pytest.approx(0.8)
        rows = np.linspace(0.0, 1023.0, 50)
        assert np.all(np.diff(sl.wavelength(rows)) > 0)
        assert sl.pixel(sl.wavelength(rows)) == pytest.approx(rows, abs=1e-9)
        # the dispersion is the law's derivative
        assert sl.dispersion(500.0) == pytest.approx((sl.wavelength(500.5) - sl.wavelength(499.5)), rel=1e-9)


def test_local_frame_round_trip():
    a, b = np.array([-1.3, 0.0, 2.1]), np.array([0.4, 0.0, -1.7])
    v2, v3 = mrs.alpha_beta_to_v2v3(a, b, "MIRIFULONG")
    assert (v2[1], v3[1]) == mrs.reference_point("MIRIFULONG")
    back = mrs.v2v3_to_alpha_beta(v2, v3, "MIRIFULONG")
    assert np.allclose(back, (a, b), atol=1e-12)
    # a rotation: distances are kept
    assert np.hypot(v2[0] - v2[2], v3[0] - v3[2]) == pytest.approx(np.hypot(a[0] - a[2], b[0] - b[2]))


def test_uniform_sky_fills_every_slice_as_stated():
    level = 10.0  # MJy/sr at every wavelength
    out = mrs.render_mrs("MIRIFUSHORT", "LONG", sky_mjy_sr=lambda wl: np.full_like(wl, level))
    ch = mrs.CHANNELS[2]
    sl = ch.slice(5, "LONG")
    x = int(round(sl.x_centre))
    rows = np.arange(100, 900)
    expected = level * JY_PER_MJY_SR_ARCSEC2 * sl.electrons_per_jy(rows) * ch.alpha_scale * ch.slice_width
    assert out.sky[rows, x] == pytest.approx(expected, rel=1e-9)
    # the slicer's ends: the outer columns see only the part of their alpha inside the field
    lo, hi = sl.column_range
    edge_fraction = out.sky[rows, lo] / expected
    covered = (0.5 * ch.field_length - abs(sl.alpha(lo + 0.5))) / ch.alpha_scale
    assert edge_fraction == pytest.approx(np.full(rows.size, covered), rel=1e-9)
    # nothing between the slices' images or on the reference columns
    assert not np.any(out.sky[:, :4]) and not np.any(out.sky[:, hi + 1:hi + ch.pitch - ch.columns + 1])


def test_point_source_light_is_conserved_across_slices():
    src = mrs.PointSource(SourceSpectrum(0.02, slope=0.0), alpha=0.1, beta=0.05)
    out = mrs.render_mrs("MIRIFUSHORT", "SHORT", points=[src], sky_mjy_sr=None)
    ch = mrs.CHANNELS[1]
    middle = ch.slice(11, "SHORT")
    rows = np.arange(40, 980)
    per_row = sum(out.image[rows, s.column_range[0]:s.column_range[1] + 1].sum(axis=1) for s in ch.slices("SHORT"))
    passed = sum(s.transmission(middle.wavelength(rows), src.beta) for s in ch.slices("SHORT"))
    assert passed == pytest.approx(np.ones(rows.size), abs=1e-6)  # the slices tile the field
    expected = src.spectrum.flux_jy * middle.electrons_per_jy(rows)
    assert np.median(per_row / expected) == pytest.approx(1.0, abs=2e-3)
    # most of the light in the slices either side of the source's beta
    slice_light = {s.k: out.image[:, s.column_range[0]:s.column_range[1] + 1].sum() for s in ch.slices("SHORT")}
    brightest = max(slice_light, key=slice_light.get)
    assert abs(ch.slice(brightest, "SHORT").beta - src.beta) <= 0.5 * ch.slice_width


def test_extended_source_matches_its_truth_at_a_slice_centre():
    src = mrs.ExtendedSource(SourceSpectrum(80.0, slope=1.0), sigma=1.0, alpha=0.2, beta=-0.3)
    out = mrs.render_mrs("MIRIFULONG", "SHORT", extended=[src], sky_mjy_sr=None)
    ch = mrs.CHANNELS[3]
    sl = ch.slice(8, "SHORT")
    x = int(round(sl.x_centre))
    rows = np.arange(100, 900)
    wl = sl.wavelength(rows)
    sb = out.image[rows, x] / (JY_PER_MJY_SR_ARCSEC2 * sl.electrons_per_jy(rows) * ch.alpha_scale * ch.slice_width)
    truth = mrs.truth_cube([src], sl.alpha(x), sl.beta, wl)
    # a pixel averages the source over its area: within 1 % of the value at its centre
    assert sb == pytest.approx(truth, rel=0.01)
