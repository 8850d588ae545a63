"""Scale-out across hosts: the services on one network namespace, workers of every queue
on three others, a multi-exposure program down to Level 3, and one worker host cut off
(its link set down) while it has tasks in flight.

The cut host's unacknowledged messages wait in Redis until the visibility timeout
(``DMS_BROKER_VISIBILITY_TIMEOUT``, short here), when the surviving workers' restore sweep
returns them to their queues; events committed but not dispatched are re-dispatched by the
reconcilers (``DMS_RECONCILE_AFTER_SECONDS``). After the link comes back the cut host's
workers finish or abandon what they held. In the end every product the plan implies is
current exactly once, at revision 1, the outbox and the queues are empty, and nothing was
dead-lettered.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from services.registry import SERVICES
from shared.catalog import Catalog, EventRecord, Product, TaskFailure
from shared.routing import QUEUES
from tests.scale.cluster import wait_for
from tests.scale.program import PROGRAM_ID, Expected, current_products, emitted_associations

pytestmark = pytest.mark.integration

# Short so the test sees recovery within a minute; each task here lasts a few seconds.
# Stage 3 split across the hosts (docs/stage3.md): each observation's 8 members.
TIMEOUTS = {"broker_visibility_timeout": 25, "broker_restore_interval": 2, "reconcile_after_seconds": 5,
            "task_max_retries": 8, "task_retry_backoff_max": 8, "stage3_split_members": 4}
CALIBRATION = ("detector1.", "stage2.", "stage3.")


def settled(catalog: Catalog, redis, prefix: str) -> tuple:
    """What changes while the system works: products, pending events, queued and
    unacknowledged messages."""
    with catalog.session() as s:
        products = s.scalar(select(func.count()).select_from(Product))
        pending = s.scalar(select(func.count()).select_from(EventRecord).where(EventRecord.dispatched_at.is_(None)))
    queued = sum(redis.llen(f"{prefix}{q}") for q in QUEUES)
    unacked = redis.hlen(f"{prefix}unacked")
    return products, pending, queued, unacked


def wait_idle(catalog: Catalog, redis, prefix: str, quiet: float, timeout: float) -> tuple:
    deadline = time.monotonic() + timeout
    last, since = settled(catalog, redis, prefix), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = settled(catalog, redis, prefix)
        if now != last or any(now[1:]):
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"not idle after {timeout} s (products, pending events, queued, unacked): {last}")


@pytest.mark.parametrize("side", ["host", "switch"])
def test_workers_on_three_hosts_one_cut_off(cluster, simulation, tmp_path, side):
    """``host``: eth0 set down on the worker host (its sockets fail: network unreachable);
    ``switch``: its port on the bridge set down (its packets vanish, connections stall)."""
    t0 = time.monotonic()
    expected = Expected.from_plan(simulation.plan)
    assert len(expected.exposures) == len(simulation.telemetry_paths) == 16

    # a fresh catalog, object store and broker: the program is the same in every case
    database, prefix = f"dms_scale_{side}", f"scale-{side}:"
    cluster.create_database(database)
    cluster.reset_s3()
    cluster.redis_client().flushall()
    catalog = Catalog(cluster.local_catalog_url(database))
    redis = cluster.redis_client()
    catalog_dir = str(simulation.catalog_paths[0].parent)

    def env(host):
        return cluster.env(database, prefix, tmp_path / f"var-{host.name}",
                           astrometric_catalog_dir=catalog_dir, **TIMEOUTS)

    # every queue's worker on each of the three worker hosts, and a reconciler on each
    workers = {host.name: [cluster.start_worker(host, service, env(host), tag=f"-{side}") for service in SERVICES]
               for host in cluster.worker_hosts}
    reconcilers = [cluster.start_reconciler(host, env(host), tag=f"-{side}") for host in cluster.worker_hosts]
    everyone = [w for ws in workers.values() for w in ws]
    try:
        run_and_cut(cluster, simulation, expected, catalog, redis, prefix, env, workers, side, t0)
    finally:
        cluster.network.heal()
        for daemon in [*everyone, *reconcilers]:
            daemon.stop()
        catalog.dispose()


def run_and_cut(cluster, simulation, expected, catalog, redis, prefix, env, workers, side, t0) -> None:
    everyone = [w for ws in workers.values() for w in ws]
    cluster.wait_ready(everyone)

    # the operator, on the services host: references, then the downlink
    cluster.dms(cluster.svc, ["refs", "deliver", *map(str, simulation.reference_paths)], env(cluster.svc))
    out = cluster.dms(cluster.svc, ["ingest", str(simulation.plan_path), *map(str, simulation.telemetry_paths)],
                      env(cluster.svc))
    assert f"queued {len(expected.exposures)} event(s)" in out, out

    # cut w3 off while it is calibrating something (or at least holds a task)
    victim = cluster.worker_hosts[-1]

    def calibrating() -> dict[str, str]:
        cluster.check_alive(everyone)
        held = cluster.in_flight(workers[victim.name])
        return held if any(t.startswith(CALIBRATION) for t in held.values()) else {}

    wait_for(lambda: bool(calibrating()), 240, f"{victim.name} to hold a calibration task",
             lambda: expected.progress(catalog))
    held = cluster.in_flight(workers[victim.name])
    cluster.network.set_link(victim, False, side)
    cut_at = time.monotonic()
    assert not victim.reaches(cluster.svc.address, 6379)
    print(f"{victim.name} cut off ({side} side) at {cut_at - t0:.0f} s holding {sorted(held.values())}")

    # the two other hosts finish the program
    survivors = [w for host, ws in workers.items() if host != victim.name for w in ws]
    wait_for(lambda: cluster.check_alive(survivors) or expected.done(catalog), 420,
             "the Level-3 products of every observation without the cut host",
             lambda: expected.progress(catalog), interval=1.0)
    finished = time.monotonic()
    print(f"Level 3 complete {finished - cut_at:.0f} s after the cut")

    # the link comes back; the cut host's workers finish or give up what they held
    cluster.network.set_link(victim, True, side)
    wait_for(lambda: victim.reaches(cluster.svc.address, 6379), 30, f"{victim.name} back on the network")
    wait_idle(catalog, redis, prefix, quiet=15, timeout=240)
    cluster.check_alive(everyone)

    # the tasks the cut host held were run to the end by a surviving host (the same task id,
    # redelivered after the visibility timeout), or by the cut host itself once back
    finished_by = {}
    for task_id in held:
        finished_by[task_id] = [d.name for d in everyone
                                if re.search(rf"Task [\w.]+\[{task_id}\] succeeded", d.text())]
    assert all(finished_by.values()), f"held tasks never finished: {finished_by}"
    print("held by the cut host, finished by: "
          + "; ".join(f"{held[t]} -> {', '.join(names)}" for t, names in finished_by.items()))

    # nothing lost: every product the plan implies is current exactly once ...
    rows = current_products(catalog)
    missing = sorted(expected.products - set(rows))
    assert not missing, f"{len(missing)} products never made: {missing[:10]}"
    current = Counter(name for name, revs in rows.items() for _rev, is_current in revs if is_current)
    assert all(current[name] == 1 for name in expected.products), \
        {n: current[n] for n in expected.products if current[n] != 1}
    # ... nothing doubled: no second revision, no product the plan does not imply besides
    # the associations and the pool, one association of each kind per exposure/observation
    # (the program's association report is rewritten as the chain advances: a revision a change,
    # one current; each exposure's telemetry also makes its fine-guide product, once, and
    # calwebb_guider its _cal)
    report = f"jw{PROGRAM_ID}_asn-report.html"
    assert [current for _rev, current in rows.pop(report, [])].count(True) == 1, "no current association report"
    guiding = sorted(n for n in rows if "_gs-fg_" in n and n.endswith("_uncal.fits"))
    assert len(guiding) == len({e.rsplit("_", 1)[0] for e in expected.exposures}), guiding
    guiding += [n.replace("_uncal.fits", "_cal.fits") for n in guiding]
    assert all(n in rows for n in guiding), sorted(n for n in guiding if n not in rows)
    revised = {name: revs for name, revs in rows.items() if len(revs) != 1 or revs[0][0] != 1}
    assert not revised, f"products with more than one revision: {revised}"
    extra = sorted(n for n in rows if n not in expected.products and n not in guiding
                   and not n.endswith(("_asn.json", "_pool.csv")))
    assert not extra, f"unexpected products: {extra}"
    assert emitted_associations(catalog) == expected.associations
    asn_files = [n for n in rows if n.endswith("_asn.json")]
    assert len(asn_files) == sum(expected.associations.values()), sorted(asn_files)

    # the mosaics are made of every exposure of their observation
    with catalog.session() as s:
        mosaics = dict(s.execute(select(Product.filename, Product.inputs).where(
            Product.program_id == PROGRAM_ID, Product.level == 3, Product.suffix == "i2d")).all())
    for name, inputs in mosaics.items():
        obs = name.split("-")[1][:4]  # o001
        members = {f"{e}_cal.fits" for e in expected.exposures if e[7:10] == obs[1:]}
        assert members <= set(inputs), (name, sorted(members - set(inputs)))

    # nothing dead-lettered, nothing left in the outbox or the broker
    with catalog.session() as s:
        failures = [(f.task, f.reason[:200]) for f in s.scalars(select(TaskFailure))]
    assert not failures, failures
    products, pending, queued, unacked = settled(catalog, redis, prefix)
    assert (pending, queued, unacked) == (0, 0, 0)
    print(f"scale-out: {len(rows)} products of {len(expected.exposures)} exposures on "
          f"{len(cluster.worker_hosts)} worker hosts, one cut off; {time.monotonic() - t0:.0f} s")
