"""The archive's searches at scale: p50/p99 latency of the REST API over a PostgreSQL
catalog of 10 thousand and of 1 million products (about 100 and 10,000 observations).

For each size, a scratch database (``dms_bench_catalog``) is created, filled with
synthetic rows (benchmarks/catalog_load.py, COPY), upgraded to the newest schema (what
the migrations after the base schema derive and index is built then, and timed), vacuumed
and analysed; ``uvicorn`` serves the archive API on loopback and an HTTP client
(``httpx``, ``--concurrency`` requests in flight) sends each query ``--requests`` times
after ten warm-up requests (each on a new connection, so every API process translates
each query shape once before the timing: a new ADQL shape costs 0.3 to 1 s of parsing),
with the values drawn from the loaded rows. The database is
dropped at the end (``--keep`` keeps it; ``--reuse`` measures a kept one again).

Queries (each answered 200, or the run stops):

- one product: ``GET /products/{filename}`` (metadata, previews, provenance, linkages)
- program's observations: ``GET /observations?program=P``
- products filtered: ``GET /products?program=P&productType=SCIENCE&calib_level=2&suffix=cal``
- products, archive-wide filter: ``GET /products?suffix=i2d&calib_level=3&dataRights=PUBLIC``
- filename wildcard: ``GET /products?filename=jwPPPPPOOO*_cal.fits``
- cone 1 degree: ``GET /observations?ra=..&dec=..&radius=1`` (centred on a target)

and the same questions through MAST's protocol and the Virtual Observatory (the clients'
requests as astroquery and pyvo send them):

- MAST program: ``POST /api/v0/invoke`` ``Mast.Caom.Filtered`` with ``proposal_id`` (a page of 5000)
- MAST cone 1 degree: ``POST /api/v0/invoke`` ``Mast.Caom.Cone`` (radius 1)
- TAP cone 1 degree: ``GET /vo/tap/sync`` with ``CONTAINS(POINT(...), CIRCLE(..., 1)) = 1``
- SIA2 cone 1 degree: ``GET /vo/sia2/query?POS=CIRCLE ra dec 1``
- SCS cone 1 degree: ``GET /vo/scs?RA=..&DEC=..&SR=1``

``python -m benchmarks.catalog_bench [--sizes 10000 1000000] [--explain]``; ``make bench``
runs it with the others (``python -m benchmarks catalog``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("DMS_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "dms_bench_catalog"
QUERIES = ["one product", "program's observations", "products filtered", "products, archive-wide filter",
           "filename wildcard", "cone 1 degree", "MAST program", "MAST cone 1 degree", "TAP cone 1 degree",
           "SIA2 cone 1 degree", "SCS cone 1 degree"]


def _db_url(name: str, driver: str = "postgresql+psycopg") -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql", driver, 1) + f"/{name}"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def prepare(name: str, products: int, reuse: bool) -> dict:
    """Create and fill ``name`` (unless ``reuse`` and it exists); upgrade it; figures."""
    import psycopg

    from benchmarks.catalog_load import BASE_SCHEMA, load
    from shared.catalog import upgrade

    out: dict = {}
    url = _db_url(name)
    if not (reuse and _exists(name)):
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _admin(f'CREATE DATABASE "{name}"')
        upgrade(url, BASE_SCHEMA)
        with psycopg.connect(_db_url(name, "postgresql")) as conn:
            loaded = load(conn, products)
        out["load_s"] = round(loaded.seconds, 1)
        print(f"  loaded {loaded.programs} programs, {loaded.observations} observations, {loaded.exposures} "
              f"exposures, {loaded.products} products, {loaded.artifacts} artifacts in {loaded.seconds:.0f} s",
              flush=True)
    t0 = time.perf_counter()
    upgrade(url)
    out["upgrade_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    with psycopg.connect(_db_url(name, "postgresql"), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        for table in ("program", "observation", "exposure", "product", "artifact"):
            out[f"{table}_rows"] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        out["database_mb"] = round(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20)
    out["vacuum_s"] = round(time.perf_counter() - t0, 1)
    print(f"  schema upgrade {out['upgrade_s']} s, vacuum analyze {out['vacuum_s']} s, {out['database_mb']} MiB",
          flush=True)
    return out


def samples(name: str, seed: int = 7, n: int = 400) -> dict[str, list[str]]:
    """Request paths of each query, with values drawn from the catalog's rows."""
    import psycopg

    rng = np.random.default_rng(seed)
    with psycopg.connect(_db_url(name, "postgresql")) as conn:
        files = [r[0] for r in conn.execute(
            "SELECT filename FROM product TABLESAMPLE SYSTEM (5) REPEATABLE (7) WHERE is_current LIMIT 5000")]
        programs = [r[0] for r in conn.execute("SELECT id FROM program ORDER BY id")]
        observations = conn.execute("SELECT program_id, number, target_ra, target_dec FROM observation "
                                    "ORDER BY id").fetchall()

    def pick(values: list, k: int) -> list:
        return [values[i] for i in rng.integers(len(values), size=k)]

    def invoke(request: dict) -> tuple[str, str, dict]:
        return "POST", "/api/v0/invoke", {"request": json.dumps({"format": "json", "pagesize": 5000, "page": 1,
                                                                   "removenullcolumns": True, **request})}

    def adql(ra: float, dec: float) -> str:
        return ("/vo/tap/sync?LANG=ADQL&REQUEST=doQuery&QUERY=" + quote(
            "SELECT obs_id, s_ra, s_dec, calib_level, access_url FROM ivoa.obscore WHERE "
            f"CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra:.5f}, {dec:.5f}, 1)) = 1"))

    cones = pick(observations, n)
    paths = {
        "one product": [f"/products/{f}" for f in pick(files, n)],
        "program's observations": [f"/observations?program={p}" for p in pick(programs, n)],
        "products filtered": [f"/products?program={p}&productType=SCIENCE&calib_level=2&suffix=cal"
                              for p in pick(programs, n)],
        "products, archive-wide filter": ["/products?suffix=i2d&calib_level=3&dataRights=PUBLIC"] * n,
        "filename wildcard": [f"/products?filename=jw{p}{o:03d}*_cal.fits" for p, o, _, _ in pick(observations, n)],
        "cone 1 degree": [f"/observations?ra={ra:.5f}&dec={dec:.5f}&radius=1" for _, _, ra, dec in
                          pick(observations, n)],
        "MAST program": [invoke({"service": "Mast.Caom.Filtered", "params": {"columns": "*", "filters": [
            {"paramName": "proposal_id", "values": [str(int(p))]}]}}) for p in pick(programs, n)],
        "MAST cone 1 degree": [invoke({"service": "Mast.Caom.Cone", "params": {"ra": ra, "dec": dec, "radius": 1}})
                               for _, _, ra, dec in cones],
        "TAP cone 1 degree": [adql(ra, dec) for _, _, ra, dec in cones],
        "SIA2 cone 1 degree": ["/vo/sia2/query?POS=" + quote(f"CIRCLE {ra:.5f} {dec:.5f} 1") for _, _, ra, dec in cones],
        "SCS cone 1 degree": [f"/vo/scs?RA={ra:.5f}&DEC={dec:.5f}&SR=1" for _, _, ra, dec in cones],
    }
    return paths


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``uvicorn`` serving the archive API over the catalog at ``url``, on loopback."""

    def __init__(self, url: str, workers: int):
        self.port = _free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="dms-bench-")
        env = {**os.environ, "DMS_CATALOG_URL": url, "DMS_VAR_DIR": self.tmp.name,
               "DMS_ARCHIVE_BASE_URL": f"http://127.0.0.1:{self.port}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "services.archive.app:create_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(workers), "--no-access-log", "--log-level", "warning",
             # the client's pooled connections may sit idle while a slow query runs on another: a
             # server closing them after uvicorn's 5 s default races the client reusing one
             "--timeout-keep-alive", "120"],
            cwd=ROOT, env=env)

    def wait(self, timeout: float = 60.0) -> str:
        """The base URL once the API answers and each of its processes has warmed its ADQL
        translator (``tap`` ready in ten answers in a row, each on a new connection: the
        processes share the socket), so no warm-up runs while the queries are timed."""
        import httpx

        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        ready = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the archive API exited with {self.proc.returncode}")
            try:  # up (the local store may report itself empty)
                ready = ready + 1 if httpx.get(f"{base}/health", timeout=5).json().get("tap") == "ready" else 0
            except httpx.HTTPError:
                ready = 0
            if ready >= 10:
                return base
            if ready == 0:  # not up or still warming: wait rather than take CPU from the warm-up
                time.sleep(0.3)
        raise RuntimeError("the archive API did not answer (or warm up) in time")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.tmp.cleanup()


Request = str | tuple[str, str, dict]  # a GET path, or (method, path, form)


def _check(request: Request, answer) -> None:
    """Raise unless ``answer`` is a 200 with a successful body (MAST status, VOTable QUERY_STATUS)."""
    if answer.status_code != 200:
        raise RuntimeError(f"{request}: {answer.status_code} {answer.text[:300]}")
    if "votable" in answer.headers.get("content-type", ""):
        if b'name="QUERY_STATUS" value="ERROR"' in answer.content:
            raise RuntimeError(f"{request}: {answer.text[:500]}")
        return
    # A MAST reply begins with its status: read there, not by parsing megabytes of JSON in the
    # client's one thread while other requests' answers wait to be timed.
    if answer.content[:200].replace(b" ", b"").startswith(b'{"status":"ERROR"'):
        raise RuntimeError(f"{request}: {answer.text[:500]}")


async def _send(client, request: Request):
    if isinstance(request, str):
        return await client.get(request)
    method, path, form = request
    return await client.request(method, path, data=form)


async def _measure(base: str, paths: list[Request], concurrency: int, warmup: int) -> list[float]:
    import httpx

    latencies: list[float] = []
    queue = list(paths)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    for p in queue[:warmup]:  # each on a new connection: the API's processes share the socket, so each gets some
        async with httpx.AsyncClient(base_url=base, timeout=600) as client:
            answer = await _send(client, p)
            answer.raise_for_status()
            _check(p, answer)
    queue = queue[warmup:]
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:

        async def worker() -> None:
            while queue:
                request = queue.pop()
                t0 = time.perf_counter()
                r = await _send(client, request)
                latencies.append(time.perf_counter() - t0)
                _check(request, r)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def measure(name: str, requests: int, concurrency: int, workers: int, warmup: int = 10,
            queries: list[str] | None = None) -> dict:
    paths = samples(name, n=requests + warmup)
    server = Server(_db_url(name), workers)
    out = {}
    try:
        base = server.wait()
        for q in queries or QUERIES:
            t0 = time.perf_counter()
            lat = np.array(asyncio.run(_measure(base, paths[q], concurrency, warmup))) * 1000.0
            out[q] = {"p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
                      "max_ms": round(float(lat.max()), 1), "n": len(lat),
                      "per_s": round(len(lat) / (time.perf_counter() - t0), 1)}
            print(f"  {q:32s} p50 {out[q]['p50_ms']:8.1f} ms  p99 {out[q]['p99_ms']:8.1f} ms  "
                  f"({len(lat)} requests, {out[q]['per_s']}/s)", flush=True)
    finally:
        server.stop()
    return out


def explain(name: str, queries: list[str] | None = None, top: int = 2) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the slowest SQL statements of one request of each
    query, served in-process over the catalog ``name``; the text."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from services.archive.app import create_app
    from shared.config import Settings

    paths = samples(name, n=1)
    out = []
    with tempfile.TemporaryDirectory(prefix="dms-bench-") as tmp:
        settings = Settings(var_dir=Path(tmp), catalog_url=_db_url(name), _env_file=None)
        with TestClient(create_app(settings)) as client:
            engine = client.app.state.catalog.engine
            seen: list[tuple[float, str, object]] = []

            def before(conn, cursor, statement, parameters, context, executemany):
                conn.info["t0"] = time.perf_counter()

            def after(conn, cursor, statement, parameters, context, executemany):
                seen.append((time.perf_counter() - conn.info["t0"], statement, parameters))

            for q in queries or QUERIES:
                request = paths[q][0]
                method, path, form = ("GET", request, None) if isinstance(request, str) else request
                client.request(method, path, data=form)  # warm the caches
                event.listen(engine, "before_cursor_execute", before)
                event.listen(engine, "after_cursor_execute", after)
                seen.clear()
                t0 = time.perf_counter()
                r = client.request(method, path, data=form)
                elapsed = time.perf_counter() - t0
                event.remove(engine, "before_cursor_execute", before)
                event.remove(engine, "after_cursor_execute", after)
                out.append(f"### {q}: {method} {path} -> {r.status_code}, {elapsed * 1000:.0f} ms in process, "
                           f"{len(seen)} statements ({sum(s[0] for s in seen) * 1000:.0f} ms in the database)\n")
                for seconds, statement, parameters in sorted(seen, key=lambda s: -s[0])[:top]:
                    with engine.connect() as conn:
                        plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).all()
                    out.append(f"{seconds * 1000:.1f} ms:\n```sql\n{statement}\n```\n```\n"
                               + "\n".join(row[0] for row in plan) + "\n```\n")
    return "\n".join(out)


def _table(results: dict) -> str:
    sizes = list(results)
    head = "| query | " + " | ".join(f"{s} products p50 / p99, ms" for s in sizes) + " |"
    lines = [head, "|---" * (len(sizes) + 1) + "|"]
    for q in QUERIES:
        cells = []
        for s in sizes:
            m = results[s]["queries"].get(q)
            cells.append(f"{m['p50_ms']:.0f} / {m['p99_ms']:.0f}" if m else "-")
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(sizes: tuple[int, ...] = (10_000, 1_000_000), requests: int = 200, concurrency: int = 4, workers: int = 2,
        keep: bool = False, reuse: bool = False, queries: list[str] | None = None) -> dict:
    results: dict = {}
    for size in sizes:
        name = f"{DATABASE}_{size}"
        print(f"catalog of {size} products (database {name}):", flush=True)
        try:
            setup = prepare(name, size, reuse)
            results[str(size)] = {"setup": setup, "queries": measure(name, requests, concurrency, workers,
                                                                      queries=queries)}
        finally:
            if not keep:
                _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\n{requests} requests per query, {concurrency} in flight, uvicorn with {workers} worker processes:")
    print(_table(results))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.catalog_bench")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="products in the catalog")
    p.add_argument("--requests", type=int, default=200, help="requests per query (after 10 warm-up requests, each on a new connection)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    p.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    p.add_argument("--query", action="append", choices=QUERIES, help="only these queries")
    p.add_argument("--keep", action="store_true", help="keep the databases (dms_bench_catalog_<size>)")
    p.add_argument("--reuse", action="store_true", help="measure kept databases again, without loading")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--explain", action="store_true",
                   help="print EXPLAIN ANALYZE of each query's slowest statements over a kept database instead")
    args = p.parse_args(argv)
    if args.explain:
        for size in args.sizes:
            print(f"## {size} products\n\n" + explain(f"{DATABASE}_{size}", args.query))
        return 0
    results = run(tuple(args.sizes), args.requests, args.concurrency, args.workers, args.keep, args.reuse,
                  args.query)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
