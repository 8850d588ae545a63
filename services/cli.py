"""``dms``: the command line of jwst-dms.

    dms simulate DESCRIPTION --out DIR      write plan, telemetry, truth and reference files
    dms ingest PATH...                       deliver plans and telemetry; process them
    dms refs deliver|list|contexts|best|impact   reference files, contexts, selection and
                                             what a context changes for archived exposures
    dms run detector1 FILE...                calibrate local files without services
    dms run guider FILE...                   calwebb_guider on local guide-star products
    dms run image2 ASN|FILE_rate.fits        calwebb_image2 on local files
    dms run image3|tso3 ASN                  calwebb_image3 / calwebb_tso3 on an association's files
    dms associations PROGRAM                 the pool and associations, and what they wait for
    dms preview FILE...                      render previews of local files
    dms subscribe | subscriptions | unsubscribe | notify     notifications
    dms serve archive | token ...            the HTTP API and its tokens
    dms reprocess submit|status|cancel|report    reprocessing requests
    dms worker QUEUE                         run a Celery worker for one service (or its reprocessing queue)
    dms status                               dependencies, backlog, reprocessing requests, work by state
                                             and age, products, rejections, dead letters (exit 1 when a
                                             dependency is down)
    dms demo                                 simulate the demo observation and run it to the end
    dms reconcile [--loop]                   re-dispatch events and work left pending, lost or expired
    dms db upgrade                           bring the catalog schema up to date
    dms storage init                         create the buckets

With no DMS_BROKER_URL every task runs in this process (the embedded default).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from importlib import import_module
from pathlib import Path

from services.registry import SERVICES, handlers_for

__all__ = ["RUN_PIPELINES", "SERVICE_COMMANDS", "build_parser", "main"]

log = logging.getLogger("dms")

# Building the parser imports nothing but the standard library and the registry's table:
# `dms --help` answers at once, and `dms worker SERVICE` loads that service only. A
# command's implementation is imported when the command runs.

# Commands a service (or the composition root) defines: "module:function" of what adds them
# to a sub-parsers object (the service's register_commands), and the one-line help of
# `dms --help`. The module is imported, and its parser built, only when one of its
# commands runs.
SERVICE_COMMANDS: dict[str, tuple[str, str]] = {
    "preview": ("services.preview.commands:register_commands",
                "render product files (FITS or ECSV) to a PNG preview and a JPEG thumbnail"),
    "subscribe": ("services.cli:register_notifier_commands", "subscribe to notifications (webhook or e-mail)"),
    "subscriptions": ("services.cli:register_notifier_commands", "list subscriptions"),
    "unsubscribe": ("services.cli:register_notifier_commands", "deactivate a subscription"),
    "notify": ("services.cli:register_notifier_commands", "announce releases, send due digests and retries"),
    "serve": ("services.archive.commands:register_commands", "run an HTTP service: the archive API"),
    "token": ("services.archive.commands:register_commands", "API tokens of the archive"),
    "associations": ("services.associations.commands:register_commands",
                     "a program's pool, candidates and associations, and what they wait for"),
    "access": ("services.access_commands:register_commands",
               "exclusive access: show, waive, extend, embargo, lift; operators' reads of exclusive data"),
    "reprocess": ("services.reprocessing_commands:register_commands",
                  "reprocessing requests: submit (embedded: run it here), status, cancel, report"),
}

# `dms run PIPELINE ARGS...`: "module:attribute" of the pipeline's LocalCommand
# (shared.runlocal), imported when the pipeline runs, and the one-line help.
RUN_PIPELINES: dict[str, tuple[str, str]] = {
    "detector1": ("services.detector1.commands:COMMAND", "calwebb_detector1 (calwebb_dark for darks) on _uncal files"),
    "guider": ("services.detector1.commands:GUIDER_COMMAND", "calwebb_guider on guide-star _uncal files"),
    "image2": ("services.stage2.commands:COMMAND", "calwebb_image2 on _rate/_rateints files or Level-2 associations"),
    "spec2": ("services.stage2.commands:SPEC2_COMMAND", "calwebb_spec2 on slit and slitless _rate/_rateints files or spec2 and tso-spec2 associations"),
    "image3": ("services.stage3.commands:IMAGE3_COMMAND", "calwebb_image3 on a Level-3 association"),
    "tso3": ("services.stage3.commands:TSO3_COMMAND", "calwebb_tso3 on a time-series association (imaging or spectroscopic)"),
    "spec3": ("services.stage3.commands:SPEC3_COMMAND", "calwebb_spec3 on a slit spectroscopy association (MIRI LRS, NIRSpec fixed slits and MOS) or a wide-field slitless one (NIRISS, NIRCam)"),
}

# Errors in what the user gave us: reported as one message, exit status 2, no traceback.
# Named by module, so that none is imported to be caught (an error of a module that was
# never imported cannot have been raised).
USER_ERRORS = (
    ("services.ingest.receive", "BadPlanError"),
    ("services.simulator.description", "DescriptionError"),
    ("shared.errors", "ConfigurationError"),
    ("shared.refdata.errors", "RefDataError"),
    ("shared.reprocessing", "RequestError"),
    ("builtins", "FileNotFoundError"),
)

LEVEL_NAMES = {0: "raw", 1: "uncal, guide star", 2: "calibrated", 3: "combined"}


def _resolve(target: str):
    """The object named by ``"module:attribute"``, importing its module."""
    module, _, attribute = target.partition(":")
    return getattr(import_module(module), attribute)


def _is_user_error(exc: BaseException) -> bool:
    classes = [getattr(sys.modules[m], name) for m, name in USER_ERRORS if m in sys.modules]
    return isinstance(exc, tuple(classes))


# ---------------------------------------------------------------- simulate / ingest


def cmd_simulate(args: argparse.Namespace) -> int:
    from services.console import print_progress
    from services.simulator import simulate

    t0 = time.perf_counter()
    result = simulate(args.description, Path(args.out), seed=args.seed, progress=print_progress)
    print(f"plan:      {result.plan_path}")
    print(f"ephemeris: {result.ephemeris_path}")
    print(f"telemetry: {len(result.telemetry_paths)} files in {result.telemetry_paths[0].parent if result.telemetry_paths else '-'}")
    print(f"guiding:   {len(result.guide_paths)} files (guide-star acquisition of each guided visit)")
    print(f"truth:     {result.truth_dir}")
    print(f"refs:      {len(result.reference_paths)} reference files")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from services.console import context_for, expand_paths, ingest_paths
    from shared.config import get_settings

    paths = expand_paths(args.paths)  # a path that is not there is refused before the system starts
    settings = get_settings()
    ctx, inline = context_for(settings)
    received = ingest_paths(ctx, inline, paths, requeue=args.requeue)
    return 2 if any(r.rejection for r in received) else 0


# ---------------------------------------------------------------- worker / reconcile / db


def cmd_worker(args: argparse.Namespace) -> int:
    from shared.celery_app import create_app, limit_malloc_arenas, register_handlers
    from shared.config import get_settings
    from shared.routing import service_of_queue

    try:
        service = service_of_queue(args.queue)
    except ValueError as exc:
        print(f"dms worker: {exc}", file=sys.stderr)
        return 2
    settings = get_settings()
    limit_malloc_arenas(settings.worker_malloc_arenas)
    handlers = handlers_for(service)
    app = create_app(settings)
    register_handlers(app, settings, handlers)
    argv = ["worker", "-Q", args.queue, "-n", f"{args.queue}@%h", "--concurrency", str(args.concurrency),
            "--loglevel", args.loglevel, "--without-gossip", "--without-mingle"]
    app.worker_main(argv)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from services.console import context_for, task_progress
    from services.stage3.work import sweep_work
    from shared.config import get_settings
    from shared.errors import is_retriable
    from shared.runtime import reconcile

    settings = get_settings()
    ctx, inline = context_for(settings)
    while True:
        try:
            done = reconcile(ctx.catalog, ctx.transport, 0 if args.now else settings.reconcile_after_seconds,
                             start_timeout_seconds=settings.work_start_timeout_seconds,
                             max_attempts=settings.work_max_attempts)
        except Exception as exc:
            # The catalog or the broker dropped out mid-sweep: the sweep's changes rolled
            # back, and the next sweep does them again. A loop keeps going.
            if not (args.loop and is_retriable(exc)):
                raise
            log.warning("reconcile: sweep interrupted (%s: %s); trying again in %s s", type(exc).__name__,
                        str(exc).splitlines()[0], args.interval)
            time.sleep(args.interval)
            continue
        if done:
            print(f"dispatched {done.events} pending event(s); sent {done.resent} task(s) again "
                  f"({done.expired} lease(s) expired); failed {done.failed} task(s)", flush=True)
        try:
            swept = sweep_work(ctx, settings.work_retention_seconds)
        except Exception as exc:  # the store or the catalog is away: the next sweep does it
            log.warning("reconcile: dms-work not swept (%s: %s)", type(exc).__name__, str(exc).splitlines()[0])
            swept = []
        if swept:
            print(f"removed the intermediates of {len(swept)} finished or abandoned split run(s)", flush=True)
        if inline is not None:
            inline.run_until_idle(progress=task_progress)
        if not args.loop:
            return 0
        time.sleep(args.interval)


def cmd_db(args: argparse.Namespace) -> int:
    from shared.catalog import upgrade
    from shared.config import get_settings

    settings = get_settings()
    upgrade(settings.resolved_catalog_url)
    print(f"catalog at {settings.resolved_catalog_url.split('@')[-1]} is up to date")
    return 0


def cmd_storage(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from shared.storage import BUCKETS, open_store

    open_store(get_settings()).ensure_buckets()
    print(f"buckets ready: {', '.join(BUCKETS)}")
    return 0


# ---------------------------------------------------------------- reference data


def cmd_refs(args: argparse.Namespace) -> int:
    from services.console import context_for, print_impact, task_progress
    from shared.config import get_settings
    from shared.refdata import deliver as deliver_references
    from shared.refdata import explain, exposure_header, list_contexts, list_impact, list_references
    from shared.refdata.rules import format_time

    ctx, inline = context_for(get_settings())
    if args.action == "deliver":
        d = deliver_references(ctx, args.files, note=args.note)
        if inline is not None:
            inline.run_until_idle(progress=task_progress)
        if d.created:
            print(f"{d.context_name}: {len(d.added)} new file(s), {len(d.replaced)} replaced"
                  f" (parent {d.parent or 'none'})")
            for name in d.replaced:
                print(f"  replaced {name}")
            if d.impact is not None:
                print(f"impact: {d.impact.exposures} archived exposure(s) would be calibrated with other files"
                      + (f"; see dms refs impact {d.context_name}" if d.impact.exposures else ""))
                for c in d.impact.counts:
                    print(f"  program {c.program}: {c.exposures} from {c.first_stage} ({c.policy})")
            for request in d.requests:
                print(f"reprocessing request {request} opened")
        else:
            print(f"nothing new: all {len(d.files)} file(s) are already in {d.context_name}")
        return 0
    with ctx.catalog.session() as s:
        if args.action == "list":
            rows = list_references(s, args.context, args.reftype, args.instrument)
            for r in rows:
                print(f"{r.instrument:<8} {r.reftype:<11} {format_time(r.useafter)}  "
                      f"{r.describe_selectors():<52} {r.filename}")
            print(f"{len(rows)} file(s)")
        elif args.action == "contexts":
            for c in list_contexts(s):
                print(f"{c.name}  {c.created_at:%Y-%m-%d %H:%M:%S}  {c.files:>4} files  "
                      f"+{len(c.added)} -{len(c.removed)}  {c.note}")
        elif args.action == "impact":
            print_impact(list_impact(s, args.context), args.context)
        else:
            header = exposure_header(s, args.source)
            print(explain(s, header, reference_steps(header), args.context))
    return 0


def add_refs_parser(sub) -> None:
    s = sub.add_parser("refs", help="calibration reference files and contexts")
    refs = s.add_subparsers(dest="action", required=True)
    r = refs.add_parser("deliver", help="validate and store reference files; make the next context")
    r.add_argument("files", nargs="+", help="reference files (FITS or ASDF) or directories of them")
    r.add_argument("--note", default="", help="why (kept with the new context)")
    r = refs.add_parser("list", help="reference files of a context (default: the current one)")
    r.add_argument("--context", default=None, help="e.g. dms_0003.ctx or 3")
    r.add_argument("--reftype", default=None)
    r.add_argument("--instrument", default=None)
    refs.add_parser("contexts", help="every context with what it added and removed")
    r = refs.add_parser("impact", help="archived exposures a context would calibrate with other files "
                                       "(recorded when it was delivered), and the reprocessing it opened")
    r.add_argument("context", nargs="?", default=None, help="e.g. dms_0003.ctx or 3 (default: the current one)")
    r = refs.add_parser("best", help="which reference each step of every pipeline would use, and why")
    r.add_argument("source", help="an _uncal FITS file, or a stored product filename or exposure name")
    r.add_argument("--context", default=None)
    s.set_defaults(func=cmd_refs)


# ---------------------------------------------------------------- status


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def cmd_status(args: argparse.Namespace) -> int:
    """Dependencies, backlog, reprocessing requests, work per task and state, products,
    rejections, dead letters. Never a traceback: a dependency that is down is named, and
    what the others can tell is still shown; the exit status is then 1."""
    from datetime import UTC, datetime

    from shared.catalog import Catalog
    from shared.config import get_settings
    from shared.health import check_broker, check_catalog, check_store, queue_depths
    from shared.routing import QUEUES
    from shared.storage import open_store

    if not args.verbose:  # what is down is printed below; no log lines beside it
        logging.getLogger("shared.health").setLevel(logging.ERROR)
    settings = get_settings()
    catalog = Catalog(settings.resolved_catalog_url)
    try:
        catalog.upgrade()  # as every command does (the embedded catalog is created on first use)
    except Exception as exc:
        log.info("catalog schema not upgraded: %s", exc)
    health = {"catalog": check_catalog(catalog, detail=True)}
    try:
        store = open_store(settings)
        store.ensure_buckets()
        health["store"] = check_store(store, detail=True)
    except Exception as exc:  # a store that cannot be opened or does not answer
        health["store"] = f"unreachable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    broker = check_broker(settings, detail=True)
    health["broker"] = broker if broker is not None else (
        "none (embedded: tasks run in-process)" if settings.embedded else "not probed (not Redis)")
    down = [name for name, state in health.items() if state.startswith("unreachable")]
    print("dependencies")
    for name, state in health.items():
        print(f"  {name:<14} {state}")

    print("backlog (messages in the broker's queues; *-reprocess: reprocessing requests)")
    if health["broker"] == "ok":
        width = max(map(len, QUEUES))
        for q, n in (queue_depths(settings) or {}).items():
            print(f"  {q:<{width}} {n:>6} waiting")
    else:
        print(f"  not available: broker {health['broker']}")

    if health["catalog"] == "ok":
        try:
            with catalog.session() as s:
                _print_catalog_status(s, args.limit, datetime.now(UTC))
        except Exception as exc:  # it went away meanwhile
            health["catalog"] = f"unreachable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            down.append("catalog")
    if "catalog" in down:
        print(f"reprocessing requests, work, products, rejections and dead letters: not available "
              f"(catalog {health['catalog']})")
    catalog.dispose()
    if down:
        print(f"DOWN: {', '.join(dict.fromkeys(down))}")
        return 1
    return 0


def _print_catalog_status(s, limit: int, now) -> None:
    from sqlalchemy import func, select

    from shared.catalog import EventRecord, IngestRejection, TaskFailure, WorkState
    from shared.catalog.queries import product_counts_by_level
    from shared.catalog.work import work_summary

    _print_reprocessing_status(s, now)
    pending = s.scalar(select(func.count()).select_from(EventRecord).where(EventRecord.dispatched_at.is_(None)))
    print(f"outbox: {pending} undispatched event(s)")
    print("work (per task: items by state; age of the oldest pending and running)")
    work = work_summary(s)
    if not work:
        print("  none")
    else:
        tasks = sorted({w.task for w in work})
        print(f"  {'task':<22} {'pending':>8} {'oldest':>8} {'running':>8} {'oldest':>8} {'done':>7} {'failed':>7}")
        for task in tasks:
            row = {w.state: w for w in work if w.task == task}

            def cell(state, row=row):
                w = row.get(state)
                n = w.count if w else 0
                age = _age((now - w.oldest).total_seconds()) if w and w.oldest else "-"
                return n, age

            (np, ap), (nr, ar) = cell(WorkState.PENDING), cell(WorkState.RUNNING)
            print(f"  {task:<22} {np:>8} {ap:>8} {nr:>8} {ar:>8} {cell(WorkState.DONE)[0]:>7} "
                  f"{cell(WorkState.FAILED)[0]:>7}")
    print("products (current revisions)")
    counts = product_counts_by_level(s)
    for level in sorted(counts):
        print(f"  level {level} ({LEVEL_NAMES.get(level, '?')}): {counts[level]}")
    if not counts:
        print("  none")
    rejections = s.scalars(select(IngestRejection).order_by(IngestRejection.created_at.desc()).limit(limit)).all()
    total = s.scalar(select(func.count()).select_from(IngestRejection))
    print(f"rejections: {total}")
    for r in rejections:
        print(f"  {r.created_at:%Y-%m-%d %H:%M:%S}  {r.raw_filename}  {r.reason}: {r.detail}")
    failures = s.scalar(select(func.count()).select_from(TaskFailure))
    print(f"dead-lettered tasks: {failures}")
    for f in s.scalars(select(TaskFailure).order_by(TaskFailure.created_at.desc()).limit(limit)):
        print(f"  {f.created_at:%Y-%m-%d %H:%M:%S}  {f.task}  {f.reason}")


def _print_reprocessing_status(s, now) -> None:
    """Requests by state; the oldest running one with its units done of all."""
    from datetime import datetime

    from shared.catalog import RequestState
    from shared.reprocessing import summary

    requests = summary(s)
    n = requests.by_state
    print(f"reprocessing requests: {n[RequestState.RUNNING]} running, {n[RequestState.QUEUED]} queued "
          f"({n[RequestState.DONE]} done, {n[RequestState.FAILED]} failed, {n[RequestState.CANCELLED]} cancelled)")
    view = requests.oldest_running
    if view is not None:
        progress = view["progress"]
        since = datetime.fromisoformat(view["started_at"] or view["created_at"])
        failed = f", {progress['failed']} failed" if progress["failed"] else ""
        eta = f"; about {_age(progress['eta_seconds'])} to go" if progress["eta_seconds"] is not None else ""
        print(f"  oldest running: {view['id']} (program {view['program']}, from {view['from_stage']}), "
              f"started {_age((now - since).total_seconds())} ago")
        print(f"    units: {progress['done']}/{progress['units']} done{failed}{eta}")


# ---------------------------------------------------------------- commands of services


def register_notifier_commands(subparsers: argparse._SubParsersAction) -> None:
    """The notifier's commands; ``dms notify`` runs, embedded, with every service's
    handlers (what it announces may start any of them)."""
    from services.console import context_for
    from services.notifier.commands import register_commands

    register_commands(subparsers, context_factory=context_for)


def _service_command(command: str, argv: list[str], verbose: bool) -> argparse.Namespace:
    """Parse ``dms COMMAND ARGV...`` with the parser its service builds."""
    parser = argparse.ArgumentParser(prog="dms")
    _resolve(SERVICE_COMMANDS[command][0])(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args([command, *argv], argparse.Namespace(verbose=verbose))


def cmd_run(args: argparse.Namespace) -> int:
    from shared.runlocal import run_command

    return run_command(_resolve(RUN_PIPELINES[args.pipeline][0]), args.argv)


def reference_steps(header: dict) -> list[tuple[str, str, tuple[str, ...]]]:
    """(pipeline, step, reference types) of every pipeline's steps that read references
    for an exposure with this header, in run order (imports every pipeline)."""
    out = []
    for target, _ in RUN_PIPELINES.values():
        pipeline = _resolve(target).pipeline
        out += [(pipeline.name, step, types) for step, types in pipeline.reference_steps(header)]
    return out


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dms", description="jwst-dms: telemetry to archived JWST products")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="write a plan, telemetry, truth and reference files")
    s.add_argument("description", help="program description (YAML or JSON), e.g. examples/nircam_imaging.yaml")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--seed", type=int, default=None, help="random seed (default: the description's)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("ingest", help="deliver plans and telemetry files (or directories) and process them")
    s.add_argument("paths", nargs="+")
    s.add_argument("--requeue", action="store_true",
                   help="announce files again even if already delivered (e.g. after delivering a missing plan)")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("worker", help="run a Celery worker for one service's queue (needs DMS_BROKER_URL)")
    s.add_argument("queue", metavar="QUEUE",
                   help=f"a service ({', '.join(sorted(SERVICES))}) or the reprocessing queue of "
                        "detector1, stage2 or stage3 (e.g. detector1-reprocess: lower priority, its own workers)")
    s.add_argument("--concurrency", type=int, default=1)
    s.add_argument("--loglevel", default="INFO")
    s.set_defaults(func=cmd_worker)

    s = sub.add_parser("status", help="dependencies, backlog, work by state and age, products, rejections, "
                                      "dead letters; exit status 1 when a dependency is down")
    s.add_argument("--limit", type=int, default=10, help="how many recent rejections and failures to list")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("demo", help="simulate the demo observation and run it through the system")
    s.add_argument("--description", default="examples/nircam_imaging.yaml")
    s.add_argument("--spectra", default="examples/miri_lrs.yaml",
                   help="a spectroscopic program run after the main one ('' to skip)")
    s.add_argument("--time-series", default="examples/miri_lrs_tso.yaml",
                   help="a spectroscopic time series run after it ('' to skip)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--no-serve", action="store_true",
                   help="do not start the archive API at the end (by default it serves until Ctrl-C on a terminal)")
    s.set_defaults(func="services.demo:cmd_demo")

    s = sub.add_parser("reconcile", help="re-dispatch outbox events not dispatched, and work sent but never "
                                         "started or whose lease expired")
    s.add_argument("--loop", action="store_true", help="keep running")
    s.add_argument("--interval", type=float, default=10.0, help="seconds between passes with --loop")
    s.add_argument("--now", action="store_true", help="include events younger than DMS_RECONCILE_AFTER_SECONDS")
    s.set_defaults(func=cmd_reconcile)

    add_refs_parser(sub)
    s = sub.add_parser("run", help="run a pipeline on local files, without services",
                       description="Run a pipeline on local files, without services. Pipelines:\n"
                                   + "\n".join(f"  {name:<10} {help_}" for name, (_, help_) in RUN_PIPELINES.items())
                                   + "\n`dms run PIPELINE --help` shows a pipeline's options.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("pipeline", choices=list(RUN_PIPELINES), metavar="PIPELINE",
                   help=f"one of {', '.join(RUN_PIPELINES)}")
    s.add_argument("argv", nargs=argparse.REMAINDER, metavar="ARGS", help="the pipeline's arguments and options")
    s.set_defaults(func=cmd_run)

    # Each parses its own arguments (main, second pass); `dms COMMAND --help` shows them.
    for name, (_, help_) in SERVICE_COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)

    s = sub.add_parser("db", help="catalog schema")
    s.add_argument("action", choices=["upgrade"])
    s.set_defaults(func=cmd_db)

    s = sub.add_parser("storage", help="object store")
    s.add_argument("action", choices=["init"])
    s.set_defaults(func=cmd_storage)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed ``dms`` command line (exits with a usage message when it is wrong)."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command in SERVICE_COMMANDS:
        return _service_command(args.command, rest, args.verbose)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = _resolve(args.func) if isinstance(args.func, str) else args.func
    try:
        return func(args)
    except Exception as exc:
        if _is_settings_error(exc):
            print(f"error: {_settings_problems(exc)}", file=sys.stderr)
            return 2
        if not _is_user_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _is_settings_error(exc: BaseException) -> bool:
    """A DMS_* environment variable that does not parse (pydantic names the model)."""
    from pydantic import ValidationError

    return isinstance(exc, ValidationError) and exc.title == "Settings"


def _settings_problems(exc) -> str:
    return "; ".join(f"DMS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())


if __name__ == "__main__":
    sys.exit(main())
