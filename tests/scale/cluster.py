"""Several "hosts" on one machine: network namespaces on a bridge, each with its own
address, running the system's services and workers as separate processes.

Topology (everything is created here and removed by :meth:`Cluster.stop`)::

    namespace <run>-sw:  bridge br0 ─┬─ veth "svc" ── eth0 in <run>-svc  198.18.K.1
                                     ├─ veth "w1"  ── eth0 in <run>-w1   198.18.K.2
                                     ├─ veth "w2"  ── eth0 in <run>-w2   198.18.K.3
                                     └─ ...

The addresses are in 198.18.0.0/15, the range set aside for network benchmarking
(RFC 2544); the bridge lives in a namespace of its own, so no packet of the cluster
touches the machine's own interfaces. The services host runs Redis, a PostgreSQL cluster
initdb'd for the run and moto's S3 server, bound to its address; each worker host runs
``dms worker SERVICE`` processes (and ``dms reconcile --loop``) configured with that
address. The test process itself reaches Redis and PostgreSQL through their Unix sockets
(in the run's directory), for checks only; the operator's commands (``dms refs deliver``,
``dms ingest``) run on the services host.

Cutting a worker host off is ``ip link set eth0 down`` in its namespace (the host sees
its network unreachable: its sockets fail at once) or ``ip link set <host> down`` on the
bridge's side (a switch port goes dark: the host's packets vanish and its TCP connections
stall, as if a cable were pulled).
"""

from __future__ import annotations

import glob
import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REDIS_PORT, PG_PORT, S3_PORT = 6379, 5432, 9000
S3_KEYS = ("testing", "testing")
PG_USER = "postgres"  # initdb refuses root: the cluster's files belong to this account


def namespace_support() -> str | None:
    """None if this process can create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "creating network namespaces (ip netns add) needs root; this test runs as a non-root user"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"dmsprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode:
        return f"`ip netns add` fails here: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def postgres_bin() -> Path:
    """The directory of PostgreSQL's server programs (initdb, postgres)."""
    for candidate in filter(None, [os.environ.get("DMS_TEST_PG_BIN"),
                                   *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]):
        if (Path(candidate) / "postgres").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "postgres").exists():
        return Path(found).resolve().parent
    raise RuntimeError("PostgreSQL's initdb/postgres were not found (set DMS_TEST_PG_BIN)")


def sh(*argv: str, timeout: float = 30) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


class Daemon:
    """A long-running process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path,
                 stop_signal: int = signal.SIGTERM):
        self.name, self.argv, self.env, self.log, self.stop_signal = name, argv, env, log, stop_signal
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, chars: int = 3000) -> str:
        return self.text()[-chars:]

    def stop(self, timeout: float = 15) -> None:
        if not self.alive():
            return
        try:
            os.kill(self.proc.pid, self.stop_signal)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


@dataclass
class Host:
    """A network namespace with one interface (eth0) on the cluster's bridge."""

    name: str
    netns: str
    address: str
    daemons: list[Daemon] = field(default_factory=list)

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def spawn(self, name: str, argv: list[str], env: dict[str, str], log: Path,
              stop_signal: int = signal.SIGTERM) -> Daemon:
        daemon = Daemon(f"{self.name}: {name}", self.argv(*argv), env, log, stop_signal).start()
        self.daemons.append(daemon)
        return daemon

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*argv), cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)

    def set_link(self, up: bool) -> None:
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up" if up else "down")

    def reaches(self, address: str, port: int) -> bool:
        """Whether a TCP connection from this host to address:port succeeds."""
        code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1).close()"
        return subprocess.run(self.argv(sys.executable, "-c", code), capture_output=True).returncode == 0

    def stop_daemons(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()


class Network:
    """A bridge in a namespace of its own and one namespace per host, created by
    :meth:`up` and deleted (with any process still inside) by :meth:`down`."""

    def __init__(self, names: Iterable[str]):
        self.run = f"dms{uuid.uuid4().hex[:6]}"
        self.subnet = f"198.18.{random.randrange(1, 255)}"
        self.switch = f"{self.run}-sw"
        self.hosts = {name: Host(name, f"{self.run}-{name}", f"{self.subnet}.{i + 1}")
                      for i, name in enumerate(names)}
        self.created: list[str] = []

    def up(self) -> Network:
        sh("ip", "netns", "add", self.switch)
        self.created.append(self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for host in self.hosts.values():
            sh("ip", "netns", "add", host.netns)
            self.created.append(host.netns)
            sh("ip", "-n", self.switch, "link", "add", host.name, "type", "veth",
               "peer", "name", "eth0", "netns", host.netns)
            sh("ip", "-n", self.switch, "link", "set", host.name, "master", "br0", "up")
            sh("ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            sh("ip", "-n", host.netns, "link", "set", "eth0", "up")
            sh("ip", "-n", host.netns, "link", "set", "lo", "up")
        return self

    def set_link(self, host: Host, up: bool, side: str = "host") -> None:
        """Set a host's link down or up: its own end (``host``: eth0 in its namespace; its
        sockets fail at once, the network being unreachable) or the bridge's end (``switch``:
        a port of the switch; its packets vanish and its connections stall)."""
        if side == "host":
            host.set_link(up)
        elif side == "switch":
            sh("ip", "-n", self.switch, "link", "set", host.name, "up" if up else "down")
        else:
            raise ValueError(f"side must be 'host' or 'switch', not {side!r}")

    def heal(self) -> None:
        """Every link up again, on both sides."""
        for host in self.hosts.values():
            for side in ("host", "switch"):
                self.set_link(host, True, side)

    def down(self) -> None:
        for host in self.hosts.values():
            host.stop_daemons()
        for netns in reversed(self.created):
            # anything still running in a namespace of ours was started by us: end it by pid
            pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        self.created.clear()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             state: Callable[[], object] | None = None, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    now = f"; state: {state()}" if state is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{now}")


TASK_LINE = re.compile(r"Task (?P<task>[\w.]+)\[(?P<id>[0-9a-f-]+)\] (?P<what>received|succeeded|retry|raised|failed)")


class Cluster:
    """A services host (Redis, PostgreSQL, S3) and ``workers`` worker hosts."""

    def __init__(self, workdir: Path, workers: int = 3):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.network = Network(["svc", *(f"w{i + 1}" for i in range(workers))])
        self.svc = self.network.hosts["svc"]
        self.worker_hosts = [h for n, h in self.network.hosts.items() if n != "svc"]
        # PostgreSQL's directory must be reachable by its own account: not under a
        # root-only temporary tree
        self.pg_dir = Path(tempfile.mkdtemp(prefix="dms-scale-pg-"))
        self.redis: Daemon | None = None
        self.started = False

    # ------------------------------------------------------------------ services host

    def start(self) -> Cluster:
        self.network.up()
        self.started = True
        self._start_redis()
        self._start_postgres()
        self._start_s3()
        wait_for(self._redis_ready, 30, "Redis on the services host")
        wait_for(self._pg_ready, 60, "PostgreSQL on the services host", lambda: self.pg_log.read_text()[-2000:])
        wait_for(lambda: self.worker_hosts[0].reaches(self.svc.address, S3_PORT), 60,
                 "the S3 server, from a worker host")
        return self

    def stop(self) -> None:
        if self.started:
            for host in self.worker_hosts:
                host.stop_daemons()
            self.network.down()
        shutil.rmtree(self.pg_dir, ignore_errors=True)

    def _start_redis(self) -> None:
        self.redis_socket = self.workdir / "redis.sock"
        self.redis = self.svc.spawn("redis", [
            "redis-server", "--bind", self.svc.address, "--port", str(REDIS_PORT), "--protected-mode", "no",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            "--unixsocket", str(self.redis_socket), "--unixsocketperm", "700",
            "--tcp-keepalive", "5"], dict(os.environ), self.workdir / "redis.log", signal.SIGTERM)

    def _redis_ready(self) -> bool:
        try:
            return bool(self.redis_client().ping())
        except Exception:
            return False

    def redis_client(self):
        import redis

        return redis.Redis(unix_socket_path=str(self.redis_socket))

    def _start_postgres(self) -> None:
        bindir = postgres_bin()
        account = pwd.getpwnam(PG_USER)
        data = self.pg_dir / "data"
        os.chown(self.pg_dir, account.pw_uid, account.pw_gid)
        as_pg = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups"]
        env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "HOME": str(self.pg_dir)}
        done = subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust",
                               "-E", "UTF8", "--no-sync"], capture_output=True, text=True, env=env, cwd=self.pg_dir)
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr}")
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all all {self.network.subnet}.0/24 trust\n")
        self.pg_log = self.workdir / "postgres.log"
        # A host that drops off the network must not hold row locks for the kernel's
        # two-hour keepalive: the server gives up on a silent client within seconds.
        settings = {
            "listen_addresses": self.svc.address, "port": str(PG_PORT), "unix_socket_directories": str(self.pg_dir),
            "max_connections": "500", "shared_buffers": "64MB", "fsync": "off", "synchronous_commit": "off",
            "full_page_writes": "off", "tcp_keepalives_idle": "3", "tcp_keepalives_interval": "1",
            "tcp_keepalives_count": "3", "tcp_user_timeout": "5000",
        }
        options = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
        self.svc.spawn("postgres", [*as_pg, str(bindir / "postgres"), "-D", str(data), *options], env,
                       self.pg_log, signal.SIGINT)

    def _pg_ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(host=str(self.pg_dir), port=PG_PORT, user=PG_USER, dbname="postgres",
                                 connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.pg_dir), port=PG_PORT, user=PG_USER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        from shared.catalog import upgrade

        upgrade(self.local_catalog_url(name))

    def local_catalog_url(self, database: str) -> str:
        """The catalog as the test process reaches it (Unix socket), for checks."""
        return f"postgresql+psycopg://{PG_USER}@/{database}?host={self.pg_dir}&port={PG_PORT}"

    def _start_s3(self) -> None:
        env = dict(os.environ, AWS_ACCESS_KEY_ID=S3_KEYS[0], AWS_SECRET_ACCESS_KEY=S3_KEYS[1],
                   AWS_DEFAULT_REGION="us-east-1")
        self.svc.spawn("s3", [sys.executable, "-m", "moto.server", "-H", self.svc.address, "-p", str(S3_PORT)],
                       env, self.workdir / "s3.log")

    def reset_s3(self) -> None:
        code = (f"import urllib.request; urllib.request.urlopen(urllib.request.Request("
                f"'http://{self.svc.address}:{S3_PORT}/moto-api/reset', method='POST', data=b''), timeout=10)")
        done = self.svc.run([sys.executable, "-c", code], dict(os.environ), timeout=30)
        if done.returncode:
            raise RuntimeError(f"could not reset the S3 server: {done.stderr}")

    # ------------------------------------------------------------------ settings and hosts

    def env(self, database: str, prefix: str, var: Path, **settings: str) -> dict[str, str]:
        """The environment of a process on any host: DMS_* settings naming the services
        host by its address, and the short timeouts of a test."""
        dms = {
            "DMS_VAR_DIR": str(var),
            "DMS_CATALOG_URL": f"postgresql+psycopg://{PG_USER}@{self.svc.address}:{PG_PORT}/{database}",
            "DMS_BROKER_URL": f"redis://{self.svc.address}:{REDIS_PORT}/0",
            "DMS_BROKER_KEY_PREFIX": prefix,
            "DMS_STORE": "s3",
            "DMS_S3_ENDPOINT": f"{self.svc.address}:{S3_PORT}",
            "DMS_S3_ACCESS_KEY": S3_KEYS[0],
            "DMS_S3_SECRET_KEY": S3_KEYS[1],
            "DMS_S3_SECURE": "false",
            **{f"DMS_{k.upper()}": str(v) for k, v in settings.items()},
        }
        base = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")}
        return base | dms | {"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}

    def dms(self, host: Host, args: list[str], env: dict[str, str], timeout: float = 300) -> str:
        """Run a ``dms`` command on a host; its output, or an error with it."""
        done = host.run([sys.executable, "-m", "services.cli", *args], env, timeout=timeout)
        if done.returncode:
            raise AssertionError(f"dms {' '.join(args[:2])} on {host.name} failed ({done.returncode}):\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def start_worker(self, host: Host, service: str, env: dict[str, str], tag: str = "",
                     concurrency: int = 1) -> Daemon:
        log = self.workdir / f"{host.name}-{service}{tag}.log"
        return host.spawn(f"worker {service}{tag}", [
            sys.executable, "-m", "services.cli", "worker", service, "--concurrency", str(concurrency),
            "--loglevel", "INFO"], env, log)

    def start_reconciler(self, host: Host, env: dict[str, str], tag: str = "", interval: float = 2.0) -> Daemon:
        return host.spawn(f"reconciler{tag}", [sys.executable, "-m", "services.cli", "reconcile", "--loop",
                                               "--interval", str(interval)], env,
                          self.workdir / f"{host.name}-reconcile{tag}.log")

    def workers(self) -> list[Daemon]:
        return [d for h in self.worker_hosts for d in h.daemons if "worker" in d.name]

    def wait_ready(self, daemons: list[Daemon], timeout: float = 180) -> None:
        """Until every worker logged Celery's ``ready.`` line."""
        def ready() -> bool:
            self.check_alive(daemons)
            return all(" ready." in d.text() for d in daemons)

        wait_for(ready, timeout, "every worker to be ready",
                 lambda: [d.name for d in daemons if " ready." not in d.text()], interval=0.5)

    @staticmethod
    def check_alive(daemons: Iterable[Daemon]) -> None:
        dead = [d for d in daemons if d.proc is not None and not d.alive()]
        if dead:
            raise AssertionError("exited: " + "; ".join(f"{d.name} ({d.proc.returncode}): {d.tail(1500)}"
                                                        for d in dead))

    @staticmethod
    def in_flight(daemons: Iterable[Daemon]) -> dict[str, str]:
        """Task id -> task name of the tasks these workers received and have not finished
        (from Celery's log lines)."""
        running: dict[str, str] = {}
        for daemon in daemons:
            for m in TASK_LINE.finditer(daemon.text()):
                if m["what"] == "received":
                    running[m["id"]] = m["task"]
                else:
                    running.pop(m["id"], None)
        return running

    def logs(self) -> str:
        daemons = [d for h in self.network.hosts.values() for d in h.daemons]
        return "\n".join(f"----- {d.name} ({d.log}) -----\n{d.tail()}" for d in daemons)
