"""``dms run detector1`` and ``dms run guider``: calibrate local ``_uncal`` files (guide-star
products for calwebb_guider) with no services, like running the public pipeline on one's
own machine."""

from __future__ import annotations

from pathlib import Path

from services.detector1.guider import GUIDER, calibrate_guider
from services.detector1.pipeline import DETECTOR1, calibrate
from shared.config import get_settings
from shared.datamodels import read_product
from shared.pipeline import PipelineParams
from shared.refdata import ReferenceProvider
from shared.runlocal import LocalCommand, LocalResult

__all__ = ["COMMAND", "GUIDER_COMMAND"]


def _run(path: Path, params: PipelineParams, provider: ReferenceProvider, created: str, options) -> list[LocalResult]:
    result = calibrate(read_product(path), provider, params=params, software_version=get_settings().cal_ver,
                       created=created)
    return [LocalResult(path.name, result.record, result.outputs(path.name))]


COMMAND = LocalCommand(DETECTOR1, "_uncal FITS files (any name; outputs are named after them)", _run)


def _run_guider(path: Path, params: PipelineParams, provider: ReferenceProvider, created: str,
                options) -> list[LocalResult]:
    result = calibrate_guider(read_product(path), provider, params=params, software_version=get_settings().cal_ver,
                              created=created, label=path.name)
    return [LocalResult(path.name, result.record, result.outputs(path.name))]


GUIDER_COMMAND = LocalCommand(GUIDER, "guide-star _uncal FITS files (GuiderRawModel: gs-id, gs-acq1, gs-acq2, "
                              "gs-track, gs-fg)", _run_guider)
