"""What subscribers receive: MAST-style rows, the CloudEvents 1.0 envelope, the e-mail
text and the name of the JSON attachment. Pure functions, no I/O.

A row is MAST's notification row (mast_notebooks ``subscriptions/JWST.json``):
``event_id, mission, fileset, filename, program, event_type, archived_date,
public_release_date``, with MAST's value formats (program as a number, capitalised
event type, UTC times without offset, milliseconds), followed by our extras:
``dataURI, suffix, revision, level, instrument`` (and ``reftype``/``context``/``useafter``
for reference files, with ``impact``: what the new context changes for archived exposures;
``reprocessing_request``/``reprocessing_reason``/``changes`` for a revision a reprocessing
request made).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any

from services.notifier.classify import REFERENCE, Notice, as_utc
from shared.naming import AssociationName, ExposureName, Level3Name, PoolName, parse_any

__all__ = [
    "CE_CONTENT_TYPE",
    "CE_TYPE_PREFIX",
    "attachment_name",
    "cloud_event",
    "email_subject",
    "email_text",
    "encode",
    "fileset_of",
    "impact_text",
    "mast_row",
    "mast_time",
]

MISSION = "JWST"
CE_TYPE_PREFIX = "org.jwstdms.archive"
CE_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
ROW_EVENT_TYPES = {"new": "New", "first": "First", "reprocessed": "Reprocessed", "public": "Public",
                   "reference": "Reference"}


def mast_time(when: datetime | None) -> str | None:
    """MAST's time format: UTC, ISO 8601 without offset, milliseconds."""
    when = as_utc(when)
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def fileset_of(filename: str) -> str:
    """MAST's ``fileset`` of a file: for exposure-level products the exposure without
    detector, segment or suffix (``jw01234001001_01101_00001``, as in MAST's own rows);
    for Level-3 products the product name; for associations and pools the name without
    its suffix; for anything else (reference files) the name without extension."""
    try:
        name = parse_any(filename)
    except ValueError:  # not a JWST product name (e.g. a reference file): the name's stem
        return filename.rsplit(".", 1)[0]
    if isinstance(name, ExposureName):
        return f"{name.visit_id}_{name.visit_group:02d}{name.sequence}{name.activity}_{name.exposure:05d}"
    if isinstance(name, Level3Name):
        return name.product_name
    if isinstance(name, AssociationName | PoolName):
        return filename.rsplit("_", 1)[0]
    return filename  # pragma: no cover - parse_any returns one of the above


def mast_row(notice: Notice, event_id: str) -> dict[str, Any]:
    f = notice.file
    reference = notice.notification_type == REFERENCE
    row: dict[str, Any] = {
        "event_id": event_id,
        "mission": MISSION,
        "fileset": fileset_of(f.filename),
        "filename": f.filename,
        "program": int(f.program) if f.program and f.program.isdigit() else f.program,
        "event_type": ROW_EVENT_TYPES[notice.notification_type],
        "archived_date": mast_time(f.archived_at),
        "public_release_date": mast_time(f.data_release),
        "dataURI": f"dms:{MISSION}/reference/{f.filename}" if reference else f"mast:{MISSION}/product/{f.filename}",
        "suffix": f.suffix,
        "revision": f.revision,
        "level": f.level,
        "instrument": f.instrument,
    }
    row.update(f.extras)
    return row


def _program_of(rows: list[dict[str, Any]]) -> str | None:
    programs = {r["program"] for r in rows}
    if len(programs) == 1 and None not in programs:
        return f"{int(next(iter(programs))):05d}"
    return None


def cloud_event(batch_id: str, rows: list[dict[str, Any]], notification_type: str, time: datetime) -> dict[str, Any]:
    """The CloudEvents 1.0 envelope (structured mode) of one delivery.

    ``subject`` is the file name when the rows name one file, else the program; ``source``
    is the program (``/archive/jwst/program/01234``), ``/archive/jwst/references`` for
    reference files, ``/archive/jwst`` for a mixture."""
    program = _program_of(rows)
    if notification_type == REFERENCE:
        source, ce_type = "/archive/jwst/references", f"{CE_TYPE_PREFIX}.reference"
    else:
        source = f"/archive/jwst/program/{program}" if program else "/archive/jwst"
        ce_type = f"{CE_TYPE_PREFIX}.product.{notification_type}"
    filenames = {r["filename"] for r in rows}
    subject = next(iter(filenames)) if len(filenames) == 1 else program
    event = {
        "specversion": "1.0",
        "id": batch_id,
        "source": source,
        "type": ce_type,
        "time": as_utc(time).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
    }
    if subject:
        event["subject"] = subject
    event["data"] = rows
    return event


def encode(document: Any) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def attachment_name(rows: list[dict[str, Any]], frequency: str, when: datetime) -> str:
    """MAST's attachment name, e.g. ``event_metadata_jwst-program-5105_hourly_20260422_143523.json``
    (the program without leading zeros; ``all`` when the rows span several or none)."""
    program = _program_of(rows)
    label = str(int(program)) if program else "all"
    return f"event_metadata_jwst-program-{label}_{frequency}_{as_utc(when):%Y%m%d_%H%M%S}.json"


def impact_text(context: str, impact: dict[str, Any]) -> str:
    """One line on what a reference context changes for archived exposures."""
    if not impact["exposures"]:
        return f"{context} calibrates no archived exposure differently"
    counts = "; ".join(f"program {c['program']}: {c['exposures']} from {c['first_stage']}"
                       + (" (reprocessing requested)" if c["policy"] == "reprocess" else "")
                       for c in impact["counts"])
    return f"{context} would calibrate {impact['exposures']} archived exposure(s) with other files: {counts}"


def _summary(rows: list[dict[str, Any]]) -> str:
    counts = Counter(r["event_type"] for r in rows)
    return ", ".join(f"{n} {t}" for t, n in sorted(counts.items(), key=lambda kv: list(ROW_EVENT_TYPES.values()).index(kv[0])))


def email_subject(rows: list[dict[str, Any]], frequency: str) -> str:
    program = _program_of(rows)
    where = f"program {program}" if program else "JWST"
    kind = "notification" if frequency == "immediate" else f"{frequency} digest"
    return f"[jwst-dms] {where}: {_summary(rows)} ({kind})"


def email_text(rows: list[dict[str, Any]], *, frequency: str, subscription_name: str, subscription_id: int,
               attachment: str, archive_base_url: str, when: datetime) -> str:
    """A readable body: one section per event type, one line per file."""
    lines = [
        f"jwst-dms {'notification' if frequency == 'immediate' else frequency + ' digest'}"
        f" of subscription {subscription_id}{' (' + subscription_name + ')' if subscription_name else ''},"
        f" {as_utc(when):%Y-%m-%d %H:%M} UTC: {_summary(rows)}.",
        "",
    ]
    for label in ROW_EVENT_TYPES.values():
        group = [r for r in rows if r["event_type"] == label]
        if not group:
            continue
        lines.append(f"{label} ({len(group)})")
        for r in sorted(group, key=lambda r: r["filename"]):
            program = f"program {r['program']:05d}" if isinstance(r["program"], int) else "reference"
            lines.append(f"  {r['filename']}")
            lines.append(f"      {program}, archived {r['archived_date']} UTC, public from {r['public_release_date']} UTC")
            if r.get("impact") is not None:
                lines.append(f"      {impact_text(r['context'], r['impact'])}")
            if r.get("reprocessing_request"):
                lines.append(f"      reprocessed by request {r['reprocessing_request']}: {r['reprocessing_reason']}")
                lines.append(f"      changes: {r['changes'] or 'not compared'}")
        lines.append("")
    lines += [
        f"The attachment {attachment} holds these rows as JSON (MAST's notification format).",
        f"Archive: {archive_base_url}",
        f"Stop these messages: dms unsubscribe {subscription_id}",
        "",
    ]
    return "\n".join(lines)
