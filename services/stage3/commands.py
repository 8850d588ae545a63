"""``dms run image3`` / ``dms run tso3`` / ``dms run spec3``: run stage 3 on a local Level-3 association and
the member files it names (looked for beside it), with no services, like running the
public pipeline on one's own machine."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from services.stage3.asn import parse_level3_asn
from services.stage3.pipeline import IMAGE3, TSO3, calibrate
from services.stage3.refcat import load_astrometric_catalog, read_catalog
from services.stage3.spec3 import SPEC3
from shared.config import get_settings
from shared.datamodels import read_product
from shared.pipeline import Pipeline, PipelineParams
from shared.refdata import ReferenceProvider
from shared.runlocal import LocalCommand, LocalResult, NoCommandOptions

__all__ = ["IMAGE3_COMMAND", "SPEC3_COMMAND", "TSO3_COMMAND"]


class Image3CommandOptions(BaseModel):
    """Options of ``dms run image3``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    abs_refcat: Path | None = Field(None, description="ECSV catalog (ra, dec in degrees) to align to absolutely "
                                                      "(default: the configured astrometric catalogs, if any)")


def _runner(pipeline: Pipeline):
    def run(path: Path, params: PipelineParams, provider: ReferenceProvider, created: str, options) -> list[LocalResult]:
        asn = parse_level3_asn(path.read_bytes(), path.name)
        if asn.asn_type != pipeline.name:
            raise ValueError(f"{path.name} is a {asn.asn_type} association; use `dms run {asn.asn_type}`")
        missing = [m for m in asn.science if not (path.parent / m).is_file()]
        if missing:
            raise FileNotFoundError(f"members not found beside the association in {path.parent}: {', '.join(missing)}")
        refcat = None
        if pipeline is IMAGE3:
            refcat = (read_catalog(options.abs_refcat) if options.abs_refcat
                      else load_astrometric_catalog(get_settings().astrometric_catalog_dir))
        result = calibrate(asn, [read_product(path.parent / m) for m in asn.science], params=params,
                           abs_refcat=refcat, software_version=get_settings().cal_ver, created=created,
                           provider=provider)
        return [LocalResult(path.name, result.record, result.outputs(asn))]

    return run


IMAGE3_COMMAND = LocalCommand(IMAGE3, "an image3 *_asn.json (members are read from its directory)", _runner(IMAGE3),
                              Image3CommandOptions)
TSO3_COMMAND = LocalCommand(TSO3, "a tso3 *_asn.json (members are read from its directory)", _runner(TSO3),
                            NoCommandOptions)
SPEC3_COMMAND = LocalCommand(SPEC3, "a spec3 *_asn.json of slit nods, of wide-field slitless exposures or of an "
                             "MRS's dithers (the _cal members are read from its directory)",
                             _runner(SPEC3), NoCommandOptions)
