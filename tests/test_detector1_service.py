"""detector1 as a service: _uncal archived -> references selected by the current context ->
_rate archived with its provenance; segments, missing references, new contexts; and the
`dms refs` and `dms run detector1` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from astropy.io import fits
from sqlalchemy import select

from services.cli import main
from services.ingest.receive import receive_files
from services.registry import embedded_context
from services.simulator import simulate
from shared.catalog import Artifact, Product
from shared.config import Settings, get_settings
from shared.refdata import deliver
from shared.runtime import dispatch_events

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def description(**observation) -> dict:
    desc = yaml.safe_load((REPO / "examples" / "nircam_imaging.yaml").read_text())
    desc["observations"] = desc["observations"][:1]  # the imaging observation (the demo adds a TSO one)
    desc["observations"][0].update(detectors=["NRCA1"], dither={"pattern": "NONE"}, **observation)
    return desc


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate(description(nints=3), tmp_path_factory.mktemp("sim"))


def run_chain(settings: Settings, sim, with_refs: bool = True):
    ctx, inline = embedded_context(settings, services=["ingest", "detector1"])
    if with_refs:
        deliver(ctx, sim.reference_paths)
    received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    done = inline.run_until_idle()
    assert all(o.status == "ok" for _, o in done), done
    return ctx


def products(ctx) -> dict[str, tuple[Product, str]]:
    with ctx.catalog.session() as s:
        rows = s.execute(select(Product, Artifact.uri).join(Artifact).where(Artifact.kind == "data")).all()
    return {p.filename: (p, uri) for p, uri in rows}


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"])
def test_uncal_becomes_rate_with_provenance(sim, tmp_path, catalog, request):
    url = request.getfixturevalue("pg_url") if catalog == "postgresql" else None
    ctx = run_chain(Settings(var_dir=tmp_path / "var", catalog_url=url), sim)
    got = products(ctx)
    rate, uri = got["jw01234001001_01101_00001_nrca1_rate.fits"]
    assert "jw01234001001_01101_00001_nrca1_rateints.fits" in got  # NINTS = 3
    assert (rate.level, rate.product_type, rate.reference_context) == (2, "SCIENCE", "dms_0001.ctx")
    assert rate.inputs[0] == "jw01234001001_01101_00001_nrca1_uncal.fits"
    assert "crds://jwst_nircam_gain_nrca1_sim.fits" in rate.inputs
    header = fits.getheader(ctx.store.local_path(*ctx.store.parse_uri(uri)))
    assert header["DATAMODL"] == "ImageModel" and header["CRDS_CTX"] == "dms_0001.ctx"
    assert header["S_JUMP"] == header["S_RAMP"] == header["S_DARK"] == "COMPLETE"
    assert header["R_DARK"] == "crds://jwst_nircam_dark_nrca1_sub160_sim.fits"
    assert fits.getheader(ctx.store.local_path(*ctx.store.parse_uri(uri)), "SCI")["BUNIT"] == "DN/s"


def test_without_references_steps_are_skipped_and_the_ramp_is_kept(sim, tmp_path):
    ctx = run_chain(Settings(var_dir=tmp_path / "var"), sim, with_refs=False)
    got = products(ctx)
    assert not any(name.endswith("_rate.fits") for name in got)
    ramp, uri = got["jw01234001001_01101_00001_nrca1_ramp.fits"]
    header = fits.getheader(ctx.store.local_path(*ctx.store.parse_uri(uri)))
    assert header["DATAMODL"] == "RampModel"
    assert header["S_SATURA"] == header["S_RAMP"] == "SKIPPED" and header["R_GAIN"] == "N/A"


def test_segments_are_calibrated_one_by_one(sim, tmp_path):
    # three integrations of 160x160x5 uint16 are 768,000 bytes: 300 kB segments hold one each
    ctx = run_chain(Settings(var_dir=tmp_path / "var", segment_bytes=300_000), sim)
    got = products(ctx)
    for seg in (1, 2, 3):
        assert f"jw01234001001_01101_00001-seg{seg:03d}_nrca1_uncal.fits" in got
        assert f"jw01234001001_01101_00001-seg{seg:03d}_nrca1_rate.fits" in got


def test_new_context_changes_the_choice(sim, tmp_path, monkeypatch, capsys):
    """The `dms refs` and `dms ingest` commands on the embedded default: run in this
    process by the console script's ``main`` (each would spend 4 s starting a Python that
    imports every service), with the environment of a shell that sets DMS_VAR_DIR only;
    the last one as a command of its own, reading what the others left in the catalog."""
    for name in [k for k in os.environ if k.startswith("DMS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DMS_VAR_DIR", str(tmp_path / "var"))

    def dms(*args):
        get_settings.cache_clear()  # the settings of this environment
        try:
            status = main(list(args))
        finally:
            get_settings.cache_clear()
        out = capsys.readouterr()
        assert status == 0, out.err
        return out.out

    refs = sim.truth_dir.parent / "refs"
    # 7 detector-1, 5 stage-2, 2 catalog, and the guider's 4 (calwebb_guider)
    assert "dms_0001.ctx: 18 new file(s)" in dms("refs", "deliver", str(refs))
    dms("ingest", str(sim.plan_path), *map(str, sim.telemetry_paths))
    uncal = "jw01234001001_01101_00001_nrca1_uncal.fits"
    before = dms("refs", "best", uncal)
    assert "jwst_nircam_gain_nrca1_sim.fits" in before and "dms_0001.ctx" in before
    # a better gain file, valid from a later date than the old one
    newer = tmp_path / "jwst_nircam_gain_nrca1_2024.fits"
    with fits.open(refs / "jwst_nircam_gain_nrca1_sim.fits") as hdul:
        hdul[0].header["USEAFTER"] = "2024-01-01T00:00:00"
        hdul.writeto(newer)
    assert "dms_0002.ctx: 1 new file(s)" in dms("refs", "deliver", str(newer))
    after = dms("refs", "best", uncal)
    assert "jwst_nircam_gain_nrca1_2024.fits" in after and "dms_0002.ctx" in after
    assert "jwst_nircam_gain_nrca1_sim.fits" in dms("refs", "best", uncal, "--context", "1")
    proc = subprocess.run([sys.executable, "-m", "services.cli", "refs", "contexts"], cwd=REPO, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "dms_0001.ctx" in proc.stdout and "dms_0002.ctx" in proc.stdout


def test_local_run_like_the_public_pipeline(sim, tmp_path):
    from services.ingest.pipeline import ingest_telemetry
    from shared.datamodels import write_product

    out = ingest_telemetry(sim.telemetry_paths[0].read_bytes(), lambda p: sim.plan,
                           created=sim.plan.observations[0].exposures[0].start_time, software_version="t",
                           segment_bytes=2_000_000_000)
    uncal = write_product(tmp_path / out.files[0].name.format(), out.files[0].product)
    refs = sim.truth_dir.parent / "refs"
    gain = refs / "jwst_nircam_gain_nrca1_sim.fits"
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "run", "detector1", str(uncal), "--output-dir", str(tmp_path / "out"),
         "--refs-dir", str(refs), "--ref", f"gain={gain}", "--save-ramp"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "given with --ref" in proc.stdout and "ramp_fit           COMPLETE" in proc.stdout
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"{out.files[0].name.exposure_id}_{s}.fits" for s in ("ramp", "rate", "rateints")]

    # Any file name, as the public pipeline takes: outputs are named after its stem.
    from astropy.io import fits as _fits

    from services.detector1.commands import COMMAND
    from shared.runlocal import run_command

    odd = tmp_path / "full_uncal.fits"
    odd.write_bytes(uncal.read_bytes())
    assert run_command(COMMAND, [str(odd), "--output-dir", str(tmp_path / "odd"), "--refs-dir", str(refs),
                                 "--steps.jump.rejection_threshold=6", "--skip", "persistence"]) == 0
    assert sorted(p.name for p in (tmp_path / "odd").iterdir()) == ["full_rate.fits", "full_rateints.fits"]
    header = _fits.getheader(tmp_path / "odd" / "full_rate.fits")
    assert header["S_PERSIS"] == "SKIPPED" and header["S_JUMP"] == "COMPLETE" and header["CRDS_CTX"] == "local"
    assert run_command(COMMAND, [str(odd), "--skip", "jmup"]) == 2
    assert run_command(COMMAND, [str(odd), "--steps.jump.rejection_thresold=6"]) == 2
    assert run_command(COMMAND, [str(odd), "--ref", "flat=/nonexistent.fits"]) == 2
