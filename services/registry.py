"""The composition root: which handlers each service offers.

Only this module (and the CLI that uses it) knows every service; services never import
one another.
"""

from __future__ import annotations

from services.ingest.task import HANDLERS as INGEST_HANDLERS
from shared.config import Settings
from shared.runtime import Handler, InlineTransport, ServiceContext

__all__ = ["SERVICES", "all_handlers", "embedded_context", "handlers_for"]

SERVICES: dict[str, dict[str, Handler]] = {
    "ingest": INGEST_HANDLERS,
}


def handlers_for(service: str) -> dict[str, Handler]:
    try:
        return SERVICES[service]
    except KeyError:
        raise ValueError(f"unknown service {service!r}; available: {', '.join(sorted(SERVICES))}") from None


def all_handlers() -> dict[str, Handler]:
    merged: dict[str, Handler] = {}
    for handlers in SERVICES.values():
        merged.update(handlers)
    return merged


def embedded_context(settings: Settings) -> tuple[ServiceContext, InlineTransport]:
    """A context whose transport runs every service's handlers in this process (the
    embedded default, tests and benchmarks), with the catalog schema up to date."""
    inline = InlineTransport(all_handlers(), max_attempts=settings.task_max_retries + 1)
    ctx = ServiceContext.from_settings(settings, transport=inline)
    inline.ctx = ctx
    ctx.catalog.upgrade()
    return ctx, inline
