"""/programs: a program's public description, its association report, and the PI's grants
of data access.

Only the program's PI (``pi_user``, as the owner of their token) may add or remove
authorized users; the list itself is shown to the PI only. The association report is a
product of the program (metadata only, public from its archiving); it is served under
the same read rule as any file (an embargoed program's to operators only).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request, status
from fastapi.responses import Response
from sqlalchemy import select

from services.archive import mast
from services.archive.dependencies import (
    CurrentUser,
    DbSession,
    RequiredUser,
    SettingsDep,
    StoreDep,
    unauthorized,
)
from services.archive.files import resolve, serve
from services.archive.routers.download import authorize
from services.archive.schemas import AuthorizationRequest, ErrorOut, ProgramOut
from shared.access import programs_read_by, published_revision, readers
from shared.catalog import ArtifactKind, Observation, Product, Program
from shared.naming import ReportName

__all__ = ["router"]

router = APIRouter(prefix="/programs", tags=["programs"])

_PI_ONLY = {403: {"model": ErrorOut, "description": "Only the program's PI may change who reads its data."}}
_FROM_PLAN = {409: {"model": ErrorOut, "description": "The user is authorized by the plan; change the plan."}}


def _program_id(value: str) -> str:
    try:
        return mast.normalize_program(value)
    except mast.CriterionError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from None


def _load(session, program: str, *, for_update: bool = False) -> Program:
    pid = _program_id(program)
    query = select(Program).where(Program.id == pid)
    if for_update:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no program {pid}")
    return row


def _outs(session, programs: list[Program], user: str | None) -> list[ProgramOut]:
    """The public description of each program, as ``user`` sees it (one query for all their
    observations)."""
    numbers: dict[str, list[int]] = {p.id: [] for p in programs}
    if programs:
        for pid, number in session.execute(
                select(Observation.program_id, Observation.number)
                .where(Observation.program_id.in_(list(numbers))).order_by(Observation.number)):
            numbers[pid].append(number)
    out = []
    for program in programs:
        is_pi = user is not None and user == program.pi_user
        out.append(ProgramOut(
            program=program.id, proposal_id=mast.proposal_id(program.id), title=program.title,
            pi_name=program.pi_name, category=program.category, eap_months=program.eap_months,
            observations=[mast.obs_id(program.id, n) for n in numbers[program.id]],
            authorized_users=sorted(readers(program) - {program.pi_user}) if is_pi else None,
            you_may_read_exclusive_data=user is not None and user in readers(program),
            embargoed=program.embargoed,
        ))
    return out


def _out(session, program: Program, user: str | None) -> ProgramOut:
    return _outs(session, [program], user)[0]


def _pi_only(program: Program, user: str) -> None:
    if program.pi_user is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"program {program.id} names no PI user; its authorizations come from its plan")
    if user != program.pi_user:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"only the PI of program {program.id} may change who reads its data")


@router.get("", response_model=list[ProgramOut], summary="Programs: every one, or yours",
            responses={401: {"model": ErrorOut, "description": "mine=true without a token."}})
def list_programs(
    session: DbSession, user: CurrentUser,
    mine: Annotated[bool, Query(description="Only the programs whose PI or authorized user you are (a token "
                                            "needed): those whose exclusive data you read and may reprocess.")] = False,
) -> list[ProgramOut]:
    """Public descriptions of the archive's programs, by program number."""
    if mine and user is None:
        raise unauthorized("mine=true lists the programs of a token's owner; send a token")
    programs = programs_read_by(session, user) if mine else session.scalars(select(Program).order_by(Program.id)).all()
    return _outs(session, list(programs), user)


@router.get("/{program}", response_model=ProgramOut, summary="A program")
def get_program(program: str, session: DbSession, user: CurrentUser) -> ProgramOut:
    return _out(session, _load(session, program), user)


# The report is one self-contained page: no script, no external resource may run or load.
_REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@router.head("/{program}/associations/report", include_in_schema=False)
@router.get("/{program}/associations/report", summary="The program's association report (HTML)",
            response_class=Response,
            responses={200: {"content": {"text/html": {}}},
                       404: {"model": ErrorOut, "description": "No such program, or no report yet."}})
def association_report(program: str, request: Request, session: DbSession, store: StoreDep, user: CurrentUser,
                       settings: SettingsDep) -> Response:
    """The current revision of the program's association summary report: every
    association with its rule, members, completion state (what it still waits for), the
    products made, the members' footprints and exposure timeline. It is also one of the
    program's products (``jw<ppppp>_asn-report.html``), with its
    earlier revisions."""
    row = _load(session, program)
    filename = session.scalar(
        select(Product.filename).where(Product.program_id == row.id, Product.suffix == ReportName.SUFFIX,
                                       Product.is_current, published_revision())
        .order_by(Product.archived_at.desc()).limit(1))
    served = resolve(session, filename, (ArtifactKind.DATA,)) if filename is not None else None
    if served is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"program {row.id} has no association report yet: it is made once an "
                                   "exposure of the program is archived")
    authorize(session, served, user, datetime.now(UTC), frozenset(settings.operator_users))
    response = serve(store, served, inline=True, head=request.method == "HEAD")
    response.headers["Content-Security-Policy"] = _REPORT_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.post("/{program}/authorizations", response_model=ProgramOut, summary="Grant data access (PI only)",
             responses=_PI_ONLY)
def grant(program: str, body: AuthorizationRequest, session: DbSession, user: RequiredUser) -> ProgramOut:
    """Grant ``user`` access to the program's exclusive data (no-op when they have it).
    Grants are kept apart from the plan's list, so a new plan revision keeps them."""
    row = _load(session, program, for_update=True)
    _pi_only(row, user)
    grantee = body.user.strip()
    if grantee not in readers(row):
        row.granted_users = [*(row.granted_users or []), grantee]  # a new list: JSON change tracked
        session.flush()
    return _out(session, row, user)


def _revoke(session, program: str, grantee: str, user: str) -> ProgramOut:
    row = _load(session, program, for_update=True)
    _pi_only(row, user)
    grantee = grantee.strip()
    if grantee in (row.authorized_users or []):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"{grantee} is authorized by the plan of program {row.id}; change the plan")
    if grantee not in (row.granted_users or []):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{grantee} is not authorized for program {row.id}")
    row.granted_users = [u for u in row.granted_users if u != grantee]
    session.flush()
    return _out(session, row, user)


@router.delete("/{program}/authorizations/{grantee}", response_model=ProgramOut,
               summary="Withdraw data access (PI only)", responses={**_PI_ONLY, **_FROM_PLAN})
def revoke(program: str, grantee: str, session: DbSession, user: RequiredUser) -> ProgramOut:
    return _revoke(session, program, grantee, user)


@router.delete("/{program}/authorizations", response_model=ProgramOut,
               summary="Withdraw data access, user in the body (PI only)", responses={**_PI_ONLY, **_FROM_PLAN})
def revoke_body(program: str, body: Annotated[AuthorizationRequest, Body()], session: DbSession,
                user: RequiredUser) -> ProgramOut:
    return _revoke(session, program, body.user, user)
