"""Association files (``_asn.json``) as the public generator writes them.

Keys in the generator's order: asn_type, asn_rule, version_id, code_version,
degraded_status, program (5 digits), constraints, asn_id, target, asn_pool, products.
Members carry expname, exptype, exposerr and, at Level 3, asn_candidate.
"""

from __future__ import annotations

import json
from datetime import datetime

from services.associations.rules import AsnSpec, Member
from shared.naming import AssociationName

__all__ = ["DEGRADED_STATUS", "asn_bytes", "asn_document", "asn_name", "version_id"]

DEGRADED_STATUS = "No known degraded exposures in association."


def _stamp(when: datetime) -> str:
    return when.strftime("%Y%m%dt%H%M%S")


def version_id(pool_created: datetime, spec: AsnSpec) -> str:
    """The time stamp of the data an ASN describes: the pool's, or the newest member's
    archive time when later (a reprocessed member gives the ASN new content)."""
    newest = max((m.archived_at.replace(tzinfo=None) for m in spec.members), default=pool_created)
    return _stamp(max(pool_created.replace(tzinfo=None), newest))


def asn_name(program: str, spec: AsnSpec, pool_created: datetime, sequence: int) -> AssociationName:
    return AssociationName(program, spec.acid, pool_created, spec.asn_type, sequence)


def _member(m: Member, level: int) -> dict:
    out = {"expname": m.expname, "exptype": m.exptype, "exposerr": "null"}
    if level == 3:
        out["asn_candidate"] = m.asn_candidate
    return out


def asn_document(spec: AsnSpec, *, program: str, pool_filename: str, version: str, code_version: str) -> dict:
    """The association as a JSON-ready dict."""
    return {
        "asn_type": spec.asn_type,
        "asn_rule": spec.asn_rule,
        "version_id": version,
        "code_version": code_version,
        "degraded_status": DEGRADED_STATUS,
        "program": program,
        "constraints": spec.constraints,
        "asn_id": spec.acid,
        "target": spec.target,
        "asn_pool": pool_filename,
        "products": [
            {"name": p.name, "members": [_member(m, spec.level) for m in p.members]} for p in spec.products
        ],
    }


def asn_bytes(document: dict) -> bytes:
    """The file's bytes: indented JSON, keys in the given order, newline-terminated."""
    return (json.dumps(document, indent=4) + "\n").encode()
