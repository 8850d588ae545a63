"""Level-3 associations as stage 3 reads them (image3, tso3)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from shared.asn import AssociationError, load_association, members_by_type
from shared.naming import BadNameError, ExposureName, Level3Name, parse_exposure, parse_level3

__all__ = ["STAGE3_ASN_TYPES", "AsnError", "Level3Association", "crf_name", "parse_level3_asn"]

STAGE3_ASN_TYPES = ("image3", "tso3")


AsnError = AssociationError  # an association stage 3 cannot use; the message says why


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

    def product(self, suffix: str, ext: str = "fits") -> Level3Name:
        """The name of a Level-3 product of this association."""
        try:
            return replace(parse_level3(f"{self.product_name}_{suffix}.{ext}"), suffix=suffix, ext=ext)
        except BadNameError as exc:
            raise AsnError(f"{self.filename}: product name {self.product_name!r} is not a Level-3 name: {exc}") from exc


def crf_name(member: str, asn_id: str, suffix: str) -> ExposureName:
    """The 2c name (``_crf``/``_crfints``) of a member made for association ``asn_id``."""
    try:
        name = parse_exposure(member)
    except BadNameError as exc:
        raise AsnError(f"member {member!r} is not an exposure file name: {exc}") from exc
    # A segment keeps its -segNNN, as the public 2c names of segmented exposures do.
    return replace(name, acid=asn_id, suffix=suffix, ext="fits")


def parse_level3_asn(raw: bytes, filename: str) -> Level3Association:
    """Parse and check an image3/tso3 association; :class:`AsnError` says what is wrong."""
    doc = load_association(raw, filename, STAGE3_ASN_TYPES, "stage 3")
    product = doc["products"][0]
    name = product.get("name")
    if not isinstance(name, str) or not name:
        raise AsnError(f"association {filename}: products[0] has no name")
    science = tuple(members_by_type(product).get("science", []))
    if not science:
        raise AsnError(f"association {filename}: no science member")
    asn_id = str(doc.get("asn_id") or "")
    if not asn_id:
        raise AsnError(f"association {filename}: no asn_id")
    return Level3Association(filename, str(doc["asn_type"]).lower(), asn_id.lower(), doc.get("asn_pool"), name,
                             science, doc)
