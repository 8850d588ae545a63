"""The composition root: which handlers each service offers.

Only this module (and the CLI that uses it) knows every service; services never import
one another. A service is named here by the module of its handlers and imported only
when it is asked for, so a worker loads its own service and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.runtime import Handler, InlineTransport, ServiceContext

__all__ = ["SERVICES", "all_handlers", "embedded_context", "handlers_for"]

# service name -> the module whose HANDLERS (task name -> handler) the service runs
SERVICES: dict[str, str] = {
    "ingest": "services.ingest.task",
    "detector1": "services.detector1.task",
    "associations": "services.associations.task",
    "stage2": "services.stage2.task",
    "stage3": "services.stage3.task",
    "preview": "services.preview.task",
    "notifier": "services.notifier.task",
}


def handlers_for(service: str) -> dict[str, Handler]:
    """The handlers of one service; imports that service (only)."""
    try:
        module = SERVICES[service]
    except KeyError:
        raise ValueError(f"unknown service {service!r}; available: {', '.join(sorted(SERVICES))}") from None
    return import_module(module).HANDLERS


def all_handlers() -> dict[str, Handler]:
    merged: dict[str, Handler] = {}
    for service in SERVICES:
        merged.update(handlers_for(service))
    return merged


def embedded_context(
    settings: Settings, services: Iterable[str] | None = None
) -> tuple[ServiceContext, InlineTransport]:
    """A context whose transport runs the services' handlers in this process (the
    embedded default, tests and benchmarks), with the catalog schema up to date.

    ``services`` limits which services run (tests of one service); messages for the
    others are dropped. None runs them all.
    """
    from shared.runtime import InlineTransport, ServiceContext

    if services is None:
        inline = InlineTransport(all_handlers(), max_attempts=settings.task_max_retries + 1)
    else:
        handlers = {name: h for svc in services for name, h in handlers_for(svc).items()}
        inline = InlineTransport(handlers, max_attempts=settings.task_max_retries + 1, strict=False)
    ctx = ServiceContext.from_settings(settings, transport=inline)
    inline.ctx = ctx
    ctx.catalog.upgrade()
    return ctx, inline
