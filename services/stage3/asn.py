"""Level-3 associations as stage 3 reads them (image3, tso3, spec3)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.asn import AssociationError, load_association, members_by_type

__all__ = ["STAGE3_ASN_TYPES", "Level3Association", "parse_level3_asn"]

STAGE3_ASN_TYPES = ("image3", "tso3", "spec3")


@dataclass(frozen=True)
class Level3Association:
    """What stage 3 needs of an association: its type, id, pool, the Level-3 product
    name (``products[0].name``) and the science members' file names, in order."""

    filename: str
    asn_type: str
    asn_id: str
    asn_pool: str | None
    product_name: str
    science: tuple[str, ...]
    document: dict

    def product(self, suffix: str, ext: str = "fits") -> str:
        """The file name of a Level-3 product of this association, ``<product name>_<suffix>``."""
        return f"{self.product_name}_{suffix}.{ext}"


def parse_level3_asn(raw: bytes, filename: str) -> Level3Association:
    """Parse and check an image3/tso3/spec3 association; AssociationError says what is wrong."""
    doc = load_association(raw, filename, STAGE3_ASN_TYPES, "stage 3")
    product = doc["products"][0]
    name = product.get("name")
    if not isinstance(name, str) or not name:
        raise AssociationError(f"association {filename}: products[0] has no name")
    science = tuple(members_by_type(product).get("science", []))
    if not science:
        raise AssociationError(f"association {filename}: no science member")
    asn_id = str(doc.get("asn_id") or "")
    if not asn_id:
        raise AssociationError(f"association {filename}: no asn_id")
    return Level3Association(filename, str(doc["asn_type"]).lower(), asn_id.lower(), doc.get("asn_pool"), name,
                             science, doc)
