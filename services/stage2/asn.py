"""Level-2 association files as stage 2 reads them (jwst-conventions.md §3): imaging
(``image2``, ``tso-image2``) and spectroscopy (``spec2``, whose background members are the
other nod positions of a slit; ``tso-spec2``, a spectroscopic time series's ``_rateints``).

``{"asn_type": "image2", "asn_id": ..., "asn_pool": ..., "products": [{"name": ...,
"members": [{"expname": ..., "exptype": "science" | "background" | ...}]}]}``: one
science member per product (a ``_rate``, or ``_rateints`` for tso-image2) and optional
``background`` members (``_rate`` of dedicated background exposures). A wide-field
slitless exposure's product also names its direct images' Level-3 products: at most one
each of ``sourcecat`` (the ``_cat.ecsv`` whose sources spec2 extracts), ``direct_image``
(``_i2d``) and ``segmap`` (``_segm``). Other member types (imprint, ...) are not used here
and are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.asn import AssociationError, load_association, members_by_type

__all__ = ["CATALOG_MEMBER_TYPES", "IMAGE2_ASN_TYPES", "LEVEL2_ASN_TYPES", "SPEC2_ASN_TYPES", "Level2Association",
           "Level2Product", "parse_level2_asn"]

IMAGE2_ASN_TYPES = ("image2", "tso-image2")
SPEC2_ASN_TYPES = ("spec2", "tso-spec2")
LEVEL2_ASN_TYPES = IMAGE2_ASN_TYPES + SPEC2_ASN_TYPES


# Member types naming one Level-3 product of a wide-field slitless exposure's direct images.
CATALOG_MEMBER_TYPES = ("sourcecat", "direct_image", "segmap")


@dataclass(frozen=True)
class Level2Product:
    """One product of a Level-2 association: its name, science file and backgrounds; for a
    wide-field slitless exposure the direct images' source catalog, ``_i2d`` and
    segmentation map (None when the association names none)."""

    name: str
    science: str
    backgrounds: tuple[str, ...]
    ignored: tuple[str, ...]  # members of types stage 2 does not use, as "expname (exptype)"
    sourcecat: str | None = None
    direct_image: str | None = None
    segmap: str | None = None


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
    tso-image2, spec2 or tso-spec2 association, a product without exactly one science member
    or with more than one sourcecat, direct_image or segmap member, ...).
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
        catalog = {}
        for kind in CATALOG_MEMBER_TYPES:
            names = by_type.pop(kind, [])
            if len(names) > 1:
                raise AssociationError(f"association {filename}: product {i} has {len(names)} {kind} members "
                                       f"({', '.join(names)}); a Level-2 product has at most one")
            catalog[kind] = names[0] if names else None
        ignored = tuple(f"{name} ({kind})" for kind, names in by_type.items() for name in names)
        products.append(Level2Product(str(prod.get("name") or ""), science[0], backgrounds, ignored, **catalog))
    return Level2Association(filename, str(doc["asn_type"]).lower(), doc.get("asn_id"), doc.get("asn_pool"),
                            tuple(products))
