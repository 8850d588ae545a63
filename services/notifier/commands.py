"""``dms`` sub-commands of the notifier (wired in by services/cli.py):

    dms subscribe --owner EMAIL [--name N] [--program P ...] [--event TYPE ...]
                  [--suffix S ...] [--instrument I ...]
                  (--webhook URL [--secret S] | --email ADDRESS [--frequency F])
    dms subscriptions [--owner EMAIL]           list subscriptions
    dms unsubscribe ID [--owner EMAIL]          deactivate one (its history stays)
    dms notify [--loop --interval S]            announce releases, send digests and retries
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import ValidationError

from shared.catalog import Catalog
from shared.config import Settings, get_settings
from shared.runtime import InlineTransport, ServiceContext
from shared.subscriptions import (
    NOTIFICATION_TYPES,
    SubscriptionFilters,
    SubscriptionLimitReached,
    SubscriptionSpec,
    TargetRefused,
    create_subscription,
    delete_subscription,
    list_subscriptions,
)
from shared.webhooks import WebhookPolicy

__all__ = ["ContextFactory", "default_context", "register_commands"]

ContextFactory = Callable[[Settings], tuple[ServiceContext, InlineTransport | None]]


def default_context(settings: Settings) -> tuple[ServiceContext, InlineTransport | None]:
    """The notifier on its own: with a broker, events go to Celery; embedded, they run
    here with the notifier's handlers (the CLI may pass its all-services context instead)."""
    if not settings.embedded:
        from shared.celery_app import CeleryTransport, create_app

        ctx = ServiceContext.from_settings(settings, transport=CeleryTransport(create_app(settings)))
        ctx.catalog.upgrade()
        return ctx, None
    from services.notifier.task import HANDLERS

    inline = InlineTransport(dict(HANDLERS), max_attempts=settings.task_max_retries + 1)
    ctx = ServiceContext.from_settings(settings, transport=inline)
    inline.ctx = ctx
    ctx.catalog.upgrade()
    return ctx, inline


def _catalog(settings: Settings) -> Catalog:
    catalog = Catalog(settings.resolved_catalog_url)
    catalog.upgrade()
    return catalog


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where + ': ' if where else ''}{err['msg']}")
    return "; ".join(parts)


def cmd_subscribe(args: argparse.Namespace) -> int:
    try:
        filters = SubscriptionFilters(programs=args.program or [], event_types=args.event or [],
                                      suffixes=args.suffix or [], instruments=args.instrument or [])
        if args.webhook:
            if args.frequency not in (None, "immediate"):
                return _error("webhooks are delivered immediately; digests go by e-mail (--email)")
            spec = SubscriptionSpec(name=args.name, filters=filters, channel="webhook", target=args.webhook,
                                    secret=args.secret)
        else:
            if args.secret:
                return _error("--secret signs webhook bodies; it does not apply to e-mail")
            spec = SubscriptionSpec(name=args.name, filters=filters, channel="email", target=args.email,
                                    frequency=args.frequency or "immediate")
    except ValidationError as exc:
        return _error(_validation_message(exc))
    settings = get_settings()
    try:
        policy = WebhookPolicy.from_settings(settings)
    except ValueError as exc:
        return _error(str(exc))
    catalog = _catalog(settings)
    try:
        with catalog.session() as s:
            row = create_subscription(s, args.owner, spec, policy=policy, limit=settings.subscription_limit)
            sub_id, secret = row.id, row.secret
    except (TargetRefused, SubscriptionLimitReached) as exc:
        return _error(str(exc))
    finally:
        catalog.dispose()
    print(f"subscription {sub_id}: {spec.channel} {spec.target} ({spec.frequency})")
    if spec.channel == "webhook":
        print(f"secret: {secret}")
        print("  bodies are signed: X-DMS-Signature: sha256=<hex HMAC-SHA256 of the body with this secret>")
    else:
        print("  nothing is sent before the address confirms: `dms notify` mails it a confirmation link")
    return 0


def _describe_filters(filters: dict) -> str:
    f = SubscriptionFilters.model_validate(filters)
    parts = [f"{label}={','.join(values)}" for label, values in (
        ("program", f.programs), ("event", f.event_types), ("suffix", f.suffixes), ("instrument", f.instruments))
        if values]
    return " ".join(parts) or "everything"


def cmd_subscriptions(args: argparse.Namespace) -> int:
    catalog = _catalog(get_settings())
    try:
        with catalog.session() as s:
            rows = list_subscriptions(s, args.owner)
            lines = [
                f"{r.id:>5}  {'active' if r.active else 'off':<6}  {r.owner:<28} {r.channel:<7} "
                f"{r.frequency:<9} {r.target}  [{_describe_filters(r.filters)}]"
                + ("  (unconfirmed)" if r.active and r.confirmed_at is None else "")
                + (f"  \"{r.name}\"" if r.name else "")
                for r in rows
            ]
    finally:
        catalog.dispose()
    if not lines:
        print("no subscriptions")
        return 0
    print(f"{'id':>5}  {'state':<6}  {'owner':<28} {'channel':<7} {'frequency':<9} target  [filters]")
    print("\n".join(lines))
    return 0


def cmd_unsubscribe(args: argparse.Namespace) -> int:
    catalog = _catalog(get_settings())
    try:
        with catalog.session() as s:
            done = delete_subscription(s, args.id, owner=args.owner)
    finally:
        catalog.dispose()
    if not done:
        return _error(f"no active subscription {args.id}" + (f" of {args.owner}" if args.owner else ""))
    print(f"subscription {args.id} deactivated")
    return 0


def _make_notify(context_factory: ContextFactory) -> Callable[[argparse.Namespace], int]:
    def cmd_notify(args: argparse.Namespace) -> int:
        from services.notifier.scheduler import notify_once

        settings = get_settings()
        ctx, inline = context_factory(settings)
        try:
            while True:
                report = notify_once(ctx, datetime.now(UTC), inline)
                f = report.flushed
                if report.announced or f.sent or report.confirmations or not args.loop:
                    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}  confirmation links: {len(report.confirmations)}, "
                          f"announced public: {len(report.announced)}, "
                          f"digests: {len(f.digests)}, retries: {len(f.retries)}, delivered: {f.delivered}, "
                          f"failed: {f.failed}, dead: {f.dead}", flush=True)
                if not args.loop:
                    return 0
                time.sleep(args.interval)
        finally:
            ctx.catalog.dispose()

    return cmd_notify


def register_commands(subparsers: argparse._SubParsersAction,
                      context_factory: ContextFactory | None = None) -> None:
    """Add ``subscribe``, ``subscriptions``, ``unsubscribe`` and ``notify`` to ``dms``.

    ``context_factory(settings) -> (ctx, inline or None)`` builds the context of
    ``dms notify`` (pass the CLI's all-services one); default :func:`default_context`.
    """
    s = subparsers.add_parser("subscribe", help="subscribe to notifications (webhook or e-mail)")
    s.add_argument("--owner", required=True, help="who owns the subscription (e-mail address)")
    s.add_argument("--name", default="", help="a label for it")
    s.add_argument("--program", action="append", metavar="P", help="program number (repeatable; default any)")
    s.add_argument("--event", action="append", choices=NOTIFICATION_TYPES, metavar="TYPE",
                   help=f"one of {', '.join(NOTIFICATION_TYPES)} (repeatable; default any)")
    s.add_argument("--suffix", action="append", metavar="S", help="product type, e.g. uncal, cal, i2d (repeatable)")
    s.add_argument("--instrument", action="append", metavar="I", help="NIRCAM, NIRSPEC, NIRISS, MIRI, FGS (repeatable)")
    target = s.add_mutually_exclusive_group(required=True)
    target.add_argument("--webhook", metavar="URL", help="POST signed CloudEvents to this URL")
    target.add_argument("--email", metavar="ADDRESS", help="send e-mails to this address")
    s.add_argument("--secret", help="HMAC key of webhook bodies (default: generated and printed)")
    s.add_argument("--frequency", choices=["immediate", "hourly", "daily", "weekly"],
                   help="e-mail: one message per event (immediate, default) or a digest")
    s.set_defaults(func=cmd_subscribe)

    s = subparsers.add_parser("subscriptions", help="list subscriptions")
    s.add_argument("--owner", help="only this owner's")
    s.set_defaults(func=cmd_subscriptions)

    s = subparsers.add_parser("unsubscribe", help="deactivate a subscription")
    s.add_argument("id", type=int)
    s.add_argument("--owner", help="refuse unless it belongs to this owner")
    s.set_defaults(func=cmd_unsubscribe)

    s = subparsers.add_parser("notify", help="announce releases, send due digests and retries")
    s.add_argument("--loop", action="store_true", help="keep running")
    s.add_argument("--interval", type=float, default=60.0, help="seconds between passes with --loop")
    s.set_defaults(func=_make_notify(context_factory or default_context))
