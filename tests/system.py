"""The whole system as deployed, for end-to-end and fault tests: `dms` subprocesses
(Celery workers of each service, the archive API, the outbox reconciler) in their own
process groups, and waits on the catalog they share."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import uvicorn
from sqlalchemy import func, select

from shared.catalog import EventRecord, Product, WorkItem, WorkState
from shared.runtime import ServiceContext

__all__ = ["REPO", "WORKERS", "Process", "System", "WebhookReceiver", "free_port"]

REPO = Path(__file__).resolve().parents[1]
WORKERS = ("ingest", "detector1", "associations", "stage2", "stage3", "preview", "notifier")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """An ASGI application (the archive API) on a loopback port, served by uvicorn in a thread."""

    def __init__(self, app, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the archive API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class Process:
    """A `python -m services.cli ...` subprocess in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *self.argv], cwd=REPO, env=self.env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]

    def kill(self) -> None:
        """SIGKILL the whole process group (a Celery worker and its pool children): a crash."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.terminate()
        self.wait_stopped()

    def terminate(self) -> None:
        """SIGTERM to the process group: a Celery worker's warm shutdown begins."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)

    def wait_stopped(self, timeout: float = 15) -> None:
        """Wait for the process to exit after :meth:`terminate`; SIGKILL it after ``timeout``."""
        if not self.alive():
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class System:
    """Everything a test runs: the in-process context (Celery transport), a worker per
    service in ``workers``, the archive API when ``api_port`` is given, and the outbox
    reconciler when ``reconciler`` is true."""

    def __init__(self, tmp_path: Path, env: dict[str, str], ctx: ServiceContext, workers: Iterable[str],
                 *, api_port: int | None = None, reconciler: bool = False):
        self.tmp_path, self.env, self.ctx = tmp_path, env, ctx
        self.api = f"http://127.0.0.1:{api_port}" if api_port else None
        self.processes: list[Process] = []
        self.workers: dict[str, Process] = {}
        for service in workers:  # a service named again gets another worker: "<service>#2", ...
            n = sum(1 for name in self.workers if name.partition("#")[0] == service) + 1
            name = service if n == 1 else f"{service}#{n}"
            p = Process(f"worker {name}", ["worker", service, "--loglevel", "INFO"], env,
                        tmp_path / f"{name.replace('#', '-')}.log")
            self.workers[name] = p
            self.processes.append(p)
        if api_port:
            self.processes.append(Process(
                "archive API", ["serve", "archive", "--port", str(api_port), "--log-level", "warning"], env,
                tmp_path / "archive.log"))
        if reconciler:
            self.processes.append(Process(
                "reconciler", ["reconcile", "--loop", "--interval", "2"], env, tmp_path / "reconciler.log"))

    def start(self) -> None:
        for p in self.processes:
            p.start()

    def stop(self) -> None:
        """Every process signalled first, then waited for, so that their warm shutdowns
        (about a second each) overlap; each is killed 15 s after its signal."""
        for p in self.processes:
            p.terminate()
        deadline = time.monotonic() + 15
        for p in self.processes:
            p.wait_stopped(timeout=max(0.0, deadline - time.monotonic()))

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} ({p.log}) -----\n{p.tail()}" for p in self.processes)

    @property
    def catalog_dir(self) -> Path:
        return Path(self.env["DMS_ASTROMETRIC_CATALOG_DIR"])

    def wait_idle(self, quiet: float = 2.0, timeout: float = 120) -> None:
        """Wait until no routed task is left to do and nothing changed for ``quiet`` seconds.

        Left to do: a work item pending or running in the work ledger, or an event not yet
        dispatched. The ledger is the catalog's record of every routed task (a task's
        events, with the work rows they cause, are committed before its own row is done,
        and a retry leaves its row pending), so with none left nothing runs and nothing
        will: no product, no event, no webhook delivery. ``quiet`` is the time the counts
        (products, undispatched events, unfinished work items) must then stay the same."""
        unfinished = WorkItem.state.in_([WorkState.PENDING, WorkState.RUNNING])

        def snapshot() -> tuple:
            with self.ctx.catalog.session() as s:
                products = s.scalar(select(func.count()).select_from(Product))
                pending = s.scalar(select(func.count()).select_from(EventRecord)
                                   .where(EventRecord.dispatched_at.is_(None)))
                work = s.scalar(select(func.count()).select_from(WorkItem).where(unfinished))
            return products, pending, work

        deadline = time.monotonic() + timeout
        last, since = snapshot(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            self.check_alive()
            now = snapshot()
            if now != last or now[1] or now[2]:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        with self.ctx.catalog.session() as s:
            left = s.execute(select(WorkItem.task, WorkItem.state, func.count()).where(unfinished)
                             .group_by(WorkItem.task, WorkItem.state)).all()
        raise AssertionError(f"the system did not settle within {timeout} s (products, undispatched events, "
                             f"unfinished work items: {last}; unfinished by task: {[tuple(r) for r in left]})")

    def check_alive(self) -> None:
        dead = [p for p in self.processes if p.proc is not None and not p.alive()]
        if dead:
            raise AssertionError(f"{', '.join(p.name for p in dead)} exited "
                                 f"({', '.join(str(p.proc.returncode) for p in dead)})")

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str,
                   state: Callable[[], object] | None = None, poll: float = 0.25) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            self.check_alive()
            time.sleep(poll)
        now = f"; state: {state()}" if state is not None else ""
        raise AssertionError(f"timed out after {timeout} s waiting for {what}{now}")


class WebhookReceiver:
    """A subscriber's HTTP endpoint on loopback: records every POST (headers, raw body)
    and when it came (epoch seconds)."""

    def __init__(self):
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.requests.append((dict(self.headers), body))
                    outer.times.append(time.time())
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwst-hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def received(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.requests)

    def received_at(self) -> list[tuple[float, dict]]:
        """(when, parsed body) of every POST, in order."""
        with self.lock:
            return [(at, json.loads(body)) for at, (_, body) in zip(self.times, self.requests, strict=True)]

    def subjects(self) -> Counter:
        return Counter(json.loads(body).get("subject") for _, body in self.received())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """An SMTP server on loopback keeping every message it receives (``messages``, parsed)."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def close(self) -> None:
        self._controller.stop()
