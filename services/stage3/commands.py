"""``dms run image3`` / ``dms run tso3``: run stage 3 on a local Level-3 association and
the member files it names, with no services, like running the public pipeline on one's
own machine."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from astropy.table import Table

from services.stage3.asn import AsnError, parse_level3_asn
from services.stage3.pipeline import Image3Params, Tso3Params, run_image3, run_tso3
from services.stage3.task import load_astrometric_catalog, output_files, write_output
from shared.config import get_settings
from shared.datamodels import MalformedProductError, read_product

__all__ = ["register_run_command", "run_local"]


def _refcat(path: Path | None):
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"--abs-refcat {path}: no such file")
    t = Table.read(path, format="ascii.ecsv")
    if "ra" not in t.colnames or "dec" not in t.colnames:
        raise ValueError(f"--abs-refcat {path}: an ECSV table with ra and dec columns (degrees) is needed")
    return t["ra"].data.astype(float), t["dec"].data.astype(float)


def run_local(asn_path: Path, member_dir: Path, output_dir: Path, *, expect: str, skip: frozenset[str],
              abs_refcat: Path | None = None) -> list[Path]:
    """Run the association at ``asn_path`` on the members found in ``member_dir``;
    returns the paths written to ``output_dir``. ``expect`` is the command's asn_type."""
    asn = parse_level3_asn(asn_path.read_bytes(), asn_path.name)
    if asn.asn_type != expect:
        raise ValueError(f"{asn_path.name} is a {asn.asn_type} association; use `dms run {asn.asn_type}`")
    missing = [m for m in asn.science if not (member_dir / m).is_file()]
    if missing:
        raise FileNotFoundError(f"members not found in {member_dir}: {', '.join(missing)}")
    members = [read_product(member_dir / m) for m in asn.science]
    settings = get_settings()
    common = dict(software_version=settings.cal_ver, created=datetime.now(UTC).isoformat(timespec="seconds"),
                  asn_table=asn_path.name)
    if asn.asn_type == "image3":
        refcat = _refcat(abs_refcat) if abs_refcat else load_astrometric_catalog(settings.astrometric_catalog_dir)
        result = run_image3(members, asn.document, Image3Params(skip=skip), abs_refcat=refcat, **common)
    else:
        result = run_tso3(members, asn.document, Tso3Params(skip=skip), **common)
    for step, status in result.statuses.items():
        print(f"  {step:<18} {status}")
    for note in result.notes:
        print(f"  note: {note}")
    output_dir.mkdir(parents=True, exist_ok=True)
    return [write_output(output_dir / out.filename, out.content) for out in output_files(asn, result)]


def cmd_run_stage3(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    asn_path = Path(args.asn)
    try:
        written = run_local(asn_path, Path(args.dir) if args.dir else asn_path.parent, Path(args.out),
                            expect=args.stage3_asn_type, skip=frozenset(args.skip),
                            abs_refcat=Path(args.abs_refcat) if getattr(args, "abs_refcat", None) else None)
    except (ValueError, FileNotFoundError, AsnError, MalformedProductError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in written:
        print(f"  wrote {p}")
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    return 0


def register_run_command(pipelines) -> None:
    """Add ``image3`` and ``tso3`` to the ``dms run`` sub-commands."""
    s = pipelines.add_parser("image3", help="calwebb_image3 on a local Level-3 association (image3)")
    s.add_argument("asn", help="the image3 _asn.json")
    s.add_argument("--dir", default=None, help="where the member _cal files are (default: beside the ASN)")
    s.add_argument("--abs-refcat", default=None, help="ECSV catalog (ra, dec in degrees) to align to absolutely")
    s.add_argument("--out", default=".", help="where to write _crf, _i2d, _cat, _segm")
    s.add_argument("--skip", action="append", default=[], metavar="STEP", help="skip a step; repeatable")
    s.set_defaults(func=cmd_run_stage3, stage3_asn_type="image3")
    t = pipelines.add_parser("tso3", help="calwebb_tso3 on a local imaging time-series association (tso3)")
    t.add_argument("asn", help="the tso3 _asn.json")
    t.add_argument("--dir", default=None, help="where the member _calints files are (default: beside the ASN)")
    t.add_argument("--out", default=".", help="where to write _crfints and _phot")
    t.add_argument("--skip", action="append", default=[], metavar="STEP", help="skip a step; repeatable")
    t.set_defaults(func=cmd_run_stage3, stage3_asn_type="tso3")
