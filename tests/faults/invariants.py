"""The invariant every fault test ends with (docs/operations.md, "Fault tests").

:func:`check_invariants` asserts, on the catalog, the object store and the subscriber:
1. every product the plan implies exists exactly once as current -- per exposure its
   ``_uncal``, ``_rate`` and ``_cal``, per imaging observation of more than one exposure
   a ``_crf`` per member and one ``_i2d``, ``_cat`` and ``_segm``, a Level-2 ASN per
   exposure and a Level-3 ASN per such observation -- and no file name is current twice;
2. every current product's artifacts exist in the store with the size and sha256 the
   catalog records, and every object in the archive and preview buckets is referenced
   by an artifact row (no orphans);
3. every outbox event was dispatched, nothing was dead-lettered, a science product has
   one revision (a crash or a redelivery must not make a second one), and the subscriber
   got one notification per archived product revision, each exactly once;
4. no superseded pool or ASN is current: one current pool per program, and the current
   ASNs are exactly the ones the association rows last emitted.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from urllib.parse import urlparse

from sqlalchemy import func, select

from services.associations.planned import planned_name
from shared.catalog import (
    Artifact,
    Association,
    EventRecord,
    Product,
    TaskFailure,
    WorkItem,
    WorkState,
)
from shared.catalog.models import Delivery
from shared.naming import member_output_name
from shared.routing import ROUTES
from shared.storage import Bucket
from tests.faults.harness import Harness

__all__ = ["chain_complete", "chain_state", "check_invariants", "expected_products", "missing_products"]

PREVIEWED = next(r.suffixes for r in ROUTES if r.task == "preview.make")
PREVIEW_KINDS = {"data", "preview", "thumbnail"}
LEVEL3_SUFFIXES = ("i2d", "cat", "segm")
AUXILIARY = ("pool", "asn", "asn-report")  # new revisions as the chain advances, by design


def expected_products(plan) -> tuple[set[str], dict[str, int], int]:
    """From the plan: the exact file names expected current, the number of current
    products expected per Level-3 name prefix and suffix, and the number of ASNs."""
    names: set[str] = set()
    level3: dict[str, int] = {}
    asns = 0
    for obs in plan.observations:
        ids = [planned_name(plan.program, obs, e).exposure_id for e in obs.exposures]
        rate = "rateints" if obs.tsovisit else "rate"
        cal = "calints" if obs.tsovisit else "cal"
        for eid in ids:
            names |= {f"{eid}_uncal.fits", f"{eid}_{rate}.fits", f"{eid}_{cal}.fits"}
        asns += len(ids)  # one Level-2 ASN per exposure
        if not obs.tsovisit and len(ids) > 1:
            acid = f"o{obs.number:03d}"
            names |= {member_output_name(f"{eid}_cal.fits", acid, "crf") for eid in ids}
            for suffix in LEVEL3_SUFFIXES:
                level3[f"jw{plan.program}-{acid}_|{suffix}"] = 1
            asns += 1
    return names, level3, asns


def _current(harness: Harness) -> list[Product]:
    with harness.ctx.catalog.session() as s:
        rows = list(s.scalars(select(Product).where(Product.program_id == harness.sim.plan.program,
                                                    Product.is_current)))
        for r in rows:
            _ = r.artifacts
        return rows


def missing_products(harness: Harness) -> list[str]:
    """What keeps the chain from being complete: expected file names not current, Level-3
    products (prefix and suffix) not current, current products without their previews."""
    names, level3, _ = expected_products(harness.sim.plan)
    current = _current(harness)
    missing = sorted(names - {p.filename for p in current})
    for key in level3:
        prefix, suffix = key.split("|")
        if not any(p.filename.startswith(prefix) and p.suffix == suffix for p in current):
            missing.append(f"{prefix}*_{suffix}")
    missing += sorted(f"{p.filename} (no {'/'.join(sorted(PREVIEW_KINDS - {a.kind for a in p.artifacts}))})"
                      for p in current if p.suffix in PREVIEWED and not PREVIEW_KINDS <= {a.kind for a in p.artifacts})
    return missing


def chain_complete(harness: Harness) -> bool:
    """Every expected product current, and every product that gets previews has them."""
    return not missing_products(harness)


def _short(items: list, n: int = 6) -> str:
    return "; ".join(map(str, items[:n])) + (f"; ... {len(items) - n} more" if len(items) > n else "")


def chain_state(harness: Harness) -> str:
    """Why the chain is not complete, for a timeout's message: the products missing, the
    work items not done (task, state, attempts, sends, last error), the outbox events not
    dispatched and the dead letters; each list cut short."""
    with harness.ctx.catalog.session() as s:
        work = [f"{w.task} {w.state} attempts={w.attempts} sends={w.sends} event={w.event_id[:8]}"
                + (f" error={w.last_error[:120]!r}" if w.last_error else "")
                for w in s.scalars(select(WorkItem).where(WorkItem.state != WorkState.DONE).order_by(WorkItem.id))]
        pending = [f"{e.type} {e.id[:8]} attempts={e.attempts}" + (f" error={e.last_error[:80]!r}" if e.last_error else "")
                   for e in s.scalars(select(EventRecord).where(EventRecord.dispatched_at.is_(None))
                                      .order_by(EventRecord.created_at))]
        failures = [f"{f.task} attempts={f.attempts}: {f.reason[:160]}"
                    for f in s.scalars(select(TaskFailure).order_by(TaskFailure.id))]
    return (f"missing: [{_short(missing_products(harness))}]; work not done: [{_short(work)}]; "
            f"outbox not dispatched: [{_short(pending)}]; dead letters: [{_short(failures)}]")


def _objects(client, bucket: str) -> set[str]:
    if not client.bucket_exists(bucket):
        return set()
    return {o.object_name for o in client.list_objects(bucket, recursive=True)}


def check_invariants(harness: Harness, *, notify_timeout: float = 60) -> None:
    plan, ctx = harness.sim.plan, harness.ctx
    names, level3, n_asns = expected_products(plan)
    current = _current(harness)

    # 1. each expected product exactly once as current
    counts = Counter(p.filename for p in current)
    assert not [n for n, c in counts.items() if c > 1], f"current more than once: {counts.most_common(3)}"
    missing = sorted(names - set(counts))
    assert not missing, f"expected products not current: {missing}"
    for key, n in level3.items():
        prefix, suffix = key.split("|")
        found = [p.filename for p in current if p.filename.startswith(prefix) and p.suffix == suffix]
        assert len(found) == n, f"{n} current {suffix} expected with prefix {prefix}, found {found}"

    # 2. artifacts in the store as recorded; no orphan objects
    client = harness.s3.server.client()
    referenced: set[tuple[str, str]] = set()
    with ctx.catalog.session() as s:
        for uri in s.scalars(select(Artifact.uri)):
            u = urlparse(uri)
            referenced.add((u.netloc, u.path.lstrip("/")))
    for p in current:
        for a in p.artifacts:
            u = urlparse(a.uri)
            bucket, key = u.netloc, u.path.lstrip("/")
            data = client.get_object(bucket, key)
            try:
                body = data.read()
            finally:
                data.close()
                data.release_conn()
            assert len(body) == a.size, f"{a.uri}: {len(body)} bytes in the store, {a.size} in the catalog"
            assert hashlib.sha256(body).hexdigest() == a.sha256, f"{a.uri}: sha256 differs from the catalog's"
    for bucket in (Bucket.ARCHIVE.value, Bucket.PREVIEWS.value):
        orphans = sorted(k for k in _objects(client, bucket) if (bucket, k) not in referenced)
        assert not orphans, f"objects in {bucket} no artifact refers to: {orphans}"

    # 3. events: all dispatched, nothing dead-lettered, no product made twice, each notified once
    with ctx.catalog.session() as s:
        pending = s.scalars(select(EventRecord.id).where(EventRecord.dispatched_at.is_(None))).all()
        failures = [(f.task, f.reason) for f in s.scalars(select(TaskFailure))]
        revisions = Counter(s.scalars(select(Product.filename).where(Product.program_id == plan.program)).all())
        science_twice = sorted(n for n, c in revisions.items() if c > 1
                               and s.scalar(select(Product.suffix).where(Product.filename == n).limit(1))
                               not in AUXILIARY)
        doubled = s.execute(select(Delivery.event_id, func.count()).group_by(
            Delivery.subscription_id, Delivery.event_id).having(func.count() > 1)).all()
    assert not pending, f"outbox events never dispatched: {pending}"
    assert not failures, f"dead-lettered tasks: {failures}"
    assert not science_twice, f"products archived in more than one revision: {science_twice}"
    assert not doubled, f"events delivered twice to one subscription: {doubled}"
    # the association report is a page about the program, never announced
    for name in [n for n in revisions if n.endswith("_asn-report.html")]:
        del revisions[name]
    deadline = time.monotonic() + notify_timeout
    while not set(harness.webhook.subjects()) >= set(revisions) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # a late duplicate would show now
    got = harness.webhook.subjects()
    assert got == revisions, (f"notifications per product differ from archived revisions: "
                              f"missing {revisions - got}, extra {got - revisions}")
    ids = Counter(h.get("X-DMS-Delivery") for h, _ in harness.webhook.received())
    assert not [i for i, c in ids.items() if c > 1], "a notification was delivered twice"
    assert all(json.loads(b)["type"].endswith(".new") for _, b in harness.webhook.received())

    # 4. no superseded pool or ASN current
    pools = [p.filename for p in current if p.suffix == "pool"]
    assert len(pools) == 1, f"current pools: {pools}"
    asns = sorted(p.filename for p in current if p.suffix == "asn")
    with ctx.catalog.session() as s:
        emitted = sorted(s.scalars(select(Association.filename).where(
            Association.program_id == plan.program, Association.filename.is_not(None))))
    assert asns == emitted, f"current ASNs {asns} are not the ones last emitted {emitted}"
    assert len(asns) == n_asns, f"{len(asns)} current ASNs, the plan implies {n_asns}: {asns}"
