import pytest

from shared.naming import (
    BadNameError,
    ExposureName,
    Level3Name,
    ProductNaming,
    filled_product_name,
    is_2c,
    made_by,
    object_key,
    parse_any,
    parse_association,
    parse_exposure,
    parse_level3,
    parse_pool,
    source_token,
)

# Every example name of the conventions (file naming, associations, pools), plus the
# variants DESIGN.md lists: segments, 2c products, subarrays, source ids, epochs.
VALID = [
    "jw00623037001_02101_00001_mirimage_rate.fits",
    "jw00623037001_02101_00001_mirimage_uncal.fits",
    "jw01234001001_01101_00001-seg002_nrca1_uncal.fits",
    "jw01234001001_01101_00001_nrca1_o001_crf.fits",
    "jw01234001001_01101_00001_nrcalong_c1000_crfints.fits",
    "jw01234001001_01101_00001_nis_rateints.fits",
    "jw99009-a3001_t001_nircam_f090w_i2d.fits",
    "jw99009-a3001_t001_nircam_f090w_cat.ecsv",
    "jw01234-o001_t001_nircam_clear-f200w-sub160_i2d.fits",
    "jw01234-c1000_s00001-epoch1_miri_f770w_x1d.fits",
    "jw01234-o002_s000000123_nirspec_clear-prism_s2d.fits",
    "jw01234-o003_t002_niriss_clear_phot.ecsv",
    "jw04521-o001_t001-s000000001_nirspec_clear-prism-s200a1-subs200a1_x1d.fits",
    "jw09505_20251216t202003_pool.csv",
    "jw01234-o001_20251216t202003_image3_00001_asn.json",
    "jw01234-c1000_20251216t202003_tso-image2_00012_asn.json",
]


@pytest.mark.parametrize("name", VALID)
def test_round_trip_exact(name):
    assert parse_any(name).format() == name


def test_exposure_fields():
    n = parse_exposure("jw01234001001_01101_00001-seg002_nrca1_uncal.fits")
    assert (n.program, n.observation, n.visit, n.visit_group, n.sequence, n.activity) == ("01234", 1, 1, 1, 1, "01")
    assert (n.exposure, n.segment, n.detector, n.suffix) == (1, 2, "nrca1", "uncal")
    assert n.exposure_id == "jw01234001001_01101_00001_nrca1"
    assert n.with_suffix("rate").format() == "jw01234001001_01101_00001-seg002_nrca1_rate.fits"


def test_level3_build_matches_association_rules():
    name = Level3Name.build("01234", "o001", "t001", "NIRCAM", ["F200W", "CLEAR", None], "SUB160", "i2d")
    assert name.format() == "jw01234-o001_t001_nircam_clear-f200w-sub160_i2d.fits"
    full = Level3Name.build("99009", "a3001", "t001", "NIRCAM", ["F090W", "N/A"], "FULL", "i2d")
    assert full.format() == "jw99009-a3001_t001_nircam_f090w_i2d.fits"
    assert Level3Name.build("01234", "o001", "t001", "MIRI", [], None, "i2d").product_name.endswith("_miri_clear")


def test_a_nirspec_fixed_slit_name_has_its_source_and_slit_filled_in():
    """The association names the product with placeholders, as the public rule does;
    stage 3 fills them as the public calwebb_spec3 does."""
    template = Level3Name.build("04521", "o001", "t001", "NIRSPEC", ["CLEAR", "PRISM"], "SUBS200A1", "x1d",
                                naming=ProductNaming.SOURCE_AND_SLIT).product_name
    assert template == "jw04521-o001_t001-{source_id}_nirspec_clear-prism-{slit_name}-subs200a1"
    name = filled_product_name(template, source=source_token(1), slit_name="S200A1")
    assert name == "jw04521-o001_t001-s000000001_nirspec_clear-prism-s200a1-subs200a1"
    parsed = parse_level3(f"{name}_x1d.fits")
    assert (parsed.target, parsed.source, parsed.subarray) == ("t001", "s000000001", "subs200a1")
    assert made_by(template, f"{name}_s2d.fits")
    assert not made_by(template, "jw04521-o002_t001-s000000001_nirspec_clear-prism-s200a1-subs200a1_x1d.fits")
    assert made_by("jw03457-o001_t001_miri_p750l", "jw03457-o001_t001_miri_p750l_x1d.fits")
    assert filled_product_name("jw03457-o001_t001_miri_p750l", source="s000000001", slit_name="x") == \
        "jw03457-o001_t001_miri_p750l"


def test_a_nirspec_mos_name_has_its_source_in_the_targets_place():
    """One product set per source: the public rule's name has the source's placeholder
    where the target would be; calwebb_spec3 fills it with ``s``, ``b`` (a background
    slitlet) or ``v`` (a virtual slitlet) and the id in nine digits."""
    template = Level3Name.build("01357", "o001", "t001", "NIRSPEC", ["CLEAR", "PRISM"], "FULL", "x1d",
                                naming=ProductNaming.SOURCE).product_name
    assert template == "jw01357-o001_{source_id}_nirspec_clear-prism"
    assert source_token(12) == "s000000012"
    assert source_token(7, "01357_BKG7") == "b000000007"
    assert source_token(-3) == "v000000003"
    for token in ("s000000012", "b000000007", "v000000003"):
        name = filled_product_name(template, source=token)
        assert name == f"jw01357-o001_{token}_nirspec_clear-prism"
        assert parse_level3(f"{name}_x1d.fits").target == token
        assert made_by(template, f"{name}_s2d.fits")
    assert not made_by(template, "jw01357-o001_t001_nirspec_clear-prism_x1d.fits")


def test_level3_subarray_detected():
    n = parse_level3("jw01234-o001_t001_nircam_clear-f200w-sub160_i2d.fits")
    assert n.optical_elements == ("clear", "f200w") and n.subarray == "sub160"


def test_association_and_pool_fields():
    a = parse_association("jw01234-o001_20251216t202003_image3_00001_asn.json")
    assert (a.acid, a.asn_type, a.sequence, a.created.hour) == ("o001", "image3", 1, 20)
    assert parse_pool("jw09505_20251216t202003_pool.csv").program == "09505"


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("jw1234001001_01101_00001_nrca1_uncal.fits", "not an exposure name"),
        ("jw01234001001_01101_00001_nrcz9_uncal.fits", "unknown detector"),
        ("jw01234001001_01101_00001-seg000_nrca1_uncal.fits", "segment 0"),
        ("jw01234-o001_20251216t202003_image9_00001_asn.json", "unknown asn_type"),
        ("jw01234-o001_20251399t202003_image3_00001_asn.json", "bad timestamp"),
        ("jw01234_2025_pool.csv", "not a pool name"),
        ("JW01234001001_01101_00001_NRCA1_UNCAL.FITS", "matches no JWST name form"),
    ],
)
def test_bad_names_say_why(name, fragment):
    with pytest.raises(BadNameError, match=fragment):
        if "asn" in name:
            parse_association(name)
        elif "pool" in name:
            parse_pool(name)
        elif name.startswith("JW"):
            parse_any(name)
        else:
            parse_exposure(name)


def test_object_key():
    assert object_key("01234", 1, 2, "x.fits") == "01234/001/r2/x.fits"
    with pytest.raises(ValueError):
        object_key("01234", 1, 0, "x.fits")


def test_format_zero_pads():
    n = ExposureName("00042", 7, 3, 2, 1, "05", 12, "NRCB2", "cal")
    assert n.format() == "jw00042007003_02105_00012_nrcb2_cal.fits"


def test_is_2c_names_only_a_members_product_of_a_level3_association():
    assert is_2c("jw01234001001_01101_00001_nrca1_o001_crf.fits")
    assert is_2c("jw01234002001_01101_00001_nrca1_o002_crfints.fits")
    assert not is_2c("jw01234001001_01101_00001_nrca1_cal.fits")
    assert not is_2c("jw01234-o001_t001_nircam_clear-f200w_i2d.fits")
    assert not is_2c("jw01234-o001_20250301t130000_image3_00001_asn.json")
    assert not is_2c("not a product name")
