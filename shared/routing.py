"""Which event starts which task: the one routing table of the system.

Adding a stage is a line here, not an edit in the producing service. A task name is
``<service>.<action>`` and runs on the queue named after its service; a service's
reprocessing tasks (``reprocess``, ``reprocess-<what>``) run on its reprocessing queue,
``<service>-reprocess``, served by workers of its own (``dms worker
detector1-reprocess``) so that a reprocessing backlog never delays operational work. Filters read the
event's typed payload (:attr:`shared.messages.Event.payload`); an event whose payload is
malformed raises :class:`shared.messages.PayloadError` (the dispatcher dead-letters it).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.messages import (
    AssociationComplete,
    Event,
    EventType,
    ProductArchived,
    ReprocessingStep,
    Stage3Part,
)

__all__ = ["QUEUES", "REPROCESSING_QUEUES", "ROUTES", "Route", "for_reprocessing", "queue_for", "routes_for",
           "service_of_queue"]

REPROCESSING_SERVICES = ("detector1", "stage2", "stage3")
REPROCESSING_QUEUES = tuple(f"{s}-reprocess" for s in REPROCESSING_SERVICES)
QUEUES = ("ingest", "detector1", "stage2", "associations", "stage3", "preview", "notifier", *REPROCESSING_QUEUES)


@dataclass(frozen=True)
class Route:
    """Start ``task`` for events of ``event_type`` whose product matches the filters."""

    event_type: str
    task: str
    suffixes: frozenset[str] | None = None
    exp_types: frozenset[str] | None = None
    asn_types: frozenset[str] | None = None  # of an association file (payload ``asn_type``)
    stage: str | None = None  # of a reprocessing step (payload ``stage``)
    # False: not for a product a reprocessing request made current (its unit is complete
    # already; only previews and notifications follow)
    reprocessed: bool = True
    # of a stage-3 part: True, for a run of a reprocessing request; False, an operational run
    for_request: bool | None = None

    def matches(self, event: Event) -> bool:
        """Whether this route takes ``event``; raises PayloadError on a malformed payload
        when a filter needs to read it."""
        if event.type != self.event_type:
            return False
        if self.for_request is not None:
            payload = event.payload
            return isinstance(payload, Stage3Part) and (payload.step is not None) == self.for_request
        if self.stage is not None:
            payload = event.payload
            return isinstance(payload, ReprocessingStep) and payload.stage == self.stage
        if not self.reprocessed:
            payload = event.payload
            if isinstance(payload, ProductArchived) and payload.reprocessing is not None:
                return False
        if self.suffixes is None and self.exp_types is None and self.asn_types is None:
            return True
        payload = event.payload
        if self.asn_types is not None:
            asn_type = payload.asn_type if isinstance(payload, ProductArchived | AssociationComplete) else None
            if asn_type not in self.asn_types:
                return False
        product = event.product
        if product is None:
            return False
        if self.suffixes is not None and product.suffix not in self.suffixes:
            return False
        return self.exp_types is None or (product.exp_type or "") in self.exp_types


ROUTES: tuple[Route, ...] = (
    Route(EventType.TELEMETRY_ARRIVED, "ingest.telemetry"),
    Route(EventType.PRODUCT_ARCHIVED, "detector1.run", suffixes=frozenset({"uncal"}), reprocessed=False),
    # a guide-star product (raw) -> calwebb_guider; its _cal (gs-<mode>-cal) goes nowhere but
    # to previews and subscribers: guide-star data never enter associations or stage 2
    Route(EventType.PRODUCT_ARCHIVED, "detector1.run", reprocessed=False, suffixes=frozenset({
        "gs-id-image", "gs-id-stack", "gs-acq1", "gs-acq2", "gs-track", "gs-fg"})),
    Route(EventType.PRODUCT_ARCHIVED, "associations.update",
          suffixes=frozenset({"rate", "rateints", "cal", "calints"}), reprocessed=False),
    # products made from an association: the program's association report lists them, and a
    # wide-field slitless spec2 waits for its direct images' Level-3 _cat (with _i2d, _segm)
    Route(EventType.PRODUCT_ARCHIVED, "associations.update", reprocessed=False,
          suffixes=frozenset({"i2d", "crf", "crfints", "cat", "segm", "phot", "whtlt", "s2d", "x1d",
                             "x1dints"})),
    Route(EventType.PRODUCT_ARCHIVED, "stage2.run", suffixes=frozenset({"asn"}),
          asn_types=frozenset({"image2", "tso-image2", "spec2", "tso-spec2"}), reprocessed=False),
    Route(EventType.PRODUCT_ARCHIVED, "stage3.run", suffixes=frozenset({"asn"}),
          asn_types=frozenset({"image3", "tso3", "spec3"}), reprocessed=False),
    Route(EventType.REPROCESSING_STEP, "detector1.reprocess", stage="detector1"),
    Route(EventType.REPROCESSING_STEP, "stage2.reprocess", stage="stage2"),
    Route(EventType.REPROCESSING_STEP, "stage3.reprocess", stage="stage3"),
    # stage 3 split across tasks: each member's part, then the part that combines them
    Route(EventType.STAGE3_PART, "stage3.part", for_request=False),
    Route(EventType.STAGE3_PART, "stage3.reprocess-part", for_request=True),
    Route(EventType.PRODUCT_ARCHIVED, "preview.make", suffixes=frozenset({
        "uncal", "ramp", "rate", "rateints", "cal", "calints", "bsub", "bsubints", "crf", "crfints",
        "i2d", "s2d", "s3d", "x1d", "x1dints", "c1d", "phot", "whtlt", "segm", "psfstack", "psfsub",
        "gs-fg", "gs-fg-cal",  # the pointing jitter of a fine-guide product
    })),
    Route(EventType.PRODUCT_ARCHIVED, "notifier.match"),
    Route(EventType.DATA_PUBLIC, "notifier.match"),
    Route(EventType.REFERENCE_DELIVERED, "notifier.match"),
)


def for_reprocessing(task: str) -> bool:
    """Whether ``task`` works for reprocessing requests (``<service>.reprocess`` or
    ``<service>.reprocess-<what>``)."""
    return task.partition(".")[2].partition("-")[0] == "reprocess"


def queue_for(task: str) -> str:
    service = task.partition(".")[0]
    queue = f"{service}-reprocess" if for_reprocessing(task) else service
    if queue not in QUEUES:
        raise ValueError(f"task {task!r} names no known service queue ({', '.join(QUEUES)})")
    return queue


def service_of_queue(queue: str) -> str:
    """The service whose handlers serve ``queue`` (``stage2-reprocess`` -> ``stage2``)."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; available: {', '.join(QUEUES)}")
    return queue.removesuffix("-reprocess")


def routes_for(event: Event, routes: tuple[Route, ...] = ROUTES) -> list[Route]:
    return [r for r in routes if r.matches(event)]
