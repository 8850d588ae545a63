"""What routes receive by injection: settings, the catalog session, the object store and
the caller's identity.

Identity comes from an API token, given the ways MAST users already send theirs:
``Authorization: Bearer <token>``, ``Authorization: token <token>`` or the cookie
``mast_token``. No token means anonymous (metadata and public data only); a token that is
unknown, expired or revoked is refused with 401 rather than silently treated as anonymous —
on every route (:func:`check_request` is a dependency of the whole application).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from shared import access
from shared.catalog import Catalog
from shared.config import Settings, get_settings
from shared.storage import ObjectStore
from shared.tokens import verify_token

__all__ = [
    "BaseUrl",
    "CurrentUser",
    "check_request",
    "DbSession",
    "Operator",
    "RequiredUser",
    "SettingsDep",
    "StoreDep",
    "current_user",
    "get_catalog",
    "get_session",
    "get_settings",
    "get_store",
    "is_operator",
    "public_base_url",
    "required_user",
]

TOKEN_COOKIE = "mast_token"
_SCHEMES = ("bearer", "token")
REALM = 'Bearer realm="jwst-dms"'


def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


def get_session(catalog: Annotated[Catalog, Depends(get_catalog)]) -> Iterator[Session]:
    """A catalog session per request, committed when the route returns (before the
    response is sent) and rolled back when it raises."""
    with catalog.session() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DbSession = Annotated[Session, Depends(get_session, scope="function")]
StoreDep = Annotated[ObjectStore, Depends(get_store)]


_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def _first(value: str) -> str:
    """The first of a proxy header's comma-separated values (the one the client reached)."""
    return value.split(",")[0].strip()


def public_base_url(request: Request, settings: SettingsDep) -> str:
    """The address every URL the API returns starts with (no trailing slash):
    ``DMS_ARCHIVE_BASE_URL`` when it is set; otherwise the scheme, host and port the request
    reached (its ``Host`` header, and the mount path), or, with ``DMS_ARCHIVE_BEHIND_PROXY``,
    those the proxy says the client reached (``X-Forwarded-Proto``, ``X-Forwarded-Host``,
    ``X-Forwarded-Port``, ``X-Forwarded-Prefix``). A header that is no host or scheme is a 400."""
    if settings.archive_base_url:
        return settings.archive_base_url.rstrip("/")
    scheme, host = request.url.scheme, request.headers.get("host") or request.url.netloc
    prefix = request.scope.get("root_path", "")
    if settings.archive_behind_proxy:
        headers = request.headers
        if (proto := headers.get("x-forwarded-proto")) is not None:
            scheme = _first(proto).lower()
            if scheme not in ("http", "https"):
                raise HTTPException(status.HTTP_400_BAD_REQUEST,
                                    detail=f"header X-Forwarded-Proto: {proto!r} is neither http nor https")
        if (forwarded := headers.get("x-forwarded-host")) is not None:
            host = _first(forwarded)
        if (port := headers.get("x-forwarded-port")) is not None:
            port = _first(port)
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"header X-Forwarded-Port: {port!r} is no port")
            host = re.sub(r":[0-9]+$", "", host) if not host.endswith("]") else host
            default = {"http": 80, "https": 443}[scheme]
            host = host if int(port) == default else f"{host}:{port}"
        if (forwarded_prefix := headers.get("x-forwarded-prefix")) is not None:
            prefix = "/" + _first(forwarded_prefix).strip("/")
    if not _HOST.match(host):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"the host {host!r} the request names is no "
                                                                "host[:port]; links cannot be made from it")
    if any(c in prefix for c in " ?#\"\\") or _has_control_characters(prefix):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"the path prefix {prefix!r} is no URL path")
    return f"{scheme}://{host}{prefix.rstrip('/')}"


BaseUrl = Annotated[str, Depends(public_base_url)]
"""The address URLs in answers start with (:func:`public_base_url`)."""


def _unauthorized(detail: str, error: str | None = None) -> HTTPException:
    challenge = REALM + (f', error="{error}"' if error else "")
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": challenge})


def _token_from(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() not in _SCHEMES or not token.strip():
            raise _unauthorized(
                "the Authorization header must be 'Bearer <token>' or 'token <token>'", "invalid_request"
            )
        return token.strip()
    cookie = request.cookies.get(TOKEN_COOKIE)
    return cookie.strip() if cookie and cookie.strip() else None


def current_user(request: Request) -> str | None:
    """The token owner, or None for an anonymous caller; 401 for a bad token.

    The check runs in its own short transaction so that ``last_used_at`` is recorded even
    when the route then refuses the request. Without a token the catalog is not touched
    (the documentation pages are served before, or without, one).
    """
    token = _token_from(request)
    if token is None:
        return None
    with get_catalog(request).session() as s:
        owner = verify_token(s, token, datetime.now(UTC))
    if owner is None:
        raise _unauthorized("the token is unknown, expired or revoked; ask for a new one "
                            "(`dms token create`)", "invalid_token")
    return owner


CurrentUser = Annotated[str | None, Depends(current_user)]


def _has_control_characters(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def check_request(request: Request, user: CurrentUser) -> None:
    """Run before every route: a token, when one is sent, must be valid (401 otherwise,
    through :func:`current_user`), and no path segment or query value may carry control
    characters (NUL, CR, LF...; 400), which no identifier or criterion of the archive has.
    The one text that may span lines is an ADQL query: a TAP ``QUERY`` may hold tabs and line
    breaks (not other control characters)."""
    where = None
    if _has_control_characters(request.url.path) or any(
            _has_control_characters(v) for v in request.path_params.values() if isinstance(v, str)):
        where = "the path"
    else:
        adql = request.url.path.startswith("/vo/tap")
        for key, value in request.query_params.multi_items():
            if adql and key.upper() == "QUERY":
                value = value.replace("\t", " ").replace("\n", " ").replace("\r", " ")
            if _has_control_characters(key) or _has_control_characters(value):
                where = f"query parameter {key!r}"
                break
    if where is not None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"{where} contains control characters")


def required_user(user: CurrentUser) -> str:
    if user is None:
        raise _unauthorized("this needs a token: send 'Authorization: Bearer <token>'")
    return user


RequiredUser = Annotated[str, Depends(required_user)]


def unauthorized(detail: str) -> HTTPException:
    """401 with the challenge, for routes that refuse an anonymous caller."""
    return _unauthorized(detail)


def is_operator(user: CurrentUser, settings: SettingsDep) -> bool:
    """Whether the caller is an archive operator (``DMS_OPERATORS``)."""
    return access.is_operator(user, settings.operator_users)


Operator = Annotated[bool, Depends(is_operator)]
