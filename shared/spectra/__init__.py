"""Slit spectra: the kernels stage 2 (calwebb_spec2) and stage 3 (calwebb_spec3) share.

Pure functions over numpy arrays, as ``shared.resample`` is for imaging: the slit's trace
and wavelengths from a SPECWCS table (:mod:`.trace`), the slit rectified onto whole
pixels of slit coordinate (:mod:`.rectify`, the ``_s2d``, and back), and the boxcar extraction of a
spectrum into the public ``spectable`` layout (:mod:`.extract`, the ``_x1d``).
"""

from shared.spectra.extract import (
    SLIT_EXP_TYPES,
    SLITLESS_EXP_TYPES,
    SPECTABLE_DTYPE,
    SPECTABLE_UNITS,
    TSO_SLIT_EXP_TYPES,
    TSO_SPEC_EXP_TYPES,
    WFSS_EXP_TYPES,
    ExtractParams,
    boxcar_extract,
    spectable_units,
)
from shared.spectra.rectify import Rectified, blot_slit, rectify_slit
from shared.spectra.trace import (
    SlitTrace,
    in_frame,
    recorded_source_along,
    reference_point,
    slit_length,
    slit_table,
    slit_trace,
    slit_width,
    source_along,
    wavelength_image,
)

__all__ = [
    "SLITLESS_EXP_TYPES",
    "SLIT_EXP_TYPES",
    "SPECTABLE_DTYPE",
    "SPECTABLE_UNITS",
    "TSO_SLIT_EXP_TYPES",
    "TSO_SPEC_EXP_TYPES",
    "WFSS_EXP_TYPES",
    "ExtractParams",
    "Rectified",
    "SlitTrace",
    "blot_slit",
    "boxcar_extract",
    "in_frame",
    "rectify_slit",
    "recorded_source_along",
    "reference_point",
    "slit_length",
    "slit_table",
    "slit_trace",
    "slit_width",
    "source_along",
    "spectable_units",
    "wavelength_image",
]
