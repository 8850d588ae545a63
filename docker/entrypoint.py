"""Entrypoint of the jwst-dms image: the first argument picks the role.

    api                 the archive HTTP API (`dms serve archive`; DMS_ARCHIVE_HOST/PORT)
    worker QUEUE        a Celery worker on one queue of shared/routing.py (`dms worker QUEUE`)
    reconciler          the outbox reconciler (`dms reconcile --loop`)
    notify              the notification scheduler (`dms notify --loop`; run exactly one)
    migrate             one-shot: catalog schema to head, then the buckets (`dms db upgrade`,
                        `dms storage init`); both are idempotent
    health              the image's HEALTHCHECK: checks the role this container runs
    anything else       passed to `dms` as it is (`status`, `token create --owner U`, ...)

A long-running role is recorded in ``<DMS_VAR_DIR>/.role`` before the process is replaced
by ``dms`` (exec, so it receives SIGTERM itself and Celery's warm shutdown works), so that
``health`` knows what to check: a worker answers a ping to its own node, the API answers
``GET /health`` with 200, the loops reach the catalog.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

LOOP_INTERVALS = {"reconciler": ("reconcile", 10), "notify": ("notify", 60)}
HEALTH_TIMEOUT = 10.0  # seconds


def _queues() -> tuple[str, ...]:
    from shared.routing import QUEUES

    return QUEUES


def command_for(argv: list[str]) -> list[list[str]]:
    """The `dms` command lines (argv after `dms`) that a role runs, in order.

    Raises ValueError for a role used wrongly (a worker without a known queue).
    """
    if not argv:
        return [["--help"]]
    role, rest = argv[0], argv[1:]
    if role == "api":
        return [["serve", "archive", *rest]]
    if role == "worker":
        if not rest or rest[0] not in _queues():
            raise ValueError(f"worker needs one of the queues {', '.join(_queues())}; got {rest[:1] or 'none'}")
        return [["worker", *rest]]
    if role in LOOP_INTERVALS:
        command, interval = LOOP_INTERVALS[role]
        return [[command, "--loop", "--interval", str(interval), *rest]]
    if role == "migrate":
        if rest:
            raise ValueError("migrate takes no arguments")
        return [["db", "upgrade"], ["storage", "init"]]
    return [argv]


def role_file() -> Path:
    from shared.config import get_settings

    return get_settings().var_dir / ".role"


def _record_role(argv: list[str]) -> None:
    try:
        path = role_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(" ".join(argv[:2]) + "\n")
    except OSError as exc:  # a read-only scratch dir: the health check then says so
        print(f"entrypoint: cannot record the role in {exc.filename}: {exc.strerror}", file=sys.stderr)


def health() -> int:
    """Exit status of the HEALTHCHECK for the role recorded by this container."""
    try:
        recorded = role_file().read_text().split()
    except OSError:
        print("no long-running role recorded (a one-off command): nothing to check")
        return 0
    role = recorded[0] if recorded else ""
    if role == "worker":
        import worker_health  # beside this file in the image

        return worker_health.main(["worker_health", recorded[1]])
    if role == "api":
        from shared.config import get_settings

        url = f"http://127.0.0.1:{get_settings().archive_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT) as response:
                print(f"{url}: {response.status}")
                return 0
        except OSError as exc:  # HTTPError (503) included
            print(f"{url}: {exc}", file=sys.stderr)
            return 1
    if role in LOOP_INTERVALS:
        return _catalog_answers()
    print(f"unknown role {role!r} recorded", file=sys.stderr)
    return 1


def _catalog_answers() -> int:
    from sqlalchemy import create_engine, text

    from shared.config import get_settings

    url = get_settings().resolved_catalog_url
    engine = create_engine(url, pool_pre_ping=False, connect_args=_connect_timeout(url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error: unhealthy, with the reason
        print(f"catalog does not answer: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print("catalog answers")
    return 0


def _connect_timeout(url: str) -> dict:
    return {"connect_timeout": int(HEALTH_TIMEOUT)} if url.startswith("postgresql") else {}


def main(argv: list[str]) -> int:
    if argv[:1] == ["health"]:
        return health()
    try:
        commands = command_for(argv)
    except ValueError as exc:
        print(f"entrypoint: {exc}", file=sys.stderr)
        return 2
    if argv and argv[0] in ("api", "worker", *LOOP_INTERVALS):
        _record_role(argv)
    for command in commands[:-1]:
        code = subprocess.call(["dms", *command])
        if code:
            return code
    os.execvp("dms", ["dms", *commands[-1]])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
