"""Exclusive access: who may read a product's data, and when it becomes public.

Metadata is always public. Data (files, previews) of a product is public from its
``data_release`` date; before that only the program's PI and authorized users may read
it. A combined product is released when its most recent contributing exposure is.

Revisions a reprocessing request staged (not current yet) or abandoned (it failed or was
cancelled) were never published: only operators (``DMS_OPERATORS``) see them. Who may ask
for reprocessing is decided here too: a program's PI and authorized users for that
program, an operator for any.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, or_

from shared.catalog.models import Product, Program

__all__ = [
    "combined_release",
    "data_is_public",
    "is_operator",
    "may_read_data",
    "may_reprocess",
    "published_revision",
    "readers",
    "revision_state",
]


def _aware(when: datetime) -> datetime:
    # SQLite returns naive datetimes; every time in the catalog is UTC.
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def data_is_public(product: Product, now: datetime | None = None) -> bool:
    return _aware(product.data_release) <= (now or datetime.now(UTC))


def readers(program: Program) -> set[str]:
    """Who may read the program's exclusive data: the PI, the users the plan authorizes
    and those the PI granted access to."""
    users = set(program.authorized_users or []) | set(program.granted_users or [])
    if program.pi_user:
        users.add(program.pi_user)
    return users


def may_read_data(product: Product, program: Program, user: str | None, now: datetime | None = None) -> bool:
    """True when ``user`` (None: anonymous) may download the product's data or previews."""
    if data_is_public(product, now):
        return True
    return user is not None and user in readers(program)


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
