"""Calibration reference data: delivery, numbered immutable contexts, selection, local cache.

    deliver(ctx, paths, note="") -> Delivery
    best_references(session, header, reftypes, context=None) -> dict[str, Selection]
    fetch(store, selection, cache_dir) -> Path
    list_references(session, context=None, reftype=None, instrument=None) -> list[ReferenceInfo]
    list_contexts(session) -> list[ContextInfo]
    explain(session, header, context=None) -> str

See docs/refdata.md.
"""

from shared.refdata.cache import ReferenceIntegrityError, fetch
from shared.refdata.contexts import (
    ContextInfo,
    ReferenceInfo,
    context_name,
    context_number,
    list_contexts,
    list_references,
)
from shared.refdata.delivery import Delivery, deliver, reference_key
from shared.refdata.errors import DeliveryError, HeaderError, RefDataError, UnknownContextError
from shared.refdata.local import choose_local_references, parse_ref_overrides
from shared.refdata.rules import REFTYPES, selector_spec
from shared.refdata.selection import (
    DETECTOR1_STEPS,
    Selection,
    best_references,
    detector1_steps,
    explain,
    exposure_header,
    select_from_files,
)
from shared.refdata.window import Window

__all__ = [
    "Window",
    "choose_local_references",
    "parse_ref_overrides",
    "DETECTOR1_STEPS",
    "REFTYPES",
    "ContextInfo",
    "Delivery",
    "DeliveryError",
    "HeaderError",
    "RefDataError",
    "ReferenceInfo",
    "ReferenceIntegrityError",
    "Selection",
    "UnknownContextError",
    "best_references",
    "context_name",
    "context_number",
    "deliver",
    "detector1_steps",
    "explain",
    "select_from_files",
    "exposure_header",
    "fetch",
    "list_contexts",
    "list_references",
    "reference_key",
    "selector_spec",
]
