"""Products are a pure function of their content: the ASDF metadata of a product whose
tree needs several asdf extensions (a gwcs: gwcs, transforms, coordinates, units) is
written in one pass with its extension list in a fixed order, so two processes with
different hash seeds (a task retried by another worker) store the same bytes."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import warnings

import asdf
import numpy as np
from astropy.io import fits

from shared.datamodels import FitsProduct, write_product
from shared.datamodels.fits_io import ASDF_EXTNAME, set_cards

_WRITE = textwrap.dedent("""
    import hashlib, sys
    from shared.datamodels import write_product
    from shared.imaging_wcs import fits_gwcs
    from tests.stage2_fixtures import rate_product
    from tests.stage3_scenes import window_wcs_pair
    product = rate_product()
    gw, _ = window_wcs_pair(53.16, -27.78, 30.0, product.images["SCI"].shape)
    product.extra_meta["meta.wcs"] = gw
    path = write_product(sys.argv[1], product)
    print(hashlib.sha256(path.read_bytes()).hexdigest())
""")


def _write(path, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run([sys.executable, "-c", _WRITE, str(path)], env=env, capture_output=True, text=True,
                          check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return done.stdout.strip().splitlines()[-1]


def test_the_same_product_is_the_same_bytes_in_every_process(tmp_path):
    paths = [tmp_path / seed / "jw01234001001_01101_00001_nrca1_rate.fits" for seed in ("1", "2", "3")]
    digests = {_write(path, path.parent.name) for path in paths}
    assert len(digests) == 1
    assert digests == {hashlib.sha256(paths[0].read_bytes()).hexdigest()}
    with fits.open(paths[0]) as hdul:
        blob = hdul[ASDF_EXTNAME].data.tobytes()
    with asdf.open(io.BytesIO(blob)) as af:
        used = [(str(e.get("extension_uri")), str(e.get("extension_class"))) for e in af.tree["history"]["extensions"]]
    assert len(used) >= 3, used  # the gwcs needs several extensions, so their order matters
    assert used == sorted(used)


def test_every_card_fits_one_line_with_its_comment_shortened_as_needed():
    long = "a comment much longer than any card has room for, so it must be cut to fit the card"
    product = FitsProduct("ImageModel")
    set_cards(product, {"XFLAG": True, "XCOUNT": 1, "XNAME": "a value of some length, 40 characters..",
                        "XRATIO": 0.123456789012345},
              comments={"XFLAG": long, "XCOUNT": long, "XNAME": long, "XRATIO": long})
    for name, (value, comment) in product.hdu_keywords["SCI"].items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # astropy warns when it has to truncate a card
            card = fits.Card(name, value, comment)
            image = card.image
        # cut to exactly the room left: the comment ends in column 80
        assert comment == long[:len(comment)] and len(comment) < len(long), name
        assert len(image) == 80 and image.endswith(comment), name


def test_writing_never_changes_the_products_arrays_even_for_a_moment(tmp_path, monkeypatch):
    # astropy swaps a writeable little-endian array's bytes in place while it writes it; a
    # thread reading the array then (stage 3 resamples while its _crf are archived) would
    # read the swapped values. At every write of the file, the arrays must hold their values.
    from astropy.io.fits.file import _File

    sci = np.arange(64, dtype="<f4").reshape(8, 8)
    dq = np.arange(64, dtype="<u4").reshape(8, 8)
    product = FitsProduct("ImageModel", {"TELESCOP": "JWST"}, {"SCI": sci, "DQ": dq})
    seen = []
    write = _File.writearray

    def checking(self, array):
        seen.append(np.array_equal(sci, np.arange(64, dtype="<f4").reshape(8, 8))
                    and np.array_equal(dq, np.arange(64, dtype="<u4").reshape(8, 8)))
        return write(self, array)

    monkeypatch.setattr(_File, "writearray", checking)
    write_product(tmp_path / "x_cal.fits", product)
    assert seen and all(seen)
    assert sci.flags.writeable and dq.flags.writeable  # the caller's arrays stay as they were
    with fits.open(tmp_path / "x_cal.fits") as hdul:
        assert np.array_equal(hdul["SCI"].data, sci) and np.array_equal(hdul["DQ"].data, dq)


def _slit_gwcs(x0: float, y0: float):
    """A small spectral-looking gwcs: (x, y) -> (RA, Dec, wavelength) with a lookup table."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import models as m
    from gwcs import coordinate_frames as cf
    from gwcs import wcs

    wave = m.Tabular1D(points=np.arange(40.0), lookup_table=np.linspace(0.6, 5.3, 40), bounds_error=False,
                       fill_value=np.nan)
    sky = (m.Shift(x0) & m.Shift(y0)) | (m.Scale(1e-5) & m.Scale(1e-5)) | (m.Shift(80.0) & m.Shift(-69.0))
    forward = m.Mapping((0, 1, 0)) | (sky & wave)
    world = cf.CompositeFrame([cf.CelestialFrame(reference_frame=coord.ICRS(), axes_order=(0, 1), name="icrs"),
                               cf.SpectralFrame(axes_order=(2,), unit=(u.micron,), name="spec")], name="world")
    return wcs.WCS([(cf.Frame2D(name="detector"), forward), (world, None)])


def test_a_product_of_many_slits_opens_as_the_public_multislit_model(tmp_path):
    """A MultiSlitModel's slits are written as the public layout has them: each slit's
    arrays with its EXTVER, its own keywords in its SCI header, its gwcs at slits[i] of the
    ASDF tree. stdatamodels opens it as a MultiSlitModel with those slits (names, windows,
    arrays, sources, gwcs), and reading it back gives the same product."""
    from stdatamodels.jwst import datamodels as dm

    from shared.datamodels import SlitProduct, read_product

    rng = np.random.default_rng(3)
    slits = []
    for i, (name, shape) in enumerate((("S200A1", (30, 40)), ("S400A1", (34, 40)))):
        images = {"SCI": rng.normal(size=shape).astype(np.float32), "DQ": np.zeros(shape, np.uint32),
                  "ERR": np.ones(shape, np.float32), "WAVELENGTH": np.tile(np.linspace(0.6, 5.3, 40), (shape[0], 1))
                  .astype(np.float32)}
        slits.append(SlitProduct(images=images, keywords={"SLTNAME": name, "SLTSTRT1": 100 + i, "SLTSIZE1": shape[1],
                                                          "SLTSTRT2": 900 + 40 * i, "SLTSIZE2": shape[0],
                                                          "SOURCEID": i + 1, "SRCXPOS": 0.1 * i, "SRCYPOS": -0.2,
                                                          "SRCTYPE": "POINT",
                                                          # a slit's own unit (a MOS slit of an extended source's)
                                                          **({"BUNIT": "MJy/sr"} if i else {})},
                                 extra_meta={"meta.wcs": _slit_gwcs(100.0 + i, 900.0 + 40 * i)}))
    product = FitsProduct(model_type="MultiSlitModel", keywords={"TELESCOP": "JWST", "INSTRUME": "NIRSPEC",
                                                                "EXP_TYPE": "NRS_FIXEDSLIT", "BUNIT": "MJy"},
                          slits=slits, hdu_keywords={"ERR": {"BUNIT": "MJy"}})
    path = write_product(tmp_path / "jw01234001001_01101_00001_nrs1_cal.fits", product)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.open(str(path)) as model:
            assert isinstance(model, dm.MultiSlitModel) and len(model.slits) == 2
            for slit, want in zip(model.slits, slits, strict=True):
                assert slit.name == want.keywords["SLTNAME"] and slit.xstart == want.keywords["SLTSTRT1"]
                assert (slit.ystart, slit.ysize) == (want.keywords["SLTSTRT2"], want.keywords["SLTSIZE2"])
                assert slit.source_id == want.keywords["SOURCEID"] and slit.source_type == "POINT"
                assert np.array_equal(slit.data, want.images["SCI"])
                assert np.array_equal(slit.wavelength, want.images["WAVELENGTH"])
                assert np.allclose(slit.meta.wcs(3.0, 4.0), want.extra_meta["meta.wcs"](3.0, 4.0))
            assert model.meta.exposure.type == "NRS_FIXEDSLIT"
    back = read_product(path)
    assert back.model_type == "MultiSlitModel" and back.keywords["EXP_TYPE"] == "NRS_FIXEDSLIT"
    assert len(back.slits) == 2
    for got, want in zip(back.slits, slits, strict=True):
        assert got.keywords == {"BUNIT": "MJy", **want.keywords}  # its own BUNIT, else the product's
        assert set(got.images) == set(want.images)
        assert all(np.array_equal(got.images[k], want.images[k]) for k in want.images)
        assert np.allclose(got.extra_meta["meta.wcs"](3.0, 4.0), want.extra_meta["meta.wcs"](3.0, 4.0))


def test_a_product_becomes_a_multislit_product_of_one_slit_holding_all_of_it():
    """single_slit moves the arrays, the gwcs and the slit's own keywords into one slit
    whose cutout is the whole window; the exposure's keywords and tables stay the product's."""
    from shared.datamodels import single_slit

    rng = np.random.default_rng(5)
    images = {"SCI": rng.normal(size=(20, 50)).astype(np.float32), "DQ": np.zeros((20, 50), np.uint32)}
    table = np.zeros(3, dtype=[("WAVELENGTH", "f8"), ("FLUX", "f8")])
    wcs = _slit_gwcs(10.0, 20.0)
    product = FitsProduct(model_type="SlitModel", images=images, tables={"TRACE": table},
                          keywords={"TELESCOP": "JWST", "EXP_TYPE": "NRS_FIXEDSLIT", "SLTNAME": "S200A1",
                                    "SOURCEID": 1, "SRCXPOS": 0.1, "SRCYPOS": -0.3, "SRCTYPE": "POINT"},
                          extra_meta={"meta.wcs": wcs}, hdu_keywords={"SCI": {"BUNIT": "MJy"}})
    multi = single_slit(product)
    assert multi.model_type == "MultiSlitModel" and len(multi.slits) == 1
    slit = multi.slits[0]
    assert slit.keywords == {"SLTNAME": "S200A1", "SOURCEID": 1, "SRCXPOS": 0.1, "SRCYPOS": -0.3, "SRCTYPE": "POINT",
                             "SLTSTRT1": 1, "SLTSIZE1": 50, "SLTSTRT2": 1, "SLTSIZE2": 20}
    assert slit.images["SCI"] is images["SCI"] and slit.extra_meta["meta.wcs"] is wcs
    assert multi.keywords == {"TELESCOP": "JWST", "EXP_TYPE": "NRS_FIXEDSLIT"}
    assert multi.tables["TRACE"] is table and multi.hdu_keywords == {"SCI": {"BUNIT": "MJy"}}
    assert not multi.images  # the arrays are the slit's alone


def test_a_product_of_many_spectra_opens_as_the_public_multispec_model(tmp_path):
    """Each spectrum of an _x1d is an EXTRACT1D extension with its EXTVER and its own cards;
    stdatamodels opens them as the MultiSpecModel's spectra, and reading gives them back."""
    from stdatamodels.jwst import datamodels as dm

    from shared.datamodels import read_product
    from shared.datamodels.spectra import x1d_product
    from shared.spectra import SPECTABLE_DTYPE

    spectra = []
    for i in range(3):
        table = np.zeros(5, SPECTABLE_DTYPE)
        table["WAVELENGTH"], table["FLUX"] = np.linspace(1.0, 2.0, 5), 10.0 * (i + 1)
        spectra.append((table, {"SLTNAME": str(i + 1), "SOURCEID": 100 + i, "SRCTYPE": "POINT", "SRCXPOS": None}))
    product = x1d_product(spectra, {"TELESCOP": "JWST", "INSTRUME": "NIRSPEC", "EXP_TYPE": "NRS_MSASPEC",
                                    "SOURCEID": 7, "SLTNAME": "exposure's"})
    path = write_product(tmp_path / "jw01234001001_01101_00001_nrs1_x1d.fits", product)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dm.open(str(path)) as model:
            assert isinstance(model, dm.MultiSpecModel) and len(model.spec) == 3
            for spec, (table, cards) in zip(model.spec, spectra, strict=True):
                assert spec.name == cards["SLTNAME"] and spec.source_id == cards["SOURCEID"]
                assert np.array_equal(spec.spec_table["FLUX"], table["FLUX"])
    back = read_product(path)
    assert [s.keywords["SOURCEID"] for s in back.spectra] == [100, 101, 102]
    assert back.spectra[0].keywords["TUNIT2"] == "Jy" and "SRCXPOS" not in back.spectra[0].keywords
    assert "SOURCEID" not in back.keywords and not back.tables  # the slit's cards are the spectra's alone
    assert np.array_equal(back.spectra[2].table["FLUX"], spectra[2][0]["FLUX"])
