"""Name resolution, offline: a target name resolves against the programs' own targets and
their aliases (the plans' ``targets``, carried into the catalog with each observation), not
against SIMBAD or NED.

A name matches a target's name or one of its aliases when both have the same
:func:`shared.plan.target_key` (case, spaces and punctuation ignored: ``NGC 1234`` is
``ngc1234``). A name that matches nothing gets the closest names and aliases the archive
knows (difflib's ratio over the same keys) as suggestions. ``GET /resolve`` answers with
:func:`lookup`, in the shape of MAST's ``Mast.Name.Lookup`` (a MAST protocol endpoint can
answer the same); the ``target_name`` criterion of ``/observations`` uses
:func:`expand_target_names`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.archive.schemas import NameLookup, NameNotFound, ResolvedCoordinate
from shared.catalog import Observation
from shared.plan import target_key

__all__ = ["RESOLVER", "KnownTarget", "Match", "UnknownName", "expand_target_names", "known_targets", "lookup",
           "resolve", "suggest"]

RESOLVER = "jwst-dms"  # the ``resolver`` of an answer: the archive's own programs
SUGGESTIONS = 5
MIN_SIMILARITY = 0.5  # difflib ratio below which a name is no suggestion


@dataclass(frozen=True)
class KnownTarget:
    """A target of one or more programs: its name and position as the plans give them."""

    name: str
    ra: float | None
    dec: float | None
    aliases: tuple[str, ...]
    programs: tuple[str, ...]  # five-digit program ids, sorted


@dataclass(frozen=True)
class Match:
    target: KnownTarget
    matched: str  # the name or alias that matched, as the plan spells it
    alias: bool  # whether it matched an alias rather than the name


def known_targets(session: Session) -> list[KnownTarget]:
    """Every target of the catalog's observations (planned ones too: metadata is public),
    one per name and position, with the programs that observe it and the union of their
    aliases."""
    rows = session.execute(
        select(Observation.program_id, Observation.target_name, Observation.target_ra, Observation.target_dec,
               Observation.target_aliases).where(Observation.target_name != "")
    ).all()
    grouped: dict[tuple, tuple[set[str], dict[str, None]]] = {}
    for program, name, ra, dec, aliases in rows:
        key = (name, None if ra is None else round(ra, 7), None if dec is None else round(dec, 7))
        programs, names = grouped.setdefault(key, (set(), {}))
        programs.add(program)
        names.update(dict.fromkeys(aliases or []))
    return [KnownTarget(name, ra, dec, tuple(names), tuple(sorted(programs)))
            for (name, ra, dec), (programs, names) in sorted(grouped.items(), key=lambda kv: kv[0][0])]


def resolve(session: Session, name: str, targets: Sequence[KnownTarget] | None = None) -> list[Match]:
    """The targets ``name`` names (its key equals their name's or an alias's), those it
    names by their own name first; empty when none."""
    key = target_key(name)
    if not key:
        return []
    found = []
    for t in known_targets(session) if targets is None else targets:
        if target_key(t.name) == key:
            found.append(Match(t, t.name, False))
            continue
        alias = next((a for a in t.aliases if target_key(a) == key), None)
        if alias is not None:
            found.append(Match(t, alias, True))
    return sorted(found, key=lambda m: m.alias)


def suggest(session: Session, name: str, targets: Sequence[KnownTarget] | None = None,
            limit: int = SUGGESTIONS) -> list[str]:
    """The names and aliases closest to ``name`` (difflib ratio over their keys, at least
    :data:`MIN_SIMILARITY`), best first."""
    key = target_key(name)
    scored: dict[str, float] = {}
    for t in known_targets(session) if targets is None else targets:
        for candidate in (t.name, *t.aliases):
            matcher = difflib.SequenceMatcher(None, key, target_key(candidate), autojunk=False)
            if matcher.real_quick_ratio() >= MIN_SIMILARITY and matcher.quick_ratio() >= MIN_SIMILARITY:
                ratio = matcher.ratio()
                if ratio >= MIN_SIMILARITY:
                    scored[candidate] = max(ratio, scored.get(candidate, 0.0))
    return [c for c, _ in sorted(scored.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


class UnknownName(LookupError):
    """No target has the name; :attr:`answer` holds the detail and the suggestions."""

    def __init__(self, answer: NameNotFound):
        super().__init__(answer.detail)
        self.answer = answer


def lookup(session: Session, name: str) -> NameLookup:
    """The answer to a name lookup: every target ``name`` names (MAST's ``resolvedCoordinate``
    rows); :class:`UnknownName` with the closest names when there is none."""
    targets = known_targets(session)
    matches = resolve(session, name, targets)
    if not matches:
        suggestions = suggest(session, name, targets)
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else "; the archive knows no similar name"
        raise UnknownName(NameNotFound(
            detail=f"no target of the archive's programs is called {name!r} (names and aliases, case, spaces "
                   f"and punctuation ignored){hint}", searchString=name, suggestions=suggestions))
    return NameLookup(searchString=name, resolvedCoordinate=[
        ResolvedCoordinate(searchString=name, canonicalName=m.target.name, ra=m.target.ra, decl=m.target.dec,
                           resolver=RESOLVER, matchedAlias=m.matched if m.alias else None,
                           aliases=list(m.target.aliases), programs=list(m.target.programs),
                           proposal_id=[str(int(p)) for p in m.target.programs])
        for m in matches
    ])


def expand_target_names(session: Session, values: Sequence[str]) -> list[str]:
    """A ``target_name`` criterion with each plain value (no wildcard) that names a target
    by its name or an alias also given as the target's name, so ``target_name=HUDF`` finds
    the observations of the target that has HUDF as an alias (``!HUDF`` excludes them)."""
    if not values:
        return list(values)
    targets = None
    out: list[str] = []
    for value in values:
        out.append(value)
        negated = value.startswith("!")
        bare = value[1:] if negated else value
        if "*" in bare or "%" in bare:
            continue
        if targets is None:
            targets = known_targets(session)
        for m in resolve(session, bare, targets):
            name = f"!{m.target.name}" if negated else m.target.name
            if name not in out:
                out.append(name)
    return out
