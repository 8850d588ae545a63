"""Associations over what ingest really registers: a simulated program (science and
background observations, a BACKGROUND candidate) ingested; the pool then agrees with the
``_uncal`` headers and reads in the public pool reader."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from astropy.io import fits
from sqlalchemy import select

from services.associations.task import handle_product
from services.ingest.receive import receive_files
from services.registry import embedded_context
from services.simulator import simulate
from shared.catalog.models import Artifact, EventRecord, Product
from shared.config import Settings
from shared.runtime import dispatch_events
from tests.associations_factory import outbox_event

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]

# Pool columns that repeat a keyword of the _uncal primary header.
SAME_AS_HEADER = ("OBS_ID", "VISIT_ID", "ACT_ID", "EXP_TYPE", "INSTRUME", "DETECTOR", "CHANNEL", "MODULE",
                  "TARGNAME", "TARGPROP", "TEMPLATE", "VISITYPE", "FILTER", "PUPIL", "PATTTYPE", "NUMDTHPT",
                  "PATT_NUM", "APERNAME", "SDP_VER", "SUBARRAY", "NINTS", "NGROUPS", "IS_PSF", "BKGDTARG",
                  "TSOVISIT", "NEXPOSUR")


def _description() -> dict:
    desc = yaml.safe_load((REPO / "examples" / "nircam_imaging.yaml").read_text())
    science = desc["observations"][0]
    science.update(detectors=["NRCA1"], subarray="SUB64P", ngroups=3, dither={"pattern": "N-POINT-LINE",
                                                                             "npoints": 2, "size": 1.0})
    background = dict(science, number=2, is_background=True, dither={"pattern": "NONE"})
    background.pop("start_time")
    desc["observations"] = [science, background]
    desc["candidates"] = [{"type": "background", "observations": [1, 2]}]
    return desc


def _header_text(value) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).lower()


def test_pool_of_ingested_exposures_matches_their_headers(tmp_path):
    pytest.importorskip("jwst")
    from jwst.associations import AssociationPool

    sim = simulate(_description(), tmp_path / "sim")
    ctx, inline = embedded_context(Settings(var_dir=tmp_path / "var", _env_file=None), services=["ingest"])
    received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    assert all(o.status == "ok" for _, o in inline.run_until_idle())
    with ctx.catalog.session() as s:
        uncals = s.execute(select(Product.filename, Artifact.uri).join(Artifact)
                           .where(Product.suffix == "uncal")).all()
        event_ids = s.scalars(select(EventRecord.id).where(EventRecord.subject.in_([u for u, _ in uncals]))).all()
    assert len(uncals) == len(event_ids) == 3  # two dither points of the science observation, one background
    for event_id in event_ids:
        handle_product(outbox_event(ctx, event_id), ctx)
    with ctx.catalog.session() as s:
        pool_product = s.scalar(select(Product).where(Product.suffix == "pool", Product.is_current)
                                .order_by(Product.filename.desc()))
        pool_uri = pool_product.artifacts[0].uri
    path = tmp_path / pool_product.filename
    path.write_bytes(ctx.store.get_uri(pool_uri))
    pool = AssociationPool.read(str(path))
    assert sorted(pool["filename"]) == sorted(u for u, _ in uncals)
    for filename, uri in uncals:
        header = fits.getheader(ctx.store.local_path(*ctx.store.parse_uri(uri)))
        row = pool[list(pool["filename"]).index(filename)]
        for column in SAME_AS_HEADER:
            assert row[column.lower()] == _header_text(header[column]), (filename, column)
        assert row["program"] == str(int(header["PROGRAM"])) and row["obs_num"] == str(int(header["OBSERVTN"]))
        expected = "[('o001', 'observation'), ('c1000', 'background')]" if header["OBSERVTN"] == "001" else \
            "[('o002', 'observation'), ('c1000', 'background')]"
        assert row["asn_candidate"] == expected
    ctx.catalog.dispose()
