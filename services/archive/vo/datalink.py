"""DataLink 1.1 ``links``: what an identifier of the archive links to.

Two kinds of identifier are answered:

* an ObsCore ``obs_publisher_did`` (``ivo://jwst-dms/jwst?<obs_id>``): the links of that
  CAOM row (:mod:`shared.catalog.caom` says which files belong to it);
* a MAST product URI (``mast:JWST/product/<filename>``): the links of that one file.

Semantics (http://www.ivoa.net/rdf/datalink/core) of a row's links:

* ``#this``: its current science FITS files at the row's calibration level (a Level-3 row's
  ``_i2d``, an exposure row's ``_rate``/``_cal``...);
* ``#progenitor``: what they were made from: a Level-3 row's member exposure rows (a link to
  each member's own DataLink document), an exposure row's lower-level science files (its
  ``_uncal`` and segments);
* ``#derivation``: an exposure row's Level-3 rows (their DataLink documents);
* ``#auxiliary``: every other file of the row: associations, the pool they were built from,
  guide-star files, catalogs and segmentation maps, 2c and other intermediate products;
* ``#preview`` and ``#thumbnail``: the PNG preview and JPEG thumbnail of each file.

``local_semantics`` is the file's JWST suffix (``i2d``, ``cal``, ``asn``, ``gs-acq1``...),
``content_qualifier`` the product type of a ``#this`` file (``#image``, ``#spectrum``...).

Metadata are public, data and previews are not (``shared.access.read_grant``, the rule of
the download routes): a file the caller may not read now has no ``access_url`` but an
``error_message`` that says until when it is exclusive and who may read it (under an
embargo: that only operators may, the program's PI included), with ``link_auth`` ``true``
and ``link_authorized`` false. Operators (``DMS_OPERATORS``) get every ``access_url``; their
downloads of data nobody else could read are audited by the download routes. An identifier the archive does not know
gets one row whose ``error_message`` starts ``NotFoundFault:``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.archive import mast
from services.archive.files import Served, exclusive_detail, resolve
from services.archive.search import basename
from services.archive.vo.vosi import Capability, service_capabilities
from services.archive.vo.votable import VOField
from shared.access import published_revision, read_grant
from shared.catalog import (
    Artifact,
    ArtifactKind,
    CaomMember,
    CaomObservation,
    CaomProduct,
    Product,
    Program,
)
from shared.catalog.obscore import ACCESS_FORMAT, DATALINK_PATH, obs_id_of, publisher_did

__all__ = ["COOKIE_METHOD", "FIELDS", "LINKS_STANDARD", "MAX_IDS", "PRODUCT_URI_PREFIX", "Link", "capabilities",
           "links_of"]

PRODUCT_URI_PREFIX = f"mast:{mast.MISSION}/product/"

MAX_IDS = 100
"""Identifiers answered per request; more make the answer OVERFLOW (DataLink: a client asks
again for the rest)."""

FIELDS: tuple[VOField, ...] = (
    VOField("ID", "unicodeChar", ucd="meta.id;meta.main", description="The identifier the links are for"),
    VOField("access_url", "char", ucd="meta.ref.url", description="Where the linked resource is"),
    VOField("service_def", "char", ucd="meta.ref", description="Service descriptor of a service link (none)"),
    VOField("error_message", "unicodeChar", ucd="meta.code.error",
            description="Why there is no access_url (DALI fault name first)"),
    VOField("semantics", "char", ucd="meta.code", description="Term of http://www.ivoa.net/rdf/datalink/core"),
    VOField("description", "unicodeChar", ucd="meta.note", description="What the link is"),
    VOField("content_type", "char", ucd="meta.code.mime", description="MIME type of the linked resource"),
    VOField("content_length", "long", unit="byte", ucd="phys.size;meta.file",
            description="Size of the linked resource"),
    VOField("content_qualifier", "char", ucd="meta.code.class",
            description="Product type of the linked file (http://www.ivoa.net/rdf/product-type)"),
    VOField("local_semantics", "char", ucd="meta.code",
            description="The JWST product suffix of the linked file (i2d, cal, asn...)"),
    VOField("link_auth", "char", ucd="meta.code",
            description="Whether the link needs authentication: false, optional or true"),
    VOField("link_authorized", "boolean", ucd="meta.code",
            description="Whether the caller may use the link now"),
)


@dataclass(frozen=True)
class Link:
    """One row of a links document, in :data:`FIELDS` order."""

    id: str
    access_url: str | None = None
    service_def: str | None = None
    error_message: str | None = None
    semantics: str = "#this"
    description: str | None = None
    content_type: str | None = None
    content_length: int | None = None
    content_qualifier: str | None = None
    local_semantics: str | None = None
    link_auth: str | None = None
    link_authorized: bool | None = None

    def row(self) -> tuple:
        return astuple(self)


@dataclass(frozen=True)
class _Caller:
    user: str | None
    now: datetime
    operators: Collection[str]
    base: str


# ------------------------------------------------------------------ links of one file


_ROUTES = {ArtifactKind.DATA: "download", ArtifactKind.PREVIEW: "previews", ArtifactKind.THUMBNAIL: "thumbnails"}
_WHAT = {ArtifactKind.PREVIEW: "Preview", ArtifactKind.THUMBNAIL: "Thumbnail"}


def _file_link(ident: str, served: Served, semantics: str, description: str, caller: _Caller,
               qualifier: str | None = None) -> Link:
    """A link to a stored file: its access URL when the caller may read it now, otherwise
    the reason why not."""
    product, artifact = served.product, served.artifact
    grant = read_grant(product, served.program, caller.user, caller.now, caller.operators)
    public = read_grant(product, served.program, None, caller.now) is not None
    url = f"{caller.base}/{_ROUTES[artifact.kind]}/{quote(served.name)}"
    if not product.is_current:
        url += f"?revision={product.revision}"
    common = dict(id=ident, semantics=semantics, description=description, content_type=artifact.content_type,
                  content_length=artifact.size, content_qualifier=qualifier, local_semantics=product.suffix,
                  link_auth="false" if public else "true", link_authorized=grant is not None)
    if grant is not None:
        return Link(access_url=url, **common)
    message = f"DefaultFault: {exclusive_detail(served)}"
    if served.program.embargoed:  # the PI and authorized users too: operators only (as the download says)
        message += "; send an operator's token" if caller.user is None else f"; {caller.user} is no operator"
    elif caller.user is None:
        message += ("; only its PI and authorized users may read it: send the token of one of them "
                    "(Authorization: Bearer <token>)")
    else:
        message += f"; {caller.user} is neither its PI nor an authorized user"
    return Link(error_message=message, **common)


def _described(product: Product, artifact: Artifact) -> str:
    if artifact.kind != ArtifactKind.DATA:
        return f"{_WHAT[artifact.kind]} of {product.filename}"
    return f"{product.suffix.upper()} file {product.filename} (calibration level {product.level})"


def _served(product: Product, artifact: Artifact, program: Program) -> Served:
    name = product.filename if artifact.kind == ArtifactKind.DATA else basename(artifact.uri)
    return Served(product, program, artifact, name, None)


def _is_fits(product: Product, artifact: Artifact) -> bool:
    return artifact.content_type == "application/fits" or product.filename.endswith(".fits")


def _is_science(product: Product) -> bool:
    return product.product_type.upper() == "SCIENCE" and product.suffix != "asn"


def _kind_order(artifact: Artifact) -> int:
    return {ArtifactKind.DATA: 0, ArtifactKind.PREVIEW: 1, ArtifactKind.THUMBNAIL: 2}.get(artifact.kind, 3)


# ------------------------------------------------------------------ links of a CAOM row


_SEMANTICS_ORDER = {"#this": 0, "#progenitor": 1, "#derivation": 2, "#auxiliary": 3, "#preview": 4, "#thumbnail": 5}


def _row_semantics(row: CaomObservation, product: Product, artifact: Artifact) -> str:
    if artifact.kind == ArtifactKind.PREVIEW:
        return "#preview"
    if artifact.kind == ArtifactKind.THUMBNAIL:
        return "#thumbnail"
    if _is_science(product) and _is_fits(product, artifact):
        return "#this" if product.level >= row.calib_level else "#progenitor"
    return "#auxiliary"


def _pools(session: Session, products: Sequence[Product]) -> list[Product]:
    """The pools the row's associations were built from (the revision each names: the
    current one, or the published revision it was when a later pool replaced it)."""
    names = {str(i).rsplit("/", 1)[-1] for p in products if p.suffix == "asn" for i in (p.inputs or [])}
    names = {n for n in names if n.endswith("_pool.csv")}
    if not names:
        return []
    found: dict[str, Product] = {}
    for p in session.scalars(select(Product).where(Product.filename.in_(sorted(names)), Product.suffix == "pool",
                                                   published_revision()).order_by(Product.revision)):
        found[p.filename] = p  # the latest published revision of each name
    return [found[n] for n in sorted(found)]


def _datalink_url(base: str, obs_id: str) -> str:
    return f"{base}{DATALINK_PATH}?ID={quote(publisher_did(obs_id), safe='')}"


def _row_link(ident: str, obs_id: str, semantics: str, description: str, base: str) -> Link:
    """A link to another row's DataLink document (metadata: public)."""
    return Link(id=ident, access_url=_datalink_url(base, obs_id), semantics=semantics, description=description,
                content_type=ACCESS_FORMAT, link_auth="false", link_authorized=True)


def _links_of_row(session: Session, ident: str, row: CaomObservation, caller: _Caller) -> list[Link]:
    program = session.get(Program, row.program_id)
    names = select(CaomProduct.filename).where(CaomProduct.caom_id == row.id)
    found = session.execute(
        select(Product, Artifact).join(Artifact, Artifact.product_id == Product.id)
        .where(Product.filename.in_(names), Product.is_current, published_revision())).all()
    products = list({p.id: p for p, _ in found}.values())
    files = list(found)
    for pool in _pools(session, products):
        files += [(pool, a) for a in pool.artifacts]
    qualifier = f"#{row.dataproduct_type}" if row.dataproduct_type else None
    out: list[tuple[tuple, Link]] = []
    for product, artifact in files:
        semantics = _row_semantics(row, product, artifact)
        link = _file_link(ident, _served(product, artifact, program), semantics, _described(product, artifact),
                          caller, qualifier if semantics == "#this" else None)
        out.append(((_SEMANTICS_ORDER[semantics], -product.level, product.filename, _kind_order(artifact)), link))
    if row.kind == "level3":
        for (obs_id,) in session.execute(
                select(CaomObservation.obs_id).join(CaomMember, CaomMember.member_id == CaomObservation.id)
                .where(CaomMember.caom_id == row.id)):
            out.append(((1, 0, obs_id, 0), _row_link(ident, obs_id, "#progenitor",
                                                     f"Member exposure {obs_id}: its DataLink document",
                                                     caller.base)))
    else:
        for (obs_id,) in session.execute(
                select(CaomObservation.obs_id).join(CaomMember, CaomMember.caom_id == CaomObservation.id)
                .where(CaomMember.member_id == row.id)):
            out.append(((2, 0, obs_id, 0), _row_link(ident, obs_id, "#derivation",
                                                     f"Level-3 product {obs_id} made from this exposure: "
                                                     "its DataLink document", caller.base)))
    return [link for _, link in sorted(out, key=lambda x: x[0])]


# ------------------------------------------------------------------ links of a product URI


def _links_of_file(session: Session, ident: str, served: Served, caller: _Caller) -> list[Link]:
    product, artifact = served.product, served.artifact
    out = [_file_link(ident, served, "#this", _described(product, artifact), caller)]
    if artifact.kind == ArtifactKind.DATA:
        for derived in sorted((a for a in product.artifacts if a.kind != ArtifactKind.DATA), key=_kind_order):
            semantics = "#preview" if derived.kind == ArtifactKind.PREVIEW else "#thumbnail"
            out.append(_file_link(ident, _served(product, derived, served.program), semantics,
                                  _described(product, derived), caller))
    return out


# ------------------------------------------------------------------ the document


def _not_found(ident: str, why: str) -> Link:
    return Link(id=ident, error_message=f"NotFoundFault: {why}", semantics="#this")


def _links_of_id(session: Session, ident: str, caller: _Caller) -> list[Link]:
    """The links of one identifier; every row's ID is ``ident`` as given (spaces about it
    are ignored when looking it up)."""
    key = ident.strip()
    obs_id = obs_id_of(key)
    if obs_id is not None:
        row = session.scalar(select(CaomObservation).where(CaomObservation.obs_id == obs_id))
        if row is None:
            return [_not_found(ident, f"no observation {obs_id!r} in the archive")]
        return _links_of_row(session, ident, row, caller)
    if key.startswith(PRODUCT_URI_PREFIX):
        filename = key[len(PRODUCT_URI_PREFIX):]
        served = resolve(session, filename, (ArtifactKind.DATA, ArtifactKind.PREVIEW, ArtifactKind.THUMBNAIL)) \
            if filename and "/" not in filename else None
        if served is None:
            return [_not_found(ident, f"no file {filename!r} in the archive")]
        return _links_of_file(session, ident, served, caller)
    return [_not_found(ident, f"{ident!r} is no identifier of this archive: give an obs_publisher_did "
                              f"({publisher_did('<obs_id>')}) or a product URI ({PRODUCT_URI_PREFIX}<filename>)")]


def links_of(session: Session, ids: Sequence[str], user: str | None, now: datetime, operators: Collection[str],
             base_url: str) -> tuple[list[Link], bool]:
    """The links of each identifier (each once, in the order given; at most
    :data:`MAX_IDS`), and whether some identifiers were left for another request."""
    unique = list(dict.fromkeys(ids))
    caller = _Caller(user, now, frozenset(operators), base_url.rstrip("/"))
    out: list[Link] = []
    for ident in unique[:MAX_IDS]:
        out += _links_of_id(session, ident, caller)
    return out, len(unique) > MAX_IDS


# ------------------------------------------------------------------ VOSI


LINKS_STANDARD = "ivo://ivoa.net/std/DataLink#links-1.1"
COOKIE_METHOD = "ivo://ivoa.net/sso#cookie"
"""The security method of the archive's token cookie (``mast_token``): what pyvo's
``AuthSession`` sends once given it (``credentials.set_cookie``)."""

_SECURITY = (None, COOKIE_METHOD)  # anonymous, or the token cookie


def capabilities(base_url: str) -> list[Capability]:
    """The VOSI capabilities of the DataLink service: its VOSI resources, the links endpoint
    and, as capabilities of no standard, the file routes its links lead to, with the ways
    to call them (anonymously, or with the token cookie)."""
    base = base_url.rstrip("/")
    links = Capability(LINKS_STANDARD, f"{base}{DATALINK_PATH}", use="base", version="1.1", std=True,
                       security=_SECURITY)
    files = [Capability(None, f"{base}/{route}/", use="base", security=_SECURITY,
                        description=f"Where the links lead: {what} (exclusive data need the PI's or an "
                                    "authorized user's token)")
             for route, what in (("download", "files"), ("previews", "previews"), ("thumbnails", "thumbnails"))]
    return [*service_capabilities(f"{base}{DATALINK_PATH}", links), *files]
