"""flat_field: divide by the flat and carry its uncertainty into VAR_FLAT.

The kernel is :func:`shared.flatfield.apply_flat` (stage2's flat_field step and
calwebb_guider share it; its docstring states the rules).
"""

from __future__ import annotations

from shared.flatfield import FlatFieldResult, apply_flat

__all__ = ["FlatFieldResult", "apply_flat"]
