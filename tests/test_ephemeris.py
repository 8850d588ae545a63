"""The observatory's ephemeris: the simulated L2 halo orbit, its validation and
interpolation, the barycentric times against astropy's own light-travel time, the
velocity aberration against the public pipeline's, the header keywords an SDP writes from
it, and a transit mid-time recovered from the tso3 product against the simulator's truth
(tolerances stated beside each check)."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.constants import c
from astropy.coordinates import (
    CartesianRepresentation,
    EarthLocation,
    SkyCoord,
    get_body_barycentric,
)
from astropy.table import Table
from astropy.time import Time
from pydantic import ValidationError

from services.detector1.pipeline import calibrate
from services.ingest.observer import GEOCENTRE_FALLBACK, observer
from services.ingest.pipeline import ingest_telemetry
from services.simulator.ephemeris import halo_position
from services.stage2.pipeline import calibrate as calibrate_image2
from services.stage3.pipeline import run_tso3
from shared.datamodels import read_product, write_product
from shared.ephemeris import (
    Ephemeris,
    EphemerisCoverageError,
    bjd_tdb,
    earth_barycentric_km,
    velocity_aberration,
)
from shared.refdata import LocalReferences

CREATED = datetime(2026, 1, 1, tzinfo=UTC)
L2_VS_EARTH_MIN_S = 3.0  # the demo host lies near the anti-Sun direction: L2 is ~4-5 light-s nearer
MID_TRANSIT_TOLERANCE_S = 0.1  # fit of the 60 x 0.25 s integrations (0.8 s ingress, ~1.5 % depth noise)


@pytest.fixture(scope="module")
def tso(demo_tso_sim):
    return demo_tso_sim  # simulated once for the session (tests/conftest.py)


def _ingest(tso, with_ephemeris: bool = True):
    [telemetry] = tso.telemetry_paths
    out = ingest_telemetry(telemetry.read_bytes(), lambda program: tso.plan,
                           ephemeris_for=(lambda program: tso.ephemeris) if with_ephemeris else None,
                           created=CREATED, software_version="test", segment_bytes=2_000_000_000)
    assert not out.rejections
    return out.files[0].product


def _anti_sun(mjd: float) -> tuple[float, float]:
    t = Time(mjd, format="mjd", scale="utc")
    v = (get_body_barycentric("earth", t) - get_body_barycentric("sun", t)).xyz.to_value(u.km)
    c = SkyCoord(CartesianRepresentation(*v, unit=u.km), frame="icrs")
    return float(c.spherical.lon.deg), float(c.spherical.lat.deg)


# --- the ephemeris -------------------------------------------------------------------


def test_simulated_orbit_is_a_halo_about_l2(tso):
    """Over half a year: 1.2-1.9e6 km from the Earth, mostly anti-sunward, the halo
    moving it by a few 1e5 km; the delivered file covers every exposure."""
    mjd = np.linspace(60600.0, 60780.0, 37)
    geo = halo_position(mjd) - earth_barycentric_km(mjd)
    dist = np.linalg.norm(geo, axis=1)
    assert 1.2e6 < dist.min() and dist.max() < 1.9e6
    t = Time(mjd, format="mjd")
    anti = (get_body_barycentric("earth", t) - get_body_barycentric("sun", t)).xyz.to_value(u.km).T
    anti /= np.linalg.norm(anti, axis=1, keepdims=True)
    assert (np.sum(geo * anti, axis=1) / dist).min() > 0.7
    assert np.ptp(dist) > 1e5
    eph = tso.ephemeris
    assert tso.ephemeris_path.name == "jw01234_ephem.json"
    assert Ephemeris.model_validate_json(tso.ephemeris_path.read_text()) == eph
    for obs in tso.plan.observations:
        for e in obs.exposures:
            start = Time(e.start_time).mjd
            assert eph.covers(start, start + 1.0 / 24)


def test_interpolation_between_samples_follows_the_orbit(tso):
    """Hourly samples, cubic Hermite: within 1 m and 10 cm/s of the orbit model between them
    (1 m is 3 ns of light time; 10 cm/s changes the aberration by 3e-10)."""
    eph = tso.ephemeris
    mid = np.asarray(eph.mjd[3:8]) + 0.37 / 24
    pos, vel = eph.state(mid)
    np.testing.assert_allclose(pos, halo_position(mid), rtol=0, atol=1e-3)
    step = 1.0 / 86400
    numeric = (halo_position(mid + step) - halo_position(mid - step)) / 2.0
    np.testing.assert_allclose(vel, numeric, rtol=0, atol=1e-4)
    with pytest.raises(EphemerisCoverageError, match="outside the ephemeris span"):
        eph.state(eph.mjd[-1] + 0.01)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(mjd=d["mjd"][::-1]), ["mjd: sample 1", "does not follow"]),
        (lambda d: d.update(position_km=[[x * 1e3 for x in p] for p in d["position_km"]]),
         ["position_km.0", "km from the barycentre", "units"]),
        (lambda d: d.update(velocity_km_s=d["velocity_km_s"][:-1]), ["velocity_km_s 2"]),
        (lambda d: d.update(reference_frame="FK4"), ["reference_frame"]),
    ],
)
def test_malformed_ephemeris_is_refused_with_a_reason(change, words):
    pos = halo_position(np.array([60676.0, 60676.5, 60677.0]))
    d = {"type": "DEFINITIVE", "mjd": [60676.0, 60676.5, 60677.0], "position_km": pos.tolist(),
         "velocity_km_s": [[0.0, 30.0, 0.0]] * 3}
    change(d)
    with pytest.raises(ValidationError) as err:
        Ephemeris.model_validate(d)
    for w in words:
        assert w in str(err.value)


# --- barycentric times and aberration -------------------------------------------------


def test_roemer_delay_matches_astropy_light_travel_time():
    """At the geocentre our BJD_TDB equals astropy's TDB + ``light_travel_time`` to 1 us
    (the same time scales, Earth ephemeris, sign and units); the observatory's BJD_TDB
    differs from it by its geocentric offset projected on the target, computed with
    astropy's representations and constants, to 1 ns. Toward the anti-Sun direction that
    is more than 3 s, so an SDP that put the observatory at the Earth fails this test."""
    geocentre = EarthLocation.from_geocentric(0.0, 0.0, 0.0, unit=u.m)
    delays = []
    for mjd in (60676.0, 60736.25, 60800.5):
        ra, dec = _anti_sun(mjd)
        star = SkyCoord(ra, dec, unit="deg")
        t = Time(mjd, format="mjd", scale="utc", location=geocentre)
        astropy_geo = (t.tdb + t.light_travel_time(star, kind="barycentric")).mjd
        at_earth = bjd_tdb(mjd, ra, dec, earth_barycentric_km(mjd))[0]
        assert abs(at_earth - astropy_geo) * 86400 < 1e-6
        pos = halo_position(mjd)
        ours = bjd_tdb(mjd, ra, dec, pos)[0]
        offset = CartesianRepresentation((pos - earth_barycentric_km(mjd))[0] * u.km)
        delay = (offset.dot(star.cartesian) / c).to_value(u.s)
        assert abs((ours - at_earth) * 86400 - delay) < 2e-6  # MJD doubles resolve ~1 us
        delays.append(delay)
    print(f"BJD_TDB observatory minus geocentre toward the anti-Sun: {np.round(delays, 3)} s")
    assert min(delays) > L2_VS_EARTH_MIN_S


def test_velocity_aberration_matches_the_public_pipeline():
    """Scale factor to 1e-12 and apparent position to 1e-6 arcsec of stcal's
    ``compute_va_effects`` (used by the public jwst set_velocity_aberration)."""
    va = pytest.importorskip("stcal.velocity_aberration")
    mjd = np.array([60676.0])
    _, vel = Ephemeris(type="DEFINITIVE", mjd=[60675.9, 60676.1],
                       position_km=halo_position(np.array([60675.9, 60676.1])).tolist(),
                       velocity_km_s=[[-30.3, 5.0, 2.1], [-30.3, 5.0, 2.1]]).state(mjd)
    for ra, dec in [(150.1163, 2.2012), (53.1625, -27.7914), (270.0, 66.56), (10.0, 89.9)]:
        scale, ra_app, dec_app = velocity_aberration(vel[0], ra, dec)
        s2, r2, d2 = va.compute_va_effects(*vel[0], ra, dec)
        assert scale == pytest.approx(s2, rel=0, abs=1e-12)
        assert abs(((ra_app - r2 + 180) % 360 - 180) * np.cos(np.radians(dec))) * 3600 < 1e-6
        assert abs(dec_app - d2) * 3600 < 1e-6
        assert 1.0 - 1.1e-4 < scale < 1.0 + 1.1e-4  # |v| ~ 30 km/s: 1e-4


# --- the SDP ---------------------------------------------------------------------------


def test_uncal_keywords_from_the_ephemeris(tso, tmp_path):
    """JWST_* at MJD-AVG from the ephemeris, OBSGEO* the same minus the Earth's, VA_* at the
    reference point, B*/H*TIME and INT_TIMES from the observatory; the public data model
    opens the file and the schema validates."""
    product = _ingest(tso)
    kw = product.keywords
    mid = kw["MJD-AVG"]
    pos, vel = tso.ephemeris.state(mid)
    np.testing.assert_allclose([kw["JWST_X"], kw["JWST_Y"], kw["JWST_Z"]], pos[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose([kw["JWST_DX"], kw["JWST_DY"], kw["JWST_DZ"]], vel[0], rtol=0, atol=1e-9)
    geo = np.array([kw["OBSGEO-X"], kw["OBSGEO-Y"], kw["OBSGEO-Z"]])
    assert 1.2e9 < np.linalg.norm(geo) < 1.9e9  # m
    assert kw["EPH_TYPE"] == "Definitive" and kw["REFFRAME"] == "ICRS" and kw["EPH_TIME"] == mid
    target = tso.plan.target(tso.plan.observations[0].target_id)
    table = product.tables["INT_TIMES"]
    expected = bjd_tdb(table["int_mid_MJD_UTC"], target.ra, target.dec, tso.ephemeris.state(table["int_mid_MJD_UTC"])[0])
    np.testing.assert_allclose(table["int_mid_BJD_TDB"], expected, rtol=0, atol=1e-6 / 86400)
    tdb_start = Time(kw["EXPSTART"], format="mjd", scale="utc").tdb.mjd
    assert kw["BSTRTIME"] == pytest.approx(tdb_start + kw["BARTDELT"] / 86400, abs=1e-6 / 86400)
    assert kw["BSTRTIME"] == pytest.approx(table["int_start_BJD_TDB"][0], abs=1e-6 / 86400)
    assert abs(kw["BARTDELT"]) < 510 and abs(kw["HELIDELT"] - kw["BARTDELT"]) < 5  # the Sun is < 1.5 light-s from the barycentre
    path = write_product(tmp_path / "jw01234002001_01101_00001_nrca1_uncal.fits", product)
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with datamodels.open(path) as m:
            m.validate()
            assert m.meta.ephemeris.spatial_x_bary == kw["JWST_X"]
            assert m.meta.velocity_aberration.scale_factor == kw["VA_SCALE"]
            assert m.meta.velocity_aberration.va_ra_ref == kw["VA_RA"]
            assert m.meta.time.barycentric_expmid == kw["BMIDTIME"]


def test_without_an_ephemeris_the_header_says_geocentre(tso):
    """No ephemeris, or one that does not cover the exposure: BJD_TDB at the geocentre (3 s
    off for this target), EPH_TYPE says so, and no state vector or aberration keyword is
    written."""
    kw_l2 = _ingest(tso).keywords
    product = _ingest(tso, with_ephemeris=False)
    kw = product.keywords
    assert kw["EPH_TYPE"] == GEOCENTRE_FALLBACK
    assert not {"JWST_X", "JWST_DX", "OBSGEO-X", "VA_SCALE", "VA_RA", "EPH_TIME"} & set(kw)
    assert (kw_l2["BMIDTIME"] - kw["BMIDTIME"]) * 86400 > 2.5
    # an ephemeris that ends before the exposure is never extrapolated: the same fallback
    early = Ephemeris(type="DEFINITIVE", mjd=tso.ephemeris.mjd[:3], position_km=tso.ephemeris.position_km[:3],
                      velocity_km_s=tso.ephemeris.velocity_km_s[:3])
    where = observer(early, kw_l2["EXPSTART"], kw_l2["EXPEND"])
    assert where.ephemeris is None and "not the exposure's" in where.why
    [telemetry] = tso.telemetry_paths
    out = ingest_telemetry(telemetry.read_bytes(), lambda program: tso.plan, ephemeris_for=lambda program: early,
                           created=CREATED, software_version="test", segment_bytes=2_000_000_000)
    assert out.files[0].product.keywords["EPH_TYPE"] == GEOCENTRE_FALLBACK
    assert out.files[0].product.keywords["BMIDTIME"] == kw["BMIDTIME"]


def _fit_mid_time(bjd: np.ndarray, flux: np.ndarray, duration: float, ingress: float) -> float:
    """Least-squares mid-time (BJD_TDB, MJD) of a trapezoid of known duration and ingress,
    with free out-of-transit level and depth (linear for each trial mid-time): a 1 ms grid
    over the observation span and 5 s either side."""
    from services.simulator.transit import trapezoid

    t = (bjd - bjd[0]) * 86400.0
    grid = np.arange(t[0] - 5.0, t[-1] + 5.0, 1e-3)
    dip = 1.0 - trapezoid(t[None, :] - grid[:, None], 0.0, duration, ingress, 1.0)  # (ngrid, nints)
    n, sx, sy = len(t), dip.sum(axis=1), flux.sum()
    sxx, sxy = np.sum(dip * dip, axis=1), dip @ flux
    det = n * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (n * sxy - sx * sy) / det
        a = (sy - b * sx) / n
        chi = np.sum((flux[None, :] - a[:, None] - b[:, None] * dip) ** 2, axis=1)
    chi[~np.isfinite(chi) | (det <= 0)] = np.inf
    return bjd[0] + grid[int(np.argmin(chi))] / 86400.0


def _tso3_phot(tso, uncal, tmp_path: Path) -> Table:
    """detector1 -> image2 -> tso3 of one TSO exposure: its ``_phot`` table."""
    refs = LocalReferences(refs_dir=tso.reference_paths[0].parent)
    common = {"software_version": "test", "created": "2026-01-01T00:00:00"}
    rateints = calibrate(uncal, refs, **common).rateints
    calints = calibrate_image2(rateints, refs, **common)
    assert calints.is_cube and calints.statuses["photom"] == "COMPLETE"
    member = read_product(write_product(tmp_path / "jw01234002001_01101_00001_nrca1_calints.fits", calints.cal))
    out = run_tso3([member], software_version="test", created="2026-01-01T00:00:00")
    assert out.statuses["tso_photometry"] == "COMPLETE"
    return out.phot


def test_mid_transit_recovered_from_the_tso3_product_matches_the_truth(tso, tmp_path):
    """Ingest -> detector1 -> image2 -> tso3: the _phot table's net aperture sums against
    its BJD_TDB give the truth's BJD_TDB mid-transit within 0.1 s (measured 6 ms); the same
    chain from an ingest at the geocentre misses it by more than ten times that (3.0 s for
    the demo host in January)."""
    [telemetry] = tso.telemetry_paths
    index = json.loads((tso.truth_dir / "truth.json").read_text())
    [entry] = index["exposures"]
    transit = entry["transit"]
    truth_mid = transit["mid_time_bjd_tdb"]
    curve = Table.read(tso.truth_dir / f"{telemetry.stem}_truth_lightcurve.ecsv")
    errors = {}
    for with_ephemeris in (True, False):
        uncal = _ingest(tso, with_ephemeris)
        phot = _tso3_phot(tso, uncal, tmp_path)
        bjd = np.asarray(phot["BJD_TDB"], float)
        np.testing.assert_allclose(bjd, uncal.tables["INT_TIMES"]["int_mid_BJD_TDB"], rtol=0, atol=1e-6 / 86400)
        if with_ephemeris:  # the product's times are the truth's light-arrival times (1 ms)
            np.testing.assert_allclose(bjd, curve["mid_bjd_tdb"], rtol=0, atol=1e-3 / 86400)
        flux = np.asarray(phot["net_aperture_sum"].value, float)
        mid = _fit_mid_time(bjd, flux, transit["duration_s"], transit["ingress_s"])
        errors[with_ephemeris] = (mid - truth_mid) * 86400
    print(f"mid-transit error: observatory {errors[True]:+.3f} s, geocentre {errors[False]:+.3f} s")
    assert abs(errors[True]) < MID_TRANSIT_TOLERANCE_S
    assert abs(errors[False]) > 10 * MID_TRANSIT_TOLERANCE_S


def test_delivery_refuses_a_bad_ephemeris_and_a_good_one_replaces_the_fallback(embedded_settings, tmp_path):
    """An ephemeris in m/s is refused at delivery (``invalid_ephemeris``, kept in dms-raw);
    the telemetry is still ingested, flagged EPH_TYPE ``NONE (GEOCENTRE)``; once a valid
    ephemeris is delivered and the telemetry re-queued, the new revision carries JWST_*
    and the observatory's times."""
    from astropy.io import fits
    from sqlalchemy import select

    from services.ingest.receive import receive_files
    from services.registry import embedded_context
    from services.simulator.ephemeris import simulated_ephemeris
    from shared.catalog import IngestRejection, Product
    from shared.runtime import dispatch_events
    from tests.telemetry_factory import tiny_exposure

    context, inline = embedded_context(embedded_settings, services=["ingest"])
    tiny = tiny_exposure()
    plan_path = tmp_path / f"jw{tiny.plan.program}_plan.json"
    plan_path.write_text(tiny.plan.model_dump_json())
    tlm = tmp_path / "jw01234001001_01101_00001_nrca1.ccsds"
    tlm.write_bytes(b"".join(tiny.packets))
    good = simulated_ephemeris(tiny.plan)
    bad = good.model_dump(mode="json")
    bad["velocity_km_s"] = [[v * 1e3 for v in row] for row in bad["velocity_km_s"]]
    eph_path = tmp_path / f"jw{tiny.plan.program}_ephem.json"
    eph_path.write_text(json.dumps(bad))

    def deliver(paths, requeue=False):
        received = receive_files(context, paths, requeue=requeue)
        dispatch_events(context.catalog, context.transport, event_ids=[r.event_id for r in received if r.event_id])
        inline.run_until_idle()
        return received

    def current_header():
        with context.catalog.session() as s:
            product = s.scalar(select(Product).where(Product.is_current))
            uri = product.artifacts[0].uri
        path = tmp_path / "current_uncal.fits"
        path.write_bytes(context.store.get_uri(uri))
        return fits.getheader(path, 0), fits.getheader(path, "SCI")

    received = deliver([plan_path, eph_path, tlm])
    [refused] = [r for r in received if r.kind == "ephemeris"]
    assert refused.rejection.startswith("invalid_ephemeris: ") and "velocity_km_s.0" in refused.rejection
    assert "/rejected/" in refused.stored.uri
    with context.catalog.session() as s:
        assert [r.reason for r in s.scalars(select(IngestRejection))] == ["invalid_ephemeris"]
    primary, sci = current_header()
    assert sci["EPH_TYPE"] == GEOCENTRE_FALLBACK and "JWST_X" not in sci
    eph_path.write_text(good.model_dump_json())
    deliver([eph_path, tlm], requeue=True)
    primary2, sci2 = current_header()
    assert sci2["EPH_TYPE"] == "Definitive"
    pos, _ = good.state(sci2["MJD-AVG"])
    assert sci2["JWST_X"] == pytest.approx(pos[0][0], abs=1e-6)
    assert primary2["BSTRTIME"] != primary["BSTRTIME"]
    context.catalog.dispose()
