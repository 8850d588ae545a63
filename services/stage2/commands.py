"""``dms run image2``: calibrate local ``_rate``/``_rateints`` files (or a Level-2
association and the files it names) with no services, like running the public pipeline
on one's own machine."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from services.stage2.asn import Level2Product, parse_level2_asn
from services.stage2.pipeline import Image2Params, run_image2
from services.stage2.references import IMAGE2_REFTYPES, Window, load_references
from shared.config import get_settings
from shared.datamodels import MalformedProductError, read_product, write_product
from shared.errors import NonRetriableError
from shared.instruments import UnknownInstrumentError, detector
from shared.naming import BadNameError, parse_exposure
from shared.refdata import HeaderError, choose_local_references, parse_ref_overrides

__all__ = ["register_run_command", "run_local"]


def _products(path: Path) -> tuple[list[Level2Product], str | None, str | None]:
    """The products to make from ``path``: those of an association, or one exposure."""
    if path.suffix == ".json":
        asn = parse_level2_asn(path.read_bytes(), path.name)
        return list(asn.products), path.name, asn.asn_pool
    return [Level2Product(path.name, path.name, (), ())], None, None


def _choose_references(kw: dict, overrides: dict[str, Path], refs_dir: Path | None) -> dict[str, Path | None]:
    chosen = choose_local_references(kw, IMAGE2_REFTYPES, overrides, refs_dir)
    for reftype, (ref_path, why) in chosen.items():
        print(f"  {reftype:<10} " + (f"{ref_path.name}  ({why})" if ref_path else "none: the step that needs it is skipped"))
    return {t: ref_path for t, (ref_path, _) in chosen.items()}


def run_local(path: Path, output_dir: Path, overrides: dict[str, Path], refs_dir: Path | None,
              params: Image2Params) -> list[Path]:
    """Calibrate one ``_rate``/``_rateints`` file, or every product of a Level-2
    association (its members are looked for beside it); returns the paths written.
    Reference files come from ``overrides`` (type -> path) first, then the best match in
    ``refs_dir``."""
    products, asn_table, asn_pool = _products(path)
    written = []
    for product in products:
        parse_exposure(product.science)  # the output names derive from it
        science = read_product(path.parent / product.science)
        backgrounds = [read_product(path.parent / b) for b in product.backgrounds]
        kw = science.keywords
        try:
            det = detector(str(kw["DETECTOR"]))
        except (KeyError, UnknownInstrumentError) as exc:
            raise ValueError(f"{product.science}: no known DETECTOR ({exc})") from exc
        print(f"  {product.science}")
        refs = load_references(_choose_references(kw, overrides, refs_dir), Window.from_keywords(kw),
                               (det.ny, det.nx))
        result = run_image2(science, refs, backgrounds=backgrounds, params=params, context="local",
                            software_version=get_settings().cal_ver,
                            created=datetime.now(UTC).isoformat(timespec="seconds"),
                            asn_table=asn_table, asn_pool=asn_pool)
        for step, status in result.statuses.items():
            print(f"  {step:<13} {status}")
        output_dir.mkdir(parents=True, exist_ok=True)
        for suffix, out in result.products():
            name = parse_exposure(product.science).with_suffix(suffix).format()
            written.append(write_product(output_dir / name, out))
    return written


def cmd_run_image2(args: argparse.Namespace) -> int:
    params = Image2Params(skip=frozenset(args.skip), save_bsub=args.save_bsub)
    try:
        overrides = parse_ref_overrides(args.ref, IMAGE2_REFTYPES, "image2")
        for f in args.files:
            t0 = time.perf_counter()
            print(f"{f}:")
            written = run_local(Path(f), Path(args.out), overrides, Path(args.refs_dir) if args.refs_dir else None,
                                params)
            for p in written:
                print(f"  wrote {p}")
            print(f"  done in {time.perf_counter() - t0:.1f} s")
    except (ValueError, FileNotFoundError, BadNameError, MalformedProductError, NonRetriableError,
            HeaderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def register_run_command(pipelines) -> None:
    """Add ``image2`` to the ``dms run`` sub-commands."""
    s = pipelines.add_parser("image2", help="calwebb_image2 on local _rate/_rateints files or Level-2 associations")
    s.add_argument("files", nargs="+", help="_rate/_rateints FITS files, or Level-2 *_asn.json files "
                                            "(members are read from the association's directory)")
    s.add_argument("--out", "--output-dir", dest="out", default=".", help="where to write _cal, _calints, _i2d, ...")
    s.add_argument("--ref", action="append", default=[], metavar="TYPE=PATH",
                   help=f"use this reference file for a type ({', '.join(IMAGE2_REFTYPES)}); repeatable")
    s.add_argument("--refs-dir", default=None, help="choose the other references from the FITS files in this "
                                                     "directory, by the same rules as the archive")
    s.add_argument("--save-bsub", action="store_true", help="also write the background-subtracted rate (_bsub)")
    s.add_argument("--skip", action="append", default=[], metavar="STEP",
                   help="skip a step (bkg_subtract, assign_wcs, flat_field, photom, resample); repeatable")
    s.set_defaults(func=cmd_run_image2)
