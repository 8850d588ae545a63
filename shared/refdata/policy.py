"""What a new reference context does to the exposures it affects, per reference type and
instrument (``DMS_REPROCESS_POLICY``, docs/refdata.md):

- ``off``: differences of that type are not tracked (no impact recorded, no notice);
- ``notify`` (the default): the impact is recorded and announced with the
  ``dms.reference.delivered`` event;
- ``reprocess``: as ``notify``, and a reprocessing request is opened for the exposures.

The setting is a comma-separated list of ``REFTYPE[:INSTRUMENT]=ACTION`` entries, where
REFTYPE may be ``*`` (every type), e.g. ``FLAT:NIRCAM=reprocess,DARK=notify,*=notify``. The
most specific entry wins: type and instrument, then type, then ``*:INSTRUMENT``, then ``*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from shared.instruments import INSTRUMENTS
from shared.refdata.errors import RefDataError
from shared.refdata.rules import REFTYPES

__all__ = ["Action", "PolicyError", "ReprocessPolicy"]

ANY = "*"


class Action(StrEnum):
    """What to do about one reference type's changes; later members do more."""

    OFF = "off"
    NOTIFY = "notify"
    REPROCESS = "reprocess"


class PolicyError(RefDataError):
    """A reprocessing policy that cannot be read; the message names the entry."""


@dataclass(frozen=True)
class ReprocessPolicy:
    """The action of each (reference type, instrument); ``*`` stands for any."""

    rules: Mapping[tuple[str, str], Action] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> ReprocessPolicy:
        """Read ``FLAT:NIRCAM=reprocess,DARK=notify,*=notify`` (blank: notify everything).

        Raises
        ------
        PolicyError
            An entry without ``=``, an unknown reference type, instrument or action, or a
            (type, instrument) given twice.
        """
        rules: dict[tuple[str, str], Action] = {}
        for raw in (text or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            where = f"reprocessing policy entry {entry!r}"
            target, sep, action = entry.partition("=")
            if not sep:
                raise PolicyError(f"{where}: expected REFTYPE[:INSTRUMENT]=ACTION, e.g. FLAT:NIRCAM=reprocess")
            reftype, _, instrument = target.strip().upper().partition(":")
            reftype, instrument = reftype.strip(), instrument.strip() or ANY
            if reftype != ANY and reftype not in REFTYPES:
                raise PolicyError(f"{where}: unknown reference type {reftype} (known: *, {', '.join(REFTYPES)})")
            if instrument != ANY and instrument not in INSTRUMENTS:
                raise PolicyError(f"{where}: unknown instrument {instrument} (known: {', '.join(INSTRUMENTS)})")
            try:
                chosen = Action(action.strip().lower())
            except ValueError:
                raise PolicyError(f"{where}: unknown action {action.strip()!r} (one of "
                                  f"{', '.join(a.value for a in Action)})") from None
            if (reftype, instrument) in rules:
                raise PolicyError(f"{where}: {reftype}:{instrument} is given twice")
            rules[(reftype, instrument)] = chosen
        return cls(rules)

    def action(self, reftype: str, instrument: str) -> Action:
        """The action for a change of ``reftype`` in ``instrument``'s exposures."""
        reftype, instrument = reftype.upper(), instrument.upper()
        for key in ((reftype, instrument), (reftype, ANY), (ANY, instrument), (ANY, ANY)):
            if key in self.rules:
                return self.rules[key]
        return Action.NOTIFY
