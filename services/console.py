"""What the command line shares between commands: a context to run work in (in-process
when embedded, Celery otherwise), delivering files, progress lines on the terminal, and the
impact list of a reference context."""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

from services.registry import embedded_context
from shared.catalog.db import dispatch_on_commit
from shared.config import Settings
from shared.runtime import InlineTransport, Outcome, ServiceContext, dispatch_events

__all__ = ["context_for", "expand_paths", "ingest_paths", "print_impact", "print_progress", "task_progress"]


def context_for(settings: Settings) -> tuple[ServiceContext, InlineTransport | None]:
    """Context for commands that produce work: in-process transport when embedded."""
    if settings.embedded:
        return embedded_context(settings)
    from shared.celery_app import CeleryTransport, create_app

    ctx = ServiceContext.from_settings(settings, transport=CeleryTransport(create_app(settings)))
    ctx.catalog.upgrade()
    return ctx, None


def print_progress(stage: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    end = "\n" if done >= total else ""
    print(f"\r  {stage:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, flush=True)


def task_progress(task: str, outcome: Outcome) -> None:
    mark = {"ok": "ok", "failed": "FAILED", "retry": "retry"}[outcome.status]
    extra = f": {outcome.error}" if outcome.error else (f" ({outcome.note})" if outcome.note else "")
    print(f"  {task:<22} {mark}{extra}", flush=True)


def expand_paths(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and (q.suffix == ".ccsds" or q.name.endswith(("_plan.json", "_ephem.json")))))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return out


def ingest_paths(ctx: ServiceContext, inline: InlineTransport | None, paths: list[Path], *,
                 requeue: bool = False) -> list:
    """Deliver files and process them; the list of :class:`services.ingest.receive.Received`.
    Files refused at delivery (plans that do not validate) are named on stderr. Each
    arrival is sent to the workers as soon as it is recorded, while the next file is still
    being stored, not when every file has been."""
    from services.ingest.receive import receive_files

    sent = 0

    def send(ids) -> None:
        nonlocal sent
        sent += dispatch_events(ctx.catalog, ctx.transport, event_ids=ids)

    with dispatch_on_commit(send) if ctx.transport is not None else nullcontext():
        received = receive_files(ctx, paths, requeue=requeue)
    plans = sum(1 for r in received if r.kind == "plan")
    ephemerides = sum(1 for r in received if r.kind == "ephemeris")
    telemetry = sum(1 for r in received if r.kind == "telemetry")
    announced = [r.event_id for r in received if r.event_id]
    arrivals = sum(1 for r in received if r.event_id and r.kind not in ("plan", "ephemeris"))
    also = f", {ephemerides} ephemeris file(s)" if ephemerides else ""
    others = {kind: sum(1 for r in received if r.kind == kind) for kind in ("msa", "opd")}
    extra = "".join(f", {n} {'MSA metadata' if kind == 'msa' else 'wavefront OPD'} file(s)"
                    for kind, n in others.items() if n)
    print(f"delivered {plans} plan(s){also} and {telemetry} telemetry file(s){extra} to dms-raw; "
          f"{arrivals} new arrival event(s)")
    for r in received:
        if r.rejection:
            print(f"REJECTED {r.path.name} (kept at {r.stored.uri}): {r.rejection}", file=sys.stderr)
    sent += dispatch_events(ctx.catalog, ctx.transport, event_ids=announced)  # any a send missed then
    if inline is not None:
        inline.run_until_idle(progress=task_progress)
    else:
        print(f"queued {sent} event(s) for the workers; follow with `dms status`")
    return received


def print_impact(rows, context: str | None) -> None:
    """The exposures a context would calibrate differently (``shared.refdata.list_impact``),
    one line per reference that differs."""
    if not rows:
        print(f"{context or 'the current context'}: no archived exposure would be calibrated with other files")
        return
    print(f"{rows[0].context}: {len(rows)} archived exposure(s) would be calibrated with other files")
    print(f"{'EXPOSURE':<34} {'PROGRAM':<7}  {'FIRST':<9}  REFERENCE  OLD -> NEW")
    for r in rows:
        for i, ref in enumerate(r.references):
            lead = f"{r.exposure:<34} {r.program:<7}  {r.first_stage:<9}" if i == 0 else " " * 53
            print(f"{lead}  {ref['reftype']:<9}  {ref['old']} -> {ref['new'] or 'none'} "
                  f"({ref['stage']}, {ref['policy']})")
    requests = Counter(r.request_id for r in rows if r.request_id)
    for request, count in requests.items():
        print(f"reprocessing request {request} for {count} of them")
