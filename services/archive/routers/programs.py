"""/programs: a program's public description, and the PI's grants of data access.

Only the program's PI (``pi_user``, as the owner of their token) may add or remove
authorized users; the list itself is shown to the PI only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, status
from sqlalchemy import select

from services.archive import mast
from services.archive.dependencies import CurrentUser, DbSession, RequiredUser
from services.archive.schemas import AuthorizationRequest, ErrorOut, ProgramOut
from shared.access import readers
from shared.catalog import Observation, Program

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


def _out(session, program: Program, user: str | None) -> ProgramOut:
    numbers = session.scalars(select(Observation.number).where(Observation.program_id == program.id)
                              .order_by(Observation.number)).all()
    is_pi = user is not None and user == program.pi_user
    return ProgramOut(
        program=program.id, proposal_id=mast.proposal_id(program.id), title=program.title,
        pi_name=program.pi_name, category=program.category, eap_months=program.eap_months,
        observations=[mast.obs_id(program.id, n) for n in numbers],
        authorized_users=sorted(readers(program) - {program.pi_user}) if is_pi else None,
        you_may_read_exclusive_data=user is not None and user in readers(program),
        embargoed=program.embargoed,
    )


def _pi_only(program: Program, user: str) -> None:
    if program.pi_user is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"program {program.id} names no PI user; its authorizations come from its plan")
    if user != program.pi_user:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"only the PI of program {program.id} may change who reads its data")


@router.get("/{program}", response_model=ProgramOut, summary="A program")
def get_program(program: str, session: DbSession, user: CurrentUser) -> ProgramOut:
    return _out(session, _load(session, program), user)


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
