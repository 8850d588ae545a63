"""The composition root: which handlers each service offers.

Only this module (and the CLI that uses it) knows every service; services never import
one another.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.associations.task import HANDLERS as ASSOCIATIONS_HANDLERS
from services.detector1.task import HANDLERS as DETECTOR1_HANDLERS
from services.ingest.task import HANDLERS as INGEST_HANDLERS
from services.notifier.task import HANDLERS as NOTIFIER_HANDLERS
from services.preview.task import HANDLERS as PREVIEW_HANDLERS
from services.stage2.task import HANDLERS as STAGE2_HANDLERS
from services.stage3.task import HANDLERS as STAGE3_HANDLERS
from shared.config import Settings
from shared.runtime import Handler, InlineTransport, ServiceContext

__all__ = ["SERVICES", "all_handlers", "embedded_context", "handlers_for"]

SERVICES: dict[str, dict[str, Handler]] = {
    "ingest": INGEST_HANDLERS,
    "detector1": DETECTOR1_HANDLERS,
    "associations": ASSOCIATIONS_HANDLERS,
    "stage2": STAGE2_HANDLERS,
    "stage3": STAGE3_HANDLERS,
    "preview": PREVIEW_HANDLERS,
    "notifier": NOTIFIER_HANDLERS,
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


def embedded_context(
    settings: Settings, services: Iterable[str] | None = None
) -> tuple[ServiceContext, InlineTransport]:
    """A context whose transport runs the services' handlers in this process (the
    embedded default, tests and benchmarks), with the catalog schema up to date.

    ``services`` limits which services run (tests of one service); messages for the
    others are dropped. None runs them all.
    """
    if services is None:
        inline = InlineTransport(all_handlers(), max_attempts=settings.task_max_retries + 1)
    else:
        handlers = {name: h for svc in services for name, h in handlers_for(svc).items()}
        inline = InlineTransport(handlers, max_attempts=settings.task_max_retries + 1, strict=False)
    ctx = ServiceContext.from_settings(settings, transport=inline)
    inline.ctx = ctx
    ctx.catalog.upgrade()
    return ctx, inline
