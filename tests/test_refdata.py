"""Reference data: delivery, numbered contexts, selection rules, the local cache.

Catalog tests run on SQLite and PostgreSQL with tiny synthetic reference files; one test
delivers the simulator's real references of one detector and explains an ingested
exposure.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from sqlalchemy import func, select

from shared.catalog import Artifact, EventRecord, Product, ReferenceContext, ReferenceFile
from shared.catalog.queries import event_from_record
from shared.config import Settings
from shared.messages import EventType, ReferenceDelivered
from shared.refdata import (
    DeliveryError,
    HeaderError,
    ReferenceIntegrityError,
    Selection,
    UnknownContextError,
    best_references,
    context_name,
    context_number,
    deliver,
    explain,
    exposure_header,
    fetch,
    list_contexts,
    list_references,
    reference_key,
    select_from_files,
)
from shared.refdata.rules import MatchKind, match_value, parse_time, reference_selectors
from shared.runtime import ServiceContext
from shared.storage import Bucket

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def ctx(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    settings = Settings(var_dir=tmp_path / "var", catalog_url=url, _env_file=None)
    context = ServiceContext.from_settings(settings)
    context.catalog.upgrade()
    yield context
    context.catalog.dispose()


def write_ref(directory: Path, name: str, *, value: float = 1.0, **keywords) -> Path:
    """A tiny reference file: empty primary HDU with the keywords, a 2x2 SCI."""
    primary = fits.PrimaryHDU()
    defaults = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "USEAFTER": "2022-01-01T00:00:00",
                "PEDIGREE": "SIMULATION", "DESCRIP": f"test file {name}"}
    for key, val in {**defaults, **keywords}.items():
        if val is not None:
            primary.header[key] = val
    path = directory / name
    fits.HDUList([primary, fits.ImageHDU(np.full((2, 2), value, np.float32), name="SCI")]).writeto(path)
    return path


def exposure(**overrides) -> dict:
    header = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "READPATT": "RAPID", "SUBARRAY": "SUB160",
              "EXP_TYPE": "NRC_IMAGE", "NOUTPUTS": 1, "FILTER": "F200W", "PUPIL": "CLEAR",
              "DATE-OBS": "2025-03-01", "TIME-OBS": "12:00:00.000"}
    header.update(overrides)
    return {k: v for k, v in header.items() if v is not None}


def select_one(ctx, reftype: str, context=None, **overrides) -> Selection:
    with ctx.catalog.session() as s:
        return best_references(s, exposure(**overrides), [reftype], context)[reftype]


def count(ctx, model) -> int:
    with ctx.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(model))


# ---------------------------------------------------------------- rules (no catalog)


def test_match_values():
    assert match_value("READPATT", "RAPID", "RAPID") is MatchKind.EXACT
    assert match_value("READPATT", "RAPID|BRIGHT1", "BRIGHT1") is MatchKind.PATTERN
    assert match_value("READPATT", "RAPID|BRIGHT1", "BRIGHT2") is None
    assert match_value("READPATT", "BRIGHT*", "BRIGHT2") is MatchKind.PATTERN
    assert match_value("READPATT", "ANY", None) is MatchKind.WILDCARD
    assert match_value("FILTER", "N/A", "F200W") is MatchKind.WILDCARD
    assert match_value("SUBARRAY", "GENERIC", "SUB160") is MatchKind.WILDCARD
    assert match_value("DETECTOR", "GENERIC", "NRCA1") is None  # GENERIC is a wildcard for SUBARRAY only
    assert match_value("NOUTPUTS", 4, 1) is None and match_value("NOUTPUTS", "1", 1.0) is MatchKind.EXACT
    assert match_value("FILTER", "F200W", None) is None


def test_selectors_per_reftype_and_times():
    header = {"DETECTOR": "nrca1", "READPATT": "RAPID", "SUBARRAY": "SUB160", "EXP_TYPE": "NRC_IMAGE",
              "NOUTPUTS": 1}
    assert reference_selectors("DARK", "NIRCAM", header) == {
        "DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE", "NOUTPUTS": "1", "SUBARRAY": "SUB160"}
    assert reference_selectors("DARK", "NIRISS", header) == {
        "DETECTOR": "NRCA1", "READPATT": "RAPID", "SUBARRAY": "SUB160"}
    assert reference_selectors("GAIN", "NIRCAM", {"DETECTOR": "NRCA1"}) == {"DETECTOR": "NRCA1", "SUBARRAY": "ANY"}
    assert reference_selectors("DISTORTION", "NIRCAM", {"DETECTOR": "NRCA1"}) == {"DETECTOR": "NRCA1"}
    assert reference_selectors("FLAT", "MIRI", {"DETECTOR": "MIRIMAGE", "FILTER": "F770W"}) == {
        "DETECTOR": "MIRIMAGE", "FILTER": "F770W", "BAND": "ANY", "READPATT": "ANY", "SUBARRAY": "ANY"}
    # APCORR, ABVEGAOFFSET: by EXP_TYPE (a CRDS pattern keyword P_EXP_TY stands for it in
    # the header reference_header gives: test_asdf_references_deliver_and_select_by_their_meta)
    assert reference_selectors("APCORR", "NIRCAM", {"EXP_TYPE": "NRC_IMAGE|NRC_TSIMAGE"}) \
        == {"EXP_TYPE": "NRC_IMAGE|NRC_TSIMAGE"}
    assert reference_selectors("ABVEGAOFFSET", "MIRI", {"EXP_TYPE": "MIR_IMAGE"}) == {"EXP_TYPE": "MIR_IMAGE"}
    assert parse_time("Jan 01 2022 00:00:00") == datetime(2022, 1, 1, tzinfo=UTC)
    assert parse_time("2022-01-01 00:00:00") == parse_time("2022-01-01T00:00:00") == parse_time("2022-01-01")
    assert context_name(3) == "dms_0003.ctx" and context_name(12345) == "dms_12345.ctx"
    assert context_number("dms_0003.ctx") == context_number("dms_0003") == context_number("3") == 3
    with pytest.raises(UnknownContextError, match="not a reference context name"):
        context_number("jwst_0003.pmap")
    from services.detector1.pipeline import DETECTOR1

    miri, nircam = {"INSTRUME": "MIRI", "EXP_TYPE": "MIR_IMAGE"}, {"INSTRUME": "NIRCAM", "EXP_TYPE": "NRC_IMAGE"}
    assert [s for s, _ in DETECTOR1.reference_steps(miri)] == [
        "dq_init", "saturation", "linearity", "rscd", "dark_current", "jump", "ramp_fit"]
    assert "rscd" in DETECTOR1.reftypes(miri) and "rscd" not in DETECTOR1.reftypes(nircam)
    assert "superbias" in dict(DETECTOR1.reference_steps(nircam))
    assert DETECTOR1.reftypes(nircam) == ("mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise")
    assert "dark" not in DETECTOR1.reftypes({"INSTRUME": "NIRCAM", "EXP_TYPE": "NRC_DARK"})


# ---------------------------------------------------------------- delivery


def test_delivery_makes_numbered_contexts_and_one_event_each(ctx, tmp_path):
    mask = write_ref(tmp_path, "mask_generic.fits", REFTYPE="MASK", SUBARRAY="GENERIC")
    gain = write_ref(tmp_path, "gain.fits", REFTYPE="GAIN", SUBARRAY="GENERIC")
    first = deliver(ctx, [mask, gain], note="first light")
    assert first.created and first.context_name == "dms_0001.ctx" and first.parent is None
    assert first.added == ("mask_generic.fits", "gain.fits")
    info = first.files[0]
    assert info.selectors == {"DETECTOR": "NRCA1", "SUBARRAY": "GENERIC"}
    assert info.useafter == datetime(2022, 1, 1, tzinfo=UTC)
    stored = ctx.store.stat(Bucket.REFS, reference_key("NIRCAM", "mask_generic.fits"))
    assert reference_key("NIRCAM", "mask_generic.fits") == "nircam/000/r1/mask_generic.fits"
    assert stored is not None and stored.sha256 == info.sha256 and stored.uri == info.uri
    assert ctx.store.get_bytes(Bucket.REFS, stored.key) == mask.read_bytes()  # stored unchanged

    again = deliver(ctx, [gain, mask, mask])  # idempotent, repeated paths collapse
    assert not again.created and again.context_name == "dms_0001.ctx" and again.event_id is None
    assert count(ctx, ReferenceContext) == 1 and count(ctx, ReferenceFile) == 2

    sub = write_ref(tmp_path, "mask_sub160.fits", REFTYPE="MASK", SUBARRAY="SUB160")
    second = deliver(ctx, [sub, mask])
    assert second.created and second.context_name == "dms_0002.ctx" and second.parent == "dms_0001.ctx"
    assert second.added == ("mask_sub160.fits",) and second.replaced == ()

    with ctx.catalog.session() as s:
        events = s.scalars(select(EventRecord).order_by(EventRecord.created_at)).all()
        assert [e.type for e in events] == [EventType.REFERENCE_DELIVERED] * 2
        assert [e.subject for e in events] == ["dms_0001.ctx", "dms_0002.ctx"]
        data = events[1].data
        assert data["context"] == "dms_0002.ctx" and data["parent"] == "dms_0001.ctx"
        (f,) = data["files"]
        assert f["filename"] == "mask_sub160.fits" and f["reftype"] == "MASK" and f["instrument"] == "NIRCAM"
        assert f["selectors"] == {"DETECTOR": "NRCA1", "SUBARRAY": "SUB160"}
        assert f["useafter"] == "2022-01-01T00:00:00+00:00" and f["uri"].endswith("mask_sub160.fits")
        assert len(f["sha256"]) == 64
        payload = event_from_record(events[1]).payload_as(ReferenceDelivered)
        assert payload.files[0].useafter == datetime(2022, 1, 1, tzinfo=UTC) and payload.replaced == ()
        contexts = list_contexts(s)
        assert [(c.name, c.parent, c.files, c.added) for c in contexts] == [
            ("dms_0001.ctx", None, 2, ("gain.fits", "mask_generic.fits")),
            ("dms_0002.ctx", "dms_0001.ctx", 3, ("mask_sub160.fits",)),
        ]
        assert contexts[0].note == "first light"
        assert [r.filename for r in list_references(s, reftype="mask")] == ["mask_generic.fits", "mask_sub160.fits"]
        assert [r.filename for r in list_references(s, context="dms_0001.ctx", instrument="nircam")] == [
            "gain.fits", "mask_generic.fits"]
        assert list_references(s, instrument="MIRI") == []


def test_same_slot_replaces_and_other_useafter_adds(ctx, tmp_path):
    old = write_ref(tmp_path, "bias_v1.fits", REFTYPE="SUPERBIAS", READPATT="ANY", SUBARRAY="GENERIC")
    deliver(ctx, [old])
    same_slot = write_ref(tmp_path, "bias_v2.fits", value=2.0, REFTYPE="SUPERBIAS", READPATT="ANY",
                          SUBARRAY="GENERIC")
    d = deliver(ctx, [same_slot])
    assert d.context_name == "dms_0002.ctx" and d.replaced == ("bias_v1.fits",)
    later = write_ref(tmp_path, "bias_v3.fits", value=3.0, REFTYPE="SUPERBIAS", READPATT="ANY",
                      SUBARRAY="GENERIC", USEAFTER="2024-06-01T00:00:00")
    d = deliver(ctx, [later])
    assert d.replaced == ()
    with ctx.catalog.session() as s:
        assert [r.filename for r in list_references(s)] == ["bias_v2.fits", "bias_v3.fits"]
        assert [r.filename for r in list_references(s, context=1)] == ["bias_v1.fits"]
        assert list_contexts(s)[1].removed == ("bias_v1.fits",)
    # Putting an old file back is a delivery too: it takes its slot again.
    d = deliver(ctx, [old])
    assert d.created and d.context_name == "dms_0004.ctx" and d.replaced == ("bias_v2.fits",)


def test_bad_files_are_refused_and_nothing_is_stored(ctx, tmp_path):
    good = write_ref(tmp_path, "good.fits", REFTYPE="GAIN")
    text = tmp_path / "notes.fits"
    text.write_text("this is not FITS\n" * 200)
    block = tmp_path / "block.fits"
    block.write_bytes(b"X" * 2880)
    no_reftype = write_ref(tmp_path, "no_reftype.fits")
    no_instrument = write_ref(tmp_path, "no_instrume.fits", REFTYPE="MASK", INSTRUME=None)
    no_useafter = write_ref(tmp_path, "no_useafter.fits", REFTYPE="MASK", USEAFTER=None)
    bad_useafter = write_ref(tmp_path, "bad_useafter.fits", REFTYPE="MASK", USEAFTER="someday")
    unknown = write_ref(tmp_path, "unknown.fits", REFTYPE="SPECKLE")
    paths = [good, text, block, no_reftype, no_instrument, no_useafter, bad_useafter, unknown,
             tmp_path / "missing.fits"]
    with pytest.raises(DeliveryError) as err:
        deliver(ctx, paths)
    msg = str(err.value)
    assert msg.startswith("delivery refused, nothing was stored:")
    for expected in (
        "notes.fits: not a FITS file",
        "block.fits: not a FITS file",
        "no_reftype.fits: REFTYPE is missing from the primary header",
        "no_instrume.fits: INSTRUME is missing from the primary header",
        "no_useafter.fits: USEAFTER is missing from the primary header",
        "bad_useafter.fits: USEAFTER 'someday' is not a date and time",
        "unknown.fits: REFTYPE SPECKLE has no selection rules",
        "missing.fits: no such file",
    ):
        assert expected in msg
    assert "good.fits" not in msg
    assert list(ctx.store.list_keys(Bucket.REFS)) == []
    assert count(ctx, ReferenceFile) == count(ctx, ReferenceContext) == count(ctx, EventRecord) == 0
    with pytest.raises(DeliveryError, match="nothing to deliver"):
        deliver(ctx, [])


def test_asdf_references_deliver_load_and_are_checked(ctx, tmp_path):
    """ABVEGAOFFSET is an ASDF file (its public format): delivered and chosen by its meta
    tree, loaded with its table; a broken one or one without the table is refused."""
    from services.simulator.optical_refs import write_catalog_references
    from shared.refdata import (
        LocalReferences,
        ReferenceFileError,
        Window,
        load_reference,
        load_references,
    )

    written = {r.reftype: r.path for r in write_catalog_references("NIRCAM", tmp_path / "refs")}
    broken = tmp_path / "broken.asdf"
    broken.write_bytes(b"#ASDF 1.0.0\n%YAML 1.1\n--- [unclosed\n")
    with pytest.raises(DeliveryError, match="broken.asdf: .*not a readable ASDF file"):
        deliver(ctx, [written["ABVEGAOFFSET"], broken])
    d = deliver(ctx, [tmp_path / "refs"])  # a directory: its *.fits and *.asdf
    assert sorted(d.added) == ["jwst_nircam_abvegaoffset_sim.asdf", "jwst_nircam_apcorr_sim.fits"]
    header = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "EXP_TYPE": "NRC_TSIMAGE", "FILTER": "F200W",
              "PUPIL": "CLEAR", "SUBARRAY": "SUB160", "SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": 160,
              "SUBSIZE2": 160, "DATE-OBS": "2025-01-01", "TIME-OBS": "00:00:00"}
    with ctx.catalog.session() as s:
        chosen = best_references(s, header, ["APCORR", "ABVEGAOFFSET"])
    assert chosen["ABVEGAOFFSET"].filename == "jwst_nircam_abvegaoffset_sim.asdf"
    refs = load_references(LocalReferences(refs_dir=tmp_path / "refs"), header, ["apcorr", "abvegaoffset"])
    offsets = refs.found["abvegaoffset"].tables["abvega_offset"]
    assert {"filter", "pupil", "abvega_offset"} <= set(offsets.dtype.names) and len(offsets) > 50
    assert refs.found["abvegaoffset"].header["REFTYPE"] == "ABVEGAOFFSET"
    assert len(refs.found["apcorr"].tables["APCORR"]) == 9 * len(offsets)  # EE 10-90 % per row
    with pytest.raises(ReferenceFileError, match="has no 'abvega_offset' in its ASDF tree"):
        load_reference("abvegaoffset", _asdf_without_table(tmp_path), Window(1, 1, 160, 160), (2048, 2048))


def test_a_process_keeps_the_references_it_checked_until_the_file_changes(tmp_path):
    """A worker's next task with the same file, window and type gets the reference it
    checked before, without reading the file again; a file changed since (here an ASDF
    table with another row count) is read again, and another window is another reference."""
    import asdf

    from services.simulator.optical_refs import write_catalog_references
    from shared.refdata import Window, load_reference, loading

    path = next(r.path for r in write_catalog_references("NIRCAM", tmp_path / "refs") if r.reftype == "ABVEGAOFFSET")
    window = Window(1, 1, 160, 160)
    first = load_reference("abvegaoffset", path, window, (2048, 2048))
    opened = []
    original = loading._load_asdf_reference
    try:
        loading._load_asdf_reference = lambda *a: opened.append(a) or original(*a)
        assert load_reference("ABVEGAOFFSET", path, window, (2048, 2048)) is first
        assert opened == []
        other = load_reference("abvegaoffset", path, Window(1, 1, 64, 64), (2048, 2048))
        assert other is not first and len(opened) == 1
        rows = first.tables["abvega_offset"]
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            tree = {**af.tree}
        tree["abvega_offset"] = tree["abvega_offset"][:3]
        path.unlink()
        asdf.AsdfFile(tree).write_to(path)
        again = load_reference("abvegaoffset", path, window, (2048, 2048))
        assert again is not first and len(again.tables["abvega_offset"]) == 3 < len(rows)
    finally:
        loading._load_asdf_reference = original


def _asdf_without_table(tmp_path: Path) -> Path:
    import asdf

    path = tmp_path / "empty.asdf"
    asdf.AsdfFile({"meta": {"reftype": "ABVEGAOFFSET", "instrument": {"name": "NIRCAM"}}}).write_to(path)
    return path



def write_asdf_ref(path: Path, meta: dict, **tree) -> Path:
    """A tiny ASDF reference: its ``meta`` (as stdatamodels writes it) and other entries."""
    import asdf

    asdf.AsdfFile({"meta": meta, **tree}).write_to(path)
    return path


def test_asdf_references_deliver_and_select_by_their_meta(ctx, tmp_path):
    """An ASDF file's meta stands for the header (P_EXPTYPE for EXP_TYPE, as in CRDS): it
    is delivered (stored as application/asdf), listed with its selectors and chosen;
    an ASDF file without REFTYPE is refused, naming the meta."""
    from shared.refdata.files import reference_header

    meta = {"reftype": "distortion", "instrument": {"name": "NIRCAM", "detector": "NRCA1", "filter": "N/A"},
            "exposure": {"type": "NRC_IMAGE", "p_exptype": "NRC_IMAGE|NRC_TSIMAGE|"},
            "useafter": "2022-01-01T00:00:00", "pedigree": "SIMULATION", "description": "test distortion"}
    good = write_asdf_ref(tmp_path / "dist.asdf", meta, model={"not": "used here"})
    header = reference_header(good)
    assert header["REFTYPE"] == "distortion" and header["EXP_TYPE"] == "NRC_IMAGE|NRC_TSIMAGE"
    no_reftype = write_asdf_ref(tmp_path / "no_reftype.asdf", {k: v for k, v in meta.items() if k != "reftype"})
    with pytest.raises(DeliveryError, match="no_reftype.asdf: REFTYPE is missing from the ASDF meta"):
        deliver(ctx, [good, no_reftype])
    d = deliver(ctx, [tmp_path / "dist.asdf"])
    assert d.created and d.added == ("dist.asdf",)
    assert ctx.store.stat(Bucket.REFS, reference_key("NIRCAM", "dist.asdf")).content_type == "application/asdf"
    with ctx.catalog.session() as s:
        [row] = list_references(s)
        assert (row.reftype, row.selectors) == ("DISTORTION", {"DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE|NRC_TSIMAGE",
                                                               "FILTER": "N/A"})
        for exp_type in ("NRC_TSIMAGE", "NRC_IMAGE"):
            exposure = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "EXP_TYPE": exp_type, "DATE-OBS": "2025-01-01"}
            assert best_references(s, exposure, ["distortion"])["distortion"].filename == "dist.asdf"
        other = {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "EXP_TYPE": "NRC_CORON", "DATE-OBS": "2025-01-01"}
        assert not best_references(s, other, ["distortion"])["distortion"].found
    local = select_from_files([good, tmp_path / "no_reftype.asdf"], {**other, "EXP_TYPE": "NRC_TSIMAGE"},
                              ["distortion"])
    assert local["distortion"].filename == "dist.asdf"


def test_json_references_deliver_select_and_load_as_the_public_msaoper(ctx, tmp_path):
    """A JSON reference (the public MSAOPER) carries its keywords as entries: delivered
    (stored as application/json), selected by its exposure type, loaded with its document;
    one without its shutter list, or not JSON, is refused with why."""
    import json

    from shared.refdata import load_reference
    from shared.refdata.errors import ReferenceFileError
    from shared.refdata.window import Window

    doc = {"title": "failed-open shutters", "reftype": "MSAOPER", "instrument": "NIRSPEC", "telescope": "JWST",
           "pedigree": "SIMULATION", "author": "test", "descrip": "test shutters", "useafter": "2022-01-01T00:00:00",
           "p_exptype": "NRS_MSASPEC|NRS_IFU|",
           "msaoper": [{"Q": 1, "x": 40, "y": 12, "state": "open", "TA state": "open", "Internal state": "normal"}]}
    good = tmp_path / "jwst_nirspec_msaoper_sim.json"
    good.write_text(json.dumps(doc))
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    with pytest.raises(DeliveryError, match="garbled.json: not a readable JSON file"):
        deliver(ctx, [good, garbled])
    no_useafter = tmp_path / "no_useafter.json"
    no_useafter.write_text(json.dumps({k: v for k, v in doc.items() if k != "useafter"}))
    with pytest.raises(DeliveryError, match="no_useafter.json: USEAFTER is missing from the JSON entries"):
        deliver(ctx, [no_useafter])
    d = deliver(ctx, [good])
    assert d.added == ("jwst_nirspec_msaoper_sim.json",)
    key = reference_key("NIRSPEC", good.name)
    assert ctx.store.stat(Bucket.REFS, key).content_type == "application/json"
    with ctx.catalog.session() as s:
        [row] = list_references(s)
        assert (row.reftype, row.selectors) == ("MSAOPER", {"EXP_TYPE": "NRS_MSASPEC|NRS_IFU"})
        exposure = {"INSTRUME": "NIRSPEC", "DETECTOR": "NRS1", "EXP_TYPE": "NRS_MSASPEC", "DATE-OBS": "2025-01-01"}
        assert best_references(s, exposure, ["msaoper"])["msaoper"].filename == good.name
        assert not best_references(s, {**exposure, "EXP_TYPE": "NRS_FIXEDSLIT"}, ["msaoper"])["msaoper"].found
    ref = load_reference("msaoper", good, Window(1, 1, 2048, 2048), (2048, 2048))
    assert ref.tree["msaoper"] == doc["msaoper"] and ref.header["REFTYPE"] == "MSAOPER"
    no_list = tmp_path / "no_list.json"
    no_list.write_text(json.dumps({k: v for k, v in doc.items() if k != "msaoper"}))
    with pytest.raises(ReferenceFileError, match="no_list.json has no 'msaoper' entry"):
        load_reference("msaoper", no_list, Window(1, 1, 2048, 2048), (2048, 2048))
    with pytest.raises(ReferenceFileError, match="garbled.json is not a readable JSON file"):
        load_reference("msaoper", garbled, Window(1, 1, 2048, 2048), (2048, 2048))


def test_reference_files_are_immutable(ctx, tmp_path):
    first = tmp_path / "a"
    first.mkdir()
    deliver(ctx, [write_ref(first, "dark.fits", REFTYPE="DARK", EXP_TYPE="NRC_IMAGE", NOUTPUTS=1,
                            SUBARRAY="SUB160")])
    second = tmp_path / "b"
    second.mkdir()
    changed = write_ref(second, "dark.fits", value=5.0, REFTYPE="DARK", EXP_TYPE="NRC_IMAGE", NOUTPUTS=1,
                        SUBARRAY="SUB160")
    other = write_ref(second, "gain.fits", REFTYPE="GAIN")
    with pytest.raises(DeliveryError, match=r"dark.fits: already delivered with different content .*immutable"):
        deliver(ctx, [other, changed])
    assert count(ctx, ReferenceFile) == 1 and count(ctx, ReferenceContext) == 1
    assert not ctx.store.exists(Bucket.REFS, reference_key("NIRCAM", "gain.fits"))
    twin = write_ref(second, "dark_twin.fits", value=6.0, REFTYPE="DARK", EXP_TYPE="NRC_IMAGE", NOUTPUTS=1,
                     SUBARRAY="SUB160")
    third = tmp_path / "c"
    third.mkdir()
    twin2 = write_ref(third, "dark_twin2.fits", value=7.0, REFTYPE="DARK", EXP_TYPE="NRC_IMAGE", NOUTPUTS=1,
                      SUBARRAY="SUB160")
    with pytest.raises(DeliveryError, match="same NIRCAM DARK selectors and USEAFTER"):
        deliver(ctx, [twin, twin2])


def test_delivery_dispatches_its_event_through_the_transport(ctx, tmp_path):
    sent = []

    class Recorder:
        def send(self, task, event):
            sent.append((task, event))

    ctx.transport = Recorder()
    d = deliver(ctx, [write_ref(tmp_path, "gain.fits", REFTYPE="GAIN")])
    with ctx.catalog.session() as s:
        row = s.get(EventRecord, d.event_id)
        assert row.dispatched_at is not None
    assert [(task, event.id) for task, event in sent] == [("notifier.match", d.event_id)]


# ---------------------------------------------------------------- selection


@pytest.fixture
def delivered(ctx, tmp_path):
    """One context with a bit of everything selection has to get right."""
    refs = [
        write_ref(tmp_path, "mask_generic.fits", REFTYPE="MASK", SUBARRAY="GENERIC"),
        write_ref(tmp_path, "mask_sub160.fits", REFTYPE="MASK", SUBARRAY="SUB160"),
        write_ref(tmp_path, "bias_2022.fits", REFTYPE="SUPERBIAS", READPATT="ANY", SUBARRAY="GENERIC"),
        write_ref(tmp_path, "bias_2024.fits", REFTYPE="SUPERBIAS", READPATT="ANY", SUBARRAY="GENERIC",
                  USEAFTER="2024-06-01T00:00:00"),
        write_ref(tmp_path, "bias_2026.fits", REFTYPE="SUPERBIAS", READPATT="ANY", SUBARRAY="GENERIC",
                  USEAFTER="2026-01-01T00:00:00"),
        write_ref(tmp_path, "rn_any.fits", REFTYPE="READNOISE", READPATT="ANY", SUBARRAY="GENERIC",
                  USEAFTER="2024-01-01T00:00:00"),
        write_ref(tmp_path, "rn_rapid_bright1.fits", REFTYPE="READNOISE", READPATT="RAPID|BRIGHT1",
                  SUBARRAY="GENERIC"),
        write_ref(tmp_path, "dark_sub160.fits", REFTYPE="DARK", EXP_TYPE="NRC_IMAGE", NOUTPUTS=1,
                  SUBARRAY="SUB160", READPATT="ANY"),
        write_ref(tmp_path, "dark_full.fits", REFTYPE="DARK", EXP_TYPE="NRC_IMAGE", NOUTPUTS=4,
                  SUBARRAY="FULL"),
        write_ref(tmp_path, "dark_sub160_4out.fits", REFTYPE="DARK", EXP_TYPE="NRC_IMAGE", NOUTPUTS=4,
                  SUBARRAY="SUB160"),
        write_ref(tmp_path, "dark_sub160_tacq.fits", REFTYPE="DARK", EXP_TYPE="NRC_TACQ", NOUTPUTS=1,
                  SUBARRAY="SUB160"),
        write_ref(tmp_path, "miri_gain.fits", REFTYPE="GAIN", INSTRUME="MIRI", DETECTOR="MIRIMAGE"),
    ]
    return deliver(ctx, refs)


def test_exact_beats_generic(ctx, delivered):
    sel = select_one(ctx, "MASK")
    assert sel.filename == "mask_sub160.fits" and sel.context == "dms_0001.ctx"
    assert "DETECTOR=NRCA1, SUBARRAY=SUB160 exactly" in sel.reason
    assert "mask_generic.fits (less specific: SUBARRAY via GENERIC)" in sel.reason
    generic = select_one(ctx, "MASK", SUBARRAY="SUB64P")
    assert generic.filename == "mask_generic.fits"
    assert "SUBARRAY via GENERIC" in generic.reason and "SUBARRAY SUB160 does not match SUB64P" in generic.reason


def test_useafter_after_the_exposure_is_excluded_and_newest_wins(ctx, delivered):
    sel = select_one(ctx, "SUPERBIAS")
    assert sel.filename == "bias_2024.fits" and sel.useafter == datetime(2024, 6, 1, tzinfo=UTC)
    assert "USEAFTER 2024-06-01T00:00:00 is the newest not after the exposure start 2025-03-01T12:00:00" in sel.reason
    assert "bias_2026.fits (USEAFTER 2026-01-01T00:00:00 is after the exposure start)" in sel.reason
    assert "bias_2022.fits (older USEAFTER 2022-01-01T00:00:00)" in sel.reason
    assert select_one(ctx, "SUPERBIAS", **{"DATE-OBS": "2026-02-01"}).filename == "bias_2026.fits"
    assert select_one(ctx, "SUPERBIAS", **{"DATE-OBS": "2023-02-01"}).filename == "bias_2022.fits"
    # The boundary: USEAFTER equal to the exposure start applies.
    assert select_one(ctx, "SUPERBIAS", **{"DATE-OBS": "2024-06-01", "TIME-OBS": "00:00:00"}).filename == "bias_2024.fits"
    early = select_one(ctx, "SUPERBIAS", **{"DATE-OBS": "2021-12-31"})
    assert early.filename is None and "no NIRCAM SUPERBIAS reference file in dms_0001.ctx applies" in early.reason


def test_alternatives_beat_any(ctx, delivered):
    for readpatt in ("RAPID", "BRIGHT1"):
        sel = select_one(ctx, "READNOISE", READPATT=readpatt)
        assert sel.filename == "rn_rapid_bright1.fits", sel.reason
        assert f"READPATT={readpatt} via RAPID|BRIGHT1" in sel.reason
        assert "rn_any.fits (less specific: READPATT via ANY)" in sel.reason
    other = select_one(ctx, "READNOISE", READPATT="BRIGHT2")
    assert other.filename == "rn_any.fits"
    assert "rn_rapid_bright1.fits (READPATT RAPID|BRIGHT1 does not match BRIGHT2)" in other.reason


def test_nircam_dark_selects_by_exp_type_and_noutputs(ctx, delivered):
    sel = select_one(ctx, "DARK")
    assert sel.filename == "dark_sub160.fits"
    assert "DETECTOR=NRCA1, EXP_TYPE=NRC_IMAGE, NOUTPUTS=1, SUBARRAY=SUB160 exactly" in sel.reason
    assert "dark_sub160_4out.fits (NOUTPUTS 4 does not match 1)" in sel.reason
    assert "dark_sub160_tacq.fits (EXP_TYPE NRC_TACQ does not match NRC_IMAGE)" in sel.reason
    assert "dark_full.fits (NOUTPUTS 4 does not match 1)" in sel.reason
    # READPATT is no selector of NIRCam darks: any readout pattern gets the same file.
    assert select_one(ctx, "DARK", READPATT="BRIGHT2").filename == "dark_sub160.fits"
    assert select_one(ctx, "DARK", SUBARRAY="FULL", NOUTPUTS=4).filename == "dark_full.fits"
    assert select_one(ctx, "DARK", NOUTPUTS=4).filename == "dark_sub160_4out.fits"
    missing = select_one(ctx, "DARK", NOUTPUTS=None)
    assert missing.filename is None and "NOUTPUTS 1 needs a value and the exposure has no NOUTPUTS" in missing.reason


def test_missing_reference_type_gives_none_with_a_reason(ctx, delivered):
    with ctx.catalog.session() as s:
        sel = best_references(s, exposure(), ["linearity", "MASK"])
    assert set(sel) == {"linearity", "MASK"}
    lin = sel["linearity"]
    assert (lin.reftype, lin.filename, lin.uri, lin.sha256, lin.useafter) == ("LINEARITY", None, None, None, None)
    assert lin.reason == "dms_0001.ctx has no NIRCAM LINEARITY reference file"
    assert not lin.found
    other_detector = select_one(ctx, "MASK", DETECTOR="NRCA2")
    assert other_detector.filename is None and "DETECTOR NRCA1 does not match NRCA2" in other_detector.reason
    miri = select_one(ctx, "GAIN", INSTRUME="MIRI", DETECTOR="MIRIMAGE")
    assert miri.filename == "miri_gain.fits"
    with ctx.catalog.session() as s, pytest.raises(HeaderError, match="DATE-OBS"):
        best_references(s, exposure(**{"DATE-OBS": None}), ["MASK"])


def test_nothing_delivered_yet(ctx):
    sel = select_one(ctx, "MASK")
    assert sel.filename is None and sel.context is None and "no reference context exists yet" in sel.reason
    with ctx.catalog.session() as s:
        assert list_references(s) == [] and list_contexts(s) == []
        with pytest.raises(UnknownContextError, match="no reference files have been delivered yet"):
            best_references(s, exposure(), ["MASK"], "dms_0001.ctx")


def test_old_context_gives_the_old_answer(ctx, delivered, tmp_path):
    before = select_one(ctx, "SUPERBIAS")
    newer = write_ref(tmp_path, "bias_2025.fits", REFTYPE="SUPERBIAS", READPATT="ANY", SUBARRAY="GENERIC",
                      USEAFTER="2025-01-01T00:00:00")
    assert deliver(ctx, [newer], note="better bias").context_name == "dms_0002.ctx"
    assert select_one(ctx, "SUPERBIAS").filename == "bias_2025.fits"
    assert select_one(ctx, "SUPERBIAS", context="dms_0002.ctx").filename == "bias_2025.fits"
    old = select_one(ctx, "SUPERBIAS", context="dms_0001.ctx")
    assert old == before and old.filename == "bias_2024.fits" and old.context == "dms_0001.ctx"
    assert select_one(ctx, "SUPERBIAS", context=1) == before
    with pytest.raises(UnknownContextError, match="no reference context dms_0009.ctx; the newest is dms_0002.ctx"):
        select_one(ctx, "SUPERBIAS", context="dms_0009.ctx")


def test_fetch_caches_by_sha(ctx, delivered, tmp_path, monkeypatch):
    sel = select_one(ctx, "MASK")
    cache = tmp_path / "cache"
    downloads = []
    original = ctx.store.download_uri
    monkeypatch.setattr(ctx.store, "download_uri",
                        lambda uri, path, **kw: downloads.append(uri) or original(uri, path, **kw))
    path = fetch(ctx.store, sel, cache)
    assert path == cache / sel.sha256 / "mask_sub160.fits"
    assert path.read_bytes() == (tmp_path / "mask_sub160.fits").read_bytes()
    assert fetch(ctx.store, sel, cache) == path and len(downloads) == 1  # reused
    path.write_bytes(b"corrupted")
    assert fetch(ctx.store, sel, cache) == path and len(downloads) == 2  # sha differs: fetched again
    assert path.read_bytes() == (tmp_path / "mask_sub160.fits").read_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["mask_sub160.fits"]  # no partial files left
    # a stored file whose bytes are not what the catalog records is refused as it arrives
    wrong = replace(sel, sha256="0" * 64)
    with pytest.raises(ReferenceIntegrityError, match="the catalog records sha256 000000000000"):
        fetch(ctx.store, wrong, cache)
    assert list((cache / wrong.sha256).iterdir()) == []
    with pytest.raises(ValueError, match="no LINEARITY reference was selected"):
        fetch(ctx.store, select_one(ctx, "LINEARITY"), cache)


# ---------------------------------------------------------------- the simulator's references


@pytest.mark.integration
def test_simulator_references_serve_an_ingested_exposure(tmp_path):
    from services.ingest.receive import receive_files
    from services.registry import embedded_context
    from services.simulator import simulate
    from shared.runtime import dispatch_events

    desc = yaml.safe_load((EXAMPLES / "nircam_imaging.yaml").read_text())
    desc["observations"] = desc["observations"][:1]  # the imaging observation (the demo adds a TSO one)
    obs = desc["observations"][0]
    obs.update(detectors=["NRCA1"], ngroups=3, dither={"pattern": "NONE"})
    sim = simulate(desc, tmp_path / "sim")
    ctx, inline = embedded_context(Settings(var_dir=tmp_path / "var", _env_file=None), services=["ingest"])

    d = deliver(ctx, [tmp_path / "sim" / "refs"], note="simulator references")  # a directory: *.fits, *.asdf
    # 14 of NRCA1, and MASK, GAIN, READNOISE and FLAT of the guider of the visit
    assert d.context_name == "dms_0001.ctx" and len(d.added) == len(sim.reference_paths) == 18
    with ctx.catalog.session() as s:
        listed = {r.reftype: r for r in list_references(s)}
    assert set(listed) == {"MASK", "SATURATION", "SUPERBIAS", "LINEARITY", "GAIN", "READNOISE", "DARK",
                           "FLAT", "PHOTOM", "AREA", "DISTORTION", "FILTEROFFSET", "APCORR", "ABVEGAOFFSET"}
    # ASDF references select by their meta; P_EXPTYPE stands for EXP_TYPE, as in CRDS.
    assert listed["DISTORTION"].selectors == {"DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE|NRC_TSIMAGE"}
    assert listed["DISTORTION"].filename.endswith(".asdf") and listed["FILTEROFFSET"].filename.endswith(".asdf")
    assert listed["ABVEGAOFFSET"].filename.endswith(".asdf")
    assert listed["APCORR"].selectors == listed["ABVEGAOFFSET"].selectors == {"EXP_TYPE": "NRC_IMAGE|NRC_TSIMAGE"}
    assert listed["DARK"].selectors == {"DETECTOR": "NRCA1", "EXP_TYPE": "NRC_IMAGE", "NOUTPUTS": "1",
                                        "SUBARRAY": "SUB160"}
    assert listed["SUPERBIAS"].selectors == {"DETECTOR": "NRCA1", "READPATT": "ANY", "SUBARRAY": "GENERIC"}
    assert listed["SATURATION"].selectors == {"DETECTOR": "NRCA1"}
    assert listed["GAIN"].pedigree == "SIMULATION"
    assert not deliver(ctx, sim.reference_paths).created

    received = receive_files(ctx, [sim.plan_path, *sim.telemetry_paths])
    dispatch_events(ctx.catalog, inline, event_ids=[r.event_id for r in received if r.event_id])
    assert all(o.status == "ok" for _, o in inline.run_until_idle())
    with ctx.catalog.session() as s:
        uncal_name, uncal_uri = s.execute(
            select(Product.filename, Artifact.uri).join(Artifact).where(Product.suffix == "uncal")).one()
        from_catalog = exposure_header(s, uncal_name)
        uri = s.scalar(select(ReferenceFile.uri).limit(1))
    uncal = ctx.store.download_uri(uncal_uri, tmp_path / uncal_name)
    with ctx.catalog.session() as s:
        from_file = exposure_header(s, uncal)
        from services.cli import reference_steps

        text = explain(s, from_file, reference_steps(from_file))
        by_file = best_references(s, from_file, ["MASK", "SATURATION", "SUPERBIAS", "LINEARITY", "DARK",
                                                 "GAIN", "READNOISE", "FLAT", "PHOTOM", "AREA", "DISTORTION",
                                                 "FILTEROFFSET", "APCORR", "ABVEGAOFFSET"])
        by_catalog = best_references(s, from_catalog, list(by_file))
    assert uri.startswith("file://")
    assert by_file == by_catalog
    assert {k: v.filename for k, v in by_file.items()} == {k: listed[k].filename for k in listed}
    assert "dark_current       DARK        jwst_nircam_dark_nrca1_sub160_sim.fits" in text
    assert "flat_field         FLAT" in text and "image2:" in text and "detector1:" in text
    assert "source_catalog     APCORR      jwst_nircam_apcorr_sim.fits" in text and "image3:" in text
    assert "context:  dms_0001.ctx" in text and "N/A" not in text
    assert text.splitlines()[0].startswith("exposure: NIRCAM DETECTOR=NRCA1 EXP_TYPE=NRC_IMAGE READPATT=RAPID")
    local = fetch(ctx.store, by_file["DARK"], tmp_path / "cache")
    with fits.open(local) as hdul:
        assert hdul["SCI"].data.shape[1:] == (160, 160)


@pytest.fixture(scope="module")
def miri_sim(tmp_path_factory):
    from services.simulator import simulate

    desc = yaml.safe_load((EXAMPLES / "miri_imaging.yaml").read_text())
    desc["observations"][0].update(subarray="SUB64", ngroups=5, nints=2, dither={"pattern": "NONE"})
    return simulate(desc, tmp_path_factory.mktemp("miri"))


def test_miri_rscd_reference_is_delivered_selected_and_read(ctx, miri_sim, tmp_path):
    from shared.refdata import load_reference
    from shared.refdata.window import Window

    d = deliver(ctx, [miri_sim.reference_paths[0].parent], note="MIRI simulator references")
    assert "jwst_miri_rscd_mirimage_sim.fits" in d.added
    header = exposure(INSTRUME="MIRI", DETECTOR="MIRIMAGE", READPATT="FAST", SUBARRAY="SUB64", EXP_TYPE="MIR_IMAGE",
                      NOUTPUTS=None, FILTER="F770W", PUPIL=None, SUBSTRT1=1, SUBSTRT2=779, SUBSIZE1=72, SUBSIZE2=64)
    with ctx.catalog.session() as s:
        sel = best_references(s, header, ["RSCD"])["RSCD"]
    assert sel.filename == "jwst_miri_rscd_mirimage_sim.fits" and "DETECTOR=MIRIMAGE" in sel.reason
    ref = load_reference("rscd", fetch(ctx.store, sel, tmp_path / "cache"), Window.from_keywords(header), (1024, 1032))
    assert set(ref.tables) == {"RSCD_GROUP_SKIP", "RSCD_DECAY"}
    row = ref.tables["RSCD_DECAY"][0]
    assert row["SCALE"] > 0 and row["TAU"] > 0 and row["LEVEL_MAX"] > 0
