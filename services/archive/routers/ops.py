"""/health, /metrics and /whoami."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from services.archive.dependencies import CurrentUser, DbSession, SettingsDep
from services.archive.metrics import CONTENT_TYPE, queue_depths, render_metrics
from services.archive.schemas import Health, WhoAmI
from shared.storage import Bucket

__all__ = ["router"]

router = APIRouter(tags=["operations"])

log = logging.getLogger(__name__)


def _check_catalog(request: Request) -> str:
    try:
        with request.app.state.catalog.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("health: catalog unreachable: %s", exc)
        return f"unreachable: {type(exc).__name__}"
    return "ok"


def _check_store(request: Request) -> str:
    store = request.app.state.store
    try:
        local_path = getattr(store, "local_path", None)
        if local_path is not None and not local_path(Bucket.ARCHIVE, "x").parent.is_dir():
            return f"unreachable: bucket {Bucket.ARCHIVE} does not exist"
        store.stat(Bucket.ARCHIVE, ".health-probe")  # None when absent; raises when unreachable
    except Exception as exc:
        log.warning("health: object store unreachable: %s", exc)
        return f"unreachable: {type(exc).__name__}"  # the details (endpoints, paths) go to the log only
    return "ok"


def _check_broker(settings) -> str | None:
    try:
        return None if queue_depths(settings) is None else "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


@router.get("/health", response_model=Health, summary="Liveness of the catalog and the object store",
            responses={503: {"model": Health, "description": "The catalog or the store is unreachable."}})
def health(request: Request, settings: SettingsDep) -> JSONResponse:
    """200 when both the catalog and the object store answer, 503 otherwise. The broker is
    reported but does not decide: the API serves without it."""
    catalog, store = _check_catalog(request), _check_store(request)
    ok = catalog == "ok" and store == "ok"
    body = Health(status="ok" if ok else "unavailable", catalog=catalog, store=store,
                  broker=_check_broker(settings))
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(session: DbSession, settings: SettingsDep) -> PlainTextResponse:
    """Prometheus text format: dms_queue_depth{queue}, dms_outbox_pending, dms_products{level},
    dms_ingest_rejections_total, dms_task_failures_total, dms_task_runs_total{task},
    dms_task_failures{task}, dms_task_seconds_sum/_count{task}, dms_task_seconds_max{task}."""
    return PlainTextResponse(render_metrics(session, settings), media_type=CONTENT_TYPE)


@router.get("/whoami", response_model=WhoAmI, summary="Who the token says you are")
def whoami(user: CurrentUser) -> WhoAmI:
    return WhoAmI(anon=user is None, user=user)
