"""``dms associations <program> [--discover] [--report FILE]``: the pool, the candidates
and every association with its state (emitted, ready, or waiting for which members); with
``--report``, also the association report (HTML) of that state written to FILE.

Read-only: it evaluates the rules over the catalog and the plan as the handler would and
compares with what was last emitted; nothing is archived.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select

from services.associations.builder import (
    AssociationParams,
    Evaluation,
    PlannedAsn,
    evaluate,
    spec_key,
)
from services.associations.records import exposure_starts, last_emitted, made_from_associations
from services.associations.report import render_report, report_input
from services.associations.state import load_state
from shared.catalog.models import Association
from shared.config import get_settings
from shared.plan import load_latest_plan
from shared.runtime import ServiceContext

__all__ = ["cmd_associations", "describe_program", "register_commands", "report_html"]

_SHOWN = 4  # member names listed per waiting association


def _names(names: tuple[str, ...]) -> str:
    more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _status(item: PlannedAsn, last: Association | None) -> str:
    spec = item.spec
    if not spec.complete:
        return f"waiting for {len(spec.waiting)} of {len(spec.expected)} members: {_names(spec.waiting)}"
    if last is not None and last.filename and last.members == spec.signature:
        text = f"emitted {last.filename} ({len(spec.members)} members)"
    else:
        text = f"complete, not emitted yet: {item.filename} ({len(spec.members)} members)"
    if spec.optional_waiting:
        text += f"; background not archived yet: {_names(spec.optional_waiting)}"
    return text


def format_evaluation(evaluation: Evaluation, rows: dict[tuple[str, str, str], Association]) -> str:
    lines = []
    pool = evaluation.pool
    if pool is None:
        lines.append(f"program {evaluation.program}: no exposure archived yet, no pool")
    else:
        lines.append(f"program {evaluation.program}: pool {pool.filename} ({len(pool.rows)} exposures)")
    lines.append("candidates:")
    for c in evaluation.candidates:
        obs = ", ".join(f"{n:03d}" for n in c.observations)
        lines.append(f"  {c.acid:<6} {c.type:<12} observations {obs}")
    lines.append("associations:")
    for item in evaluation.associations:
        spec = item.spec
        lines.append(f"  {spec.acid:<6} {spec.asn_type:<10} {spec.name}")
        lines.append(f"         {_status(item, rows.get(spec_key(spec)))}")
    done = sum(1 for a in evaluation.associations if a.spec.complete)
    lines.append(f"{done} of {len(evaluation.associations)} associations complete")
    return "\n".join(lines)


def describe_program(ctx: ServiceContext, program: str, discover: bool = False) -> str:
    """The text ``dms associations`` prints. Raises LookupError when the program has no plan."""
    plan = load_latest_plan(ctx.store, program)
    if plan is None:
        raise LookupError(f"program {program} has no delivered plan")
    with ctx.catalog.session() as s:
        state = load_state(s, program)
        rows = {(r.acid, r.asn_type, r.product_name): r
                for r in s.scalars(select(Association).where(Association.program_id == program))}
    return format_evaluation(evaluate(plan, state, AssociationParams(discover=discover)), rows)


def report_html(ctx: ServiceContext, program: str, discover: bool = False) -> str:
    """The association report of the program's current state, as the handler archives it.
    Raises LookupError when the program has no plan."""
    plan = load_latest_plan(ctx.store, program)
    if plan is None:
        raise LookupError(f"program {program} has no delivered plan")
    with ctx.catalog.session() as s:
        state = load_state(s, program)
        emitted = {key: (e.filename, e.signature) for key, e in last_emitted(s, program).items()}
        made = made_from_associations(s, program)
        starts = exposure_starts(s, program)
    evaluation = evaluate(plan, state, AssociationParams(discover=discover))
    return render_report(report_input(plan, evaluation, emitted, made, starts))


def cmd_associations(args: argparse.Namespace) -> int:
    settings = get_settings()
    program = args.program.zfill(5)
    if not program.isdigit() or len(program) != 5:
        print(f"error: {args.program!r} is not a program number (up to five digits)", file=sys.stderr)
        return 2
    ctx = ServiceContext.from_settings(settings)
    ctx.catalog.upgrade()
    discover = args.discover or settings.discover_associations
    try:
        print(describe_program(ctx, program, discover))
        if args.report is not None:
            args.report.write_text(report_html(ctx, program, discover), encoding="utf-8")
            print(f"report written to {args.report}")
    except (LookupError, ValidationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        ctx.catalog.dispose()
    return 0


def register_commands(sub) -> None:
    """Add ``associations`` to the ``dms`` sub-commands."""
    s = sub.add_parser("associations", help="a program's pool, candidates and associations, and what they wait for")
    s.add_argument("program", help="program number, e.g. 01234")
    s.add_argument("--discover", action="store_true", help="also show discovered (a3NNN) candidates")
    s.add_argument("--report", type=Path, metavar="FILE",
                   help="also write the association report (HTML) of the current state to FILE")
    s.set_defaults(func=cmd_associations)
