"""``dms preview FILE... [--out DIR]``: render products on disk to PNG + JPEG, no services.

The same rendering as the preview service, for users who have downloaded a product (or
produced one locally): writes ``<stem>_preview.png`` and ``<stem>_thumb.jpg``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.preview.load import UnreadableProductError, load_source
from services.preview.pipeline import make_preview
from services.preview.task import preview_names

__all__ = ["cmd_preview", "register_commands", "render_file"]


def render_file(path: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Render one product file; returns the (PNG, JPEG) paths written (default: next to it).

    Raises FileNotFoundError for a missing file and UnreadableProductError (or ValueError)
    for a file no preview can be made from.
    """
    path = Path(path)
    source = load_source(path)
    preview = make_preview(source, title=path.name)
    out = Path(out_dir) if out_dir is not None else path.parent
    out.mkdir(parents=True, exist_ok=True)
    png_name, jpg_name = preview_names(path.name)
    png, jpg = out / png_name, out / jpg_name
    png.write_bytes(preview.png)
    jpg.write_bytes(preview.jpeg)
    return png, jpg


def cmd_preview(args: argparse.Namespace) -> int:
    status = 0
    for name in args.files:
        try:
            png, jpg = render_file(name, args.out)
        except (FileNotFoundError, UnreadableProductError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{name}: {png} {jpg}")
    return status


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``preview`` to the ``dms`` command line."""
    s = subparsers.add_parser(
        "preview", help="render product files (FITS or ECSV) to a PNG preview and a JPEG thumbnail",
        description="Render JWST product files to <stem>_preview.png (1024 px) and <stem>_thumb.jpg "
                    "(128x128), exactly as the preview service does.",
    )
    s.add_argument("files", nargs="+", metavar="FILE", help="product file(s), e.g. jw..._cal.fits")
    s.add_argument("--out", default=None, metavar="DIR", help="output directory (default: next to each file)")
    s.set_defaults(func=cmd_preview)
