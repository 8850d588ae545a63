"""Stage-2 imaging kernels: pure functions over numpy arrays.

One module per step (``bkg_subtract``, ``assign_wcs``, ``flat_field``, ``photom``). No
kernel reads files, touches a data model or mutates its inputs. Array conventions:

- images are (ny, nx) for a ``_rate`` or (nints, ny, nx) for a ``_rateints``;
- ``sci`` and ``err`` in DN/s before photom, MJy/sr after; variances in their square;
- ``dq``: uint32 pixel flags, the same shape as ``sci``;
- reference arrays are (ny, nx), already cut to the readout window by the caller, and
  broadcast over integrations.

DQ bit values come in as a mapping (``dqflags``, default :data:`shared.datamodels.dqflags.PIXEL`).
"""
