"""``dms run <pipeline>``: a pipeline on one's own files, with no services, like the public
pipeline's ``strun``.

Every pipeline takes the same options: the input files, ``--output-dir``, ``--ref
TYPE=PATH`` (repeatable), ``--refs-dir DIR`` (the other references are chosen there by
the archive's selection rules), ``--skip STEP`` (repeatable) and
``--steps.<step>.<param>=VALUE`` (any declared step parameter; ``skip`` too); a pipeline's
own options (e.g. ``--save-ramp``) come from its option model. A service declares its
command as a :class:`LocalCommand`: the pipeline and a function that turns one input file
into results; this module parses, prints and writes.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.datamodels import write_output
from shared.pipeline import Output, Pipeline, PipelineParams, RunRecord
from shared.refdata import LocalReferences, ReferenceChoice, ReferenceProvider, parse_ref_overrides

__all__ = ["LocalCommand", "LocalResult", "NoCommandOptions", "run_command"]

_STEP_OPTION = re.compile(r"^--steps\.(?P<step>[A-Za-z0-9_]+)\.(?P<param>[A-Za-z0-9_]+)(?:=(?P<value>.*))?$")


class NoCommandOptions(BaseModel):
    """A command without options of its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class LocalResult:
    """One run of the pipeline on (part of) an input: what to call it in the listing, what
    the runner recorded, and the products to write."""

    label: str
    record: RunRecord
    outputs: list[Output]


# run(path, params, provider, created, command options) -> results
LocalRun = Callable[[Path, PipelineParams, ReferenceProvider, str, Any], list[LocalResult]]


@dataclass(frozen=True)
class LocalCommand:
    """A pipeline's ``dms run`` command: the pipeline, what its inputs are, the function
    that runs one input, and options of the command itself (beside the pipeline's)."""

    pipeline: Pipeline
    inputs: str
    run: LocalRun
    options: type[BaseModel] = NoCommandOptions


@dataclass(frozen=True)
class AnnouncingReferences:
    """Local references that print what was chosen for each type, and why."""

    inner: LocalReferences

    def choose(self, keywords: Mapping[str, Any], reftypes: Sequence[str]) -> tuple[dict[str, ReferenceChoice], str]:
        chosen, context = self.inner.choose(keywords, reftypes)
        for reftype, c in chosen.items():
            print(f"  {reftype:<11} " + (f"{c.path.name}  ({c.reason})" if c.path else
                                         f"none: the steps that need it are skipped ({c.reason})"))
        return chosen, context


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value_type(annotation: Any) -> Callable[[str], Any] | None:
    """A converter for an option's string value (None: pydantic converts it)."""
    inner = next((a for a in typing.get_args(annotation) if a is not type(None)), annotation)
    return Path if inner is Path else None


def _add_model_options(parser: argparse.ArgumentParser, model: type[BaseModel], dest_prefix: str) -> None:
    for name, info in model.model_fields.items():
        dest = f"{dest_prefix}{name}"
        if info.annotation is bool:
            parser.add_argument(_flag(name), dest=dest, action="store_true", default=None, help=info.description)
        else:
            parser.add_argument(_flag(name), dest=dest, default=None, type=_value_type(info.annotation),
                                metavar=name.upper(), help=info.description)


def _model_values(args: argparse.Namespace, model: type[BaseModel], dest_prefix: str) -> dict[str, Any]:
    return {name: v for name in model.model_fields if (v := getattr(args, f"{dest_prefix}{name}")) is not None}


def _parse_step_options(extra: list[str], parser: argparse.ArgumentParser) -> dict[str, dict[str, Any]]:
    """``--steps.<step>.<param>=VALUE`` (or ``... VALUE``) as {step: {param: value}};
    ``none``/``null`` is None."""
    steps: dict[str, dict[str, Any]] = {}
    i = 0
    while i < len(extra):
        m = _STEP_OPTION.match(extra[i])
        if not m:
            parser.error(f"unrecognized argument {extra[i]!r}")
        value = m["value"]
        if value is None:
            if i + 1 >= len(extra):
                parser.error(f"{extra[i]} needs a value")
            i += 1
            value = extra[i]
        steps.setdefault(m["step"], {})[m["param"]] = None if value.strip().lower() in ("none", "null") else value
        i += 1
    return steps


def build_parser(command: LocalCommand) -> argparse.ArgumentParser:
    pipeline = command.pipeline
    p = argparse.ArgumentParser(
        prog=f"dms run {pipeline.name}", description=f"{pipeline.title} on local files, with no services.",
        epilog=f"steps: {', '.join(pipeline.step_names)}. Step parameters: --steps.<step>.<param>=VALUE "
               "(e.g. --steps.jump.rejection_threshold=5, --steps.<step>.skip=true).")
    p.add_argument("files", nargs="+", help=command.inputs)
    p.add_argument("--output-dir", "--out", dest="output_dir", default=".", help="where to write the products")
    p.add_argument("--ref", action="append", default=[], metavar="TYPE=PATH",
                   help="use this reference file for a type; repeatable")
    p.add_argument("--refs-dir", default=None,
                   help="choose the other references from the FITS files in this directory, by the archive's rules")
    p.add_argument("--skip", action="append", default=[], metavar="STEP", help="skip a step; repeatable")
    _add_model_options(p, pipeline.options, "pipeline_")
    _add_model_options(p, command.options, "command_")
    return p


def run_command(command: LocalCommand, argv: Sequence[str]) -> int:
    """Parse ``argv``, run the pipeline on every input, write the products; 0 on success,
    2 (with the reason on stderr) for bad input."""
    parser = build_parser(command)
    args, extra = parser.parse_known_args(list(argv))
    pipeline = command.pipeline
    try:
        params = pipeline.params(skip=args.skip, steps=_parse_step_options(extra, parser),
                                 **_model_values(args, pipeline.options, "pipeline_"))
        options = command.options.model_validate(_model_values(args, command.options, "command_"))
        if args.refs_dir and not Path(args.refs_dir).is_dir():
            raise FileNotFoundError(f"--refs-dir {args.refs_dir}: no such directory")
        overrides = parse_ref_overrides(args.ref, pipeline.all_reftypes, pipeline.name)
        provider = AnnouncingReferences(LocalReferences(overrides, Path(args.refs_dir) if args.refs_dir else None))
        output_dir = Path(args.output_dir)
        for f in args.files:
            t0 = time.perf_counter()
            print(f"{f}:")
            created = datetime.now(UTC).isoformat(timespec="seconds")
            for result in command.run(Path(f), params, provider, created, options):
                if result.label != Path(f).name:  # one of several products of an association
                    print(f"  {result.label}")
                for step, status in result.record.statuses.items():
                    print(f"  {step:<18} {status}")
                for note in result.record.notes:
                    print(f"  note: {note}")
                for out in result.outputs:
                    print(f"  wrote {write_output(output_dir / out.filename, out.content)}")
            print(f"  done in {time.perf_counter() - t0:.1f} s")
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
