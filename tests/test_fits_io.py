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

import asdf
from astropy.io import fits

from shared.datamodels.fits_io import ASDF_EXTNAME

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
