"""The association summary report of a program: one self-contained HTML page.

For every association the rules call for (Level 2 and 3): its candidate, type, rule,
members (archived, or still awaited), completion state, the ASN file last emitted, the
products made from it, and two small inline SVG graphics: the members' footprints on
the sky and their exposure timeline; above them, the timeline of the whole pool.

Pure: :func:`render_report` is a function of a :class:`ReportInput` (built from the plan,
the evaluation and catalog rows by :func:`report_input`), with no time of its own, so
the same state gives the same bytes and archiving it again is a no-op. Every text put
into the page is escaped. The page holds metadata only (names, states, footprints, times,
release dates): no pixel data and no preview of a product under exclusive access.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

import numpy as np

from services.associations.builder import Evaluation, PlannedAsn, SpecKey, spec_key
from services.associations.graphics import Bar, Footprint, footprint_svg, timeline_svg
from services.associations.planned import planned_names
from services.associations.rules import WFSS_MEMBER_TYPES
from shared.instruments import detector, exposure_timing, subarray
from shared.naming import BadNameError, parse_association, parse_exposure, parse_level3
from shared.plan import Plan
from shared.wcs import window_wcs

__all__ = [
    "ExposureView",
    "MadeProduct",
    "MemberView",
    "ReportInput",
    "assign_products",
    "exposure_views",
    "member_views",
    "render_report",
    "report_input",
]


@dataclass(frozen=True)
class ExposureView:
    """Where and when one planned exposure (one detector) looked: the outer corners of its
    window on the sky (ra, dec degrees, from the planned pointing), its start (measured,
    once ingested; else planned) and end (start + DURATION) in UTC."""

    exposure_id: str
    observation: int
    corners: tuple[tuple[float, float], ...]
    start: datetime
    end: datetime


@dataclass(frozen=True)
class MadeProduct:
    """A current product made from an association (its provenance names the ASN file)."""

    filename: str
    suffix: str
    level: int
    revision: int
    data_release: datetime


@dataclass(frozen=True)
class MemberView:
    filename: str
    exptype: str  # science or background
    state: str  # archived or waiting
    revision: int | None


@dataclass(frozen=True)
class ReportInput:
    program: str
    title: str
    evaluation: Evaluation
    emitted: Mapping[SpecKey, tuple[str, list]]  # key -> (ASN file, member signature) last emitted
    made: Mapping[SpecKey, tuple[MadeProduct, ...]]
    exposures: Mapping[str, ExposureView]  # by exposure id


def exposure_views(plan: Plan, starts: Mapping[str, datetime] | None = None) -> dict[str, ExposureView]:
    """Footprint and times of every planned exposure, by exposure id; an exposure's start
    is the one in ``starts`` (the catalog's, measured from the telemetry) when given, else
    the planned one."""
    starts = starts or {}
    out = {}
    for obs in plan.observations:
        sub = subarray(obs.instrument, obs.subarray)  # one size and timing on every detector
        seconds = exposure_timing(obs.instrument, sub, obs.readpatt, obs.ngroups, obs.nints).duration
        x = np.array([-0.5, sub.xsize - 0.5, sub.xsize - 0.5, -0.5])
        y = np.array([-0.5, -0.5, sub.ysize - 0.5, sub.ysize - 0.5])
        for exp, name in planned_names(plan, obs):
            p = exp.pointing
            wcs = window_wcs(p.ra, p.dec, p.roll, detector(exp.detector).pixel_scale, sub.xsize, sub.ysize)
            ra, dec = wcs.all_pix2world(x, y, 0)
            corners = tuple((round(float(r) % 360.0, 7), round(float(d), 7)) for r, d in zip(ra, dec, strict=True))
            start = starts.get(name.exposure_id, exp.start_time)
            out[name.exposure_id] = ExposureView(name.exposure_id, obs.number, corners, start,
                                                 start + timedelta(seconds=seconds))
    return out


def assign_products(evaluation: Evaluation, rows: Iterable[tuple[MadeProduct, Sequence[str]]]
                    ) -> dict[SpecKey, tuple[MadeProduct, ...]]:
    """The products each association made: those whose inputs name one of its ASN files.
    An ASN file is matched by candidate, type and sequence number (its pool time stamp
    changes with the pool; its number does not while the plan is unchanged)."""
    by_number = {(a.spec.acid, a.spec.asn_type, a.sequence): spec_key(a.spec) for a in evaluation.associations}
    made: dict[SpecKey, list[MadeProduct]] = {}
    for product, inputs in rows:
        for item in inputs:
            try:
                name = parse_association(item.rsplit("/", 1)[-1])
            except BadNameError:
                continue
            key = by_number.get((name.acid, name.asn_type, name.sequence))
            if key is not None:
                made.setdefault(key, []).append(product)
                break
    return {k: tuple(sorted(v, key=lambda p: p.filename)) for k, v in made.items()}


def member_views(item: PlannedAsn) -> list[MemberView]:
    """Every member of an association: those archived (with their revision), then the
    required ones awaited, then background members awaited."""
    spec = item.spec
    out = [MemberView(m.expname, m.exptype, "archived", m.revision) for m in spec.members]
    seen = {m.filename for m in out}
    for names, exptype in ((spec.waiting, "science"), (spec.optional_waiting, "background")):
        for n in names:
            if n not in seen:
                seen.add(n)
                out.append(MemberView(n, _level3_member_type(n) or exptype, "waiting", None))
    return out


def _level3_member_type(filename: str) -> str | None:
    """The exptype of a Level-3 product named as a member (a wide-field slitless spec2's
    direct_image, sourcecat or segmap), None for an exposure's file."""
    try:
        suffix = parse_level3(filename).suffix
    except BadNameError:
        return None
    return next((t for t, (s, _) in WFSS_MEMBER_TYPES.items() if s == suffix), None)


def _exposure_of(filename: str) -> str | None:
    try:
        return parse_exposure(filename).exposure_id
    except BadNameError:
        return None


_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%;text-align:left;vertical-align:top}
section.association{border-top:2px solid #888;margin-top:1.2em;padding-top:.4em}
.complete .state{color:#14632c}.waiting .state,.state.waiting{color:#9a4b00}
.graphics{display:flex;gap:1.5em;flex-wrap:wrap;align-items:flex-start}
svg{background:#fafafa;border:1px solid #ddd}
polygon.footprint{fill:#3b7dd8;fill-opacity:.15;stroke:#3b7dd8;stroke-width:1}
polygon.footprint.waiting{fill:none;stroke:#c76b00;stroke-dasharray:4 3}
rect.exposure{fill:#3b7dd8}rect.exposure.waiting{fill:none;stroke:#c76b00;stroke-dasharray:3 2}
text.axis{font-size:9px;fill:#555}.note{color:#777;font-style:italic}
"""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _status(item: PlannedAsn, emitted: tuple[str, list] | None) -> tuple[str, str]:
    """(class, text) of an association's completion state."""
    spec = item.spec
    if not spec.complete:
        return "waiting", f"waiting for {len(spec.waiting)} of {len(spec.expected)} members"
    if emitted is not None and emitted[1] == spec.signature:
        text = f"complete ({_count(len(spec.members), 'member')})"
    else:
        text = f"complete ({_count(len(spec.members), 'member')}), ASN not archived yet"
    if spec.optional_waiting:
        text += f"; {len(spec.optional_waiting)} background members not archived yet"
    return "complete", text


def _anchor(item: PlannedAsn) -> str:
    spec = item.spec
    return escape(f"asn-{spec.acid}-{spec.asn_type}-{item.sequence:05d}")


def _release(p: MadeProduct) -> str:
    return f"{p.data_release:%Y-%m-%d}"


def _association(data: ReportInput, item: PlannedAsn) -> str:
    spec = item.spec
    key = spec_key(spec)
    emitted = data.emitted.get(key)
    state, status = _status(item, emitted)
    members = member_views(item)
    footprints, bars = [], []
    for m in members:
        view = data.exposures.get(_exposure_of(m.filename) or "")
        if view is not None:
            footprints.append(Footprint(m.filename, view.corners, m.state))
            bars.append(Bar(m.filename, view.start, view.end, m.state))
    rows = "".join(
        f'<tr class="member {m.state}"><td>{escape(m.filename)}</td><td>{escape(m.exptype)}</td>'
        f'<td class="state {m.state}">{escape(m.state)}</td><td>{"" if m.revision is None else m.revision}</td></tr>'
        for m in members)
    made = data.made.get(key, ())
    products = ("".join(
        f'<tr class="product"><td>{escape(p.filename)}</td><td>{escape(p.suffix)}</td><td>{p.level}</td>'
        f"<td>{p.revision}</td><td>{_release(p)}</td></tr>" for p in made)
        if made else '<tr><td colspan="5" class="note">none yet</td></tr>')
    asn_file = escape(emitted[0]) if emitted else '<span class="note">none emitted yet</span>'
    title = f"{spec.acid} {spec.asn_type} {spec.name}"
    return (
        f'<section class="association {state}" id="{_anchor(item)}" data-acid="{escape(spec.acid)}" '
        f'data-asn-type="{escape(spec.asn_type)}" data-rule="{escape(spec.asn_rule)}" data-product="{escape(spec.name)}">'
        f"<h3>{escape(title)}</h3>"
        f'<table class="facts"><tr><th>rule</th><td class="rule">{escape(spec.asn_rule)}</td></tr>'
        f"<tr><th>level</th><td>{spec.level}</td></tr>"
        f'<tr><th>state</th><td class="state">{escape(status)}</td></tr>'
        f"<tr><th>ASN file</th><td>{asn_file}</td></tr></table>"
        f'<div class="graphics">{footprint_svg(footprints, f"footprints of {title}")}'
        f'{timeline_svg(bars, f"exposures of {title}", width=360)}</div>'
        f"<h4>Members ({len(members)})</h4>"
        f'<table class="members"><tr><th>file</th><th>exptype</th><th>state</th><th>revision</th></tr>{rows}</table>'
        f"<h4>Products made ({len(made)})</h4>"
        f'<table class="products"><tr><th>file</th><th>suffix</th><th>level</th><th>revision</th>'
        f"<th>data release</th></tr>{products}</table></section>"
    )


def render_report(data: ReportInput) -> str:
    """The report as one HTML document (no external assets)."""
    ev = data.evaluation
    pool = ev.pool
    done = sum(1 for a in ev.associations if a.spec.complete)
    pool_text = (f"pool {escape(pool.filename)} ({len(pool.rows)} exposures)" if pool is not None
                 else "no exposure archived yet")
    in_pool = {r["FILENAME"] for r in pool.rows} if pool is not None else set()
    bars = []
    for view in data.exposures.values():
        archived = any(n.startswith(view.exposure_id + "_") for n in in_pool)
        bars.append(Bar(view.exposure_id, view.start, view.end, "archived" if archived else "waiting"))
    summary = "".join(
        f'<tr class="{"complete" if a.spec.complete else "waiting"}"><td><a href="#{_anchor(a)}">'
        f"{escape(a.spec.acid)}</a></td><td>{escape(a.spec.asn_type)}</td><td>{escape(a.spec.asn_rule)}</td>"
        f"<td>{escape(a.spec.name)}</td><td>{len(member_views(a))}</td>"
        f'<td class="state">{escape(_status(a, data.emitted.get(spec_key(a.spec)))[1])}</td></tr>'
        for a in ev.associations)
    heading = f"Program {data.program}: associations"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(heading)}</h1><p class=\"program-title\">{escape(data.title)}</p>"
        f'<p class="pool">{pool_text}; {done} of {len(ev.associations)} associations complete.</p>'
        "<p class=\"note\">Metadata only: footprints from the planned pointings, start times as measured "
        "(planned for exposures not archived yet); the data of products "
        "under exclusive access are served by the archive to authorized users only, from the date shown.</p>"
        f"<h2>Exposure timeline</h2>{timeline_svg(bars, f'exposures of program {data.program}')}"
        "<h2>Associations</h2>"
        '<table class="summary"><tr><th>candidate</th><th>type</th><th>rule</th><th>product</th>'
        f"<th>members</th><th>state</th></tr>{summary}</table>"
        + "".join(_association(data, a) for a in ev.associations)
        + "</body></html>\n"
    )


def report_input(plan: Plan, evaluation: Evaluation, emitted: Mapping[SpecKey, tuple[str, list]],
                 made_rows: Iterable[tuple[MadeProduct, Sequence[str]]],
                 starts: Mapping[str, datetime] | None = None) -> ReportInput:
    """Everything :func:`render_report` shows, from the plan, the evaluation, the last
    emitted ASN of each association, the current products with their inputs and the
    exposures' start times the catalog records."""
    return ReportInput(plan.program, plan.title, evaluation, dict(emitted),
                       assign_products(evaluation, made_rows), exposure_views(plan, starts))
