"""Stage 3 split across tasks: image3 as map and reduce over the stage-3 workers.

An image3 association of at least ``stage3_split_members`` members (setting) is not run
in the task that received it. That task pins the current revision of every member and
records one ``dms.stage3.part`` event per member, and ends. The run then goes in phases,
each a set of tasks on any stage-3 worker (docs/stage3.md):

1. ``survey``, one task per member: its tweakreg sources, skymatch sky and metadata
   (:func:`services.stage3.pipeline.survey_member`, :func:`~services.stage3.pipeline.member_meta`);
2. ``single``, one per member: the member resampled alone, its layer of the outlier
   median (:func:`~services.stage3.pipeline.image3_single`);
3. ``median``, one task: the median of the layers;
4. ``member``, one per member: the member flagged against the median, its ``_crf``
   archived, its contribution to the mosaic (:func:`~services.stage3.pipeline.image3_member`);
5. ``mosaic``, one task: the contributions added up, the catalog, the Level-3 products
   archived (:func:`~services.stage3.pipeline.image3_mosaic`); the run's intermediates
   are then removed.

A phase's results are objects in ``dms-work`` recorded as the parts of a fan-in
(:mod:`shared.catalog.fanin`); the task that records the last part records the next
phase's events in the same transaction, so no task waits for another. Every task replays
tweakreg and skymatch from the surveys (no pixel read) and holds at most one member's
arrays; the products are those of one task, to the bit.

Every step is idempotent: event ids are derived from the run and phase, a fan-in is
opened once and closes once, and a part recorded twice keeps its first result. A run of
a reprocessing request carries its step (its parts go to the ``stage3-reprocess``
queue); its ``mosaic`` task ends the step. An association superseded while its run is
under way ends the run (the newer revision has a run of its own).
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from services.stage3.asn import Level3Association, parse_level3_asn
from services.stage3.pipeline import (
    IMAGE3,
    INTERMEDIATE,
    MemberMeta,
    MemberSurvey,
    SplitRun,
    image3_median,
    image3_member,
    image3_mosaic,
    image3_single,
    member_meta,
    members_context,
    outliers_run,
    survey_member,
)
from services.stage3.placement import catalog_context, placement
from services.stage3.refcat import load_astrometric_catalog
from services.stage3.steps.tweakreg import SourceList
from services.stage3.work import part_event_id, remove_run, run_prefix
from shared.archiving import (
    ArchiveAhead,
    archive_outputs,
    current_inputs,
    event_product,
    fetch_product,
    fetch_verified,
)
from shared.catalog import Product
from shared.catalog.fanin import open_fan_in, part_results, record_part
from shared.catalog.queries import add_event
from shared.datamodels import FitsProduct
from shared.errors import NonRetriableError
from shared.messages import Event, InputRef, ProductRef, ReprocessingStep, Stage3Part, new_event
from shared.naming import member_output_name
from shared.pipeline import Output, provenance_cards
from shared.refdata import CatalogReferences, load_references
from shared.reprocessing import step_done, step_scope
from shared.resample import Contribution
from shared.runtime import ServiceContext
from shared.storage import Bucket, StoredObject, sha256_bytes

__all__ = ["SOURCE", "handle_part", "read_association", "split", "splits", "survey_from_bytes", "survey_to_bytes"]

log = logging.getLogger(__name__)

SOURCE = "dms/stage3"
LEVEL = 3
_FIELDS = ("x", "y", "x_err", "y_err", "flux", "snr")
_NEXT = {"survey": "single", "single": "median", "median": "member", "member": "mosaic"}  # what a phase's end starts


def read_association(ctx: ServiceContext, ref: ProductRef) -> Level3Association:
    """The association file ``ref`` names, checked against its sha256."""
    with tempfile.TemporaryDirectory(prefix="dms-stage3-") as tmp:
        path = fetch_verified(ctx, ref.uri, ref.sha256, Path(tmp) / ref.filename)
        return parse_level3_asn(path.read_bytes(), ref.filename)


def splits(ctx: ServiceContext, asn: Level3Association) -> bool:
    """Whether ``asn`` is split across tasks (module docstring)."""
    least = ctx.settings.stage3_split_members
    return asn.asn_type == "image3" and least > 0 and len(asn.science) >= max(least, 2)


def split(ctx: ServiceContext, ref: ProductRef, asn: Level3Association, step: ReprocessingStep | None) -> list[str]:
    """Start the split run of ``asn``: one survey part per member (nothing when the run
    was started before: this task ran again). Returns the events' ids."""
    resolved = current_inputs(ctx, asn.science, needed_by=asn.filename)
    members = tuple(InputRef(filename=name, uri=m.uri, sha256=m.sha256) for name, m in resolved.items())
    run = f"stage3:{ref.sha256}:{step.request_id if step is not None else 'ops'}"
    with ctx.catalog.session() as s:
        ids = _fan_out(s, Stage3Part(product=ref, run=run, phase="survey", members=members, step=step))
    if ids:
        log.info("%s: split across %d tasks per phase (run %s)", asn.filename, len(members), run)
    return ids


def handle_part(event: Event, ctx: ServiceContext) -> list[str]:
    """Run one part of a split run (module docstring); the ids of the events recorded."""
    part = event.payload_as(Stage3Part)
    if part.step is not None:
        scoped = step_scope(ctx, part.step)
        if scoped is None:  # the request was cancelled or has ended
            return []
        ctx = scoped
    announced = event_product(ctx, event)
    if announced is None:  # superseded while the run was under way
        remove_run(ctx, part.run)
        return []
    ref, current = announced
    if part.phase in ("survey", "single", "member") and (part.part is None or part.part >= len(part.members)):
        raise NonRetriableError(f"{part.phase} part of run {part.run} names no member ({part.part})")
    with tempfile.TemporaryDirectory(prefix="dms-stage3-") as tmp:
        work = _Work(ctx, part, ref, current, Path(tmp))
        return getattr(work, part.phase)()


class _Work:
    """One task of a split run: what it reads and records."""

    def __init__(self, ctx: ServiceContext, part: Stage3Part, ref: ProductRef, current: Product, tmp: Path):
        self.ctx, self.part, self.ref, self.current, self.tmp = ctx, part, ref, current, tmp

    # ---------------------------------------------------------------- phases

    def survey(self) -> list[str]:
        product = self._own_member()
        data = survey_to_bytes(survey_member(product), member_meta(product), self.part.members[self.part.part])
        return self._record(self._put(data, "json"))

    def single(self) -> list[str]:
        box, values = image3_single(self._run(), self.part.part, self._own_member())
        return self._record(self._put_arrays(_box_arrays(box, values=values)))

    def median(self) -> list[str]:
        median = image3_median(self._run(), (_layer(a) for a in self._results("single")))
        return self._record(self._put_arrays({"median": median}), fan_in="median", parts=1)

    def member(self) -> list[str]:
        run, asn = self._run(), read_association(self.ctx, self.ref)
        median = None
        if run.runs_outliers:
            (stored,) = self._part_results("median")

            def median() -> np.ndarray:
                return self._get_arrays(stored)["median"]
        name = self.part.members[self.part.part].filename
        # the _crf is archived by a thread while the contribution is made and stored
        with ArchiveAhead(partial(self._archive, run, asn, references=[], final=False)) as ahead:
            _, contribution = image3_member(
                run, self.part.part, self._own_member(), median=median, prov=self._prov(run, asn),
                on_crf=lambda crf: ahead.submit([Output(member_output_name(name, asn.asn_id, "crf"), "crf", crf,
                                                        INTERMEDIATE, member=name)]))
            stored = self._put_arrays(_box_arrays(None) if contribution is None else _contribution_arrays(contribution))
            ids = ahead.event_ids()
        return ids + self._record(stored)

    def mosaic(self) -> list[str]:
        run, asn = self._run(), read_association(self.ctx, self.ref)
        provider = CatalogReferences.of(self.ctx, catalog_context(self.ctx, members_context([m.product for m in run.metas])))
        first = run.metas[0].product.keywords
        refs = load_references(provider, first, IMAGE3.reftypes(first)).found
        result = image3_mosaic(run, lambda: (_contribution(a) for a in self._results("member")),
                               prov=self._prov(run, asn), refs=refs)
        for note in result.notes:
            log.info("%s: %s", asn.filename, note)
        ids = self._archive(run, asn, result.outputs(asn), result.record.reference_uris(), final=True)
        remove_run(self.ctx, self.part.run)
        return ids if self.part.step is None else step_done(self.ctx, self.part.step)

    # ---------------------------------------------------------------- reading

    def _own_member(self) -> FitsProduct:
        m = self.part.members[self.part.part]
        return fetch_product(self.ctx, m.uri, m.sha256, self.tmp / m.filename)

    def _run(self) -> SplitRun:
        """The run as every task starts from it: the members' metadata and surveys."""
        metas, surveys = [], []
        for r in self._part_results("survey"):
            data = self.ctx.store.get_uri(r.uri)
            if sha256_bytes(data) != r.sha256:
                raise NonRetriableError(f"{r.uri} does not have the sha256 its run recorded")
            _, meta, survey = survey_from_bytes(data)
            metas.append(meta)
            surveys.append(survey)
        if len(metas) != len(self.part.members):
            raise NonRetriableError(f"run {self.part.run}: {len(metas)} surveys for {len(self.part.members)} members")
        refcat = load_astrometric_catalog(self.ctx.settings.astrometric_catalog_dir)
        return SplitRun(metas, surveys, IMAGE3.params(), refcat, self.ref.filename)

    def _part_results(self, phase: str):
        with self.ctx.catalog.session() as s:
            return part_results(s, f"{self.part.run}:{phase}")

    def _results(self, phase: str) -> Iterator[dict[str, np.ndarray]]:
        """The arrays of a phase's parts, in part order, one at a time: the next part is
        fetched by a thread while the caller works on this one (the median and the mosaic
        are the run's serial tasks: their downloads overlap their adding up), so at most
        two parts' arrays are held."""
        parts = self._part_results(phase)
        if not parts:
            return
        with ThreadPoolExecutor(1, thread_name_prefix="fetch-ahead") as pool:
            pending = pool.submit(self._get_arrays, parts[0])
            for following in [*parts[1:], None]:
                arrays = pending.result()
                if following is not None:
                    pending = pool.submit(self._get_arrays, following)
                yield arrays
                del arrays

    def _get_arrays(self, r) -> dict[str, np.ndarray]:
        path = fetch_verified(self.ctx, r.uri, r.sha256, self.tmp / f"part-{uuid.uuid4().hex}.npz")
        try:
            with np.load(path) as stored:
                return {k: stored[k] for k in stored.files}
        finally:
            path.unlink(missing_ok=True)

    def _prov(self, run: SplitRun, asn: Level3Association) -> dict:
        return provenance_cards(software_version=self.ctx.settings.cal_ver,
                                created=self.current.archived_at.isoformat(timespec="seconds"),
                                context=members_context([m.product for m in run.metas]), asn_table=asn.filename,
                                asn_pool=asn.document.get("asn_pool"))

    # ---------------------------------------------------------------- writing

    def _put(self, data: bytes, ext: str) -> StoredObject:
        key = f"{run_prefix(self.part.run)}/{self.part.phase}/{self.part.part or 0:04d}-{sha256_bytes(data)[:16]}.{ext}"
        return self.ctx.store.put_bytes(Bucket.WORK, key, data, "application/octet-stream")

    def _put_arrays(self, arrays: dict[str, np.ndarray]) -> StoredObject:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return self._put(buffer.getvalue(), "npz")

    def _record(self, stored: StoredObject, *, fan_in: str | None = None, parts: int | None = None) -> list[str]:
        """Record this part's result; when it completes its phase, the next phase's events."""
        phase = fan_in or self.part.phase
        key = f"{self.part.run}:{phase}"
        with self.ctx.catalog.session() as s:
            if parts is not None:
                open_fan_in(s, key, parts)
            if not record_part(s, key, self.part.part or 0, stored.uri, stored.sha256):
                return []
            following = _NEXT[phase]
            if following == "single" and not outliers_run(IMAGE3.params(), len(self.part.members)):
                following = "member"  # no median to make
            ids = _fan_out(s, self.part.model_copy(update={"phase": following, "part": None}))
        log.info("%s: run %s: %s done; %s next", self.part.product.filename, self.part.run, phase, following)
        return ids

    def _archive(self, run: SplitRun, asn: Level3Association, outputs: list[Output], references: list[str], *,
                 final: bool) -> list[str]:
        resolved = current_inputs(self.ctx, asn.science, needed_by=asn.filename)
        program = str(self.ref.program or asn.document.get("program") or asn.product_name[2:7])
        where = placement(asn, resolved, program, self.ref, references)
        return archive_outputs(self.ctx, outputs, self.tmp / "out", where, level=LEVEL, service="stage3",
                               reference_context=members_context([m.product for m in run.metas]),
                               asn_id=asn.asn_id, final=final)


# ---------------------------------------------------------------------------- helpers

def _fan_out(session, part: Stage3Part) -> list[str]:
    """Record ``part``'s phase: one event per member (``survey``, ``single``, ``member``,
    with a fan-in of as many parts) or one (``median``, ``mosaic``); nothing when the
    phase was started before."""
    if part.phase in ("median", "mosaic"):  # recorded by the one call that closes the phase before
        return [add_event(session, _event(part, part.phase)).id]
    if not open_fan_in(session, f"{part.run}:{part.phase}", len(part.members)):
        return []
    return [add_event(session, _event(part.model_copy(update={"part": i}), f"{part.phase}/{i}")).id
            for i in range(len(part.members))]


def _event(part: Stage3Part, name: str) -> Event:
    subject = part.members[part.part].filename if part.part is not None else part.product.filename
    return new_event(part, SOURCE, subject=subject, event_id=part_event_id(part.run, name))


def _box_arrays(box, **arrays) -> dict[str, np.ndarray]:
    rows, cols = box if box is not None else (slice(0, 0), slice(0, 0))
    return {"box": np.array([rows.start, rows.stop, cols.start, cols.stop], np.int64),
            **{k: v for k, v in arrays.items() if v is not None}}


def _box(arrays: dict[str, np.ndarray]) -> tuple[slice, slice] | None:
    y0, y1, x0, x1 = (int(v) for v in arrays["box"])
    return None if y0 == y1 else (slice(y0, y1), slice(x0, x1))


def _layer(arrays: dict[str, np.ndarray]):
    box = _box(arrays)
    return (box, arrays["values"]) if box is not None else (None, None)


def _contribution_arrays(c: Contribution) -> dict[str, np.ndarray]:
    if c.box is None:
        return _box_arrays(None)
    return _box_arrays(c.box, mean=c.mean, wht=c.wht, **{f"var:{k}": v for k, v in c.variances.items()})


def _contribution(arrays: dict[str, np.ndarray]) -> Contribution:
    box = _box(arrays)
    if box is None:
        return Contribution(None)
    return Contribution(box, arrays["mean"], arrays["wht"],
                        {k.removeprefix("var:"): v for k, v in arrays.items() if k.startswith("var:")})


# ---------------------------------------------------------------------------- surveys as JSON

def survey_to_bytes(survey: MemberSurvey, meta: MemberMeta, member: InputRef) -> bytes:
    """A member's survey and metadata as JSON, exact: each array with its dtype, floats as
    Python writes them (they read back to the same bits), keyword tuples tagged."""
    sources = None
    if survey.sources is not None:
        sources = {f: {"dtype": str(np.asarray(getattr(survey.sources, f)).dtype),
                       "values": np.asarray(getattr(survey.sources, f)).tolist()} for f in _FIELDS}
    sky = None if survey.sky is None else [float(survey.sky[0]), int(survey.sky[1])]
    doc = {"member": member.filename, "sha256": member.sha256, "sources": sources, "sky": sky,
           "meta": _meta_to_json(meta)}
    return json.dumps(doc, separators=(",", ":")).encode()


def survey_from_bytes(data: bytes) -> tuple[str, MemberMeta, MemberSurvey]:
    """(member file name, its metadata, its survey) of :func:`survey_to_bytes`'s JSON."""
    doc = json.loads(data)
    sources = None
    if doc["sources"] is not None:
        sources = SourceList(**{f: np.asarray(doc["sources"][f]["values"], dtype=doc["sources"][f]["dtype"])
                                for f in _FIELDS})
    sky = None if doc["sky"] is None else (float(doc["sky"][0]), int(doc["sky"][1]))
    return doc["member"], _meta_from_json(doc["meta"]), MemberSurvey(sources, sky)


def _meta_to_json(meta: MemberMeta) -> dict:
    p = meta.product
    return {"model_type": p.model_type, "keywords": _encode(p.keywords),
            "hdu_keywords": {h: _encode(c) for h, c in p.hdu_keywords.items()},
            "shape": list(meta.shape), "variances": list(meta.variances)}


def _meta_from_json(doc: dict) -> MemberMeta:
    product = FitsProduct(model_type=doc["model_type"], keywords=_decode(doc["keywords"]),
                          hdu_keywords={h: _decode(c) for h, c in doc["hdu_keywords"].items()})
    return MemberMeta(product, (int(doc["shape"][0]), int(doc["shape"][1])), tuple(doc["variances"]))


def _encode(cards: dict[str, Any]) -> list:
    """[name, value] pairs (order kept); a tuple value (value, comment) as {"t": [...]}."""
    def value(v):
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, tuple):
            return {"t": [value(x) for x in v]}
        if v is None or isinstance(v, bool | int | float | str):
            return v
        raise TypeError(f"a keyword value of type {type(v).__name__} cannot be carried between tasks: {v!r}")
    return [[k, value(v)] for k, v in cards.items()]


def _decode(pairs: list) -> dict[str, Any]:
    def value(v):
        return tuple(value(x) for x in v["t"]) if isinstance(v, dict) else v
    return {k: value(v) for k, v in pairs}
