"""TAP 1.1 over ``ivoa.obscore`` and ``tap_schema``: synchronous and asynchronous (UWS)
queries and the VOSI resources, under ``/vo/tap``. The logic lives in
:mod:`services.archive.vo.tap` (queries), :mod:`services.archive.vo.uws` (jobs) and
:mod:`services.archive.vo.vosi` (service descriptions); these routes read parameters and
write answers.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from sqlalchemy import text

from services.archive.dependencies import BaseUrl, CurrentUser, SettingsDep, get_catalog
from services.archive.vo import tap, uws, vosi
from services.archive.vo.votable import VOTableResponse
from shared.catalog import Catalog
from shared.catalog.tap_schema import PUBLISHED, SCHEMAS

__all__ = ["router"]

router = APIRouter(prefix="/vo/tap", tags=["vo"])

PREFIX = "/vo/tap"
CatalogDep = Annotated[Catalog, Depends(get_catalog)]


class XMLResponse(Response):
    media_type = vosi.XML


async def _parameters(request: Request) -> list[tuple[str, str]]:
    """The query string's parameters, then a POSTed form's (names as sent). Only
    ``application/x-www-form-urlencoded`` bodies: table uploads (multipart) are not supported."""
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        if body and kind not in ("application/x-www-form-urlencoded", ""):
            raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                detail=f"a {kind} body is not supported: POST the parameters as "
                                       "application/x-www-form-urlencoded (table uploads are not supported)")
        try:
            items += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the form body is not UTF-8") from None
    return items


Parameters = Annotated[list[tuple[str, str]], Depends(_parameters)]


def _jobs(catalog: CatalogDep) -> uws.JobStore:
    """The asynchronous jobs of the archive, in its catalog (every API process sees them all)."""
    return uws.JobStore(catalog)


Jobs = Annotated[uws.JobStore, Depends(_jobs)]


def _refusal(exc: Exception) -> VOTableResponse:
    code = status.HTTP_400_BAD_REQUEST if isinstance(exc, tap.TapError) else status.HTTP_503_SERVICE_UNAVAILABLE
    return VOTableResponse(tap.error_document(exc), status_code=code)


def _run(catalog: Catalog, settings, base_url: str, parameters: list[tuple[str, str]]) -> bytes:
    query = tap.parse_request(parameters, settings.tap_max_rec)
    return tap.execute(catalog.engine, query, timeout_seconds=settings.tap_timeout_seconds, base_url=base_url)


_ERROR_OUT = {"schema": {"$ref": "#/components/schemas/ErrorOut"}}
_VOTABLE = {"schema": {"type": "string", "description": "a VOTable document"}}
_TAP_PARAMETERS = {
    "REQUEST": "doQuery (optional: the only request)",
    "LANG": "ADQL (optional: the only language)",
    "QUERY": "the ADQL query, e.g. SELECT TOP 10 * FROM ivoa.obscore",
    "MAXREC": "rows at most (default and hard limit: DMS_TAP_MAX_REC); an answer cut short says OVERFLOW",
    "RESPONSEFORMAT": "votable (the default and only format); FORMAT is read the same",
}
_SYNC_RESPONSES = {
    200: {"description": "The result (QUERY_STATUS OK, or OVERFLOW when MAXREC cut it).",
          "content": {"application/x-votable+xml": _VOTABLE}},
    400: {"description": "A query or parameter TAP cannot answer: a VOTable error document (QUERY_STATUS ERROR "
                         "and the reason); a body that is no form: JSON.",
          "content": {"application/x-votable+xml": _VOTABLE, "application/json": _ERROR_OUT}},
    503: {"description": "The catalog cannot run TAP queries (SQLite, or down).",
          "content": {"application/x-votable+xml": _VOTABLE, "application/json": _ERROR_OUT}},
}
_QUERY_PARAMETERS = [{"name": name, "in": "query", "required": False, "schema": {"type": "string"},
                      "description": description} for name, description in _TAP_PARAMETERS.items()]
_FORM_BODY = {"required": False, "content": {"application/x-www-form-urlencoded": {"schema": {
    "type": "object", "properties": {name: {"type": "string", "description": description}
                                     for name, description in _TAP_PARAMETERS.items()}}}}}


def _form(name: str, description: str) -> dict:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": {name: {"type": "string", "description": description}}}}}}


_PHASE_BODY = _form("PHASE", "RUN or ABORT")
_ACTION_BODY = _form("ACTION", "DELETE")
_DOC = """TAP synchronous query: ``QUERY`` (ADQL), ``LANG=ADQL``, ``MAXREC``, ``RESPONSEFORMAT``/``FORMAT``
(votable); parameter names are case-insensitive. Only ``ivoa.obscore`` and ``tap_schema.*`` may be
queried. A query TAP cannot answer is a 400 with a VOTable error document."""


def _sync(parameters: list[tuple[str, str]], catalog: Catalog, settings, base_url: str) -> Response:
    try:
        return VOTableResponse(_run(catalog, settings, base_url, parameters))
    except (tap.TapError, tap.TapUnavailable) as exc:
        return _refusal(exc)


@router.get("/sync", response_class=VOTableResponse, summary="Run an ADQL query (TAP sync)", description=_DOC,
            responses=_SYNC_RESPONSES, openapi_extra={"parameters": _QUERY_PARAMETERS})
def sync_get(parameters: Parameters, catalog: CatalogDep, settings: SettingsDep, base_url: BaseUrl) -> Response:
    return _sync(parameters, catalog, settings, base_url)


@router.post("/sync", response_class=VOTableResponse, summary="Run an ADQL query (TAP sync, form)",
             description=_DOC, responses=_SYNC_RESPONSES, openapi_extra={"requestBody": _FORM_BODY})
def sync_post(parameters: Parameters, catalog: CatalogDep, settings: SettingsDep, base_url: BaseUrl) -> Response:
    return _sync(parameters, catalog, settings, base_url)


@router.get("/availability", response_class=XMLResponse, summary="VOSI availability")
def availability(catalog: CatalogDep) -> Response:
    try:
        with catalog.engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                return XMLResponse(vosi.availability_xml(False, "TAP needs a PostgreSQL catalog; this one is SQLite"))
            conn.execute(text("SELECT 1 FROM ivoa.obscore LIMIT 1"))
    except Exception as exc:  # any failure means: not available, and the note says why
        return XMLResponse(vosi.availability_xml(False, f"the catalog does not answer: {type(exc).__name__}"))
    return XMLResponse(vosi.availability_xml(True, "the service is accepting queries"))


@router.get("/capabilities", response_class=XMLResponse, summary="VOSI capabilities")
def capabilities(settings: SettingsDep, base_url: BaseUrl) -> Response:
    base = base_url + PREFIX
    tap_capability = vosi.tap_capability(base, max_rec=settings.tap_max_rec,
                                         timeout_seconds=settings.tap_timeout_seconds,
                                         retention_seconds=uws.RETENTION_SECONDS)
    return XMLResponse(vosi.capabilities_xml([*vosi.service_capabilities(base, tap_capability),
                                              vosi.Capability("ivo://ivoa.net/std/VOSI#tables", f"{base}/tables")]))


@router.get("/tables", response_class=XMLResponse, summary="VOSI tableset")
def tables() -> Response:
    return XMLResponse(vosi.tableset_xml(SCHEMAS, PUBLISHED))


# --- asynchronous queries (UWS) -------------------------------------------------------------

def _job_or_404(jobs: uws.JobStore, job_id: str, user: str | None) -> uws.Job:
    job = jobs.get(job_id, user)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no TAP job {job_id!r} (unknown, expired or "
                                                              "another user's)")
    return job


def _phase(jobs: uws.JobStore, job: uws.Job, value: str, run: uws.Runner) -> None:
    value = value.strip().upper()
    if value == "RUN":
        jobs.run(job.job_id, run)
    elif value == "ABORT":
        jobs.abort(job.job_id)
    else:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"PHASE={value!r}: give RUN or ABORT")


def _upper(parameters: list[tuple[str, str]]) -> dict[str, str]:
    return {k.upper(): v for k, v in parameters}


@router.get("/async", response_class=XMLResponse, summary="TAP async: the job list")
def job_list(jobs: Jobs, user: CurrentUser, base_url: BaseUrl) -> Response:
    return XMLResponse(uws.jobs_xml(jobs.visible(user), base_url + PREFIX + "/async"))


@router.post("/async", summary="TAP async: create a job (303 to it)", status_code=status.HTTP_303_SEE_OTHER,
             response_class=RedirectResponse, responses={303: {"description": "See the job."}},
             openapi_extra={"requestBody": _FORM_BODY})
def create_job(parameters: Parameters, jobs: Jobs, user: CurrentUser, catalog: CatalogDep, settings: SettingsDep,
               base_url: BaseUrl) -> Response:
    """Create a job from the TAP parameters; ``PHASE=RUN`` among them runs it at once."""
    job_parameters = [(k, v) for k, v in parameters if k.upper() != "PHASE"]
    job = jobs.create(user, job_parameters, settings.tap_timeout_seconds)
    if (phase := _upper(parameters).get("PHASE")) is not None:
        _phase(jobs, job, phase, lambda p: _run(catalog, settings, base_url, p))
    return RedirectResponse(f"{base_url}{PREFIX}/async/{job.job_id}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/async/{job_id}", response_class=XMLResponse, summary="TAP async: a job")
def job_document(job_id: str, jobs: Jobs, user: CurrentUser, base_url: BaseUrl) -> Response:
    job = _job_or_404(jobs, job_id, user)
    return XMLResponse(uws.job_xml(job, f"{base_url}{PREFIX}/async/{job.job_id}"))


@router.post("/async/{job_id}", summary="TAP async: ACTION=DELETE deletes a job",
             status_code=status.HTTP_303_SEE_OTHER, response_class=RedirectResponse,
             responses={303: {"description": "See the job list."}}, openapi_extra={"requestBody": _ACTION_BODY})
def job_action(job_id: str, parameters: Parameters, jobs: Jobs, user: CurrentUser, base_url: BaseUrl) -> Response:
    _job_or_404(jobs, job_id, user)
    action = _upper(parameters).get("ACTION", "")
    if action.strip().upper() != "DELETE":
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"ACTION={action!r}: the only action is DELETE")
    jobs.delete(job_id)
    return RedirectResponse(f"{base_url}{PREFIX}/async", status_code=status.HTTP_303_SEE_OTHER)


@router.delete("/async/{job_id}", summary="TAP async: delete a job", status_code=status.HTTP_303_SEE_OTHER,
               response_class=RedirectResponse, responses={303: {"description": "See the job list."}})
def delete_job(job_id: str, jobs: Jobs, user: CurrentUser, base_url: BaseUrl) -> Response:
    _job_or_404(jobs, job_id, user)
    jobs.delete(job_id)
    return RedirectResponse(f"{base_url}{PREFIX}/async", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/async/{job_id}/phase", response_class=PlainTextResponse, summary="TAP async: a job's phase")
def job_phase(job_id: str, jobs: Jobs, user: CurrentUser) -> Response:
    return PlainTextResponse(_job_or_404(jobs, job_id, user).phase)


@router.post("/async/{job_id}/phase", summary="TAP async: PHASE=RUN runs a job, PHASE=ABORT aborts it",
             status_code=status.HTTP_303_SEE_OTHER, response_class=RedirectResponse,
             responses={303: {"description": "See the job."}}, openapi_extra={"requestBody": _PHASE_BODY})
def change_phase(job_id: str, parameters: Parameters, jobs: Jobs, user: CurrentUser, catalog: CatalogDep,
                 settings: SettingsDep, base_url: BaseUrl) -> Response:
    job = _job_or_404(jobs, job_id, user)
    _phase(jobs, job, _upper(parameters).get("PHASE", ""), lambda p: _run(catalog, settings, base_url, p))
    return RedirectResponse(f"{base_url}{PREFIX}/async/{job.job_id}", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/async/{job_id}/results/result", response_class=VOTableResponse, summary="TAP async: the result")
def job_result(job_id: str, jobs: Jobs, user: CurrentUser) -> Response:
    job = _job_or_404(jobs, job_id, user)
    result = jobs.result(job_id) if job.has_result else None
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"TAP job {job_id!r} has no result (phase {job.phase})")
    return VOTableResponse(result)


@router.get("/async/{job_id}/error", response_class=VOTableResponse, summary="TAP async: the error")
def job_error(job_id: str, jobs: Jobs, user: CurrentUser) -> Response:
    job = _job_or_404(jobs, job_id, user)
    if job.error is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"TAP job {job_id!r} has no error (phase {job.phase})")
    return VOTableResponse(tap.error_document(Exception(job.error)))
