"""The preview of an IFU cube (``_s3d``): its white-light image beside the spectrum of its
brightest spaxel, read from an IFUCubeModel as spec2 writes it (services/stage2/ifu2.py)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from services.preview.load import ImageSource, load_source
from services.preview.pipeline import make_preview
from services.preview.steps.cube_view import CUBE_SIZE, brightest_spaxel
from shared.datamodels import write_product
from shared.datamodels.spectra import s3d_product
from shared.spectra.cube import EMPTY_VOXEL, CubeGrid, CubeResult
from shared.spectra.ifu_cube import IfuCube


def _cube(tmp_path):
    nw, ny, nx = 40, 15, 21
    wl_edges = 5.0 + 0.01 * np.arange(nw + 1)
    grid = CubeGrid(ra0=80.5, dec0=-69.5, spaxel=0.13, nx=nx, ny=ny, x0=10.0, y0=7.0, wl_edges=wl_edges)
    yy, xx = np.mgrid[:ny, :nx]
    blob = np.exp(-((xx - 14) ** 2 + (yy - 4) ** 2) / 4.0)
    line = 1.0 + 3.0 * np.exp(-0.5 * ((np.arange(nw) - 25) / 1.5) ** 2)
    sci = (10.0 * blob[None] * line[:, None, None] + 0.5).astype(np.float32)
    dq = np.zeros(sci.shape, np.uint32)
    sci[:, 0, :] = np.nan  # an edge with no data
    dq[:, 0, :] = EMPTY_VOXEL
    result = CubeResult(sci=sci, var=np.full(sci.shape, 0.01, np.float32), weight=np.ones(sci.shape, np.float32),
                        dq=dq)
    product = s3d_product(IfuCube(1, "SHORT", grid, result), {"INSTRUME": "MIRI", "DETECTOR": "MIRIFUSHORT",
                                                              "EXP_TYPE": "MIR_MRS"})
    path = tmp_path / "jw01234001001_01101_00001_mirifushort_s3d.fits"
    write_product(path, product)
    return path, grid


def test_brightest_spaxel_ignores_non_finite_values():
    white = np.array([[np.nan, 1.0], [5.0, np.inf]])
    assert brightest_spaxel(white) == (0, 1)
    assert brightest_spaxel(np.full((2, 2), np.nan)) is None


def test_cube_preview_shows_white_light_and_the_brightest_spectrum(tmp_path):
    path, grid = _cube(tmp_path)
    source = load_source(path)
    assert isinstance(source, ImageSource) and source.sci.ndim == 3
    assert np.allclose(source.wavelength, grid.wavelengths, atol=1e-6)
    preview = make_preview(source, title=path.name)
    assert preview.kind == "cube"
    assert "21 x 15 spaxels, 40 planes 5.005-5.395 um" in preview.note
    image = Image.open(io.BytesIO(preview.png))
    assert image.size == CUBE_SIZE
    assert Image.open(io.BytesIO(preview.jpeg)).size == (128, 128)
    # the same cube, the same bytes
    assert make_preview(load_source(path), title=path.name).png == preview.png
