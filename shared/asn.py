"""Association files (ASN JSON, reference/jwst-conventions.md §3) as the stages read them.

``{"asn_type", "asn_id", "asn_pool", ..., "products": [{"name", "members": [{"expname",
"exptype"}, ...]}, ...]}``. :func:`load_association` checks that structure once for every
reader; each stage then takes what it needs (science and background members, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["AssociationError", "load_association", "members_by_type"]


class AssociationError(ValueError):
    """An association file a stage cannot use; the message names the file and the fault."""


def load_association(raw: str | bytes, filename: str, asn_types: Iterable[str], stage: str) -> dict[str, Any]:
    """The association document, checked: a JSON object whose ``asn_type`` is one of
    ``asn_types`` (what ``stage`` runs), with at least one product, every product with a
    ``members`` list whose entries have ``expname`` and ``exptype``."""
    types = tuple(asn_types)

    def fail(what: str) -> AssociationError:
        return AssociationError(f"association {filename}: {what}")

    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise fail(f"not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise fail("the top level is not a JSON object")
    if str(doc.get("asn_type", "")).lower() not in types:
        raise fail(f"asn_type {doc.get('asn_type')!r}: {stage} runs {', '.join(types)}")
    products = doc.get("products")
    if not isinstance(products, list) or not products:
        raise fail("has no products")
    for i, product in enumerate(products):
        members = product.get("members") if isinstance(product, dict) else None
        if not isinstance(members, list):
            raise fail(f"product {i} has no members list")
        for m in members:
            if not isinstance(m, dict) or not m.get("expname") or not m.get("exptype"):
                raise fail(f"product {i} has a member without expname and exptype: {m!r}")
    return doc


def members_by_type(product: dict[str, Any]) -> dict[str, list[str]]:
    """Member file names of a checked product by exptype (lower case), in order."""
    out: dict[str, list[str]] = {}
    for m in product["members"]:
        out.setdefault(str(m["exptype"]).lower(), []).append(str(m["expname"]))
    return out
