"""``dms run image2`` and ``dms run spec2``: calibrate local ``_rate``/``_rateints``
files (or a Level-2 association and the files it names, looked for beside it) with no
services, like running the public pipeline on one's own machine."""

from __future__ import annotations

from pathlib import Path

from services.stage2 import spec2
from services.stage2.asn import Level2Product, parse_level2_asn
from services.stage2.pipeline import IMAGE2, calibrate
from shared.config import get_settings
from shared.datamodels import FitsProduct, read_product
from shared.datamodels.msa import read_msa_metadata
from shared.errors import InputError
from shared.pipeline import PipelineParams
from shared.refdata import ReferenceProvider
from shared.runlocal import LocalCommand, LocalResult
from shared.spectra.msa import MsaMetadata

__all__ = ["COMMAND", "SPEC2_COMMAND"]


def _products(path: Path) -> tuple[list[Level2Product], str | None, str | None]:
    """The products to make from ``path``: those of an association, or one exposure."""
    if path.suffix == ".json":
        asn = parse_level2_asn(path.read_bytes(), path.name)
        return list(asn.products), path.name, asn.asn_pool
    return [Level2Product(path.name, path.name, (), ())], None, None


def _msa_beside(science: FitsProduct, directory: Path) -> MsaMetadata:
    """The MSA metadata file a MOS exposure names (MSAMETFL), looked for beside it as the
    public pipeline looks for it. InputError when it names none or it is not there."""
    name = str(science.keywords.get("MSAMETFL") or "").strip()
    if not name:
        raise InputError(f"{science.keywords.get('FILENAME')}: a MOS exposure names its MSA metadata file "
                         "(MSAMETFL); this one names none")
    if not (directory / name).is_file():
        raise InputError(f"{science.keywords.get('FILENAME')}: its MSA metadata file {name} is not beside it in "
                         f"{directory}; put it there")
    try:
        return read_msa_metadata(directory / name)
    except ValueError as exc:
        raise InputError(str(exc)) from exc


def _runner(calibrate_one, *, spectra: bool = False):
    def run(path: Path, params: PipelineParams, provider: ReferenceProvider, created: str,
            options) -> list[LocalResult]:
        products, asn_table, asn_pool = _products(path)
        results = []
        for product in products:
            science = read_product(path.parent / product.science)
            backgrounds = [read_product(path.parent / b) for b in product.backgrounds]
            mos = str(science.keywords.get("EXP_TYPE") or "").upper() == spec2.MOS_EXP_TYPE
            extra = {"msa": _msa_beside(science, path.parent)} if spectra and mos else {}
            result = calibrate_one(science, provider, backgrounds=backgrounds, params=params,
                                   software_version=get_settings().cal_ver, created=created, asn_table=asn_table,
                                   asn_pool=asn_pool, **extra)
            results.append(LocalResult(product.science, result.record, result.outputs(product.science)))
        return results

    return run


COMMAND = LocalCommand(IMAGE2, "_rate/_rateints FITS files, or Level-2 *_asn.json files (members are read from "
                               "the association's directory)", _runner(calibrate))
SPEC2_COMMAND = LocalCommand(spec2.SPEC2, "_rate FITS files of slit spectra (MIR_LRS-FIXEDSLIT, NRS_FIXEDSLIT, "
                                          "NRS_MSASPEC with its MSA metadata file beside it) or of the MIRI LRS "
                                          "slitless (MIR_LRS-SLITLESS, a time series's _rateints too), _rateints of "
                                          "NIRSpec bright objects (NRS_BRIGHTOBJ) and NIRISS SOSS (NIS_SOSS), or spec2 and "
                                          "tso-spec2 *_asn.json files (the other nods are their background members)",
                             _runner(spec2.calibrate, spectra=True))
