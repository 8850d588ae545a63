"""``dms access``: a program's exclusive access and its dated changes (shared.access,
docs/archive-api.md "Exclusive access"), and the audit of operators' reads.

    dms access show PROGRAM
    dms access waive PROGRAM --reason TEXT [--from DATE]
    dms access extend PROGRAM --months N --reason TEXT
    dms access embargo PROGRAM --reason TEXT
    dms access lift PROGRAM --reason TEXT
    dms access reads [--program P] [--user U] [--limit N]

The command line is the operators' console: its changes are an operator's (``--by``,
default the login name). A change re-computes the release dates of the program's archived
products in one transaction; then the notifier's announcement pass runs
(``announce_releases``: ``dms.data.public`` once per product revision whose data became
public) and, embedded, delivers to the subscribers here. Part of the command line (the
composition root).
"""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime

__all__ = ["register_commands"]

_KINDS = {"waive": "waiver", "extend": "extension", "embargo": "embargo", "lift": "lift"}


def _program(value: str) -> str:
    program = value.strip().zfill(5)
    if not program.isdigit() or len(program) != 5 or int(program) == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a program number (1 to 99999)")
    return program


def _date(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD[THH:MM:SS], UTC)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value is not None else "-"


def _show(session, program_id: str, now: datetime) -> str:
    from sqlalchemy import func, select

    from shared.access import default_eap_months
    from shared.catalog import AccessChange, Product, Program

    program = session.get(Program, program_id)
    if program is None:
        raise LookupError(f"no program {program_id}")
    exclusive, due = session.execute(
        select(func.count(Product.id), func.min(Product.data_release))
        .where(Product.program_id == program.id, Product.is_current, Product.data_release > now)).one()
    lines = [f"program {program.id} ({program.category}): {program.eap_months} month(s) of exclusive access "
             f"(category default {default_eap_months(program.category)})"
             + (", UNDER EMBARGO (operators only)" if program.embargoed else ""),
             f"  {exclusive} current product(s) exclusive" + (f", next release {_when(due)}" if due else "")]
    changes = session.scalars(select(AccessChange).where(AccessChange.program_id == program.id)
                              .order_by(AccessChange.effective_at, AccessChange.id)).all()
    for c in changes:
        months = f" +{c.months} month(s)" if c.months else ""
        lines.append(f"  {c.kind}{months} from {_when(c.effective_at)} by {c.requested_by}: {c.reason} "
                     f"({c.moved} release date(s) moved)")
    return "\n".join(lines)


def cmd_access(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from services.console import context_for, task_progress
    from services.notifier.scheduler import announce_releases
    from shared.access import AccessError, change_access
    from shared.catalog import ExclusiveRead
    from shared.config import get_settings
    from shared.runtime import dispatch_events

    settings = get_settings()
    ctx, inline = context_for(settings)
    now = datetime.now(UTC)
    if args.action == "reads":
        with ctx.catalog.session() as s:
            query = select(ExclusiveRead).order_by(ExclusiveRead.read_at.desc(), ExclusiveRead.id.desc())
            if args.program:
                query = query.where(ExclusiveRead.program_id == args.program)
            if args.user:
                query = query.where(ExclusiveRead.user == args.user)
            rows = s.scalars(query.limit(args.limit)).all()
            for r in rows:
                print(f"{_when(r.read_at)}  {r.user}  {r.program_id}  {r.filename} r{r.revision}  ({r.why})")
            if not rows:
                print("no reads of exclusive data recorded")
        return 0
    if args.action == "show":
        with ctx.catalog.session() as s:
            try:
                print(_show(s, args.program, now))
            except LookupError as exc:
                print(f"error: {exc}")
                return 2
        return 0
    by = args.by or getpass.getuser()
    try:
        with ctx.catalog.session() as s:
            change = change_access(s, args.program, _KINDS[args.action],
                                   requested_by=by, reason=args.reason, operators=frozenset({by}),
                                   months=getattr(args, "months", None), effective_at=getattr(args, "start", None),
                                   now=now)
            moved = change.moved
    except (AccessError, LookupError, PermissionError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"{args.action}: program {args.program}, {moved} release date(s) moved")
    announced = announce_releases(ctx, datetime.now(UTC))
    if announced:
        print(f"{len(announced)} product revision(s) announced public")
        dispatch_events(ctx.catalog, ctx.transport, event_ids=announced)
        if inline is not None:
            inline.run_until_idle(progress=task_progress)
    with ctx.catalog.session() as s:
        print(_show(s, args.program, datetime.now(UTC)))
    return 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser("access", help="exclusive access: show, waive, extend, embargo, lift, reads",
                              description="A program's exclusive access and its dated changes.")
    actions = s.add_subparsers(dest="action", required=True)
    r = actions.add_parser("show", help="the program's period, embargo, changes and what is still exclusive")
    r.add_argument("program", type=_program)
    for name, help_ in (("waive", "no exclusive access from a date (default now)"),
                        ("extend", "add months to the releases still due"),
                        ("embargo", "data and previews readable by operators only"),
                        ("lift", "lift the embargo")):
        r = actions.add_parser(name, help=help_)
        r.add_argument("program", type=_program, help="program number, e.g. 1234 or 01234")
        r.add_argument("--reason", required=True, help="why; kept with the change")
        r.add_argument("--by", default=None, help="who makes the change (default: the login name)")
        if name == "waive":
            r.add_argument("--from", dest="start", type=_date, default=None, metavar="DATE",
                           help="from when (ISO date or time, UTC; default now)")
        if name == "extend":
            r.add_argument("--months", type=int, required=True, help="months added (1 to 24)")
    r = actions.add_parser("reads", help="operators' reads of exclusive or embargoed data, newest first")
    r.add_argument("--program", type=_program, default=None)
    r.add_argument("--user", default=None, help="only this operator's reads")
    r.add_argument("--limit", type=int, default=50)
    s.set_defaults(func=cmd_access)
