"""/resolve: a target name to its position, offline, against the programs' own targets and
their aliases (:mod:`services.archive.resolver`), in the shape of MAST's name lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.archive import resolver
from services.archive.dependencies import DbSession
from services.archive.schemas import NameLookup, NameNotFound, ResolvedCoordinate

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
    targets = resolver.known_targets(session)
    matches = resolver.resolve(session, name, targets)
    if not matches:
        suggestions = resolver.suggest(session, name, targets)
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else "; the archive knows no similar name"
        return JSONResponse(status_code=404, content=NameNotFound(
            detail=f"no target of the archive's programs is called {name!r} (names and aliases, case, spaces "
                   f"and punctuation ignored){hint}", searchString=name, suggestions=suggestions).model_dump())
    return NameLookup(searchString=name, resolvedCoordinate=[
        ResolvedCoordinate(searchString=name, canonicalName=m.target.name, ra=m.target.ra, decl=m.target.dec,
                           resolver=resolver.RESOLVER, matchedAlias=m.matched if m.alias else None,
                           aliases=list(m.target.aliases), programs=list(m.target.programs),
                           proposal_id=[str(int(p)) for p in m.target.programs])
        for m in matches
    ])
