"""Level-2 association files as stage 2 reads them (jwst-conventions.md §3): imaging
(``image2``, ``tso-image2``) and spectroscopy (``spec2``, whose background members are the
other nod positions of a slit; ``tso-spec2``, a spectroscopic time series's ``_rateints``).

``{"asn_type": "image2", "asn_id": ..., "asn_pool": ..., "products": [{"name": ...,
"members": [{"expname": ..., "exptype": "science" | "background" | ...}]}]}``: one
science member per product (a ``_rate``, or ``_rateints`` for tso-image2) and optional
``background`` members (``_rate`` of dedicated background exposures). Other member types
(imprint, sourcecat, segmap, direct_image) are not used here and are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.asn import AssociationError, load_association, members_by_type

__all__ = ["IMAGE2_ASN_TYPES", "LEVEL2_ASN_TYPES", "SPEC2_ASN_TYPES", "Level2Association", "Level2Product",
           "parse_level2_asn"]

IMAGE2_ASN_TYPES = ("image2", "tso-image2")
SPEC2_ASN_TYPES = ("spec2", "tso-spec2")
LEVEL2_ASN_TYPES = IMAGE2_ASN_TYPES + SPEC2_ASN_TYPES


@dataclass(frozen=True)
class Level2Product:
    """One product of a Level-2 association: its name, science file and backgrounds."""

    name: str
    science: str
    backgrounds: tuple[str, ...]
    ignored: tuple[str, ...]  # members of types stage 2 does not use, as "expname (exptype)"


@dataclass(frozen=True)
class Level2Association:
    filename: str
    asn_type: str
    asn_id: str | None
    asn_pool: str | None
    products: tuple[Level2Product, ...]


def parse_level2_asn(text: str | bytes, filename: str) -> Level2Association:
    """Parse and check a Level-2 association.

    Raises AssociationError saying what is wrong with the file (not JSON, not an image2,
    tso-image2, spec2 or tso-spec2 association, a product without exactly one science member, ...).
    """
    doc = load_association(text, filename, LEVEL2_ASN_TYPES, "stage 2")
    products = []
    for i, prod in enumerate(doc["products"]):
        by_type = members_by_type(prod)
        science = by_type.pop("science", [])
        if len(science) != 1:
            raise AssociationError(f"association {filename}: product {i} has {len(science)} science members; "
                                    "a Level-2 product has one")
        backgrounds = tuple(by_type.pop("background", []))
        ignored = tuple(f"{name} ({kind})" for kind, names in by_type.items() for name in names)
        products.append(Level2Product(str(prod.get("name") or ""), science[0], backgrounds, ignored))
    return Level2Association(filename, str(doc["asn_type"]).lower(), doc.get("asn_id"), doc.get("asn_pool"),
                            tuple(products))
