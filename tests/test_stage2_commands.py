"""``dms run image2`` on local files: a ``_rate`` or a Level-2 association with its members,
references from a directory and from ``--ref``."""

from __future__ import annotations

import json

import numpy as np
from astropy.io import fits

from services.stage2.commands import COMMAND
from shared.datamodels import write_product
from shared.runlocal import run_command
from tests.stage2_fixtures import NX, NY, rate_product, write_reference_files

RATE = "jw01234001001_01101_00001_nrca1_rate.fits"
BACKGROUND = "jw01234003001_01101_00001_nrca1_rate.fits"


def dms_run(pipeline: str, *argv: str) -> int:
    assert pipeline == "image2"
    return run_command(COMMAND, argv)


def test_run_image2_on_a_rate_file_with_a_refs_dir(tmp_path, capsys):
    refs = tmp_path / "refs"
    refs.mkdir()
    paths = write_reference_files(refs, (NY, NX))  # window-sized references
    other_flat = tmp_path / "my_flat.fits"
    other_flat.write_bytes(paths["flat"].read_bytes())
    write_product(tmp_path / RATE, rate_product())
    out = tmp_path / "out"
    assert dms_run("image2", str(tmp_path / RATE), "--refs-dir", str(refs), "--ref", f"flat={other_flat}",
                   "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "my_flat.fits  (given with --ref)" in printed and "photom.fits" in printed
    assert "photom             COMPLETE" in printed and "resample           COMPLETE" in printed
    assert sorted(p.name for p in out.iterdir()) == [RATE.replace("rate", "cal"), RATE.replace("rate", "i2d")]
    header = fits.getheader(out / RATE.replace("rate", "cal"))
    assert header["R_FLAT"] == "crds://my_flat.fits" and header["CRDS_CTX"] == "local"
    assert fits.getheader(out / RATE.replace("rate", "cal"), "SCI")["BUNIT"] == "MJy/sr"


def test_run_image2_on_an_association_with_a_background(tmp_path, capsys):
    write_product(tmp_path / RATE, rate_product(sky=3.0))
    background = rate_product(sky=3.0, seed=9)
    background.images["SCI"] = np.full((NY, NX), 3.0, np.float32)
    write_product(tmp_path / BACKGROUND, background)
    asn = tmp_path / "jw01234-o001_20250301t120000_image2_00001_asn.json"
    asn.write_text(json.dumps({"asn_type": "image2", "asn_id": "o001", "asn_pool": "pool.csv", "products": [
        {"name": RATE.rsplit("_", 1)[0], "members": [{"expname": RATE, "exptype": "science"},
                                                     {"expname": BACKGROUND, "exptype": "background"}]}]}))
    out = tmp_path / "out"
    assert dms_run("image2", str(asn), "--out", str(out), "--save-bsub", "--skip", "resample") == 0
    assert "bkg_subtract       COMPLETE" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [RATE.replace("rate", "bsub"), RATE.replace("rate", "cal")]
    with fits.open(out / RATE.replace("rate", "cal")) as hdul:
        assert hdul[0].header["ASNTABLE"] == asn.name and hdul[0].header["S_BKDSUB"] == "COMPLETE"
        assert abs(np.median(hdul["SCI"].data)) < 0.01  # the 3 DN/s sky is gone (no flat, no photom here)


def test_run_image2_reports_bad_input(tmp_path, capsys):
    (tmp_path / "x_asn.json").write_text("{not json")
    assert dms_run("image2", str(tmp_path / "x_asn.json")) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert dms_run("image2", str(tmp_path / RATE), "--ref", "flatt=x.fits") == 2
    assert "image2 uses distortion, filteroffset, flat, photom, area" in capsys.readouterr().err
