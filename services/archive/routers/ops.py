"""/health, /metrics and /whoami."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from services.archive.dependencies import CurrentUser, DbSession, SettingsDep
from services.archive.metrics import CONTENT_TYPE, render_metrics
from services.archive.schemas import Health, WhoAmI, WhoAmIAttributes
from services.archive.vo.tap import translation_state
from shared.health import check_broker, check_catalog, check_store

__all__ = ["router"]

router = APIRouter(tags=["operations"])

log = logging.getLogger(__name__)


@router.get("/health", response_model=Health, summary="Liveness of the catalog and the object store",
            responses={503: {"model": Health, "description": "The catalog or the store is unreachable."}})
def health(request: Request, settings: SettingsDep) -> JSONResponse:
    """200 when both the catalog and the object store answer, 503 otherwise. The broker and
    the TAP translator's warm-up are reported but do not decide: the API serves without them."""
    catalog, store = check_catalog(request.app.state.catalog), check_store(request.app.state.store)
    ok = catalog == "ok" and store == "ok"
    tap = translation_state() if request.app.state.catalog.engine.dialect.name == "postgresql" else None
    body = Health(status="ok" if ok else "unavailable", catalog=catalog, store=store,
                  broker=check_broker(settings), tap=tap)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(session: DbSession, settings: SettingsDep) -> PlainTextResponse:
    """Prometheus text format: dms_queue_depth{queue}, dms_outbox_pending, dms_work{task,state},
    dms_work_oldest_seconds{task,state}, dms_products{level},
    dms_ingest_rejections_total, dms_task_failures_total, dms_task_runs_total{task},
    dms_task_failures{task}, dms_task_seconds_sum/_count{task}, dms_task_seconds_max{task}."""
    return PlainTextResponse(render_metrics(session, settings), media_type=CONTENT_TYPE)


@router.get("/whoami", response_model=WhoAmI, summary="Who the token says you are")
def whoami(user: CurrentUser) -> WhoAmI:
    """As MAST answers it, for anonymous callers and token users alike."""
    return WhoAmI(anon=user is None, user=user, ezid=user or "anonymous",
                  attrib=WhoAmIAttributes(display_name=user, ezid=user),
                  scopes=[] if user is None else ["mast:exclusive_access"])
