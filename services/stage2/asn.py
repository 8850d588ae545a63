"""Level-2 association files as stage 2 reads them (jwst-conventions.md §3).

``{"asn_type": "image2", "asn_id": ..., "asn_pool": ..., "products": [{"name": ...,
"members": [{"expname": ..., "exptype": "science" | "background" | ...}]}]}``: one
science member per product (a ``_rate``, or ``_rateints`` for tso-image2) and optional
``background`` members (``_rate`` of dedicated background exposures). Other member types
(imprint, sourcecat, segmap, direct_image) are not used by imaging and are ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shared.errors import NonRetriableError

__all__ = ["IMAGE2_ASN_TYPES", "Level2Association", "Level2Product", "parse_level2_asn"]

IMAGE2_ASN_TYPES = ("image2", "tso-image2")


@dataclass(frozen=True)
class Level2Product:
    """One product of a Level-2 association: its name, science file and backgrounds."""

    name: str
    science: str
    backgrounds: tuple[str, ...]
    ignored: tuple[str, ...]  # members of types imaging does not use, as "expname (exptype)"


@dataclass(frozen=True)
class Level2Association:
    filename: str
    asn_type: str
    asn_id: str | None
    asn_pool: str | None
    products: tuple[Level2Product, ...]


def _fail(filename: str, what: str) -> NonRetriableError:
    return NonRetriableError(f"association {filename}: {what}")


def parse_level2_asn(text: str | bytes, filename: str) -> Level2Association:
    """Parse and check a Level-2 imaging association.

    Raises NonRetriableError saying what is wrong with the file (not JSON, not an image2
    or tso-image2 association, a product without exactly one science member, ...).
    """
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(filename, f"not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise _fail(filename, "the top level is not a JSON object")
    asn_type = str(doc.get("asn_type", "")).lower()
    if asn_type not in IMAGE2_ASN_TYPES:
        raise _fail(filename, f"asn_type {doc.get('asn_type')!r} is not one stage 2 imaging runs "
                              f"({', '.join(IMAGE2_ASN_TYPES)})")
    raw_products = doc.get("products")
    if not isinstance(raw_products, list) or not raw_products:
        raise _fail(filename, "has no products")
    products = []
    for i, prod in enumerate(raw_products):
        members = prod.get("members") if isinstance(prod, dict) else None
        if not isinstance(members, list):
            raise _fail(filename, f"product {i} has no members list")
        by_type: dict[str, list[str]] = {}
        for m in members:
            if not isinstance(m, dict) or not m.get("expname") or not m.get("exptype"):
                raise _fail(filename, f"product {i} has a member without expname and exptype: {m!r}")
            by_type.setdefault(str(m["exptype"]).lower(), []).append(str(m["expname"]))
        science = by_type.pop("science", [])
        if len(science) != 1:
            raise _fail(filename, f"product {i} has {len(science)} science members; a Level-2 product has one")
        backgrounds = tuple(by_type.pop("background", []))
        ignored = tuple(f"{name} ({kind})" for kind, names in by_type.items() for name in names)
        products.append(Level2Product(str(prod.get("name") or ""), science[0], backgrounds, ignored))
    return Level2Association(filename, asn_type, doc.get("asn_id"), doc.get("asn_pool"), tuple(products))
