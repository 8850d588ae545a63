"""NIRSpec's WAVELENGTHRANGE reference (the public ``WavelengthrangeModel``, ASDF,
``jwst_nirspec_wavelengthrange_sim.asdf``): the wavelength range of each filter/grating
pair, which bounds a slit's spectrum in assign_wcs (a pixel outside it has no wavelength).

The public layout for NIRSpec: ``waverange_selector`` the pairs (``<FILTER>_<GRATING>``,
e.g. ``CLEAR_PRISM``), ``wavelengthrange`` one ``[low, high]`` per pair in the units of
``meta.wavelength_units`` (metres), ``order`` the spectral order of each (0 for the prism,
-1 for the gratings, as the public file numbers them). One file for both detectors and
every slit mode (``meta.exposure.p_exptype`` NRS_FIXEDSLIT, NRS_MSASPEC and
NRS_BRIGHTOBJ); CRDS selects it by EXP_TYPE alone.

CLEAR_PRISM is the simulator's prism band (:mod:`.spectrograph`, 0.6-5.3 um: the columns
it renders). The gratings' rows are the public file's nominal ranges, so a grating
exposure is calibrated with the range the public pipeline would use; the one grating
simulated, G395M behind F290LP (the bright-object time series), renders 2.87-5.10 um,
inside its row's 2.87-5.27 um.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
from stdatamodels.jwst import datamodels as dm

from .optical_refs import _save_asdf
from .reffiles import AUTHOR, PEDIGREE, USEAFTER, ReferenceFile
from .spectrograph import _NRS_PRISM_BAND, NRS_BOTS_EXP_TYPE, NRS_FS_EXP_TYPE, NRS_MOS_EXP_TYPE

__all__ = ["WAVELENGTHRANGE_FILENAME", "WAVELENGTH_RANGES", "write_nirspec_wavelengthrange"]

WAVELENGTHRANGE_FILENAME = "jwst_nirspec_wavelengthrange_sim.asdf"

#: (FILTER_GRATING, order, low um, high um): the prism's from the simulator, the gratings'
#: the public WAVELENGTHRANGE's nominal ranges.
WAVELENGTH_RANGES: tuple[tuple[str, int, float, float], ...] = (
    ("CLEAR_PRISM", 0, *_NRS_PRISM_BAND),
    ("F070LP_G140M", -1, 0.70, 1.27),
    ("F070LP_G140H", -1, 0.70, 1.27),
    ("F100LP_G140M", -1, 0.97, 1.89),
    ("F100LP_G140H", -1, 0.97, 1.89),
    ("F170LP_G235M", -1, 1.66, 3.17),
    ("F170LP_G235H", -1, 1.66, 3.17),
    ("F290LP_G395M", -1, 2.87, 5.27),
    ("F290LP_G395H", -1, 2.87, 5.27),
)


def write_nirspec_wavelengthrange(out_dir: Path) -> ReferenceFile:
    """Write NIRSpec's WAVELENGTHRANGE (module docstring) in ``out_dir``; the same bytes
    every time (DATE is the USEAFTER)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = dm.WavelengthrangeModel(
        wrange_selector=[name for name, *_ in WAVELENGTH_RANGES],
        wrange=[[round(low * 1e-6, 12), round(high * 1e-6, 12)] for _, _, low, high in WAVELENGTH_RANGES],
        order=[order for _, order, _, _ in WAVELENGTH_RANGES],
        wunits=u.m,
    )
    meta = model.meta
    meta.reftype = "WAVELENGTHRANGE"
    meta.instrument.name = "NIRSPEC"
    meta.exposure.type = NRS_FS_EXP_TYPE
    meta.exposure.p_exptype = f"{NRS_FS_EXP_TYPE}|{NRS_MOS_EXP_TYPE}|{NRS_BOTS_EXP_TYPE}|"
    meta.useafter = USEAFTER
    meta.description = ("Simulated NIRSpec wavelength ranges per filter/grating: CLEAR_PRISM the simulated prism's "
                        "band, the gratings the public nominal ranges")
    meta.author = AUTHOR
    meta.pedigree = PEDIGREE
    meta.telescope = "JWST"
    meta.origin = "jwst-dms"
    return ReferenceFile("WAVELENGTHRANGE", "ANY", _save_asdf(model, out_dir / WAVELENGTHRANGE_FILENAME), "GENERIC")
