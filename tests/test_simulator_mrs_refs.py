"""The MIRI MRS references (:mod:`services.simulator.mrs_refs`) carry the simulator's model
(:mod:`services.simulator.mrs`) in the public formats.

- every file opens with ``stdatamodels`` as its public model class and validates strictly;
  a rewrite gives the same bytes;
- DISTORTION + SPECWCS, composed per slice as jwst's assign_wcs composes them, give every
  slice's pixels mrs.py's alpha, beta and wavelength (1e-9), and their inverses give the
  pixels back (1e-4 px); the alpha/beta -> V2/V3 models and their inverses are mrs.py's;
- REGIONS' planes hold the slices' columns by their coverage of the slicer's field (plane 7,
  80 %, the one assign_wcs reads, mrs.py's slice map on the columns covered at least 80 %);
- PHOTOM turns a uniform sky of 1 MJy/sr, rendered by mrs.py and divided by the mean gain,
  into 1 MJy/sr on every fully covered pixel (1e-6);
- (``public``, DMS_RUN_PUBLIC=1) jwst's AssignWcsStep, offline on an IFUImageModel with
  only these references, builds a WCS whose detector -> alpha/beta/lambda is mrs.py's
  (1e-6), whose sky positions are our pointing's through ``alpha_beta_to_v2v3`` (1 mas)
  and whose inverse recovers the pixels (0.01 px).

Figures are printed (``-s``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits
from astropy.modeling.models import Mapping
from stdatamodels.jwst import datamodels as dm

from services.simulator import mrs
from services.simulator.detector_model import make_detector_model
from services.simulator.mrs_refs import (
    CUBEPAR_FILENAME,
    SPAXEL_SIZE,
    SPECTRAL_STEP,
    WAVELENGTHRANGE_FILENAME,
    mrs_filename,
    write_mrs_references,
)
from services.simulator.optical_refs import mean_gain
from shared.instruments import detector

DETECTORS = ("MIRIFUSHORT", "MIRIFULONG")
PER_BAND = {"DISTORTION": dm.DistortionMRSModel, "SPECWCS": dm.SpecwcsModel, "REGIONS": dm.RegionsModel,
            "PHOTOM": dm.MirMrsPhotomModel}


@pytest.fixture(scope="module", params=DETECTORS)
def written(request, tmp_path_factory):
    name = request.param
    model = make_detector_model(detector(name), 2022)
    out = tmp_path_factory.mktemp(f"mrs-{name.lower()}")
    refs = write_mrs_references(model, out)
    return {"name": name, "model": model, "out": out, "refs": refs}


def _path(written, reftype: str, band: str) -> Path:
    return written["out"] / mrs_filename(reftype, written["name"], band)


def _channel_string(name: str) -> str:
    return "".join(str(c.channel) for c in mrs.channels_on(name))


def _band_slices(name: str, band: str) -> list[mrs.MrsSlice]:
    return [sl for c in mrs.channels_on(name) for sl in c.slices(band)]


def _coverage(sl: mrs.MrsSlice) -> np.ndarray:
    """Fraction of each of the slice's columns inside the slicer's field, from the geometry
    (the overlap of the column's alpha interval with +-length/2)."""
    lo, hi = sl.column_range
    x = np.arange(lo, hi + 1, dtype=np.float64)
    scale, half = sl.channel.alpha_scale, 0.5 * sl.channel.field_length
    left, right = (x - 0.5 - sl.x_centre) * scale, (x + 0.5 - sl.x_centre) * scale
    return np.clip(np.minimum(right, half) - np.maximum(left, -half), 0.0, None) / scale


def _worse(worst: dict, key: str, diff) -> None:
    """Keep the largest |diff| under ``key``; a NaN (a pixel without a value) fails."""
    diff = np.abs(np.asarray(diff, np.float64))
    assert np.all(np.isfinite(diff)), key
    worst[key] = max(worst[key], float(diff.max()))


def _sample_pixels(sl: mrs.MrsSlice, rng: np.random.Generator, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = sl.column_range
    x = np.concatenate([np.arange(lo, hi + 1, dtype=np.float64), rng.uniform(lo - 0.5, hi + 0.5, n)])
    y = np.concatenate([np.linspace(0.0, mrs.N_ROWS - 1.0, hi - lo + 1), rng.uniform(-0.5, mrs.N_ROWS - 0.5, n)])
    return x, y


def test_the_files_open_as_their_public_models_and_validate(written):
    name = written["name"]
    refs = written["refs"]
    expected = {(t, b) for t in PER_BAND for b in mrs.BANDS}
    assert {(r.reftype, r.path.name) for r in refs} == (
        {(t, mrs_filename(t, name, b)) for t, b in expected}
        | {("WAVELENGTHRANGE", WAVELENGTHRANGE_FILENAME), ("CUBEPAR", CUBEPAR_FILENAME)})
    for ref in refs:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a ValidationWarning fails
            with dm.open(ref.path, strict_validation=True) as opened:
                opened.validate()
                meta = opened.meta
                assert meta.instrument.name == "MIRI" and meta.exposure.type == "MIR_MRS"
                assert meta.pedigree == "SIMULATION" and meta.useafter == "2022-01-01T00:00:00"
                assert meta.reftype.upper() == ref.reftype and meta.telescope == "JWST"
                assert meta.author and meta.description
                if ref.reftype in PER_BAND:
                    band = ref.path.name.split("_")[4].upper()
                    assert type(opened) is PER_BAND[ref.reftype]
                    assert ref.detector == meta.instrument.detector == name
                    assert meta.instrument.band == band
                    if ref.reftype != "PHOTOM":
                        assert meta.instrument.channel == _channel_string(name)
                elif ref.reftype == "WAVELENGTHRANGE":
                    assert type(opened) is dm.WavelengthrangeModel
                    assert (meta.instrument.channel, meta.instrument.band) == ("N/A", "N/A")
                else:
                    assert type(opened) is dm.MiriIFUCubeParsModel
    for band in mrs.BANDS:  # the keywords CRDS selects the PHOTOM by, in its PRIMARY header
        header = fits.getheader(_path(written, "PHOTOM", band))
        assert header["DATAMODL"] == "MirMrsPhotomModel" and header["REFTYPE"] == "PHOTOM"
        assert (header["INSTRUME"], header["DETECTOR"], header["CHANNEL"], header["BAND"], header["EXP_TYPE"]) == (
            "MIRI", name, _channel_string(name), band, "MIR_MRS")
        for key in ("DESCRIP", "AUTHOR", "PEDIGREE", "USEAFTER"):
            assert header[key]


def test_a_rewrite_gives_the_same_bytes(written, tmp_path):
    again = write_mrs_references(written["model"], tmp_path)
    for first, second in zip(written["refs"], again, strict=True):
        assert first.path.name == second.path.name
        assert first.path.read_bytes() == second.path.read_bytes(), first.path.name


def test_distortion_and_specwcs_reproduce_the_model(written):
    name = written["name"]
    rng = np.random.default_rng(5)
    worst = {"alpha": 0.0, "beta": 0.0, "lambda": 0.0, "x": 0.0, "y": 0.0, "v2v3": 0.0, "ab": 0.0}
    for band in mrs.BANDS:
        slices = _band_slices(name, band)
        with dm.DistortionMRSModel(str(_path(written, "DISTORTION", band))) as dist, \
                dm.SpecwcsModel(str(_path(written, "SPECWCS", band))) as spec:
            assert list(dist.slices) == list(spec.slices) == [sl.number for sl in slices]
            assert len(spec.model) == len(dist.alpha_model) == len(dist.x_model) == len(slices)
            channels = mrs.channels_on(name)
            keys = [f"{c.channel}{band}" for c in channels]
            bzero = dict(zip(dist.bzero.channel_band, dist.bzero.beta_zero, strict=True))
            bdel = dict(zip(dist.bdel.channel_band, dist.bdel.delta_beta, strict=True))
            assert list(dist.abv2v3_model.channel_band) == keys
            for c, key in zip(channels, keys, strict=True):
                assert bzero[key] == pytest.approx(c.slice(1, band).beta, abs=1e-12)
                assert bdel[key] == pytest.approx(c.slice_width, abs=1e-12)
            for i, sl in enumerate(slices):
                x, y = _sample_pixels(sl, rng)
                # composed as jwst's assign_wcs composes them, on (x, y)
                forward = Mapping([1, 0, 0, 1, 0]) | dist.alpha_model[i] & dist.beta_model[i] & spec.model[i]
                alpha, beta, lam = forward(x, y)
                _worse(worst, "alpha", alpha - sl.alpha(x))
                _worse(worst, "beta", beta - sl.beta)
                _worse(worst, "lambda", lam - sl.wavelength(y))
                # MIRI_AB2Slice finds the slice from beta with bzero and bdel
                c = sl.channel
                key = f"{c.channel}{band}"
                assert np.all(np.floor(100 * c.channel + (beta - bzero[key]) / bdel[key] + 1 + 0.5) == sl.number)
                # and its inverse, (alpha, beta, lam) -> (x, y)
                backward = Mapping([2, 0, 2, 0]) | dist.x_model[i] & dist.y_model[i]
                xb, yb = backward(alpha, beta, lam)
                _worse(worst, "x", xb - x)
                _worse(worst, "y", yb - y)
            a = rng.uniform(-4.0, 4.0, 200)
            b = rng.uniform(-4.0, 4.0, 200)
            v2, v3 = mrs.alpha_beta_to_v2v3(a, b, name)
            for model in dist.abv2v3_model.model:
                got = model(a, b)
                _worse(worst, "v2v3", np.array(got) - np.array([v2, v3]))
                back = model.inverse(v2, v3)
                _worse(worst, "ab", np.array(back) - np.array([a, b]))
                assert np.allclose(mrs.v2v3_to_alpha_beta(v2, v3, name), (a, b), atol=1e-10, rtol=0)
    print(f"\n[mrs refs {name}] worst |diff|: " + ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))
    assert worst["alpha"] <= 1e-9 and worst["beta"] <= 1e-9 and worst["lambda"] <= 1e-9  # arcsec, um
    assert worst["x"] < 1e-4 and worst["y"] < 1e-4  # pixels
    assert worst["v2v3"] <= 1e-9 and worst["ab"] <= 1e-9  # arcsec


def test_regions_hold_the_slices_by_coverage(written):
    name = written["name"]
    for band in mrs.BANDS:
        with dm.RegionsModel(str(_path(written, "REGIONS", band))) as ref:
            regions = np.asarray(ref.regions)
        assert regions.shape == (9, mrs.N_ROWS, mrs.N_COLUMNS) and np.issubdtype(regions.dtype, np.integer)
        slice_map = mrs.slice_map(name, band)
        for j in range(9):
            level = (j + 1) / 10.0
            covered = np.zeros(mrs.N_COLUMNS, bool)
            for sl in _band_slices(name, band):
                lo, hi = sl.column_range
                covered[lo:hi + 1] = _coverage(sl) >= level - 1e-9
            expected = np.where(covered[None, :], slice_map, 0)
            assert np.array_equal(regions[j], expected), (band, j)
        # the planes nest, plane 0 is the whole slice map and plane 8 the fully covered columns
        assert np.array_equal(regions[0], slice_map)
        for j in range(8):
            assert np.all((regions[j + 1] == 0) | (regions[j + 1] == regions[j]))
        assert 0 < np.count_nonzero(regions[7]) < np.count_nonzero(slice_map)


def test_photom_turns_a_uniform_sky_into_its_surface_brightness(written):
    name = written["name"]
    g0 = mean_gain(written["model"])
    worst = 0.0
    for band in mrs.BANDS:
        rendered = mrs.render_mrs(name, band, points=(), extended=(), sky_mjy_sr=lambda wl: np.ones_like(wl))
        with dm.MirMrsPhotomModel(str(_path(written, "PHOTOM", band))) as ref:
            sci, err, dq, pixsiz = (np.asarray(a) for a in (ref.data, ref.err, ref.dq, ref.pixsiz))
            assert ref.meta.photometry.conversion_megajanskys == 1.0
        assert sci.shape == err.shape == dq.shape == pixsiz.shape == (mrs.N_ROWS, mrs.N_COLUMNS)
        assert sci.dtype.newbyteorder("=") == np.float32 and np.all(dq == 0)
        slice_map = mrs.slice_map(name, band)
        on = slice_map > 0
        assert np.all(np.isfinite(sci[on]) & (sci[on] > 0)) and np.all(np.isnan(sci[~on]))
        assert np.allclose(err[on], 0.01 * sci[on], rtol=1e-6, atol=0)
        interior = np.zeros_like(on)
        for sl in _band_slices(name, band):
            lo, hi = sl.column_range
            full = np.flatnonzero(np.abs(_coverage(sl) - 1.0) < 1e-12) + lo
            interior[:, full] = True
            area = sl.channel.alpha_scale * sl.channel.slice_width
            assert np.allclose(pixsiz[:, lo:hi + 1], area, rtol=1e-6, atol=0)
        assert np.all(np.isnan(pixsiz[~on]))
        surface = rendered.image / g0 * sci  # DN/s of the flat-fielded rate times SCI: MJy/sr
        assert np.all(np.isfinite(surface[interior]))
        worst = max(worst, float(np.max(np.abs(surface[interior] - 1.0))))
        # a partly covered column sees its share of the sky
        assert np.all(surface[on & ~interior] < 1.0 - 1e-3)
    print(f"\n[mrs photom {name}] uniform 1 MJy/sr sky recovered to {worst:.2g}")
    assert worst <= 1e-6


def test_wavelengthrange_and_cubepar_are_the_common_ranges(written):
    out = written["out"]
    with dm.WavelengthrangeModel(str(out / WAVELENGTHRANGE_FILENAME)) as ref:
        ranges = dict(zip(ref.waverange_selector, (tuple(r) for r in ref.wavelengthrange), strict=True))
    assert list(ranges) == [f"{c}{b}" for c in mrs.CHANNELS for b in mrs.BANDS]
    for c, channel in mrs.CHANNELS.items():
        for band in mrs.BANDS:
            lo = max(float(sl.wavelength(6.0)) for sl in channel.slices(band))
            hi = min(float(sl.wavelength(1017.0)) for sl in channel.slices(band))
            got_lo, got_hi = ranges[f"{c}{band}"]
            assert lo <= got_lo < lo + 1.01e-6 and hi - 1.01e-6 < got_hi <= hi
    # one band of a detector's two channels: their ranges do not overlap (jwst picks the channel by them)
    for band in mrs.BANDS:
        for a, b in ((1, 2), (3, 4)):
            ra, rb = ranges[f"{a}{band}"], ranges[f"{b}{band}"]
            assert ra[1] < rb[0] or rb[1] < ra[0]
    with dm.MiriIFUCubeParsModel(str(out / CUBEPAR_FILENAME)) as ref:
        table = ref.ifucubepars_table
        rows = {(r["channel"], r["band"]): r for r in table}
        assert len(rows) == 12
        for c in mrs.CHANNELS:
            for band in mrs.BANDS:
                row = rows[(str(c), band)]
                assert row["spaxelsize"] == pytest.approx(SPAXEL_SIZE[c], rel=1e-6)
                assert row["spectralstep"] == pytest.approx(SPECTRAL_STEP[c], rel=1e-6)
                assert (row["wavemin"], row["wavemax"]) == pytest.approx(ranges[f"{c}{band}"], rel=1e-6)
        assert len(ref.ifucubepars_msm_table) == len(ref.ifucubepars_emsm_table) == 12
        driz = np.asarray(ref.ifucubepars_multichannel_driz_wavetable["wavelength"])
        assert np.all(np.diff(driz) > 0)
        assert driz[0] <= min(r[0] for r in ranges.values()) and driz[-1] >= max(r[1] for r in ranges.values()) - 0.01
        for table in (ref.ifucubepars_multichannel_msm_wavetable, ref.ifucubepars_multichannel_emsm_wavetable):
            assert len(table) > 10 and np.all(np.diff(table["wavelength"]) > 0)


def test_another_detector_is_refused(tmp_path):
    imager = SimpleNamespace(detector=detector("MIRIMAGE"))  # refused before its arrays are read
    with pytest.raises(ValueError, match="MIRIFUSHORT and MIRIFULONG"):
        write_mrs_references(imager, tmp_path)
    assert not list(tmp_path.iterdir())


# --- the public pipeline --------------------------------------------------------------------

POINTING = {"ra_ref": 80.5, "dec_ref": -69.5, "roll_ref": 37.0}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """CRDS kept offline (every reference is an override), as benchmarks/_jwst.py does."""
    from benchmarks._jwst import crds_env

    for key, value in crds_env(tmp_path / "crds").items():
        monkeypatch.setenv(key, value)
    return tmp_path


def _ifu_image(name: str, band: str):
    info = detector(name)
    model = dm.IFUImageModel(np.zeros((mrs.N_ROWS, mrs.N_COLUMNS), np.float32))
    meta = model.meta
    meta.instrument.name = "MIRI"
    meta.instrument.detector = name
    meta.instrument.channel = _channel_string(name)
    meta.instrument.band = band
    meta.exposure.type = "MIR_MRS"
    meta.observation.date = "2023-06-01"
    meta.observation.time = "00:00:00.000"
    meta.exposure.start_time = 60096.0
    meta.exposure.mid_time = 60096.001
    meta.exposure.end_time = 60096.002
    meta.subarray.name = "FULL"
    meta.subarray.xstart, meta.subarray.ystart = 1, 1
    meta.subarray.xsize, meta.subarray.ysize = mrs.N_COLUMNS, mrs.N_ROWS
    w = meta.wcsinfo
    w.ra_ref, w.dec_ref, w.roll_ref = POINTING["ra_ref"], POINTING["dec_ref"], POINTING["roll_ref"]
    w.v2_ref, w.v3_ref = info.v2_ref, info.v3_ref
    w.v3yangle, w.vparity = 0.0, -1
    meta.velocity_aberration.scale_factor = 1.0
    return model


def _separation_mas(ra1, dec1, ra2, dec2) -> np.ndarray:
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, np.float64)) for v in (ra1, dec1, ra2, dec2))
    hav = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(hav))) * 3.6e6


@pytest.mark.public
@pytest.mark.parametrize("band", mrs.BANDS)
def test_jwst_assign_wcs_reproduces_the_model(written, offline, band):
    from jwst.assign_wcs import AssignWcsStep

    from shared.imaging_wcs import TelescopePointing, v23tosky

    name = written["name"]
    overrides = {f"override_{t}": "N/A" for t in AssignWcsStep.reference_file_types}
    for reftype in ("distortion", "specwcs", "regions"):
        overrides[f"override_{reftype}"] = str(_path(written, reftype.upper(), band))
    overrides["override_wavelengthrange"] = str(written["out"] / WAVELENGTHRANGE_FILENAME)
    result = AssignWcsStep.call(_ifu_image(name, band), **overrides)
    assert result.meta.cal_step.assign_wcs == "COMPLETE"
    wcs = result.meta.wcs
    det2ab = wcs.get_transform("detector", "alpha_beta")
    info = detector(name)
    sky = v23tosky(TelescopePointing(POINTING["ra_ref"], POINTING["dec_ref"], POINTING["roll_ref"],
                                     info.v2_ref, info.v3_ref))
    rng = np.random.default_rng(11)
    worst = {"alpha": 0.0, "beta": 0.0, "lambda": 0.0, "sky_mas": 0.0, "x": 0.0, "y": 0.0}
    covered = 0
    for sl in _band_slices(name, band):
        lo, _ = sl.column_range
        columns = (np.flatnonzero(_coverage(sl) >= 0.8 - 1e-9) + lo).astype(np.float64)
        # rows whose wavelength is inside the channel's WAVELENGTHRANGE for every slice (jwst's
        # alpha/beta -> V2/V3 picks the channel by it)
        x = np.concatenate([columns, rng.choice(columns, 40)])
        y = np.concatenate([np.linspace(8.0, 1015.0, columns.size), rng.uniform(8.0, 1015.0, 40)])
        alpha, beta, lam = det2ab(x, y)
        assert np.all(np.isfinite(alpha)), sl.number
        _worse(worst, "alpha", alpha - sl.alpha(x))
        _worse(worst, "beta", beta - sl.beta)
        _worse(worst, "lambda", lam - sl.wavelength(y))
        ra, dec, wl = wcs(x, y)
        ra_ours, dec_ours = sky(*mrs.alpha_beta_to_v2v3(sl.alpha(x), sl.beta, name))
        assert np.allclose(wl, sl.wavelength(y), atol=1e-6, rtol=0)
        _worse(worst, "sky_mas", _separation_mas(ra, dec, ra_ours, dec_ours))
        xb, yb = wcs.invert(ra, dec, wl, with_bounding_box=False)
        _worse(worst, "x", xb - x)
        _worse(worst, "y", yb - y)
        covered += 1
    # a column beyond the 80 % plane and a pixel between slices have no WCS
    sl = _band_slices(name, band)[0]
    with pytest.warns(UserWarning, match="not inside any region"):
        assert np.all(np.isnan(det2ab(float(sl.column_range[0] - 1), 500.0)[0]))
    print(f"\n[jwst assign_wcs {name} {band}] {covered} slices, worst: "
          + ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))
    assert covered == sum(c.n_slices for c in mrs.channels_on(name))
    assert worst["alpha"] <= 1e-6 and worst["beta"] <= 1e-6 and worst["lambda"] <= 1e-6
    assert worst["sky_mas"] <= 1.0
    assert worst["x"] <= 0.01 and worst["y"] <= 0.01
