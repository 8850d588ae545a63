"""Exclusive access: who may read a product's data, and when it becomes public.

Metadata is always public. Data (files, previews) of a product is public from its
``data_release`` date; before that only the program's PI and authorized users may read
it. A combined product is released when its most recent contributing exposure is.

The exclusive-access period (EAP) follows the program's category (:data:`DEFAULT_EAP_MONTHS`:
GO and GTO 12 months, every other category none). A plan may shorten a GO/GTO period to 3
or 6 months; 0 needs a waiver (the plan's ``eap_waiver``, or a dated waiver later); a
category without an EAP cannot be given one (:func:`eap_problem`). After archiving, the
period changes only through dated changes (``program_access_change``,
:func:`change_access`): the PI's waiver (no EAP from a date), an operator's extension
(+N months on releases still due) and an operator's embargo and its lifting. Each change
re-computes the release dates of the program's archived products in the transaction that
records it; data that were public stay public. The ``dms.data.public`` announcements of
what became public are the notifier's (``dms notify``), as for any release.

An embargoed program's data and previews are readable by operators only, public or not.
Operators (``DMS_OPERATORS``) may read everything; each of their reads of data nobody else
could read then is recorded (``exclusive_read``, :func:`record_exclusive_read`).

Revisions a reprocessing request staged (not current yet) or abandoned (it failed or was
cancelled) were never published: only operators (``DMS_OPERATORS``) see them. Who may ask
for reprocessing is decided here too: a program's PI and authorized users for that
program, an operator for any.
"""

from __future__ import annotations

import calendar
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from shared.catalog.caom import refresh_program
from shared.catalog.models import AccessChange, AccessKind, ExclusiveRead, Product, Program
from shared.naming import is_2c

__all__ = [
    "DEFAULT_EAP_MONTHS",
    "SHORTER_EAP_MONTHS",
    "AccessError",
    "ReadGrant",
    "add_months",
    "change_access",
    "combined_release",
    "data_is_public",
    "default_eap_months",
    "eap_problem",
    "is_operator",
    "may_read_data",
    "read_grant",
    "record_exclusive_read",
    "release_for",
    "may_reprocess",
    "published_revision",
    "programs_read_by",
    "readers",
    "recompute_releases",
    "revision_state",
]


DEFAULT_EAP_MONTHS: dict[str, int] = {"GO": 12, "GTO": 12, "ERS": 0, "DD": 0, "CAL": 0, "ENG": 0}
"""Exclusive-access months of each program category (DESIGN §7)."""

SHORTER_EAP_MONTHS = (3, 6)
"""The shorter periods a GO/GTO plan may ask for (JWST data rights); 0 takes a waiver."""

MAX_EXTENSION_MONTHS = 24


class AccessError(ValueError):
    """A change of access that the rules refuse; the message says why."""


def _aware(when: datetime) -> datetime:
    # SQLite returns naive datetimes; every time in the catalog is UTC.
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def add_months(when: datetime, months: int) -> datetime:
    """``when`` plus a number of calendar months (day clipped to the month's length)."""
    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def default_eap_months(category: str) -> int:
    """The exclusive-access months of a program category (unknown categories: none)."""
    return DEFAULT_EAP_MONTHS.get(category.upper(), 0)


def eap_problem(category: str, months: int, waived: bool = False) -> str | None:
    """Why a plan may not give a ``category`` program ``months`` of exclusive access
    (None: it may). GO/GTO: the default, 3 or 6 months, or 0 with a waiver; every other
    category: none. ``waived``: the PI waived the period in the plan."""
    default = default_eap_months(category)
    if months == default:
        return None
    if default == 0:
        return f"a {category} program has no exclusive-access period (got {months} months)"
    if months == 0:
        if waived:
            return None
        return (f"a {category} program has {default} months of exclusive access; 0 needs the PI's "
                "waiver (eap_waiver: the reason)")
    if months not in SHORTER_EAP_MONTHS:
        allowed = ", ".join(str(m) for m in (*SHORTER_EAP_MONTHS, default))
        return (f"a {category} program may ask for {allowed} months of exclusive access, not {months} "
                "(longer only by an operator's extension)")
    return None


def release_for(archived_at: datetime, eap_months: int, changes: Sequence[AccessChange] = ()) -> datetime:
    """The data release of a product first archived at ``archived_at`` under a program
    of ``eap_months``, after the program's dated changes (in effective order).

    A waiver makes a release still due at its date happen then (or on arrival for
    products archived after it); an extension adds its months to a release still due at
    its date (so products archived after it get the longer period too). Embargoes do
    not move dates."""
    archived_at = _aware(archived_at)
    release = add_months(archived_at, eap_months)
    for change in sorted(changes, key=lambda c: (_aware(c.effective_at), c.id or 0)):
        at = _aware(change.effective_at)
        if change.kind == AccessKind.WAIVER:
            release = min(release, max(archived_at, at))
        elif change.kind == AccessKind.EXTENSION and release > at:
            release = add_months(release, change.months or 0)
    return release


def data_is_public(product: Product, now: datetime | None = None) -> bool:
    return _aware(product.data_release) <= (now or datetime.now(UTC))


def readers(program: Program) -> set[str]:
    """Who may read the program's exclusive data: the PI, the users the plan authorizes
    and those the PI granted access to."""
    users = set(program.authorized_users or []) | set(program.granted_users or [])
    if program.pi_user:
        users.add(program.pi_user)
    return users


def programs_read_by(session: Session, user: str) -> list[Program]:
    """The programs whose exclusive data ``user`` may read (:func:`readers`), by number:
    those they may also reprocess and follow the requests of."""
    return [p for p in session.scalars(select(Program).order_by(Program.id)) if user in readers(p)]


class ReadGrant:
    """Why a read of a product's data is allowed (:func:`read_grant`)."""

    PUBLIC = "public"
    READER = "reader"  # the PI or an authorized user, before the release
    EXCLUSIVE = "exclusive"  # an operator, before the release: audited
    EMBARGOED = "embargoed"  # an operator, the program under embargo: audited
    AUDITED = (EXCLUSIVE, EMBARGOED)


def read_grant(product: Product, program: Program, user: str | None, now: datetime | None = None,
               operators: Collection[str] = ()) -> str | None:
    """Why ``user`` (None: anonymous) may read the product's data or previews now (a
    :class:`ReadGrant` value), or None when they may not. An embargo keeps everyone but
    operators out; operators may read everything (:attr:`ReadGrant.AUDITED` reads are
    to be recorded with :func:`record_exclusive_read`)."""
    operator = is_operator(user, operators)
    if program.embargoed:
        return ReadGrant.EMBARGOED if operator else None
    if data_is_public(product, now):
        return ReadGrant.PUBLIC
    if user is not None and user in readers(program):
        return ReadGrant.READER
    return ReadGrant.EXCLUSIVE if operator else None


def may_read_data(product: Product, program: Program, user: str | None, now: datetime | None = None,
                  operators: Collection[str] = ()) -> bool:
    """True when ``user`` (None: anonymous) may download the product's data or previews."""
    return read_grant(product, program, user, now, operators) is not None


def record_exclusive_read(session: Session, product: Product, user: str, filename: str, why: str,
                          now: datetime | None = None) -> ExclusiveRead:
    """Record that operator ``user`` read ``filename`` (the product's data, preview or
    thumbnail) while nobody else could (``why``: exclusive or embargoed)."""
    row = ExclusiveRead(user=user, program_id=product.program_id, product_id=product.id, filename=filename,
                        revision=product.revision, why=why, read_at=now or datetime.now(UTC))
    session.add(row)
    session.flush()
    return row


def combined_release(input_releases: Iterable[datetime]) -> datetime:
    """Release date of a product made from several inputs: the latest of theirs."""
    releases = [_aware(r) for r in input_releases]
    if not releases:
        raise ValueError("a combined product needs at least one input to date its release")
    return max(releases)


def is_operator(user: str | None, operators: Collection[str]) -> bool:
    """True when ``user`` is one of the archive operators (``Settings.operator_users``)."""
    return user is not None and user in operators


def may_reprocess(program: Program, user: str | None, operators: Collection[str]) -> bool:
    """True when ``user`` may submit, follow and cancel reprocessing requests of
    ``program``: its PI and authorized users, and any operator."""
    return is_operator(user, operators) or (user is not None and user in readers(program))


def published_revision() -> ColumnElement[bool]:
    """A product revision that was made public as a revision of the archive: the current
    one or one superseded since; never one a reprocessing request staged and has not made
    current, nor one it abandoned."""
    return Product.abandoned_at.is_(None) & or_(Product.is_current, Product.superseded_at.is_not(None))


def revision_state(product: Product) -> str:
    """``current``, ``superseded``, ``staged`` (made by a reprocessing request, not current
    yet) or ``abandoned`` (its request failed or was cancelled)."""
    if product.is_current:
        return "current"
    if product.abandoned_at is not None:
        return "abandoned"
    return "superseded" if product.superseded_at is not None else "staged"


def _input_names(product: Product) -> set[str]:
    names = {str(i).rsplit("/", 1)[-1] for i in (product.inputs or [])}
    names.discard(product.filename)
    return names


def recompute_releases(session: Session, program: Program, now: datetime) -> int:
    """Re-compute the data release of every archived revision of the program's products
    from its category period and dated changes; returns how many moved.

    A file's revisions share the release of its first archiving; a combined product (no
    exposure of its own, inputs that are products) takes the latest of its inputs'
    releases, and so does a 2c product (made from its member and the association: released
    with the association's latest member). A
    release already passed at ``now`` stays: public data stay public."""
    changes = list(session.scalars(select(AccessChange).where(AccessChange.program_id == program.id)))
    rows = list(session.scalars(
        select(Product).where(Product.program_id == program.id).order_by(Product.archived_at, Product.id)
        .with_for_update()
    ))
    first: dict[str, datetime] = {}
    for p in rows:
        first.setdefault(p.filename, _aware(p.archived_at))
    own = {name: release_for(at, program.eap_months, changes) for name, at in first.items()}
    releases: dict[str, datetime] = {}

    def release_of(name: str, depth: int = 0) -> datetime:
        if name in releases:
            return releases[name]
        product = next(p for p in rows if p.filename == name)
        inputs = [n for n in _input_names(product) if n in first]
        if (product.exposure_id is None or is_2c(product.filename)) and inputs and depth < 8:
            found = combined_release(release_of(n, depth + 1) for n in inputs)
        else:
            found = own[name]
        releases[name] = found
        return found

    moved = 0
    for p in rows:
        if data_is_public(p, now):
            continue  # public data stay public
        new = release_of(p.filename)
        if new != _aware(p.data_release):
            p.data_release = new
            moved += 1
    session.flush()
    if moved:
        refresh_program(session, program.id)  # their t_obs_release follows
    return moved


def change_access(session: Session, program_id: str, kind: str, *, requested_by: str, reason: str,
                  operators: Collection[str] = (), months: int | None = None,
                  effective_at: datetime | None = None, now: datetime | None = None) -> AccessChange:
    """Record one dated change of a program's access and re-compute the release dates of
    its archived products, in the session's transaction.

    The PI (or an operator) may waive; only an operator may extend, embargo or lift an
    embargo. Raises :class:`AccessError` (the message says why) for a refused change,
    :class:`PermissionError` for a user not allowed to make it, :class:`LookupError` for
    an unknown program."""
    now = _aware(now or datetime.now(UTC))
    program = session.scalar(select(Program).where(Program.id == program_id).with_for_update())
    if program is None:
        raise LookupError(f"no program {program_id}")
    try:
        kind = AccessKind(kind)
    except ValueError:
        raise AccessError(f"unknown access change {kind!r}; one of {', '.join(k.value for k in AccessKind)}") from None
    operator = is_operator(requested_by, operators)
    if kind == AccessKind.WAIVER:
        if not operator and requested_by != program.pi_user:
            raise PermissionError(f"only the PI of program {program.id} (or an operator) may waive its exclusive access")
    elif not operator:
        raise PermissionError(f"only an operator may {'extend' if kind == AccessKind.EXTENSION else kind.value} "
                              f"the exclusive access of program {program.id}")
    if not reason or not reason.strip():
        raise AccessError("a reason is required")
    effective_at = _aware(effective_at) if effective_at is not None else now
    if effective_at < now and kind != AccessKind.WAIVER:
        raise AccessError(f"an {kind.value} takes effect now or later, not {effective_at:%Y-%m-%d %H:%M:%S} UTC")
    if kind == AccessKind.EXTENSION:
        if months is None or not 1 <= months <= MAX_EXTENSION_MONTHS:
            raise AccessError(f"an extension adds 1 to {MAX_EXTENSION_MONTHS} months, got {months}")
    elif months is not None:
        raise AccessError(f"months are for extensions, not a {kind.value}")
    if kind == AccessKind.EXTENSION and default_eap_months(program.category) == 0 and program.eap_months == 0:
        raise AccessError(f"a {program.category} program has no exclusive access to extend")
    if kind == AccessKind.EMBARGO and program.embargoed:
        raise AccessError(f"program {program.id} is already under embargo")
    if kind == AccessKind.LIFT and not program.embargoed:
        raise AccessError(f"program {program.id} is not under embargo")
    if kind in (AccessKind.EMBARGO, AccessKind.LIFT) and effective_at != now:
        raise AccessError(f"an {kind.value} takes effect when recorded; give no date")
    change = AccessChange(program_id=program.id, kind=kind.value, effective_at=effective_at, months=months,
                          reason=reason.strip(), requested_by=requested_by, created_at=now)
    session.add(change)
    session.flush()
    if kind == AccessKind.EMBARGO:
        program.embargoed = True
    elif kind == AccessKind.LIFT:
        program.embargoed = False
    else:
        change.moved = recompute_releases(session, program, now)
    session.flush()
    return change
