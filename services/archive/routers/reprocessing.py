"""/reprocessing: ask for a program's products to be made again, follow the request, cancel
it, and read what it changed (shared.reprocessing, docs/reprocessing.md).

Who may: a program's PI and authorized users, for that program; an archive operator
(``DMS_OPERATORS``) for any (shared.access.may_reprocess). Without a token: 401; someone
else's program or request: 403; an unknown one: 404. A request that cannot be made as
asked (an exposure the program does not have, an unknown context, nothing archived to
start from) is a 400 with the reason.

The API records the request and its first steps in the catalog and hands them to the
broker when there is one (``DMS_BROKER_URL``); the stages' reprocessing workers run them.
Without a broker the reconciler (``dms reconcile``) runs them in its process.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from services.archive import mast
from services.archive.dependencies import (
    DbSession,
    RequiredUser,
    SettingsDep,
    get_catalog,
    get_store,
)
from services.archive.schemas import (
    ErrorOut,
    ReprocessingIn,
    ReprocessingOut,
    ReprocessingReportOut,
)
from shared.access import is_operator, may_reprocess, programs_read_by, readers
from shared.catalog import Program, ReprocessingRequest
from shared.config import Settings
from shared.reprocessing import (
    RequestError,
    Scope,
    UnknownRequestError,
    cancel,
    list_requests,
    report,
    request_view,
    submit,
)
from shared.runtime import ServiceContext, Transport, dispatch_events

__all__ = ["router"]

router = APIRouter(prefix="/reprocessing", tags=["reprocessing"])

RequestId = Annotated[uuid.UUID, Path(description="The request's id (a UUID).")]
_FORBIDDEN = {403: {"model": ErrorOut, "description": "Only the program's PI, its authorized users and "
                                                      "operators may do this."}}
_UNKNOWN = {404: {"model": ErrorOut, "description": "No such request (or program)."}}


def _transport(request: Request, settings: Settings) -> Transport | None:
    """The broker's transport (made once per application), or None when there is no
    broker: the reconciler then sends what the request recorded."""
    if settings.embedded:
        return None
    transport = getattr(request.app.state, "transport", None)
    if transport is None:
        from shared.celery_app import CeleryTransport, create_app

        transport = request.app.state.transport = CeleryTransport(create_app(settings))
    return transport


def _context(request: Request, settings: Settings) -> ServiceContext:
    return ServiceContext(settings=settings, store=get_store(request), catalog=get_catalog(request),
                          transport=_transport(request, settings))


def _dispatch(ctx: ServiceContext, event_ids: list[str]) -> None:
    if event_ids and ctx.transport is not None:
        dispatch_events(ctx.catalog, ctx.transport, event_ids=event_ids)


def _program(session, value: str) -> Program:
    try:
        pid = mast.normalize_program(value)
    except mast.CriterionError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from None
    row = session.get(Program, pid)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no program {pid}")
    return row


def _check(program: Program, user: str, settings: Settings) -> None:
    if not may_reprocess(program, user, settings.operator_users):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"{user} is neither the PI nor an authorized user of program {program.id}, "
                                   "nor an operator; only they may reprocess its data or follow its requests")


def _own_request(session, request_id: uuid.UUID, user: str, settings: Settings) -> str:
    """The id of a request the caller may see (404 unknown, 403 not theirs)."""
    row = session.get(ReprocessingRequest, str(request_id))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no reprocessing request {request_id}")
    _check(session.get(Program, row.program_id), user, settings)
    return row.id


@router.post("", response_model=ReprocessingOut, status_code=status.HTTP_201_CREATED,
             summary="Request reprocessing",
             responses={200: {"model": ReprocessingOut,
                              "description": "The same request (program, scope, stage and context) was made "
                                             "before: it is answered as it stands."},
                        **_FORBIDDEN, 404: {"model": ErrorOut, "description": "No such program."}})
def create(body: ReprocessingIn, request: Request, response: Response, user: RequiredUser,
           settings: SettingsDep) -> dict[str, Any]:
    """Remake a program's products (all of them, or the observations, exposures, products
    or association of ``scope``) from ``from_stage`` with ``reference_context`` (the
    newest by default). The new revisions are staged and become current together, per
    exposure and per Level-3 association, when each is complete; the old ones stay
    current until then and if anything fails. ``reason`` is kept with every new
    revision and sent with its ``reprocessed`` notification."""
    ctx = _context(request, settings)
    with ctx.catalog.session() as s:
        program = _program(s, body.program)
        _check(program, user, settings)
        origin = "user" if user in readers(program) else "operator"
        pid = program.id
    scope = Scope(tuple(body.scope.observations), tuple(body.scope.exposures), tuple(body.scope.products),
                  body.scope.association)
    try:
        view, new, event_ids = submit(ctx, program=pid, scope=scope, from_stage=body.from_stage,
                                      reference_context=body.reference_context, reason=body.reason.strip(),
                                      software_reason=body.software_reason, requested_by=user, origin=origin)
    except RequestError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from None
    _dispatch(ctx, event_ids)
    if not new:
        response.status_code = status.HTTP_200_OK
    return view


@router.get("", response_model=list[ReprocessingOut], summary="Reprocessing requests you may follow",
            responses={**_FORBIDDEN, 404: {"model": ErrorOut, "description": "No such program."}})
def list_all(
    session: DbSession, user: RequiredUser, settings: SettingsDep,
    program: Annotated[str | None, Query(max_length=16, description="Only this program's requests.")] = None,
    state: Annotated[str | None, Query(pattern="^(queued|running|done|failed|cancelled)$",
                                       description="Only requests in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")] = 100,
) -> list[dict[str, Any]]:
    """Newest first: the requests of the programs whose PI or authorized user you are (an
    operator: of every program)."""
    pid = None
    if program is not None:
        row = _program(session, program)
        _check(row, user, settings)
        pid = row.id
    if is_operator(user, settings.operator_users):
        return list_requests(session, program=pid, state=state, limit=limit)
    mine = [p.id for p in programs_read_by(session, user)]
    return list_requests(session, program=pid, programs=mine, state=state, limit=limit)


@router.get("/{request_id}", response_model=ReprocessingOut, summary="One request: state, progress, units",
            responses={**_FORBIDDEN, **_UNKNOWN})
def read(request_id: RequestId, session: DbSession, user: RequiredUser, settings: SettingsDep) -> dict[str, Any]:
    """Its state, its progress (units done, failed and ended, and an ETA from the pace so
    far) and each unit with the revisions it made."""
    return request_view(session, _own_request(session, request_id, user, settings))


@router.post("/{request_id}/cancel", response_model=ReprocessingOut, summary="Cancel a request",
             responses={**_FORBIDDEN, **_UNKNOWN})
def cancel_request(request_id: RequestId, request: Request, user: RequiredUser,
                   settings: SettingsDep) -> dict[str, Any]:
    """Units not complete stop and their staged revisions are abandoned (never served);
    units already complete stay current. Cancelling an ended request changes nothing."""
    ctx = _context(request, settings)
    with ctx.catalog.session() as s:
        rid = _own_request(s, request_id, user, settings)
    try:
        view, event_ids = cancel(ctx, rid)
    except UnknownRequestError as exc:  # pragma: no cover - it was there a moment ago
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    _dispatch(ctx, event_ids)
    return view


@router.get("/{request_id}/report", response_model=ReprocessingReportOut, summary="What a request changed",
            responses={**_FORBIDDEN, **_UNKNOWN})
def read_report(request_id: RequestId, session: DbSession, user: RequiredUser,
                settings: SettingsDep) -> dict[str, Any]:
    """The request, and per revision it made: whether it is current, staged, superseded or
    abandoned, the revision it replaces, why it was made and how it differs from that one."""
    return report(session, _own_request(session, request_id, user, settings))
