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
