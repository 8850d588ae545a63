"""The work ledger (shared.catalog.work) and how the runtime uses it: rows written with their
event, dispatch, claims, leases and their heartbeat, done with the outputs, dead letters,
and the reconciler's re-dispatch of lost and expired work. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from shared.archiving import archive_product
from shared.catalog import Catalog, Product, Program, TaskFailure, WorkItem, WorkState, fanin
from shared.catalog import work as ledger
from shared.catalog.queries import add_event
from shared.config import Settings
from shared.errors import NonRetriableError, RetriableError
from shared.messages import ProductArchived, ProductRef, TelemetryArrived, new_event
from shared.runtime import ServiceContext, dispatch_events, reconcile, run_handler
from shared.storage import open_store

SHA = "0" * 64
LEASE = timedelta(seconds=30)


class Recorder:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []
        self.fail = False

    def send(self, task, event):
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.sent.append((task, event.id))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def catalog(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url"))
    cat = Catalog(url)
    cat.upgrade()
    yield cat
    cat.dispose()


def make_ctx(catalog: Catalog, tmp_path: Path, transport=None, **settings) -> ServiceContext:
    s = Settings(var_dir=tmp_path / "var", catalog_url=catalog.url, _env_file=None, **settings)
    store = open_store(s)
    store.ensure_buckets()
    return ServiceContext(settings=s, store=store, catalog=catalog, transport=transport)


def arrival(n=0):
    ref = ProductRef(uri=f"file:///raw/f{n}", filename=f"f{n}", suffix="telemetry", sha256=SHA, size=1)
    return new_event(TelemetryArrived(telemetry=ref), "/test", subject=f"f{n}")


def uncal_archived():
    ref = ProductRef(uri="file:///x_uncal.fits", filename="x_uncal.fits", suffix="uncal", sha256=SHA, size=1)
    return new_event(ProductArchived(product=ref, level=1, data_release=datetime(2027, 1, 1, tzinfo=UTC)), "/t")


def items(catalog, event_id=None) -> dict[str, WorkItem]:
    with catalog.session() as s:
        q = select(WorkItem)
        if event_id is not None:
            q = q.where(WorkItem.event_id == event_id)
        return {w.task: w for w in s.scalars(q)}


def aware(when):
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def test_rows_are_written_with_their_event_one_per_route(catalog):
    ev = uncal_archived()
    with catalog.session() as s:
        add_event(s, ev)
        add_event(s, ev)  # the same event again adds nothing
    rows = items(catalog)
    assert sorted(rows) == ["detector1.run", "notifier.match", "preview.make"]
    assert all(r.state == WorkState.PENDING and r.dispatched_at is None and r.attempts == 0 for r in rows.values())

    with pytest.raises(RuntimeError), catalog.session() as s:  # rolled back with the event: no orphan work
        add_event(s, arrival(9))
        raise RuntimeError("the change the event announces failed")
    assert set(items(catalog)) == set(rows)


def test_dispatch_sends_each_pending_row_once_and_stamps_it(catalog):
    ev = uncal_archived()
    with catalog.session() as s:
        add_event(s, ev)
    rec = Recorder()
    rec.fail = True
    assert dispatch_events(catalog, rec) == 0
    assert all(r.dispatched_at is None for r in items(catalog).values())
    rec.fail = False
    assert dispatch_events(catalog, rec) == 1
    assert sorted(t for t, _ in rec.sent) == ["detector1.run", "notifier.match", "preview.make"]
    assert all(r.dispatched_at is not None and r.sends == 1 for r in items(catalog).values())
    assert dispatch_events(catalog, rec) == 0 and len(rec.sent) == 3


def test_claim_is_exclusive_and_done_means_duplicate(catalog):
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
    with catalog.session() as s:
        first = ledger.claim(s, ev.id, "ingest.telemetry", "host:1", LEASE)
    with catalog.session() as s:
        second = ledger.claim(s, ev.id, "ingest.telemetry", "host:2", LEASE)
        unknown = ledger.claim(s, "no-such-event", "ingest.telemetry", "host:2", LEASE)
    assert first.status == "claimed" and first.claim.attempt == 1 and first.claim.worker == "host:1"
    assert second.status == "busy" and second.holder == "host:1"
    assert unknown.status == "untracked"
    with catalog.session() as s:
        assert ledger.complete(s, first.claim)
        assert not ledger.complete(s, first.claim)
    with catalog.session() as s:
        assert ledger.claim(s, ev.id, "ingest.telemetry", "host:3", LEASE).status == "done"
    row = items(catalog)["ingest.telemetry"]
    assert row.state == WorkState.DONE and row.finished_at is not None and row.lease_until is None


def test_a_redelivered_message_takes_over_from_a_dead_consumer(catalog, tmp_path):
    """The broker redelivers a message when its consumer died without acknowledging it:
    the new consumer takes the item over at once instead of waiting for the lease."""
    ctx = make_ctx(catalog, tmp_path)
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
        dead = ledger.claim(s, ev.id, "ingest.telemetry", "gone:1", LEASE).claim
    ran = []
    busy = run_handler("ingest.telemetry", lambda e, c: ran.append(1) or [], ev.to_json_dict(), ctx)
    assert busy.status == "ok" and busy.note == "running under gone:1's live lease" and not ran
    out = run_handler("ingest.telemetry", lambda e, c: ran.append(c.work.attempt) or [], ev.to_json_dict(), ctx,
                      redelivered=True)
    assert out.status == "ok" and out.note is None and ran == [2]
    with catalog.session() as s:
        assert not ledger.extend_lease(s, dead, LEASE)
    assert items(catalog)["ingest.telemetry"].state == WorkState.DONE


def test_concurrent_claims_have_one_winner(catalog):
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
    results, barrier = [], threading.Barrier(6)

    def contend(n):
        barrier.wait()
        with catalog.session() as s:
            results.append(ledger.claim(s, ev.id, "ingest.telemetry", f"host:{n}", LEASE).status)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["busy"] * 5 + ["claimed"]
    assert items(catalog)["ingest.telemetry"].attempts == 1


def test_duplicate_delivery_runs_nothing(catalog, tmp_path):
    ctx = make_ctx(catalog, tmp_path)
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
    calls = []

    def handler(event, ctx):
        calls.append(ctx.work)
        return []

    first = run_handler("ingest.telemetry", handler, ev.to_json_dict(), ctx)
    again = run_handler("ingest.telemetry", handler, ev.to_json_dict(), ctx)
    assert first.status == "ok" and first.note is None
    assert again.status == "ok" and again.note == "already done"
    assert len(calls) == 1 and calls[0].event_id == ev.id and calls[0].task == "ingest.telemetry"
    assert items(catalog)["ingest.telemetry"].state == WorkState.DONE


def test_dead_letter_fails_the_row_and_a_retry_makes_it_pending(catalog, tmp_path):
    ctx = make_ctx(catalog, tmp_path)
    bad, flaky = arrival(1), arrival(2)
    with catalog.session() as s:
        add_event(s, bad)
        add_event(s, flaky)

    def refuse(event, ctx):
        raise NonRetriableError("the telemetry is not ours")

    assert run_handler("ingest.telemetry", refuse, bad.to_json_dict(), ctx).status == "failed"
    row = items(catalog, bad.id)["ingest.telemetry"]
    assert row.state == WorkState.FAILED and "not ours" in row.last_error
    with catalog.session() as s:
        assert s.scalar(select(TaskFailure.event_id)) == bad.id

    tries = []

    def transient(event, ctx):
        tries.append(1)
        if len(tries) == 1:
            raise RetriableError("store timed out")
        return []

    before = datetime.now(UTC)
    out = run_handler("ingest.telemetry", transient, flaky.to_json_dict(), ctx, attempt=1, max_attempts=3,
                      retry_in=42)
    assert out.status == "retry"
    row = items(catalog, flaky.id)["ingest.telemetry"]
    assert row.state == WorkState.PENDING and "timed out" in row.last_error
    assert aware(row.dispatched_at) >= before + timedelta(seconds=41)  # when the retry falls due
    assert run_handler("ingest.telemetry", transient, flaky.to_json_dict(), ctx, attempt=2, max_attempts=3).status == "ok"
    row = items(catalog, flaky.id)["ingest.telemetry"]
    assert row.state == WorkState.DONE and row.attempts == 2


def test_heartbeat_keeps_a_long_task_leased(catalog, tmp_path):
    ctx = make_ctx(catalog, tmp_path, work_lease_seconds=1.5)
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
    seen = {}

    def slow(event, ctx):
        first = aware(items(catalog)["ingest.telemetry"].lease_until)
        time.sleep(3.5)  # more than twice the lease: only the heartbeat keeps it
        row = items(catalog)["ingest.telemetry"]
        seen["extended"] = aware(row.lease_until) > first and aware(row.lease_until) > datetime.now(UTC)
        seen["reconciled"] = reconcile(catalog, Recorder(), 3600)
        with catalog.session() as s:
            seen["other"] = ledger.claim(s, ev.id, "ingest.telemetry", "elsewhere:1", LEASE).status
        return []

    assert run_handler("ingest.telemetry", slow, ev.to_json_dict(), ctx).status == "ok"
    assert seen["extended"] and seen["other"] == "busy"
    assert not seen["reconciled"]  # nothing expired, nothing sent
    row = items(catalog)["ingest.telemetry"]
    assert row.state == WorkState.DONE and row.attempts == 1


def test_expired_lease_is_sent_again_and_the_hung_worker_loses_its_claim(catalog):
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
    rec = Recorder()
    assert dispatch_events(catalog, rec) == 1
    with catalog.session() as s:
        hung = ledger.claim(s, ev.id, "ingest.telemetry", "host:1", timedelta(seconds=0.2)).claim
    time.sleep(0.4)  # it hangs: no heartbeat
    done = reconcile(catalog, rec, 3600, start_timeout_seconds=600, max_attempts=3)
    assert (done.expired, done.resent, done.failed) == (1, 1, 0)
    assert rec.sent == [("ingest.telemetry", ev.id)] * 2
    row = items(catalog)["ingest.telemetry"]
    assert row.state == WorkState.PENDING and row.sends == 2 and "lease expired (worker host:1" in row.last_error

    with catalog.session() as s:
        taken = ledger.claim(s, ev.id, "ingest.telemetry", "host:2", LEASE)
    assert taken.status == "claimed" and taken.claim.attempt == 2
    with catalog.session() as s:  # the hung worker wakes up: it may not touch the new claim ...
        assert not ledger.extend_lease(s, hung, LEASE)
        assert not ledger.fail(s, hung, "woke up confused")
        assert not ledger.release(s, hung, "retry", datetime.now(UTC))
    assert items(catalog)["ingest.telemetry"].worker == "host:2"
    with catalog.session() as s:  # ... but its outputs are committed when it completes
        assert ledger.complete(s, hung)
        assert not ledger.complete(s, taken.claim)
    assert items(catalog)["ingest.telemetry"].state == WorkState.DONE
    assert not reconcile(catalog, rec, 3600)


def test_a_task_that_keeps_hanging_its_worker_is_failed_after_max_attempts(catalog):
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
    rec = Recorder()
    dispatch_events(catalog, rec)
    for attempt in (1, 2):
        with catalog.session() as s:
            assert ledger.claim(s, ev.id, "ingest.telemetry", f"host:{attempt}", timedelta(seconds=0.1)).status == "claimed"
        time.sleep(0.25)
        done = reconcile(catalog, rec, 3600, max_attempts=2)
        assert (done.expired, done.failed) == ((1, 0) if attempt == 1 else (0, 1))
    row = items(catalog)["ingest.telemetry"]
    assert row.state == WorkState.FAILED and "lease expired on each of 2 attempt(s)" in row.last_error
    with catalog.session() as s:
        failure = s.scalar(select(TaskFailure))
    assert failure.task == "ingest.telemetry" and failure.event_id == ev.id and failure.attempts == 2
    assert len(rec.sent) == 2 and not reconcile(catalog, rec, 3600, max_attempts=2)


def test_sent_but_never_started_is_sent_again_with_a_growing_wait(catalog):
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)
    rec = Recorder()
    dispatch_events(catalog, rec)  # the broker loses the message
    assert not reconcile(catalog, rec, 3600, start_timeout_seconds=60)

    def age(seconds):
        with catalog.session() as s:
            s.execute(update(WorkItem).values(dispatched_at=datetime.now(UTC) - timedelta(seconds=seconds)))

    age(61)
    assert reconcile(catalog, rec, 3600, start_timeout_seconds=60).resent == 1
    age(61)  # sent twice: the next one waits twice as long
    assert reconcile(catalog, rec, 3600, start_timeout_seconds=60).resent == 0
    age(121)
    rec.fail = True  # the broker is down: nothing is lost, nothing stamped
    assert reconcile(catalog, rec, 3600, start_timeout_seconds=60).resent == 0
    assert items(catalog)["ingest.telemetry"].sends == 2
    rec.fail = False
    assert reconcile(catalog, rec, 3600, start_timeout_seconds=60).resent == 1
    assert len(rec.sent) == 3 and items(catalog)["ingest.telemetry"].sends == 3


def test_done_is_committed_with_the_last_output(catalog, tmp_path):
    """archive_product(completes_work=True) marks the item done in the transaction that
    registers the product: a task that dies right after has nothing left to redo."""
    ctx = make_ctx(catalog, tmp_path)
    ev = uncal_archived()
    with catalog.session() as s:
        s.add(Program(id="01234", created_at=datetime.now(UTC)))
        add_event(s, ev)
    path = tmp_path / "jw01234001001_01101_00001_nrca1_rate.fits"
    path.write_bytes(b"SIMPLE  =                    T" + b" " * 2850)

    def handler(event, ctx):
        archive_product(ctx, path, suffix="rate", level=2, program="01234", observation=1, exposure=None,
                        inputs=["x_uncal.fits"], source="/t", completes_work=True)
        assert items(catalog, ev.id)["detector1.run"].state == WorkState.DONE  # before the handler returns
        raise NonRetriableError("dies after its outputs")

    out = run_handler("detector1.run", handler, ev.to_json_dict(), ctx)
    assert out.status == "failed"  # dead-lettered, but the item stays done: the outputs exist
    assert items(catalog, ev.id)["detector1.run"].state == WorkState.DONE
    with catalog.session() as s:
        assert s.scalar(select(Product.filename)) == path.name
        rate_event = s.scalar(select(WorkItem.event_id).where(WorkItem.task == "associations.update"))
    assert rate_event is not None  # the product's own event brought its work rows


def test_outputs_after_one_that_fails_are_not_archived(catalog, tmp_path, monkeypatch):
    """When one of a task's outputs fails to archive, none after it is (the last would
    complete the work item with a product missing), the task gets the error, and its
    retry archives the rest and completes the item."""
    from astropy.table import Table

    import shared.archiving as archiving
    from shared.pipeline import Output

    ctx = make_ctx(catalog, tmp_path)
    ev = uncal_archived()
    with catalog.session() as s:
        s.add(Program(id="01234", created_at=datetime.now(UTC)))
        add_event(s, ev)
    names = [f"jw01234-o001_t001_nircam_clear-f200w_{suffix}.ecsv" for suffix in ("cat", "phot", "whtlt")]
    outputs = [Output(name, name.rsplit("_", 1)[1][:-5], Table({"x": [i]})) for i, name in enumerate(names)]
    real = archiving.archive_product

    def archive_product(ctx, path, **fields):
        if path.name == names[1]:
            raise RetriableError("the object store went away")
        return real(ctx, path, **fields)

    monkeypatch.setattr(archiving, "archive_product", archive_product)
    where = archiving.Placement("01234", 1, None, ["x_uncal.fits"])

    def handler(event, ctx):
        return archiving.archive_outputs(ctx, outputs, tmp_path / "out", where, level=3, service="stage3",
                                         reference_context=None)

    out = run_handler("detector1.run", handler, ev.to_json_dict(), ctx, attempt=1, max_attempts=3)
    assert out.status == "retry" and "object store went away" in out.error
    with catalog.session() as s:
        assert list(s.scalars(select(Product.filename))) == names[:1]
    assert items(catalog, ev.id)["detector1.run"].state == WorkState.PENDING
    monkeypatch.setattr(archiving, "archive_product", real)
    out = run_handler("detector1.run", handler, ev.to_json_dict(), ctx, attempt=2, max_attempts=3)
    assert out.status == "ok" and len(out.event_ids) == 2  # the first was archived already
    with catalog.session() as s:
        assert sorted(s.scalars(select(Product.filename))) == sorted(names)
    assert items(catalog, ev.id)["detector1.run"].state == WorkState.DONE


def _dms_status(tmp_path, **env):
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    full = {k: v for k, v in os.environ.items() if not k.startswith("DMS_")} | {"DMS_VAR_DIR": str(tmp_path / "var")}
    return subprocess.run([sys.executable, "-m", "services.cli", "status"], cwd=repo, env=full | env,
                          capture_output=True, text=True, timeout=120)


def test_status_shows_work_by_state_and_age_and_names_what_is_down(tmp_path):
    import socket

    catalog = Catalog(f"sqlite:///{tmp_path / 'var' / 'catalog.db'}")
    catalog.upgrade()
    a, b = arrival(1), arrival(2)
    with catalog.session() as s:
        add_event(s, a)
        add_event(s, b)
    dispatch_events(catalog, Recorder())
    with catalog.session() as s:
        ledger.claim(s, a.id, "ingest.telemetry", "host:1", LEASE)
        s.execute(update(WorkItem).where(WorkItem.event_id == b.id)
                  .values(created_at=datetime.now(UTC) - timedelta(minutes=7, seconds=5)))
    catalog.dispose()

    ok = _dms_status(tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    line = next(ln for ln in ok.stdout.splitlines() if ln.strip().startswith("ingest.telemetry"))
    pending, pending_age, running, _, done, failed = line.split()[1:]
    assert (pending, running, done, failed) == ("1", "1", "0", "0") and pending_age.startswith("7m")
    assert "catalog        ok" in ok.stdout and "DOWN" not in ok.stdout

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    broker_down = _dms_status(tmp_path, DMS_BROKER_URL=f"redis://127.0.0.1:{dead}/0")
    assert broker_down.returncode == 1 and "Traceback" not in broker_down.stderr
    assert "broker         unreachable: ConnectionError" in broker_down.stdout
    assert "DOWN: broker" in broker_down.stdout
    again = next(ln for ln in broker_down.stdout.splitlines() if ln.strip().startswith("ingest.telemetry"))
    assert again.split()[1] == "1" and again.split()[3] == "1"  # the work is still shown

    catalog_down = _dms_status(tmp_path, DMS_CATALOG_URL=f"postgresql+psycopg://dms@127.0.0.1:{dead}/dms")
    assert catalog_down.returncode == 1 and "Traceback" not in catalog_down.stderr, catalog_down.stderr
    assert "catalog        unreachable: OperationalError" in catalog_down.stdout
    assert "work, products, rejections and dead letters: not available" in catalog_down.stdout
    assert "store          ok" in catalog_down.stdout and "DOWN: catalog" in catalog_down.stdout


def test_a_terminated_process_is_not_dead_lettered(catalog, tmp_path):
    """SystemExit raised mid-query (a signal handler) can surface as the database error of
    the cleanup it interrupted; that is no verdict on the task: the termination goes on,
    the item stays running and its lease will expire."""
    ctx = make_ctx(catalog, tmp_path)
    ev = arrival()
    with catalog.session() as s:
        add_event(s, ev)

    def terminated(event, ctx):
        try:
            raise SystemExit(143)
        except SystemExit:
            raise RuntimeError("can't change 'autocommit' now: connection in transaction status ACTIVE") from None

    with pytest.raises(SystemExit):
        run_handler("ingest.telemetry", terminated, ev.to_json_dict(), ctx)
    row = items(catalog)["ingest.telemetry"]
    assert row.state == WorkState.RUNNING and row.last_error is None
    with catalog.session() as s:
        assert s.scalar(select(TaskFailure)) is None


def test_a_product_written_in_another_process_has_the_same_bytes(tmp_path):
    """A task run again by another worker must store identical bytes, or it makes a new
    revision: the ASDF metadata used to list its extensions in a per-process order."""
    import hashlib
    import subprocess
    import sys

    code = (
        "import hashlib, sys\n"
        "import numpy as np\n"
        "from astropy import units as u\n"
        "from astropy.coordinates import SkyCoord\n"
        "from shared.datamodels import FitsProduct, write_output\n"
        "p = FitsProduct(model_type='ImageModel', keywords={'TELESCOP': 'JWST'},\n"
        "                images={'SCI': np.ones((4, 4), dtype=np.float32)},\n"
        "                extra_meta={'meta.q': 3 * u.m, 'meta.c': SkyCoord(1, 2, unit='deg'), 'meta.arr': np.arange(3)})\n"
        "path = write_output(sys.argv[1], p)\n"
        "print(hashlib.sha256(path.read_bytes()).hexdigest())\n"
    )
    repo = Path(__file__).resolve().parents[1]
    digests = {subprocess.run([sys.executable, "-c", code, str(tmp_path / f"{n}" / "x_cal.fits")], cwd=repo,
                              capture_output=True, text=True, check=True).stdout.strip() for n in range(4)}
    assert len(digests) == 1, digests
    assert len(next(iter(digests))) == len(hashlib.sha256().hexdigest())


# ---------------------------------------------------------------------------- fan-in

def test_fan_in_closes_once_when_its_last_part_is_recorded(catalog):
    with catalog.session() as s:
        assert fanin.open_fan_in(s, "run", 3) is True
    with catalog.session() as s:
        assert fanin.open_fan_in(s, "run", 3) is False  # the splitting task ran again
        with pytest.raises(ValueError, match="has 3 parts, not 2"):
            fanin.open_fan_in(s, "run", 2)
    with catalog.session() as s:
        assert fanin.record_part(s, "run", 2, "u2", SHA) is False
        assert fanin.record_part(s, "run", 0, "u0", SHA) is False
        assert fanin.record_part(s, "run", 0, "again", SHA) is False  # a part run twice keeps its first result
        with pytest.raises(ValueError, match="parts 0..2, not 3"):
            fanin.record_part(s, "run", 3, "u3", SHA)
    with catalog.session() as s:
        assert fanin.record_part(s, "run", 1, "u1", SHA) is True
    with catalog.session() as s:
        assert fanin.record_part(s, "run", 1, "u1", SHA) is False  # closed already: nothing is combined twice
        assert [(r.part, r.uri) for r in fanin.part_results(s, "run")] == [(0, "u0"), (1, "u1"), (2, "u2")]
        with pytest.raises(LookupError, match="no fan-in 'other'"):
            fanin.record_part(s, "other", 0, "u", SHA)


def test_fan_in_parts_finishing_together_close_it_once(catalog):
    """Many parts recorded at once from threads (each its own transaction): exactly one
    closes the fan-in, whatever the interleaving (on PostgreSQL the row lock makes the
    last one see every other; without it two could each miss the other)."""
    parts = 12
    with catalog.session() as s:
        fanin.open_fan_in(s, "together", parts)
    start, closed, errors = threading.Barrier(parts), [], []

    def finish(part):
        try:
            start.wait()
            for _ in range(20):  # SQLite: a writer that finds the database locked tries again
                try:
                    with catalog.session() as s:
                        closed.append(fanin.record_part(s, "together", part, f"u{part}", SHA))
                    return
                except Exception as exc:  # noqa: BLE001 - only "database is locked" is retried
                    if "locked" not in str(exc):
                        raise
                    time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(p,)) for p in range(parts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(closed) == [False] * (parts - 1) + [True]
