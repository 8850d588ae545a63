"""Command-line entries of the archive service, added to ``dms`` by the CLI:

    dms serve archive [--host H] [--port P]                 run the HTTP API (uvicorn)
    dms token create --owner USER [--days N] [--description D]
    dms token list [--owner USER] [--active]
    dms token revoke ID
"""

from __future__ import annotations

import argparse
import sys

from shared.config import get_settings

__all__ = ["cmd_serve_archive", "cmd_token_create", "cmd_token_list", "cmd_token_revoke", "register_commands"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _catalog():
    from shared.catalog import Catalog

    settings = get_settings()
    catalog = Catalog(settings.resolved_catalog_url)
    catalog.upgrade()
    return settings, catalog


def cmd_serve_archive(args: argparse.Namespace) -> int:
    import uvicorn

    from services.archive.app import create_app

    settings, catalog = _catalog()  # schema up to date before the first request
    catalog.dispose()
    if settings.store == "local":  # the embedded default: make its buckets, as the other commands do
        from shared.storage import open_store

        open_store(settings).ensure_buckets()
    host = args.host or settings.archive_host
    port = args.port if args.port is not None else settings.archive_port
    links = (f"links it answers start with {settings.archive_base_url}" if settings.archive_base_url else
             "links it answers follow the address each request reached"
             + (" (X-Forwarded-* of the proxy)" if settings.archive_behind_proxy else ""))
    print(f"archive API on http://{host}:{port} (docs at /docs); {links}", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=args.log_level,
                proxy_headers=settings.archive_behind_proxy)
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from shared.tokens import issue_token

    settings, catalog = _catalog()
    days = args.days if args.days is not None else settings.token_ttl_days
    try:
        with catalog.session() as s:
            issued = issue_token(s, args.owner, days, args.description or "")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        catalog.dispose()
    print(f"token {issued.id} for {issued.owner}, valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC")
    print("shown once; keep it secret (send it as 'Authorization: Bearer <token>' or export DMS_TOKEN):")
    print(issued.plaintext)
    return 0


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else "-"


def cmd_token_list(args: argparse.Namespace) -> int:
    from shared.tokens import list_tokens

    _, catalog = _catalog()
    try:
        with catalog.session() as s:
            rows = list_tokens(s, args.owner, include_revoked=not args.active)
            lines = [
                f"{t.id:>5}  {t.owner:<32} {_when(t.created_at):<16}  {_when(t.expires_at):<16}  "
                f"{_when(t.last_used_at):<16}  {'revoked ' + _when(t.revoked_at) if t.revoked_at else 'active':<24} "
                f"{t.description}"
                for t in rows
            ]
    finally:
        catalog.dispose()
    if not lines:
        print("no tokens")
        return 0
    print(f"{'id':>5}  {'owner':<32} {'created':<16}  {'expires':<16}  {'last used':<16}  {'state':<24} description")
    print("\n".join(lines))
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from shared.tokens import revoke_token

    _, catalog = _catalog()
    try:
        with catalog.session() as s:
            found = revoke_token(s, args.id)
    finally:
        catalog.dispose()
    if not found:
        print(f"error: no token {args.id} (see `dms token list`)", file=sys.stderr)
        return 2
    print(f"token {args.id} revoked")
    return 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve`` and ``token`` to the ``dms`` command line."""
    serve = subparsers.add_parser("serve", help="run an HTTP service")
    servers = serve.add_subparsers(dest="server", required=True)
    s = servers.add_parser("archive", help="the archive API (search, products, downloads, subscriptions)")
    s.add_argument("--host", default=None, help="address to listen on (default DMS_ARCHIVE_HOST, 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="port (default DMS_ARCHIVE_PORT, 8000)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    s.set_defaults(func=cmd_serve_archive)

    token = subparsers.add_parser("token", help="API tokens of the archive")
    actions = token.add_subparsers(dest="action", required=True)
    t = actions.add_parser("create", help="make a token for a user; prints it once")
    t.add_argument("--owner", required=True, help="user identity, e.g. an e-mail address (as in pi_user/authorized_users)")
    t.add_argument("--days", type=_positive, default=None, help="lifetime in days (default DMS_TOKEN_TTL_DAYS, 60)")
    t.add_argument("--description", default="", help="what the token is for")
    t.set_defaults(func=cmd_token_create)
    t = actions.add_parser("list", help="tokens (never their secret), with expiry and last use")
    t.add_argument("--owner", default=None, help="only this user's tokens")
    t.add_argument("--active", action="store_true", help="hide revoked tokens")
    t.set_defaults(func=cmd_token_list)
    t = actions.add_parser("revoke", help="revoke a token by id")
    t.add_argument("id", type=int)
    t.set_defaults(func=cmd_token_revoke)
