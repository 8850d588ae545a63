"""Request and response bodies of the archive API (pydantic), kept apart from the catalog's
ORM tables. Field names follow MAST/astroquery where MAST has one (``obsid``, ``obs_id``,
``dataURI``, ``productType``, ...), so existing scripts feel at home.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AccessChangeIn",
    "AccessChangeOut",
    "AuthorizationRequest",
    "BundleRequest",
    "CaomObservationRow",
    "CaomProductRow",
    "ContextLink",
    "ContributingReference",
    "ConfirmationOut",
    "ErrorOut",
    "EventOut",
    "ExclusiveReadOut",
    "Health",
    "ImpactOut",
    "LinkageKind",
    "LinkageNode",
    "Linkages",
    "NameLookup",
    "NameNotFound",
    "ObservationRow",
    "Page",
    "ProductDetail",
    "ProductRow",
    "ProgramAccessOut",
    "ProgramOut",
    "Provenance",
    "ProvenanceInput",
    "ReferenceChangeOut",
    "ReferenceRow",
    "ResolvedCoordinate",
    "WavefrontRow",
    "ReprocessingIn",
    "ReprocessingOut",
    "ReprocessingReportOut",
    "ReprocessingScope",
    "RevisionOut",
    "SubscriptionOut",
    "WhoAmI",
]

T = TypeVar("T")

LinkageKind = Literal["aggregation", "composition", "prerequisite", "linked", "antecedent",
                      "contemporaneous calibration", "multiplicity", "contributing"]
"""The linkage kinds the archive uses (the seed's vocabulary; a product row's link to its
observation, and the edges of a product's linkage tree)."""

MAX_PAGESIZE = 5000
DEFAULT_PAGESIZE = 100
MAX_BUNDLE_FILES = 5000
MAX_PAGE = 1_000_000  # page * pagesize stays far inside the catalog's 64-bit offsets
MAX_FILENAME = 200


class ErrorOut(BaseModel):
    """Every error answer: ``detail`` says what is wrong and, for a bad parameter, which;
    ``errors`` lists each problem of a request that failed validation."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class Page(BaseModel, Generic[T]):
    """One page of a search. ``total`` counts every match, so nothing is cut silently:
    fetch pages until ``page * pagesize >= total``."""

    total: int = Field(description="Rows matching the criteria, over all pages.")
    page: int = Field(description="This page, 1-based.")
    pagesize: int = Field(description="Rows per page.")
    rows: list[T]


class ObservationRow(BaseModel):
    """An observation, with MAST's CAOM field names."""

    obsid: int = Field(description="Catalog id of the observation (MAST's Product Group ID).")
    obs_id: str = Field(description="Mission id: jw<program><observation>, e.g. jw01234001.")
    obs_collection: str = "JWST"
    intentType: str = "science"
    instrument_name: str = Field(description="INSTRUMENT/MODE, e.g. NIRCAM/IMAGE.")
    filters: str = Field(description="Optical elements, ';'-joined, e.g. F200W or F322W2;GRISMR.")
    exp_type: str
    template: str
    target_name: str
    s_ra: float | None = Field(description="Target right ascension, degrees (ICRS).", json_schema_extra={"unit": "deg", "ucd": "pos.eq.ra"})
    s_dec: float | None = Field(description="Target declination, degrees (ICRS).", json_schema_extra={"unit": "deg", "ucd": "pos.eq.dec"})
    proposal_id: str = Field(description="Program number without leading zeros, as MAST.")
    proposal_pi: str
    obs_title: str
    calib_level: int = Field(description="Highest calibration level of its current products; -1 planned.")
    t_min: float | None = Field(description="Start of the first exposure, MJD (UTC).", json_schema_extra={"unit": "d", "ucd": "time.start;obs.exposure"})
    t_max: float | None = Field(description="End of the last exposure, MJD (UTC).", json_schema_extra={"unit": "d", "ucd": "time.end;obs.exposure"})
    t_exptime: float | None = Field(description="Effective exposure time summed over exposures, s.", json_schema_extra={"unit": "s", "ucd": "time.duration;obs.exposure"})
    dataproduct_type: str | None = Field(description="image, spectrum, cube or timeseries.")
    dataRights: str = Field(description="PUBLIC or EXCLUSIVE_ACCESS.")
    t_obs_release: float | None = Field(description="When all of its data are public, MJD.", json_schema_extra={"unit": "d", "ucd": "time.release"})
    jpegURL: str | None = Field(description="Preview of its highest-level product, when one exists.")
    dataURL: str | None = Field(description="Download URL of its highest-level science product.")
    n_products: int = Field(description="Current products (files) of the observation.")
    n_caom_rows: int | None = Field(None, description=(
        "Its rows as MAST presents JWST (one per Level-3 product, one per exposure and detector): "
        "GET caomURL."))
    caomURL: str | None = Field(None, description="/caom/observations?observation=<obs_id>: those rows.")


class ProductRow(BaseModel):
    """One file: a product revision's data, or one of its previews (productType PREVIEW)."""

    obsID: int | None = Field(description="Catalog id of the observation; null for program-level products.")
    obs_id: str = Field(description="jw<program><observation> (jw<program> for program-level products).")
    obs_collection: str = "JWST"
    proposal_id: str
    productFilename: str
    dataURI: str = Field(description="mast:JWST/product/<productFilename> (as MAST); download at /download/<productFilename> "
                                     "or /api/v0.1/Download/file?uri=<dataURI>.")
    productType: str = Field(description="SCIENCE, AUXILIARY, INFO or PREVIEW.")
    productSubGroupDescription: str = Field(description="File suffix, upper-case: UNCAL, RATE, CAL, I2D, ASN...")
    productGroupDescription: str | None = Field(description="'Minimum Recommended Products' or null.")
    linkage: LinkageKind = Field(
        description="How it belongs to its observation: aggregation (a product of one of its exposures), "
                    "composition (a combined product of its exposures), prerequisite (an association, "
                    "pool or MSA metadata file, what re-running needs, or a product of the observation's "
                    "pre-image), linked (a program-level product, no observation).")
    calib_level: int
    size: int = Field(description="Bytes.", json_schema_extra={"unit": "byte"})
    sha256: str
    content_type: str
    revision: int
    is_current: bool
    superseded_date: datetime | None
    dataRights: str = Field(description="PUBLIC or EXCLUSIVE_ACCESS (of the data; metadata is public).")
    prvversion: str = Field(description="Pipeline (CAL_VER) version that made it.")
    crds_context: str | None = Field(description="Reference-file context it was calibrated with.")
    archived_date: datetime
    public_release_date: datetime


class ProvenanceInput(BaseModel):
    name: str = Field(description="File name of the input.")
    dataURI: str | None = Field(description="Set when the input is a product of this archive.")
    is_product: bool


class Provenance(BaseModel):
    software_version: str
    reference_context: str | None
    inputs: list[ProvenanceInput]


class LinkageNode(BaseModel):
    """One product in a linkage tree, with how it is linked to the product above it."""

    kind: LinkageKind = Field(
        description="The link between it and the product above it: antecedent (one was made from the other), "
                    "composition (a combined product and the 2c products it is composed of), prerequisite "
                    "(the association that made the step), contemporaneous calibration (a background "
                    "exposure calibrated with the science).")
    productFilename: str
    dataURI: str
    productType: str
    productSubGroupDescription: str
    calib_level: int
    revision: int
    links: list[LinkageNode] = Field(description="The next level of the same tree (antecedents or children).")


class ContributingReference(BaseModel):
    """A reference file a product was calibrated with (a contributing product)."""

    kind: Literal["contributing"] = "contributing"
    productFilename: str = Field(description="The reference file's name, e.g. jwst_nircam_flat_nrca1_f200w_clear_sim.fits.")
    productType: Literal["REFERENCE", "WAVEFRONT"] = Field(
        "REFERENCE", description="REFERENCE: a reference file; WAVEFRONT: the wavefront-sensing OPD nearest in "
                                 "time to the exposure.")
    reftype: str | None = Field(description="REFTYPE, e.g. FLAT (OPD for a wavefront map); null when the catalog "
                                            "does not hold the file.")
    dataURI: str = Field(description="dms:JWST/reference/<productFilename> (dms:JWST/wavefront/<productFilename>).")
    dataURL: str | None = Field(description="Download URL (/references/<productFilename>, /wavefront/<productFilename>); "
                                            "null when the catalog does not hold the file.")
    sha256: str | None
    size: int | None = Field(description="Bytes.")
    in_context: bool = Field(description="Whether the product's reference context holds this file (false: a "
                                         "file chosen outside the context, e.g. an override, or a wavefront map).")
    delta_days: float | None = Field(None, description="WAVEFRONT: sensing time minus the exposure start, days.")


class ContextLink(BaseModel):
    """The reference context a product was calibrated with."""

    name: str = Field(description="e.g. dms_0001.ctx.")
    filesURL: str = Field(description="The context's reference files: /references?context=<name>.")
    known: bool = Field(description="Whether the catalog holds the context.")


class Linkages(BaseModel):
    observation: str = Field(description="obs_id of the observation it belongs to (jw<program> for program level).")
    linkage: LinkageKind = Field(description="How it belongs to that observation (as ProductRow.linkage).")
    associations: list[ProductRow] = Field(description="Current association (asn) files listing it as a member.")
    outputs: list[ProductRow] = Field(description="Current products made from it (their inputs name it).")
    antecedents: list[LinkageNode] = Field(
        description="What it was made from, walked down to the raw products (a Level-3 product: its 2c "
                    "products, their calibrated exposures, ... down to the _uncal), each step with the "
                    "association that made it.")
    children: list[LinkageNode] = Field(description="What was made from it, walked up to the Level-3 products.")
    multiplicity: list[LinkageNode] = Field(
        default_factory=list,
        description="The same product of the same exposure in other files: its other segments (-segNNN) and "
                    "the other detectors read out in that exposure (kind multiplicity, no deeper links).")
    guiding: list[LinkageNode] = Field(
        default_factory=list,
        description="Guide-star data linked to it (kind linked, no deeper links): for a guide-star product "
                    "(gs-id, gs-acq1, gs-acq2, gs-track, gs-fg), the raw (_uncal) products of the exposures it "
                    "guided; for a product of an exposure, the guide-star products that guided it.")
    prerequisite_of: list[str] = Field(
        default_factory=list,
        description="obs_id of the observations it is a prerequisite of: a pre-image's products, listed "
                    "with those observations' products (linkage prerequisite).")
    reference_context: ContextLink | None = Field(
        None, description="The reference context it was calibrated with (null: none, e.g. an _uncal).")
    contributing: list[ContributingReference] = Field(
        default_factory=list,
        description="The exact reference files it was calibrated with, as its provenance records them (kind "
                    "contributing), each with its download URL.")


class RevisionOut(BaseModel):
    revision: int
    is_current: bool
    state: Literal["current", "superseded", "staged", "abandoned"] = Field(
        description="staged (a reprocessing request made it, not current yet) and abandoned (its request "
                    "failed or was cancelled) revisions are listed to operators only.")
    archived_date: datetime
    superseded_date: datetime | None
    sha256: str
    size: int
    prvversion: str
    crds_context: str | None
    reason: str | None = Field(None, description="Why it was made: its reprocessing request's reason (null: made by "
                                                 "operational processing).")
    changes: str | None = Field(None, description="How it differs from the revision it replaces, in one line (as the "
                                                  "reprocessed notification says it); null when not compared.")


class ProductDetail(BaseModel):
    product: ProductRow
    previews: list[ProductRow]
    provenance: Provenance
    linkages: Linkages
    revisions: list[RevisionOut]


class BundleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filenames: list[Annotated[str, Field(min_length=1, max_length=MAX_FILENAME, pattern=r"^[^\x00-\x1f\x7f]*$")]] = Field(
        min_length=1, max_length=MAX_BUNDLE_FILES,
        description=f"productFilename values (no wildcards), at most {MAX_BUNDLE_FILES}; duplicates are removed.")
    format: Literal["zip", "tar", "tar.gz", "curl"] = Field(
        "zip", description="zip, tar or tar.gz: the files, streamed (up to the bundle cap, 5.12 GB by "
                           "default); curl: a shell script that fetches them (no cap).")


class AuthorizationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=200, pattern=r"^\S+$",
                      description="Identity to grant (as its tokens' owner), without spaces.")


class ProgramOut(BaseModel):
    program: str = Field(description="Five-digit program id.")
    proposal_id: str
    title: str
    pi_name: str
    category: str
    eap_months: int
    observations: list[str] = Field(description="obs_id of each observation.")
    authorized_users: list[str] | None = Field(description="Shown to the PI only.")
    you_may_read_exclusive_data: bool = Field(description="Whether the caller is the PI or authorized.")
    embargoed: bool = Field(False, description="Data and previews readable by operators only.")


class AccessChangeIn(BaseModel):
    """A dated change of a program's exclusive access: the PI's ``waiver`` (no EAP from
    ``effective``, default now), an operator's ``extension`` (+``months`` on releases still
    due), ``embargo`` or ``lift`` (operators)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["waiver", "extension", "embargo", "lift"]
    reason: str = Field(min_length=1, max_length=2000, description="Why; kept with the change.")
    months: int | None = Field(None, ge=1, le=24, description="Extension only: months added.")
    effective: datetime | None = Field(None, description="From when (UTC); default now. Waivers may be back-dated.")


class AccessChangeOut(BaseModel):
    id: int
    program: str
    kind: str
    effective: datetime
    months: int | None
    reason: str
    requested_by: str
    created: datetime
    moved: int = Field(description="Archived product revisions whose release date it moved.")


class ProgramAccessOut(BaseModel):
    program: str
    category: str
    category_eap_months: int = Field(description="The category's exclusive-access months.")
    eap_months: int = Field(description="The program's (its plan's) exclusive-access months.")
    embargoed: bool
    changes: list[AccessChangeOut] = Field(description="Dated changes, oldest first.")
    exclusive_products: int = Field(description="Current products whose data are not public yet.")
    next_release: datetime | None = Field(description="The earliest release still due.")


class ExclusiveReadOut(BaseModel):
    id: int
    user: str
    program: str
    filename: str
    revision: int
    why: str = Field(description="exclusive (before the release) or embargoed.")
    read_at: datetime


class SubscriptionOut(BaseModel):
    id: int
    owner: str
    name: str
    filters: dict[str, Any]
    channel: str
    target: str
    frequency: str
    active: bool
    created_at: datetime
    confirmed: bool = Field(description="False while an e-mail address has not followed its confirmation link; "
                                        "nothing is sent to it before.")
    secret: str | None = Field(None, description="Webhook HMAC key: only in the answer of the request that set "
                                                 "or generated it, never again.")


class DeliveryAttemptOut(BaseModel):
    """One try at sending the message that carried a delivery."""

    attempted_at: datetime = Field(description="When it was tried.")
    ok: bool = Field(description="Whether the far end accepted it.")
    status_code: int | None = Field(description="The webhook's HTTP status, when it answered one.")
    error: str | None = Field(description="Why it failed, when it did.")
    duration_seconds: float = Field(description="How long the try took, s.")


class DeliveryOut(BaseModel):
    """One archive event for one subscription, and how its sending went."""

    id: int = Field(description="Catalog id of the delivery.")
    event_id: str = Field(description="The CloudEvent id of the event it delivers (GET /events lists events).")
    event_type: str | None = Field(description="The event's type, e.g. dms.product.archived; null when the event "
                                               "is no longer in the catalog.")
    event_subject: str | None = Field(description="The event's subject (a file name); null when the event is no "
                                                  "longer in the catalog or has none.")
    notification_type: str = Field(description="new, first, reprocessed, public or reference.")
    status: str = Field(description="pending, delivered or dead (given up, see last_error).")
    attempts: int = Field(description="How many times it was tried.")
    created_at: datetime = Field(description="When the event was matched to the subscription.")
    delivered_at: datetime | None = Field(description="When it was delivered; null until then.")
    last_error: str | None = Field(description="Why the last try failed; null once delivered.")
    attempt_log: list[DeliveryAttemptOut] = Field(description=(
        "The tries of the message that last carried it, oldest first: every try of an immediate delivery; "
        "for a digest, the tries of the digest it went out in (earlier failed digests are not listed)."))


class ConfirmationOut(BaseModel):
    id: int
    target: str
    confirmed: bool


class ReferenceChangeOut(BaseModel):
    """One reference an exposure's products used that a new context replaces."""

    reftype: str = Field(description="Reference type, e.g. FLAT.")
    stage: str = Field(description="The stage whose products used it: detector1, stage2 or stage3.")
    old: str = Field(description="The file the products used.")
    new: str | None = Field(description="The file the new context selects (null: none applies).")
    policy: str = Field(description="What the reprocessing policy does about it: notify or reprocess.")


class ReferenceRow(BaseModel):
    """A delivered reference file (public: metadata and data)."""

    filename: str
    dataURI: str = Field(description="dms:JWST/reference/<filename>.")
    dataURL: str = Field(description="Download URL: /references/<filename>.")
    reftype: str = Field(description="REFTYPE, e.g. DARK.")
    instrument: str
    detector: str | None = Field(description="Its DETECTOR selector (a pattern A|B, ANY, N/A); null when it has none.")
    selectors: dict[str, str] = Field(description="Every selector keyword and its value or pattern.")
    useafter: datetime = Field(description="Applies to exposures starting at or after this (UTC).")
    pedigree: str
    description: str
    contexts: list[str] = Field(description="The reference contexts that hold it, oldest first.")
    sha256: str
    size: int = Field(description="Bytes.", json_schema_extra={"unit": "byte"})
    content_type: str
    delivered_date: datetime | None
    dataRights: Literal["PUBLIC"] = "PUBLIC"


class WavefrontRow(BaseModel):
    """A wavefront-sensing OPD file (program-independent, public)."""

    filename: str
    dataURI: str = Field(description="dms:JWST/wavefront/<filename>.")
    dataURL: str = Field(description="Download URL: /wavefront/<filename>.")
    date_obs: datetime = Field(description="When the wavefront was sensed (UTC).")
    date_obs_mjd: float = Field(description="The same, MJD (UTC).", json_schema_extra={"unit": "d"})
    apername: str = Field(description="Field point it was sensed at, e.g. NRCA3_FP1.")
    rms_nm: float = Field(description="rms OPD over the pupil, nm.", json_schema_extra={"unit": "nm"})
    sha256: str
    size: int = Field(description="Bytes.", json_schema_extra={"unit": "byte"})
    delta_days: float | None = Field(description="With date=: date_obs minus that date, days.", json_schema_extra={"unit": "d"})
    dataRights: Literal["PUBLIC"] = "PUBLIC"


class ImpactOut(BaseModel):
    """An archived exposure a reference context would calibrate with other files."""

    context: str = Field(description="The new context, e.g. dms_0002.ctx.")
    parent: str | None = Field(description="The context the exposure's first affected products were made with.")
    program: str
    exposure: str = Field(description="Exposure name, e.g. jw01234001001_01101_00001_nrca1.")
    first_stage: str = Field(description="The earliest stage whose products used a reference that changed.")
    references: list[ReferenceChangeOut]
    request_id: str | None = Field(description="The reprocessing request the policy opened for it.")
    created_at: datetime


class EventOut(BaseModel):
    """A CloudEvents 1.0 record from the archive's event log."""

    id: str
    source: str
    type: str
    specversion: str = "1.0"
    subject: str | None
    time: datetime
    datacontenttype: str = "application/json"
    data: dict[str, Any]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    catalog: str
    store: str
    broker: str | None
    tap: Literal["ready", "warming"] | None = Field(
        None, description="This API process's ADQL translator (PostgreSQL catalogs): warming for a second or two "
                          "after the start, then ready. Reported; it does not decide the status.")


class WhoAmIAttributes(BaseModel):
    display_name: str | None = Field(description="The token owner (astroquery's login greets them by it).")
    ezid: str | None = Field(description="The same, as MAST names its user id.")


class WhoAmI(BaseModel):
    """The caller, as MAST's ``/whoami`` answers it (astroquery's MastAuth reads ``anon`` and
    ``attrib.display_name``)."""

    anon: bool = Field(description="True when no token was given (astroquery reads this).")
    user: str | None
    ezid: str = Field(description="The token owner, or 'anonymous'.")
    attrib: WhoAmIAttributes
    scopes: list[str] = Field(description="mast:exclusive_access for a token (it reads exclusive data the owner may read).")


class ResolvedCoordinate(BaseModel):
    """One target a name resolves to (the fields of MAST's ``Mast.Name.Lookup`` rows, and
    which alias matched and which programs observe it)."""

    searchString: str = Field(description="The name asked for, as given.")
    canonicalName: str = Field(description="The target's name in its programs' plans (TARGNAME).")
    ra: float | None = Field(description="Right ascension, degrees (ICRS).", json_schema_extra={"unit": "deg"})
    decl: float | None = Field(description="Declination, degrees (ICRS).", json_schema_extra={"unit": "deg"})
    resolver: str = Field(description="jwst-dms: the archive's own programs' targets and their aliases (offline).")
    matchedAlias: str | None = Field(description="The alias that matched, as the plan spells it; null when the "
                                                 "name itself matched.")
    aliases: list[str] = Field(description="Every alias of the target.")
    programs: list[str] = Field(description="Five-digit ids of the programs that observe it.")
    proposal_id: list[str] = Field(description="The same, without leading zeros, as MAST.")


class NameLookup(BaseModel):
    """The answer of ``GET /resolve`` (as MAST's ``Mast.Name.Lookup``)."""

    searchString: str
    resolvedCoordinate: list[ResolvedCoordinate] = Field(description="The targets the name names, those "
                                                                     "named by their own name first.")
    status: str = ""


class NameNotFound(BaseModel):
    """``GET /resolve`` of a name no target has: the closest names the archive knows."""

    detail: str
    searchString: str
    suggestions: list[str] = Field(description="The closest target names and aliases (difflib ratio), best first.")


# ------------------------------------------------------------------ reprocessing

_NAME = Annotated[str, Field(min_length=1, max_length=MAX_FILENAME, pattern=r"^[^\x00-\x1f\x7f\s]+$")]
MAX_SCOPE = 1000  # names or numbers in one list of a scope
RequestState = Literal["queued", "running", "done", "failed", "cancelled"]


class ReprocessingScope(BaseModel):
    """What to remake. All empty: the whole program. Observations, exposures and products
    add up; an association adds its members' exposures and the association itself."""

    model_config = ConfigDict(extra="forbid")

    observations: list[Annotated[int, Field(ge=1, le=999)]] = Field(
        [], max_length=MAX_SCOPE, description="Observation numbers, e.g. [1, 3].")
    exposures: list[_NAME] = Field(
        [], max_length=MAX_SCOPE, description="Exposures, e.g. jw01234001001_01101_00001_nrca1.")
    products: list[_NAME] = Field(
        [], max_length=MAX_SCOPE, description="File names of current products; the exposure or association "
                                              "that makes each is remade.")
    association: _NAME | None = Field(None, description="An association file name (…_asn.json).")


class ReprocessingIn(BaseModel):
    """A reprocessing request. The same program, scope, stage and reference context is the
    same request: submitting it again answers the request made before (200)."""

    model_config = ConfigDict(extra="forbid")

    program: str = Field(min_length=1, max_length=16, description="Program number, e.g. 1234 or 01234.")
    scope: ReprocessingScope = Field(default_factory=ReprocessingScope)
    from_stage: Literal["detector1", "stage2", "stage3"] = Field(
        description="The first stage to run again: detector1 (from the _uncal), stage2 (from the Level-2 "
                    "associations) or stage3 (from the Level-3 associations).")
    reference_context: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f\s]+$",
        description="A reference context (e.g. dms_0002.ctx or 2); the newest when omitted.")
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S",
                        description="Why; recorded with every new revision and sent with its notification.")
    software_reason: str | None = Field(None, max_length=2000, description="A software change that motivates it.")


class ReprocessingProgress(BaseModel):
    units: int = Field(description="Units of the request (exposures and Level-3 associations).")
    done: int = Field(description="Units whose new revisions are current.")
    failed: int = Field(description="Units that failed (their staged revisions abandoned, the old ones current).")
    ended: int = Field(description="Units done, failed or cancelled.")
    eta_seconds: float | None = Field(description="Estimated seconds to the end, from the pace so far "
                                                  "(null before a unit is done, and after the end).")


class ReprocessingUnitOut(BaseModel):
    kind: Literal["exposure", "association"]
    name: str = Field(description="The exposure, or the association file.")
    stage: str = Field(description="The stage it runs (or ran) last.")
    state: RequestState
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    products: list[str] = Field(description="'<filename> r<revision>' of each revision it made.")


class ReprocessingOut(BaseModel):
    id: str
    program: str
    scope: dict[str, Any]
    from_stage: str
    reference_context: str
    reason: str
    software_reason: str | None
    requested_by: str | None
    origin: str = Field(description="user, operator or reference (opened by policy for a new context).")
    state: RequestState
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    progress: ReprocessingProgress
    units: list[ReprocessingUnitOut]


class ReprocessedProduct(BaseModel):
    filename: str
    suffix: str
    revision: int
    replaces: int | None = Field(description="The revision it replaces; null for a file new to the archive.")
    state: Literal["current", "superseded", "staged", "abandoned"]
    unit: str | None
    reference_context: str | None
    reason: dict[str, Any] | None = Field(description="request, reason, old and new context, references "
                                                      "used now that the replaced revision did not use.")
    changes: dict[str, Any] | None = Field(description="How it differs from the revision it replaces.")
    summary: str | None = Field(description="The changes in one line.")


class ReprocessingReportOut(ReprocessingOut):
    products: list[ReprocessedProduct]


class CaomObservationRow(BaseModel):
    """An observation as MAST presents JWST: one Level-3 product (calib_level 3, ``obs_id``
    its product name) or one exposure on one detector (calib_level 1 or 2, ``obs_id`` the
    exposure's file-name root). CAOM field names, as astroquery's ``Observations`` returns them."""

    obsid: int = Field(description="MAST's Product Group ID of the row: get_product_list takes it.")
    obs_id: str = Field(description="jw01234-o001_t001_nircam_clear-f200w (Level 3) or "
                                    "jw01234001001_02101_00001_nrca1 (an exposure on one detector).")
    obs_collection: str = "JWST"
    intentType: str = "science"
    dataproduct_type: str | None = Field(description="image, spectrum, cube or timeseries.")
    calib_level: int = Field(description="3: a Level-3 product; 1 or 2: the highest level of an exposure's own files.")
    instrument_name: str = Field(description="INSTRUMENT/MODE, e.g. NIRCAM/IMAGE.")
    filters: str = Field(description="Optical elements, ';'-joined, e.g. F200W or F322W2;GRISMR.")
    target_name: str
    s_ra: float | None = Field(description="Centre of s_region, degrees (ICRS).")
    s_dec: float | None = Field(description="Centre of s_region, degrees (ICRS).")
    s_region: str | None = Field(description="Footprint, STC-S (POLYGON ICRS ... or CIRCLE ICRS ...), degrees.")
    t_min: float | None = Field(description="Start of its first exposure, MJD (UTC).")
    t_max: float | None = Field(description="End of its last exposure, MJD (UTC).")
    t_exptime: float | None = Field(description="Effective exposure time, s (detectors read out together once).")
    em_min: float | None = Field(description="Shortest wavelength of the filter's bandpass, nm.")
    em_max: float | None = Field(description="Longest wavelength of the filter's bandpass, nm.")
    proposal_id: str = Field(description="Program number without leading zeros, as MAST.")
    proposal_pi: str
    obs_title: str
    dataRights: str = Field(description="PUBLIC or EXCLUSIVE_ACCESS: whether all of its data are public now.")
    t_obs_release: float | None = Field(description="When all of its current files are public, MJD.")
    jpegURL: str | None = Field(description="Preview of its highest-level science product, when one exists.")
    dataURL: str | None = Field(description="Download URL of its highest-level science product.")
    n_products: int = Field(description="Its own current files (a Level-3 row's product list adds its members').")
    n_members: int = Field(description="Level 3: the exposure rows it combines; 0 for an exposure row.")
    observations: list[str] = Field(description="obs_id of each program observation it belongs to (jw01234001); "
                                                "a mosaic of several observations names each.")


class CaomProductRow(ProductRow):
    """One file of a CAOM row's product list: ``obsID``/``obs_id`` name the CAOM row the file
    belongs to (a member exposure's, in a Level-3 row's list), ``parent_obsid`` the row asked for."""

    parent_obsid: int = Field(description="obsid of the row whose product list this is.")
