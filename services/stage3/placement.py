"""Where stage 3's outputs go in the catalog, and the reference context it reads with:
one place for the task that runs an association and the tasks of a split run."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from services.stage3.asn import Level3Association
from shared.access import combined_release
from shared.archiving import CurrentInput, Placement
from shared.pipeline import Output
from shared.refdata import RefDataError
from shared.refdata.contexts import resolve_context
from shared.runtime import ServiceContext

__all__ = ["catalog_context", "placement"]


def catalog_context(ctx: ServiceContext, name: str | None) -> str | None:
    """``name``, the reference context the members were calibrated with, when the catalog
    has it (stage 3 then reads its references from the same context, and a retry gives
    the same products); else None, the current one."""
    if name is None:
        return None
    with ctx.catalog.session() as s:
        try:
            resolve_context(s, name)
        except RefDataError:
            return None
    return name


def placement(asn: Level3Association, resolved: Mapping[str, CurrentInput], program: str, ref,
              references: list[str]) -> Callable[[Output], Placement]:
    """Where each output goes: a 2c product with its member's exposure, a Level-3 product
    with the lowest observation of its members and the references the run used in its
    provenance (``crds://<file>``); every one released with the association's latest
    member (a 2c product is made from them all: outlier detection compares each member
    with the others)."""
    observations = [m.observation for m in resolved.values() if m.observation is not None]
    lowest = min(observations) if observations else int(ref.observation or 0)
    combined = Placement(program, lowest, None, [*asn.science, asn.filename, *references],
                         data_release=combined_release(m.data_release for m in resolved.values()))

    def where(out: Output) -> Placement:
        if out.member is None:
            return combined
        m = resolved[out.member]
        return Placement(program, m.observation if m.observation is not None else lowest, m.exposure,
                         [out.member, asn.filename], data_release=combined.data_release)

    return where
