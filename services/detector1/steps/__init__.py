"""Detector-1 science kernels: pure functions over numpy arrays.

One module per step (``group_scale``, ``dq_init``, ``saturation``, ``superbias``,
``refpix``, ``linearity``, ``persistence``, ``dark_current``, ``miri_frames``, ``rscd``,
``jump``, ``ramp_fit``). Each module holds a frozen pydantic parameters model with the
documented defaults, the kernel function(s), and a frozen result dataclass where a kernel
returns more than one array. No kernel reads files, touches a data model or mutates its
inputs (a kernel that changes nothing may hand back its input array, and its result says so).
Array conventions:

- ``data``: float32, shape (nints, ngroups, ny, nx), DN;
- ``groupdq``: uint8, same shape;
- ``pixeldq``: uint32, shape (ny, nx);
- reference arrays are already cut to the science window by the caller.

DQ bit values come in as a mapping (``dqflags``); when omitted, the local table in
:mod:`services.detector1.steps.dqflags` is used.
"""
