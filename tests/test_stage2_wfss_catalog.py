"""Stage 2 and a wide-field slitless exposure's association: the members naming its direct
images' Level-3 products (sourcecat, direct_image, segmap) and the source catalog fetched
(current revision, checked) and read as a table, with a reason when it cannot be."""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from services.stage2.asn import parse_level2_asn
from services.stage2.task import wfss_catalog
from shared.archiving import archive_product
from shared.asn import AssociationError
from shared.catalog.queries import upsert_program
from shared.config import Settings
from shared.datamodels import FitsProduct
from shared.errors import InputError
from shared.runtime import ServiceContext
from tests.associations_factory import make_plan, observation

SCIENCE = "jw01234001001_01102_00001_nis"
ROOT = "jw01234-o001_t001_niriss_clear-f150w"
CAT = f"{ROOT}_cat.ecsv"


def wfss_asn(*extra: dict, catalog: bool = True) -> dict:
    members = [{"expname": f"{SCIENCE}_rate.fits", "exptype": "science", "exposerr": "null"}]
    if catalog:
        members += [{"expname": f"{ROOT}_i2d.fits", "exptype": "direct_image", "exposerr": "null"},
                    {"expname": CAT, "exptype": "sourcecat", "exposerr": "null"},
                    {"expname": f"{ROOT}_segm.fits", "exptype": "segmap", "exposerr": "null"}]
    return {"asn_type": "spec2", "asn_rule": "candidate_Asn_Lv2WFSSNIS", "asn_id": "o001", "program": "01234",
            "asn_pool": "jw01234_20260301t120000_pool.csv",
            "products": [{"name": SCIENCE, "members": [*members, *extra]}]}


def test_the_catalog_members_are_read():
    from jwst.associations import load_asn

    text = json.dumps(wfss_asn())
    assert load_asn(text)["products"][0]["members"][2]["exptype"] == "sourcecat"  # the public pipeline reads it
    (product,) = parse_level2_asn(text, "a_asn.json").products
    assert (product.science, product.sourcecat, product.direct_image, product.segmap) == (
        f"{SCIENCE}_rate.fits", CAT, f"{ROOT}_i2d.fits", f"{ROOT}_segm.fits")
    assert product.ignored == () and product.backgrounds == ()
    (bare,) = parse_level2_asn(json.dumps(wfss_asn(catalog=False)), "b_asn.json").products
    assert (bare.sourcecat, bare.direct_image, bare.segmap) == (None, None, None)
    twice = wfss_asn({"expname": "jw01234-o001_t001_niriss_clear-f200w_cat.ecsv", "exptype": "sourcecat"})
    with pytest.raises(AssociationError, match="2 sourcecat members"):
        parse_level2_asn(json.dumps(twice), "c_asn.json")


@pytest.fixture
def ctx(tmp_path):
    context = ServiceContext.from_settings(Settings(var_dir=tmp_path / "var", _env_file=None))
    context.catalog.upgrade()
    with context.catalog.session() as s:
        upsert_program(s, make_plan([observation(1)]))
    yield context
    context.catalog.dispose()


def source_table() -> Table:
    """A small catalog with columns image3's source_catalog writes (among them the label and
    sky position spec2 places the sources by)."""
    t = Table()
    t["label"] = np.array([1, 2, 3], dtype=np.int32)
    t["sky_centroid"] = SkyCoord([53.16, 53.161, 53.162] * u.deg, [-27.78, -27.781, -27.779] * u.deg)
    t["xcentroid"] = [10.5, 40.25, 70.0]
    t["ycentroid"] = [12.0, 33.5, 60.75]
    t["isophotal_abmag"] = [21.3, 22.8, 19.9]
    t["is_extended"] = [False, True, False]
    return t


def archive_catalog(ctx, tmp_path, text: str | None = None) -> None:
    (tmp_path / "stage3").mkdir(exist_ok=True)
    path = tmp_path / "stage3" / CAT
    if text is None:
        source_table().write(path, format="ascii.ecsv", overwrite=True)
    else:
        path.write_text(text)
    archive_product(ctx, path, suffix="cat", level=3, program="01234", observation=1, exposure=None, inputs=[],
                    source="/test/stage3", asn_id="o001", content_type="text/plain")


def science(exp_type: str = "NIS_WFSS") -> FitsProduct:
    return FitsProduct("ImageModel", keywords={"EXP_TYPE": exp_type, "FILENAME": f"{SCIENCE}_rate.fits"})


def product(**kw):
    (p,) = parse_level2_asn(json.dumps(wfss_asn(**kw)), "a_asn.json").products
    return p


def test_the_current_catalog_is_fetched_and_read(ctx, tmp_path):
    archive_catalog(ctx, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    table = wfss_catalog(ctx, science(), product(), work, needed_by="association a_asn.json")
    assert list(table["label"]) == [1, 2, 3] and table["is_extended"].dtype == bool
    assert isinstance(table["sky_centroid"], SkyCoord)
    np.testing.assert_allclose(table["sky_centroid"].dec.deg, [-27.78, -27.781, -27.779])
    np.testing.assert_allclose(table["xcentroid"], [10.5, 40.25, 70.0])
    # NIRCam's mode too; any other exposure has no catalog, whatever its association names
    assert len(wfss_catalog(ctx, science("NRC_WFSS"), product(), work, needed_by="x")) == 3
    assert wfss_catalog(ctx, science("NRS_FIXEDSLIT"), product(), work, needed_by="x") is None


def test_a_missing_or_unreadable_catalog_is_refused_with_a_reason(ctx, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(InputError, match="has no sourcecat member"):
        wfss_catalog(ctx, science(), product(catalog=False), work, needed_by="association a_asn.json")
    with pytest.raises(InputError, match=f"association a_asn.json: member {CAT} is not archived"):
        wfss_catalog(ctx, science(), product(), work, needed_by="association a_asn.json")
    archive_catalog(ctx, tmp_path, text="# %ECSV 1.0\n# ---\n# datatype: [{name: label, datatype: int32}\nlabel\n1\n")
    with pytest.raises(InputError, match=f"the source catalog {CAT} cannot be read as an ECSV table"):
        wfss_catalog(ctx, science(), product(), work, needed_by="association a_asn.json")
