"""Exclusive access: who may read a product's data, and when it becomes public.

Metadata is always public. Data (files, previews) of a product is public from its
``data_release`` date; before that only the program's PI and authorized users may read
it. A combined product is released when its most recent contributing exposure is.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from shared.catalog.models import Product, Program

__all__ = ["combined_release", "data_is_public", "may_read_data", "readers"]


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
