"""Exclusive access of a program (shared.access): its period, its dated changes, and the
audit of operators' reads of exclusive data.

- ``GET /programs/{program}/access``: the category's and the program's period, embargo,
  the dated changes and what is still exclusive (public: it is metadata).
- ``POST /programs/{program}/access``: a dated change. The PI (or an operator) may waive;
  only operators extend, embargo and lift. The release dates of the program's archived
  products are re-computed in the same transaction; data that became public are announced
  (``dms.data.public``) by the notifier's next pass (``dms notify``).
- ``GET /access/reads``: operators only; who read which exclusive or embargoed file, when.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, select

from services.archive import mast
from services.archive.dependencies import DbSession, Operator, RequiredUser, SettingsDep
from services.archive.schemas import (
    AccessChangeIn,
    AccessChangeOut,
    ErrorOut,
    ExclusiveReadOut,
    ProgramAccessOut,
)
from shared.access import AccessError, change_access, default_eap_months
from shared.catalog import AccessChange, ExclusiveRead, Product, Program

__all__ = ["router"]

router = APIRouter(tags=["programs"])

MAX_READS = 1000
_ERRORS = {400: {"model": ErrorOut, "description": "The rules refuse the change (the reason is given)."},
           403: {"model": ErrorOut, "description": "This user may not make this change."},
           404: {"model": ErrorOut, "description": "No such program."}}


def _program_id(value: str) -> str:
    try:
        return mast.normalize_program(value)
    except mast.CriterionError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from None


def change_out(change: AccessChange) -> AccessChangeOut:
    return AccessChangeOut(
        id=change.id, program=change.program_id, kind=change.kind, effective=mast.aware(change.effective_at),
        months=change.months, reason=change.reason, requested_by=change.requested_by,
        created=mast.aware(change.created_at), moved=change.moved,
    )


def access_view(session, program: Program, now: datetime) -> ProgramAccessOut:
    changes = session.scalars(select(AccessChange).where(AccessChange.program_id == program.id)
                              .order_by(AccessChange.effective_at, AccessChange.id)).all()
    exclusive, due = session.execute(
        select(func.count(Product.id), func.min(Product.data_release))
        .where(Product.program_id == program.id, Product.is_current, Product.data_release > now)
    ).one()
    return ProgramAccessOut(
        program=program.id, category=program.category, category_eap_months=default_eap_months(program.category),
        eap_months=program.eap_months, embargoed=program.embargoed, changes=[change_out(c) for c in changes],
        exclusive_products=exclusive, next_release=mast.aware(due) if due is not None else None,
    )


@router.get("/programs/{program}/access", response_model=ProgramAccessOut, summary="A program's exclusive access",
            responses={404: _ERRORS[404]})
def get_access(program: str, session: DbSession) -> ProgramAccessOut:
    row = session.get(Program, _program_id(program))
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no program {_program_id(program)}")
    return access_view(session, row, datetime.now(UTC))


@router.post("/programs/{program}/access", response_model=AccessChangeOut, status_code=status.HTTP_201_CREATED,
             summary="Waive (PI), extend, embargo or lift (operators) a program's exclusive access",
             responses=_ERRORS)
def post_access(program: str, body: AccessChangeIn, session: DbSession, user: RequiredUser,
                settings: SettingsDep) -> AccessChangeOut:
    """Record the change and re-compute the release dates of the program's archived
    products (current and older revisions; combined products from their inputs). Data
    already public stay public."""
    try:
        change = change_access(session, _program_id(program), body.kind, requested_by=user, reason=body.reason,
                               operators=settings.operator_users, months=body.months, effective_at=body.effective)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except PermissionError as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from None
    except AccessError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc)) from None
    return change_out(change)


@router.get("/access/reads", response_model=list[ExclusiveReadOut], summary="Operators' reads of exclusive data",
            responses={403: {"model": ErrorOut, "description": "Operators only."}})
def exclusive_reads(
    session: DbSession, user: RequiredUser, operator: Operator,
    program: Annotated[str | None, Query(description="Only this program's.")] = None,
    reader: Annotated[str | None, Query(description="Only this operator's reads.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_READS)] = 100,
) -> list[ExclusiveReadOut]:
    """Newest first."""
    if not operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"only operators see the audit of reads; {user} is none")
    query = select(ExclusiveRead).order_by(ExclusiveRead.read_at.desc(), ExclusiveRead.id.desc()).limit(limit)
    if program is not None:
        query = query.where(ExclusiveRead.program_id == _program_id(program))
    if reader is not None:
        query = query.where(ExclusiveRead.user == reader)
    return [ExclusiveReadOut(id=r.id, user=r.user, program=r.program_id, filename=r.filename, revision=r.revision,
                             why=r.why, read_at=mast.aware(r.read_at)) for r in session.scalars(query)]
