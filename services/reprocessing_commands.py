"""``dms reprocess``: submit, follow, cancel and report reprocessing requests
(shared.reprocessing, docs/reprocessing.md).

    dms reprocess submit PROGRAM --from STAGE --reason TEXT [scope] [--context CTX] [--software TEXT]
    dms reprocess status [ID] [--program P] [--state S]
    dms reprocess cancel ID
    dms reprocess report ID

Embedded (no ``DMS_BROKER_URL``), ``submit`` runs the request to its end in this process
and prints each task as it ends; with a broker it records the request, hands its first
steps to the broker and returns (the stages' ``<service>-reprocess`` workers run them).
Part of the command line (the composition root): it runs every service in-process.
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from shared.reprocessing import STAGES

__all__ = ["format_report", "format_request", "format_requests", "register_commands"]

STATES = ("queued", "running", "done", "failed", "cancelled")


def _program(value: str) -> str:
    program = value.strip().zfill(5)
    if not program.isdigit() or len(program) != 5 or int(program) == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a program number (1 to 99999)")
    return program


def _observation(value: str) -> int:
    if not value.strip().isdigit() or not 1 <= int(value) <= 999:
        raise argparse.ArgumentTypeError(f"{value!r} is not an observation number (1 to 999)")
    return int(value)


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else "-"


def format_request(view: dict[str, Any]) -> str:
    """One request, its progress and its units, as ``dms reprocess status ID`` prints it."""
    p = view["progress"]
    eta = f", about {p['eta_seconds']:.0f} s left" if p["eta_seconds"] is not None else ""
    scope = "; ".join(f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                      for k, v in (view["scope"] or {}).items() if v)
    lines = [
        f"request {view['id']}: {view['state']}",
        f"  program {view['program']}, from {view['from_stage']} with {view['reference_context']}, "
        f"scope: {scope or 'the whole program'}",
        f"  reason: {view['reason']}" + (f" (software: {view['software_reason']})" if view["software_reason"] else ""),
        f"  requested by {view['requested_by'] or '-'} ({view['origin']}) at {_when(view['created_at'])} UTC"
        + (f", ended {_when(view['finished_at'])} UTC" if view["finished_at"] else ""),
        f"  progress: {p['done']} of {p['units']} unit(s) done, {p['failed']} failed{eta}",
    ]
    if view["error"]:
        lines.append(f"  error: {view['error']}")
    lines.append(f"  {'kind':<12} {'unit':<52} {'stage':<10} {'state':<10} revisions")
    for u in view["units"]:
        lines.append(f"  {u['kind']:<12} {u['name']:<52} {u['stage']:<10} {u['state']:<10} {len(u['products'])}")
        if u["error"]:
            lines.append(f"      error: {u['error']}")
    return "\n".join(lines)


def format_requests(views: list[dict[str, Any]]) -> str:
    """Requests, one line each, as ``dms reprocess status`` prints them."""
    if not views:
        return "no reprocessing requests"
    lines = [f"{'id':<36}  {'program':<7}  {'from':<9}  {'state':<9}  {'units':>7}  {'created (UTC)':<19}  reason"]
    for v in views:
        p = v["progress"]
        reason = v["reason"] if len(v["reason"]) <= 40 else v["reason"][:39] + "…"
        lines.append(f"{v['id']:<36}  {v['program']:<7}  {v['from_stage']:<9}  {v['state']:<9}  "
                     f"{p['done']:>3}/{p['units']:<3}  {_when(v['created_at']):<19}  {reason}")
    return "\n".join(lines)


def format_report(rep: dict[str, Any]) -> str:
    """Per product the request made: revision, the one it replaces, state and what changed."""
    lines = [f"request {rep['id']}: {rep['state']}, program {rep['program']}, from {rep['from_stage']} "
             f"with {rep['reference_context']}", f"  reason: {rep['reason']}"]
    products = rep["products"]
    if not products:
        lines.append("  no revision made (yet)")
        return "\n".join(lines)
    width = max(len(p["filename"]) for p in products)
    lines.append(f"  {'product':<{width}}  {'rev':>3}  {'replaces':>8}  {'state':<10}  changes")
    for p in products:
        replaces = f"r{p['replaces']}" if p["replaces"] is not None else "new"
        lines.append(f"  {p['filename']:<{width}}  {p['revision']:>3}  {replaces:>8}  {p['state']:<10}  "
                     f"{p['summary'] or 'not compared'}")
    return "\n".join(lines)


def cmd_reprocess(args: argparse.Namespace) -> int:
    from services.console import context_for, task_progress
    from shared.config import get_settings
    from shared.reprocessing import Scope, cancel, list_requests, report, request_view, submit
    from shared.runtime import dispatch_events

    settings = get_settings()
    ctx, inline = context_for(settings)
    if args.action == "submit":
        scope = Scope(tuple(args.observation), tuple(args.exposure), tuple(args.product), args.association)
        view, new, ids = submit(ctx, program=args.program, scope=scope, from_stage=args.from_stage,
                                reference_context=args.context, reason=args.reason, software_reason=args.software,
                                requested_by=getpass.getuser(), origin="operator")
        print(f"{'submitted' if new else 'already requested'}: request {view['id']} "
              f"({len(view['units'])} unit(s), {view['state']})")
        dispatch_events(ctx.catalog, ctx.transport, event_ids=ids)
        if inline is None:
            print(f"queued for the reprocessing workers; follow with `dms reprocess status {view['id']}`")
            return 0
        inline.run_until_idle(progress=task_progress)
        with ctx.catalog.session() as s:
            view = request_view(s, view["id"])
        print(format_request(view))
        return 1 if view["state"] == "failed" else 0
    if args.action == "cancel":
        view, ids = cancel(ctx, args.id)
        dispatch_events(ctx.catalog, ctx.transport, event_ids=ids)
        if inline is not None:
            inline.run_until_idle(progress=task_progress)
        print(format_request(view))
        return 0
    with ctx.catalog.session() as s:
        if args.action == "report":
            print(format_report(report(s, args.id)))
        elif args.id is not None:
            print(format_request(request_view(s, args.id)))
        else:
            print(format_requests(list_requests(s, program=args.program, state=args.state, limit=args.limit)))
    return 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser("reprocess", help="reprocessing requests: submit, status, cancel, report",
                              description="Make a program's products again (docs/reprocessing.md).")
    actions = s.add_subparsers(dest="action", required=True)
    r = actions.add_parser("submit", help="request reprocessing (embedded: run it to the end here)")
    r.add_argument("program", type=_program, help="program number, e.g. 1234 or 01234")
    r.add_argument("--observation", type=_observation, action="append", default=[], metavar="N",
                   help="an observation number (repeat for more)")
    r.add_argument("--exposure", action="append", default=[], metavar="NAME",
                   help="an exposure, e.g. jw01234001001_01101_00001_nrca1 (repeat for more)")
    r.add_argument("--product", action="append", default=[], metavar="FILE",
                   help="a current product's file name; what makes it is remade (repeat for more)")
    r.add_argument("--association", default=None, metavar="ASN", help="an association file name (..._asn.json)")
    r.add_argument("--from", dest="from_stage", required=True, choices=STAGES, help="the first stage to run again")
    r.add_argument("--context", default=None, help="reference context, e.g. dms_0002.ctx (default: the newest)")
    r.add_argument("--reason", required=True, help="why; kept with every new revision and sent to subscribers")
    r.add_argument("--software", default=None, metavar="TEXT", help="a software change that motivates it")
    r = actions.add_parser("status", help="one request with its units, or the list of requests")
    r.add_argument("id", nargs="?", default=None, help="a request id (none: list the requests)")
    r.add_argument("--program", type=_program, default=None, help="list this program's requests only")
    r.add_argument("--state", choices=STATES, default=None, help="list requests in this state only")
    r.add_argument("--limit", type=int, default=50, help="list at most this many, newest first")
    r = actions.add_parser("cancel", help="cancel a request (complete units stay current)")
    r.add_argument("id")
    r = actions.add_parser("report", help="per product a request made: revision, replaces, state, changes")
    r.add_argument("id")
    s.set_defaults(func=cmd_reprocess)
