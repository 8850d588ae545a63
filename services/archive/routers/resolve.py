"""/resolve: a target name to its position, offline, against the programs' own targets and
their aliases (:mod:`services.archive.resolver`), in the shape of MAST's name lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.archive import resolver
from services.archive.dependencies import DbSession
from services.archive.schemas import NameLookup, NameNotFound

__all__ = ["router"]

router = APIRouter(tags=["observations"])


@router.get("/resolve", response_model=NameLookup, summary="Resolve a target name (offline)",
            responses={404: {"model": NameNotFound, "description": "No target has that name or alias; the closest "
                                                                   "names are suggested."}})
def resolve(
    session: DbSession,
    name: Annotated[str, Query(min_length=1, max_length=200, description=(
        "A target name or alias; case, spaces and punctuation do not count (NGC 1234 = ngc1234)."))],
):
    """The targets of the archive's programs whose name or alias is ``name``: position,
    canonical name, the alias that matched and the programs observing it. Nothing is asked
    of SIMBAD or NED. An unknown name is a 404 listing the closest names the archive knows."""
    try:
        return resolver.lookup(session, name)
    except resolver.UnknownName as exc:
        return JSONResponse(status_code=404, content=exc.answer.model_dump())
