"""API tokens of the archive: issued by operators (``dms token create``), presented by users
as ``Authorization: Bearer <token>`` (or MAST's ``Authorization: token <t>`` / cookie
``mast_token``), checked by the archive API.

Only the sha256 of a token is stored; the plaintext is shown once, when it is made. A token
names its owner (a user identity such as an e-mail address, the same string a program lists
in ``pi_user`` / ``authorized_users``), expires after a number of days and can be revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.catalog.models import ApiToken

__all__ = [
    "TOKEN_PREFIX",
    "IssuedToken",
    "create_token",
    "hash_token",
    "issue_token",
    "list_tokens",
    "revoke_token",
    "verify_token",
]

TOKEN_PREFIX = "dms_"  # makes leaked tokens recognisable to secret scanners
_MAX_OWNER = 200
_MAX_DESCRIPTION = 200


def _aware(when: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; every time in the catalog is UTC.
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def hash_token(token: str) -> str:
    """The stored form of a token: sha256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: ``plaintext`` is shown to the user once and never stored."""

    id: int
    owner: str
    plaintext: str
    expires_at: datetime


def issue_token(
    session: Session, owner: str, days: int, description: str = "", now: datetime | None = None
) -> IssuedToken:
    """Make a token for ``owner`` valid for ``days`` days; store only its sha256.

    Raises
    ------
    ValueError
        Empty or over-long owner or description, or ``days`` not positive.
    """
    owner = owner.strip()
    if not owner or len(owner) > _MAX_OWNER or any(c.isspace() for c in owner):
        raise ValueError(f"owner must be a user identity without spaces, 1..{_MAX_OWNER} characters, got {owner!r}")
    if len(description) > _MAX_DESCRIPTION:
        raise ValueError(f"description is longer than {_MAX_DESCRIPTION} characters")
    if int(days) < 1:
        raise ValueError(f"a token must live at least one day, got days={days}")
    now = now or datetime.now(UTC)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        token_sha256=hash_token(plaintext), owner=owner, description=description,
        created_at=now, expires_at=now + timedelta(days=int(days)),
    )
    session.add(row)
    session.flush()
    return IssuedToken(id=row.id, owner=owner, plaintext=plaintext, expires_at=row.expires_at)


def create_token(session: Session, owner: str, days: int, description: str = "") -> str:
    """Make a token for ``owner`` valid for ``days`` days and return its plaintext."""
    return issue_token(session, owner, days, description).plaintext


def verify_token(session: Session, token: str, now: datetime | None = None) -> str | None:
    """The owner of a valid token, or None when it is unknown, expired or revoked.
    A valid token's ``last_used_at`` is set to ``now``."""
    if not token:
        return None
    now = now or datetime.now(UTC)
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    expires = _aware(row.expires_at)
    if expires is not None and expires <= now:
        return None
    row.last_used_at = now
    session.flush()
    return row.owner


def list_tokens(session: Session, owner: str | None = None, *, include_revoked: bool = True) -> list[ApiToken]:
    """Tokens (never their plaintext), oldest first, optionally of one owner."""
    query = select(ApiToken).order_by(ApiToken.id)
    if owner is not None:
        query = query.where(ApiToken.owner == owner)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_token(session: Session, token_id: int, owner: str | None = None, now: datetime | None = None) -> bool:
    """Revoke a token; False when there is no such token (of ``owner``, when given).
    Revoking a revoked token is a no-op that returns True."""
    row = session.get(ApiToken, token_id)
    if row is None or (owner is not None and row.owner != owner):
        return False
    if row.revoked_at is None:
        row.revoked_at = now or datetime.now(UTC)
        session.flush()
    return True
