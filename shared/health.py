"""Whether each dependency answers: the catalog, the object store and the broker. One place
for the probes that ``dms status`` and the archive API's ``/health`` and ``/metrics`` use.

Each probe returns ``"ok"`` or ``"unreachable: <error class>"`` and never raises: a status
page must say which dependency is down, not fail with it. The error's message (endpoints,
paths) goes to the log, and into the answer only with ``detail=True`` (the operator's
``dms status``; the public API gives the class only).
"""

from __future__ import annotations

import logging

from sqlalchemy import text

from shared.catalog import Catalog
from shared.config import Settings
from shared.routing import QUEUES
from shared.storage import Bucket, ObjectStore

__all__ = ["BROKER_TIMEOUT", "check_broker", "check_catalog", "check_store", "queue_depths"]

log = logging.getLogger(__name__)

BROKER_TIMEOUT = 2.0  # seconds; a probe must not hang on a dead broker


def _down(what: str, exc: BaseException, detail: bool) -> str:
    log.warning("%s unreachable: %s", what, exc)
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"unreachable: {type(exc).__name__}" + (f": {first_line[:200]}" if detail and first_line else "")


def check_catalog(catalog: Catalog, *, detail: bool = False) -> str:
    try:
        with catalog.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return _down("catalog", exc, detail)
    return "ok"


def check_store(store: ObjectStore, *, detail: bool = False) -> str:
    try:
        local_path = getattr(store, "local_path", None)
        if local_path is not None and not local_path(Bucket.ARCHIVE, "x").parent.is_dir():
            return f"unreachable: bucket {Bucket.ARCHIVE} does not exist"
        store.stat(Bucket.ARCHIVE, ".health-probe")  # None when absent; raises when unreachable
    except Exception as exc:
        return _down("object store", exc, detail)
    return "ok"


def queue_depths(settings: Settings) -> dict[str, int] | None:
    """Messages waiting per service queue (a Redis list per queue, under the deployment's
    key prefix); None without a Redis broker. Raises the client's error when the broker
    does not answer within :data:`BROKER_TIMEOUT`."""
    if not settings.broker_url or not settings.broker_url.startswith("redis"):
        return None
    import redis

    client = redis.Redis.from_url(settings.broker_url, socket_timeout=BROKER_TIMEOUT,
                                  socket_connect_timeout=BROKER_TIMEOUT)
    try:
        return {q: int(client.llen(settings.broker_key_prefix + q)) for q in QUEUES}
    finally:
        client.close()


def check_broker(settings: Settings, *, detail: bool = False) -> str | None:
    """``ok``/``unreachable: ...`` for a Redis broker; None when there is no broker (the
    embedded default) or it is not Redis (not probed)."""
    try:
        return None if queue_depths(settings) is None else "ok"
    except Exception as exc:
        return _down("broker", exc, detail)
