"""Calibration reference data: delivery, numbered immutable contexts, selection, local cache.

    deliver(ctx, paths, note="") -> Delivery
    best_references(session, header, reftypes, context=None) -> dict[str, Selection]
    fetch(store, selection, cache_dir) -> Path
    list_references(session, context=None, reftype=None, instrument=None) -> list[ReferenceInfo]
    list_contexts(session) -> list[ContextInfo]
    list_impact(session, context=None) -> list[ImpactInfo]
    explain(session, header, steps, context=None) -> str
    load_references(provider, keywords, reftypes) -> References

See docs/refdata.md.
"""

from shared.refdata.cache import ReferenceIntegrityError, fetch
from shared.refdata.contexts import (
    ContextInfo,
    ReferenceInfo,
    context_name,
    context_number,
    contexts_holding,
    list_contexts,
    list_references,
    used_references,
)
from shared.refdata.delivery import Delivery, deliver, reference_key
from shared.refdata.errors import (
    DeliveryError,
    HeaderError,
    RefDataError,
    ReferenceFileError,
    UnknownContextError,
)
from shared.refdata.impact import ImpactInfo, list_impact
from shared.refdata.loading import (
    FORMATS,
    CatalogReferences,
    LocalReferences,
    Reference,
    ReferenceChoice,
    ReferenceProvider,
    References,
    load_reference,
    load_references,
)
from shared.refdata.local import choose_local_references, parse_ref_overrides
from shared.refdata.policy import Action, PolicyError, ReprocessPolicy
from shared.refdata.rules import REFTYPES, selector_spec
from shared.refdata.selection import (
    Selection,
    best_references,
    explain,
    exposure_header,
    select_from_files,
)
from shared.refdata.window import Window

__all__ = [
    "FORMATS",
    "REFTYPES",
    "Action",
    "CatalogReferences",
    "ContextInfo",
    "Delivery",
    "DeliveryError",
    "HeaderError",
    "ImpactInfo",
    "Reference",
    "LocalReferences",
    "PolicyError",
    "RefDataError",
    "ReferenceChoice",
    "ReferenceFileError",
    "ReferenceInfo",
    "ReferenceProvider",
    "ReprocessPolicy",
    "References",
    "ReferenceIntegrityError",
    "Selection",
    "UnknownContextError",
    "Window",
    "best_references",
    "choose_local_references",
    "context_name",
    "context_number",
    "contexts_holding",
    "deliver",
    "explain",
    "select_from_files",
    "exposure_header",
    "fetch",
    "list_contexts",
    "list_impact",
    "list_references",
    "load_reference",
    "load_references",
    "parse_ref_overrides",
    "reference_key",
    "selector_spec",
    "used_references",
]
