"""``dms run detector1``: calibrate local ``_uncal`` files with no services, like running
the public pipeline on one's own machine."""

from __future__ import annotations

from pathlib import Path

from services.detector1.pipeline import DETECTOR1, calibrate
from shared.config import get_settings
from shared.datamodels import read_product
from shared.pipeline import PipelineParams
from shared.refdata import ReferenceProvider
from shared.runlocal import LocalCommand, LocalResult

__all__ = ["COMMAND"]


def _run(path: Path, params: PipelineParams, provider: ReferenceProvider, created: str, options) -> list[LocalResult]:
    result = calibrate(read_product(path), provider, params=params, software_version=get_settings().cal_ver,
                       created=created)
    return [LocalResult(path.name, result.record, result.outputs(path.name))]


COMMAND = LocalCommand(DETECTOR1, "_uncal FITS files (any name; outputs are named after them)", _run)
