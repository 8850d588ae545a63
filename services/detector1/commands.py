"""``dms run detector1``: calibrate local ``_uncal`` files with no services, like running
the public pipeline on one's own machine."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from services.detector1.pipeline import Detector1Params, run_detector1, step_sequence
from services.detector1.references import LoadedReference, Window, load_reference, needed_reftypes
from services.detector1.task import output_products
from shared.config import get_settings
from shared.datamodels import MalformedProductError, read_product, write_product
from shared.errors import NonRetriableError
from shared.instruments import detector
from shared.naming import BadNameError, parse_exposure
from shared.refdata import HeaderError, choose_local_references, parse_ref_overrides

__all__ = ["register_run_command", "run_local"]


def run_local(path: Path, output_dir: Path, overrides: dict[str, Path], refs_dir: Path | None,
              params: Detector1Params) -> list[Path]:
    """Calibrate one file; returns the paths written. Reference files come from
    ``overrides`` (type -> path) first, then the best match in ``refs_dir``."""
    name = parse_exposure(path.name)
    uncal = read_product(path)
    kw = uncal.keywords
    reftypes = needed_reftypes(list(step_sequence(kw["INSTRUME"], kw["EXP_TYPE"])))
    det = detector(kw["DETECTOR"])
    window = Window.from_keywords(kw)
    refs: dict[str, LoadedReference | None] = {}
    for reftype, (ref_path, why) in choose_local_references(kw, reftypes, overrides, refs_dir).items():
        if ref_path is not None:
            print(f"  {reftype:<10} {ref_path.name}  ({why})")
            refs[reftype] = load_reference(reftype, ref_path, window, (det.ny, det.nx))
        else:
            print(f"  {reftype:<10} none: the steps that need it are skipped")
            refs[reftype] = None
    result = run_detector1(uncal, refs, params=params, context="local", software_version=get_settings().cal_ver,
                           created=datetime.now(UTC).isoformat(timespec="seconds"))
    for step, status in result.statuses.items():
        print(f"  {step:<13} {status}")
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, product, _ in output_products(result, kw["EXP_TYPE"]):
        written.append(write_product(output_dir / name.with_suffix(suffix).format(), product))
    return written


def cmd_run_detector1(args: argparse.Namespace) -> int:
    params = Detector1Params(skip=frozenset(args.skip), save_ramp=args.save_ramp,
                             save_trapsfilled=args.save_trapsfilled)
    try:
        overrides = parse_ref_overrides(args.ref)
        for f in args.files:
            t0 = time.perf_counter()
            print(f"{f}:")
            written = run_local(Path(f), Path(args.output_dir), overrides,
                                Path(args.refs_dir) if args.refs_dir else None, params)
            for p in written:
                print(f"  wrote {p}")
            print(f"  done in {time.perf_counter() - t0:.1f} s")
    except (ValueError, FileNotFoundError, BadNameError, MalformedProductError, NonRetriableError,
            HeaderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def register_run_command(pipelines) -> None:
    """Add ``detector1`` to the ``dms run`` sub-commands."""
    s = pipelines.add_parser("detector1", help="calwebb_detector1 (calwebb_dark for darks) on local _uncal files")
    s.add_argument("files", nargs="+", help="_uncal FITS files")
    s.add_argument("--output-dir", default=".", help="where to write _rate, _rateints, ...")
    s.add_argument("--ref", action="append", default=[], metavar="TYPE=PATH",
                   help="use this reference file for a type (mask, saturation, superbias, linearity, dark, "
                        "gain, readnoise, rscd); repeatable")
    s.add_argument("--refs-dir", default=None, help="choose the other references from the FITS files in this "
                                                     "directory, by the same rules as the archive")
    s.add_argument("--save-ramp", action="store_true", help="also write the calibrated ramp (_ramp)")
    s.add_argument("--save-trapsfilled", action="store_true", help="also write the persistence trap state")
    s.add_argument("--skip", action="append", default=[], metavar="STEP", help="skip a step; repeatable")
    s.set_defaults(func=cmd_run_detector1)
