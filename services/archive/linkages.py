"""Product linkages: how a product belongs to its observation, and the tree of products
it was made from (antecedents) and that were made from it (children).

The catalog records provenance by name (``Product.inputs``: input file names and
reference URIs); the links are read from it:

* **to its observation** — ``aggregation``: a product of one of the observation's exposures
  (``_uncal``, ``_rate``, ``_cal``, the 2c ``_crf``); ``composition``: a combined product
  (Level 3) composed from its exposures; ``prerequisite``: an association or pool, what
  re-running the pipeline needs, and an MSA metadata file (``_msa``), which re-running a
  NIRSpec MOS observation needs; the products of its pre-image (another observation whose
  plan names it in ``pre_image_for``) are listed with its products as ``prerequisite`` too
  (services/archive/search.py); ``linked``: a program-level product, in no observation.
* **between products** — ``antecedent``: one was made from the other (``_rate`` from
  ``_uncal``); ``composition``: a Level-3 product and the 2c products of its association
  (the ``_crf`` of each member), which stand between it and the members its provenance
  names; ``prerequisite``: the association that made a step (a leaf: its own members are
  the step's other antecedents); ``contemporaneous calibration``: a background exposure
  calibrated with the science (an input of another exposure than the product's own);
  ``multiplicity``: the other files holding the same product of one exposure — its other
  segments (``-segNNN``) and the same product of the other detectors read out with it.
* **guiding** — ``linked``: a guide-star product (``gs-*``, auxiliary, of its observation)
  and the exposures it guided, both ways: the visit's ID/ACQ1/ACQ2/TRACK products guided
  every exposure of the visit, a fine-guide product (``gs-fg``, of the exposure's first
  detector) the exposure it ran through, on every detector. From a guide-star product the
  walk lists the raw (``_uncal``) products of those exposures; from any product of an
  exposure, the guide-star products that guided it. The links are read from the catalog
  at request time, so they hold whichever file arrived first.

So the tree of a Level-3 ``_i2d`` reads L3 <- 2c ``_crf`` <- ``_cal`` <- ``_rate`` <- ``_uncal``,
with the Level-3 ASN beside the 2c step and the Level-2 ASN beside the ``_cal``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import String, and_, cast, or_, select
from sqlalchemy.orm import Session

from services.archive import mast
from services.archive.schemas import LinkageKind, LinkageNode
from shared.catalog import Exposure, Product
from shared.naming import BadNameError, is_2c, parse_guidestar

__all__ = ["AUXILIARY_SUFFIXES", "Walk", "basename", "derived", "is_guide_star", "names_it", "observation_linkage"]

AUXILIARY_SUFFIXES = frozenset({"asn", "pool", "msa"})
"""Files that say how products are made (associations, pools, MSA metadata files):
prerequisites, not data."""

_MAX_DEPTH = 8  # uncal -> rate -> cal -> crf -> i2d -> cat is five steps


def basename(uri_or_name: str) -> str:
    """The file name of a URI (or a name)."""
    return uri_or_name.rstrip("/").rsplit("/", 1)[-1]


def is_guide_star(product: Product) -> bool:
    """A guide-star product (``gs-id-image``, ``gs-acq1``, ..., ``gs-fg``)."""
    return product.suffix.startswith("gs-")


def observation_linkage(product: Product) -> LinkageKind:
    """How ``product`` belongs to its observation (see the module docstring)."""
    if product.suffix in AUXILIARY_SUFFIXES:
        return "prerequisite"
    if is_guide_star(product) and product.observation_id is not None:
        return "aggregation"  # a product of one of the observation's visits
    if product.observation_id is None:
        return "linked"
    return "aggregation" if product.exposure_id is not None else "composition"


def _naming(product_filename: str) -> str:
    """LIKE pattern for a JSON list element that is this name or a URI ending in it."""
    escaped = product_filename.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%{escaped}"%'


def names_it(inputs: Sequence[str] | None, filename: str) -> bool:
    return any(i == filename or i.endswith("/" + filename) for i in inputs or ())


def _naming_products(session: Session, product: Product) -> list[Product]:
    """Current products of the program (other than ``product``) whose inputs name it."""
    candidates = session.scalars(
        select(Product).where(
            Product.is_current, Product.program_id == product.program_id, Product.id != product.id,
            cast(Product.inputs, String).like(_naming(product.filename), escape="\\"),
        ).order_by(Product.filename)
    ).all()
    return [p for p in candidates if names_it(p.inputs, product.filename)]


def derived(session: Session, product: Product) -> tuple[list[int], list[int]]:
    """Ids of current products whose inputs name ``product``: (associations, other outputs)."""
    asns, outputs = [], []
    for p in _naming_products(session, product):
        (asns if p.suffix == "asn" else outputs).append(p.id)
    return asns, outputs


def _is_combined(p: Product) -> bool:
    return p.exposure_id is None and p.suffix not in AUXILIARY_SUFFIXES and not is_guide_star(p)


def _is_2c(p: Product) -> bool:
    """A product made for one member of a Level-3 association (``_crf``)."""
    return is_2c(p.filename)


class Walk:
    """The linkage trees of products of one catalog session (current revisions).

    The walk reads what the products of one tree level link to together (their inputs by
    name, the products naming them) before it descends: a few statements per level,
    not several per product."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._current: dict[str, Product | None] = {}
        self._naming: dict[int, list[Product]] = {}
        self._link_cache: dict[tuple[str, int], list[tuple[LinkageKind, Product]]] = {}

    def _product(self, name: str) -> Product | None:
        if name not in self._current:
            self._current[name] = self.session.scalar(
                select(Product).where(Product.filename == name, Product.is_current))
        return self._current[name]

    def prefetch_inputs(self, products: Sequence[Product]) -> None:
        """Read the current products named as inputs of ``products``, in one statement."""
        unknown = list(dict.fromkeys(n for p in products for n in (basename(i) for i in p.inputs or ())
                                     if n not in self._current))
        if unknown:
            found = {p.filename: p for p in self.session.scalars(
                select(Product).where(Product.filename.in_(unknown), Product.is_current))}
            self._current.update({n: found.get(n) for n in unknown})

    def _inputs(self, product: Product) -> list[Product]:
        self.prefetch_inputs([product])
        names = list(dict.fromkeys(basename(i) for i in product.inputs or ()))
        return [p for p in (self._product(n) for n in names) if p is not None and p.id != product.id]

    def prefetch_naming(self, products: Sequence[Product]) -> None:
        """Read the current products whose inputs name one of ``products`` (of its program),
        in one statement."""
        wanted = list({p.id: p for p in products if p.id not in self._naming}.values())
        if not wanted:
            return
        if len(wanted) == 1:
            self._naming[wanted[0].id] = _naming_products(self.session, wanted[0])
            return
        text = cast(Product.inputs, String)
        candidates = self.session.scalars(
            select(Product).where(Product.is_current, or_(*(
                and_(Product.program_id == p.program_id, text.like(_naming(p.filename), escape="\\"))
                for p in wanted))).order_by(Product.filename)
        ).all()
        for p in wanted:
            self._naming[p.id] = [c for c in candidates if c.id != p.id and c.program_id == p.program_id
                                  and names_it(c.inputs, p.filename)]

    def naming(self, product: Product) -> list[Product]:
        """Current products of the program (other than ``product``) whose inputs name it."""
        self.prefetch_naming([product])
        return self._naming[product.id]

    def _made_for_members(self, asn: Product) -> list[Product]:
        """The 2c products an association made (their provenance names it; of its program)."""
        found = self.session.scalars(
            select(Product).where(Product.is_current, Product.program_id == asn.program_id,
                                  Product.exposure_id.is_not(None),
                                  cast(Product.inputs, String).like(_naming(asn.filename), escape="\\"))
            .order_by(Product.filename)
        ).all()
        return [p for p in found if names_it(p.inputs, asn.filename) and _is_2c(p)]

    @staticmethod
    def _edge(product: Product, made_from: Product) -> LinkageKind:
        """The link between ``product`` and an input it was made from."""
        if made_from.suffix in AUXILIARY_SUFFIXES or product.suffix in AUXILIARY_SUFFIXES:
            return "prerequisite"
        if (product.exposure_id is not None and made_from.exposure_id is not None
                and made_from.exposure_id != product.exposure_id):
            return "contemporaneous calibration"
        return "antecedent"

    def antecedent_links(self, product: Product) -> list[tuple[LinkageKind, Product]]:
        """What ``product`` was made from, one level down."""
        inputs = self._inputs(product)
        links: list[tuple[LinkageKind, Product]] = []
        if _is_combined(product):
            for asn in (p for p in inputs if p.suffix == "asn"):
                parts = self._made_for_members(asn)
                covered = {basename(p.inputs[0]) for p in parts if p.inputs}
                links += [("composition", p) for p in parts]
                inputs = [p for p in inputs if p.filename not in covered]
        links += [(self._edge(product, p), p) for p in inputs]
        return links

    def child_links(self, product: Product) -> list[tuple[LinkageKind, Product]]:
        """What was made from ``product``, one level up."""
        naming = self.naming(product)
        self.prefetch_inputs(naming)
        # A combined product made through 2c products of this one hangs under them.
        through = {a.id for p in naming if _is_2c(p) for a in self._asns(p)}
        links: list[tuple[LinkageKind, Product]] = []
        for p in naming:
            if _is_combined(p) and through & {a.id for a in self._asns(p)}:
                continue
            links.append(("prerequisite" if p.suffix in AUXILIARY_SUFFIXES else self._edge(p, product), p))
        if _is_2c(product) and product.inputs:
            member = basename(product.inputs[0])
            for asn in self._asns(product):
                links += [("composition", p) for p in self.naming(asn)
                          if _is_combined(p) and names_it(p.inputs, member)]
        return links

    def multiplicity(self, product: Product) -> list[Product]:
        """The same product (suffix) of the same exposure in other files: its other
        segments, and the other detectors read out in that exposure."""
        if product.exposure_id is None:
            return []
        own = product.exposure or self.session.get(Exposure, product.exposure_id)
        return list(self.session.scalars(
            select(Product).join(Exposure, Exposure.id == Product.exposure_id)
            .where(Product.is_current, Product.id != product.id, Product.suffix == product.suffix,
                   Product.program_id == product.program_id,
                   Exposure.observation_id == own.observation_id, Exposure.visit == own.visit,
                   Exposure.visit_group == own.visit_group, Exposure.sequence == own.sequence,
                   Exposure.activity == own.activity, Exposure.exposure == own.exposure)
            .order_by(Product.filename)
        ))

    def _visit_of(self, product: Product) -> int | None:
        """The visit of a guide-star product (from its name) or of an exposure's product."""
        if is_guide_star(product):
            try:
                return parse_guidestar(product.filename).visit
            except BadNameError:
                return None
        own = self._exposure(product)
        return own.visit if own is not None else None

    def _exposure(self, product: Product) -> Exposure | None:
        if product.exposure_id is None:
            return None
        return product.exposure or self.session.get(Exposure, product.exposure_id)

    def guiding(self, product: Product) -> list[Product]:
        """Guide-star product: the raw products of the exposures it guided; a product of an
        exposure: the guide-star products that guided it (see the module docstring)."""
        visit = self._visit_of(product)
        if visit is None or product.observation_id is None:
            return []
        own = self._exposure(product)
        same_visit = [Product.is_current, Product.program_id == product.program_id,
                      Exposure.observation_id == product.observation_id, Exposure.visit == visit]
        if is_guide_star(product):
            query = select(Product).join(Exposure, Exposure.id == Product.exposure_id).where(
                *same_visit, Product.suffix == "uncal")
            if own is not None:  # fine guiding: the exposure it ran through, every detector
                query = query.where(Exposure.visit_group == own.visit_group, Exposure.sequence == own.sequence,
                                    Exposure.activity == own.activity, Exposure.exposure == own.exposure)
            return list(self.session.scalars(query.order_by(Product.filename)))
        if own is None:
            return []
        visit_level = [p for p in self.session.scalars(
            select(Product).where(Product.is_current, Product.program_id == product.program_id,
                                  Product.observation_id == product.observation_id, Product.exposure_id.is_(None),
                                  Product.suffix.like("gs-%")).order_by(Product.filename))
            if self._visit_of(p) == visit]
        fine = self.session.scalars(
            select(Product).join(Exposure, Exposure.id == Product.exposure_id).where(
                *same_visit, Product.suffix.in_(("gs-fg", "gs-fg-cal")), Exposure.visit_group == own.visit_group,
                Exposure.sequence == own.sequence, Exposure.activity == own.activity,
                Exposure.exposure == own.exposure).order_by(Product.filename))
        return visit_level + list(fine)

    def _links(self, product: Product, direction: str) -> list[tuple[LinkageKind, Product]]:
        key = (direction, product.id)
        if key not in self._link_cache:
            self._link_cache[key] = (self.antecedent_links(product) if direction == "antecedents"
                                     else self.child_links(product))
        return self._link_cache[key]

    def _load(self, root: Product, direction: str) -> None:
        """Read the tree below ``root`` level by level: what every product of a level links
        to in one or two statements, before the next level."""
        level, seen = [root], {root.id}
        for _ in range(_MAX_DEPTH):
            if direction == "antecedents":
                self.prefetch_inputs(level)
            else:
                self.prefetch_naming(level)
                self.prefetch_inputs([q for p in level for q in self._naming[p.id]])
            below = []
            for p in level:
                for _, q in self._links(p, direction):
                    if q.id not in seen and q.suffix not in AUXILIARY_SUFFIXES:
                        seen.add(q.id)
                        below.append(q)
            if not below:
                return
            level = below

    def _asns(self, product: Product) -> list[Product]:
        """The associations among ``product``'s inputs (the one that made it)."""
        return [p for p in self._inputs(product) if p.suffix == "asn"]

    def tree(self, product: Product, direction: str, depth: int = 0,
             path: frozenset[int] = frozenset()) -> list[LinkageNode]:
        """The tree of ``direction`` ("antecedents" or "children") below ``product``."""
        if depth >= _MAX_DEPTH:
            return []
        if depth == 0:
            self._load(product, direction)
        links = self._links(product, direction)
        path = path | {product.id}
        nodes = []
        for kind, p in links:
            if p.id in path:
                continue
            leaf = p.suffix in AUXILIARY_SUFFIXES  # an association's own inputs are the step's other links
            nodes.append(self.node(kind, p, [] if leaf else self.tree(p, direction, depth + 1, path)))
        return nodes

    @staticmethod
    def node(kind: LinkageKind, p: Product, links: list[LinkageNode] | None = None) -> LinkageNode:
        """``p`` as a node of a linkage tree, linked to the product above it by ``kind``."""
        return LinkageNode(
            kind=kind, productFilename=p.filename, dataURI=mast.data_uri(p.filename),
            productType=p.product_type.upper(), productSubGroupDescription=p.suffix.upper(),
            calib_level=p.level, revision=p.revision, links=links or [],
        )
