"""Where each FITS keyword lives: its data-model path and its HDU.

The writer places keywords by this table and builds the ASDF metadata tree from the same
paths, so the FITS headers and the tree can never disagree. Paths and HDUs follow the
public JWST data-model schemas.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["KEYWORDS", "SLIT_KEYWORDS", "Keyword", "UnknownKeywordError", "reference_keyword"]


class UnknownKeywordError(KeyError):
    pass


class Keyword(NamedTuple):
    path: str
    hdu: str
    comment: str


def _k(path: str, comment: str, hdu: str = "PRIMARY") -> Keyword:
    return Keyword(path, hdu, comment)


# The data model's step status keywords (S_*) and the step name of each in the metadata.
_CAL_STEPS = {
    "S_AMIANA": "ami_analyze", "S_AMINOR": "ami_normalize", "S_BARSHA": "barshadow",
    "S_BKDSUB": "bkg_subtract", "S_BPXSLF": "badpix_selfcal", "S_CHGMIG": "charge_migration",
    "S_CLNFNS": "clean_flicker_noise", "S_COMB1D": "combine_1d", "S_CONTAM": "wfss_contam",
    "S_DARK": "dark_sub", "S_DQINIT": "dq_init", "S_ERRINI": "err_init", "S_EXTR1D": "extract_1d",
    "S_EXTR2D": "extract_2d", "S_FLAT": "flat_field", "S_FRINGE": "fringe", "S_FRSTFR": "firstframe",
    "S_GANSCL": "gain_scale", "S_GRPSCL": "group_scale", "S_GUICDS": "guider_cds",
    "S_IFUCUB": "cube_build", "S_IMPRNT": "imprint", "S_IPC": "ipc", "S_JUMP": "jump",
    "S_KLIP": "klip", "S_LASTFR": "lastframe", "S_LINEAR": "linearity", "S_MIREMI": "emicorr",
    "S_MSAFLG": "msa_flagging", "S_MSBSUB": "master_background", "S_MTWCS": "assign_mtwcs",
    "S_OUTLIR": "outlier_detection", "S_PCTFRM": "picture_frame", "S_PERSIS": "persistence",
    "S_PHOTOM": "photom", "S_PSFALI": "align_psfs", "S_PSFSTK": "stack_psfs", "S_PTHLOS": "pathloss",
    "S_PXREPL": "pixel_replace", "S_RAMP": "ramp_fit", "S_REFPIX": "refpix", "S_RESAMP": "resample",
    "S_RESET": "reset", "S_RESFRI": "residual_fringe", "S_RSCD": "rscd", "S_SATURA": "saturation",
    "S_SKYMAT": "skymatch", "S_SPLEAK": "spectral_leak", "S_SRCCAT": "source_catalog",
    "S_SRCTYP": "srctype", "S_STRAY": "straylight", "S_SUPERB": "superbias",
    "S_TACNTR": "targ_centroid", "S_TELEMI": "emission", "S_TRCMOD": "adaptive_trace_model",
    "S_TSPHOT": "tso_photometry", "S_TWKREG": "tweakreg", "S_WAVCOR": "wavecorr",
    "S_WCS": "assign_wcs", "S_WFSCOM": "wfs_combine", "S_WHTLIT": "white_light",
}

# The data model's reference file keywords (R_*) and the reference type each names.
_REF_FILES = {
    "R_AREA": "area", "R_BARSHA": "barshadow", "R_BKG": "bkg", "R_CAMERA": "camera",
    "R_CHRCOR": "chromcorr", "R_COLLIM": "collimator", "R_CUBPAR": "cubepar", "R_DARK": "dark",
    "R_DFLAT": "dflat", "R_DISPER": "disperser", "R_DISTOR": "distortion", "R_EXTR1D": "extract1d",
    "R_FFLAT": "fflat", "R_FILOFF": "filteroffset", "R_FLAT": "flat", "R_FORE": "fore",
    "R_FPA": "fpa", "R_FRIFRQ": "fringefreq", "R_FRINGE": "fringe", "R_GAIN": "gain",
    "R_IFUFOR": "ifufore", "R_IFUPOS": "ifupost", "R_IFUSLI": "ifuslicer", "R_IPC": "ipc",
    "R_LASTFR": "lastframe", "R_LINEAR": "linearity", "R_MASK": "mask", "R_MIREMI": "emicorr",
    "R_MRSPT": "mrsptcorr", "R_MRSXAR": "mrsxartcorr", "R_MSA": "msa", "R_MSAOPE": "badshutter",
    "R_NRM": "nrm", "R_OTE": "ote", "R_PERSAT": "persat", "R_PHOTOM": "photom",
    "R_PSFMAS": "psfmask", "R_PSTSOS": "pastasoss", "R_PTHLOS": "pathloss", "R_READNO": "readnoise",
    "R_REFPIX": "refpix", "R_REGION": "regions", "R_RESAMP": "resample", "R_RESET": "reset",
    "R_RESOL": "resolution", "R_RSCD": "rscd", "R_SATURA": "saturation", "R_SFLAT": "sflat",
    "R_SIRSKL": "sirskernel", "R_SPCWCS": "specwcs", "R_SPKERN": "speckernel",
    "R_SPPROF": "specprofile", "R_SPTRAC": "spectrace", "R_STRAY": "straylight",
    "R_SUPERB": "superbias", "R_THRPUT": "throughput", "R_TRPDEN": "trapdensity",
    "R_TRPPAR": "trappars", "R_TSPHOT": "tso_photometry", "R_V2V3": "v2v3", "R_WAVCOR": "wavecorr",
    "R_WAVMAP": "wavemap", "R_WAVRAN": "wavelengthrange",
    # Not in the public schema (jwst's source_catalog records neither file): our own
    # cards, at the path the public ones use, so the _i2d and _segm name them.
    "R_APCORR": "apcorr", "R_ABVEGA": "abvegaoffset",
}
_REFTYPE_KEYWORDS = {reftype: kw for kw, reftype in _REF_FILES.items()}
# a reference type the data model records under another name (MSAOPER as ref_file.badshutter)
_REFTYPE_KEYWORDS["msaoper"] = "R_MSAOPE"
# and WFSS's dispersed sky (WFSSBKG) as ref_file.bkg, as the public background step does
_REFTYPE_KEYWORDS["wfssbkg"] = "R_BKG"


def reference_keyword(reftype: str) -> str:
    """The R_* keyword naming a reference file of ``reftype`` (e.g. ``dark`` -> R_DARK);
    UnknownKeywordError for a type the data model has no keyword for."""
    try:
        return _REFTYPE_KEYWORDS[reftype.lower()]
    except KeyError:
        raise UnknownKeywordError(f"the data model has no R_* keyword for reference type {reftype!r}") from None


KEYWORDS: dict[str, Keyword] = {
    # file
    "DATAMODL": _k("meta.model_type", "Type of data model"),
    "FILENAME": _k("meta.filename", "Name of the file"),
    "DATE": _k("meta.date", "UTC date file created"),
    "ORIGIN": _k("meta.origin", "Organization responsible for creating file"),
    "TELESCOP": _k("meta.telescope", "Telescope used to acquire the data"),
    "SDP_VER": _k("meta.data_processing_software_version", "Data processing software version"),
    "CAL_VER": _k("meta.calibration_software_version", "Calibration software version"),
    "CAL_VCS": _k("meta.calibration_software_revision", "Calibration software revision"),
    "CRDS_CTX": _k("meta.ref_file.crds.context_used", "Reference context used"),
    "CRDS_VER": _k("meta.ref_file.crds.sw_version", "Reference selection software version"),
    # program
    "TITLE": _k("meta.program.title", "Proposal title"),
    "PI_NAME": _k("meta.program.pi_name", "Principal investigator name"),
    "CATEGORY": _k("meta.program.category", "Program category"),
    # observation identifiers
    "PROGRAM": _k("meta.observation.program_number", "Program number"),
    "OBSERVTN": _k("meta.observation.observation_number", "Observation number"),
    "VISIT": _k("meta.observation.visit_number", "Visit number"),
    "VISITGRP": _k("meta.observation.visit_group", "Visit group identifier"),
    "SEQ_ID": _k("meta.observation.sequence_id", "Parallel sequence identifier"),
    "ACT_ID": _k("meta.observation.activity_id", "Activity identifier"),
    "EXPOSURE": _k("meta.observation.exposure_number", "Exposure request number"),
    "OBS_ID": _k("meta.observation.obs_id", "Programmatic observation identifier"),
    "VISIT_ID": _k("meta.observation.visit_id", "Visit identifier"),
    "DATE-OBS": _k("meta.observation.date", "UTC date at start of exposure"),
    "TIME-OBS": _k("meta.observation.time", "UTC time at start of exposure"),
    "DATE-BEG": _k("meta.observation.date_beg", "Date-time start of exposure"),
    "DATE-END": _k("meta.observation.date_end", "Date-time end of exposure"),
    "TEMPLATE": _k("meta.observation.template", "Observation template used"),
    "BKGDTARG": _k("meta.observation.bkgdtarg", "Background target"),
    # visit
    "VISITYPE": _k("meta.visit.type", "Visit type"),
    "TSOVISIT": _k("meta.visit.tsovisit", "Time Series Observation visit indicator"),
    "NEXPOSUR": _k("meta.visit.total_exposures", "Total number of planned exposures in visit"),
    "ENGQLPTG": _k("meta.visit.engdb_pointing_quality", "Quality of pointing information"),
    # target
    "TARGPROP": _k("meta.target.proposer_name", "Proposer's name for the target"),
    "TARGNAME": _k("meta.target.catalog_name", "Standard astronomical catalog name for target"),
    "TARGTYPE": _k("meta.target.type", "Type of target (fixed, moving, generic)"),
    "TARG_RA": _k("meta.target.ra", "Target RA at mid time of exposure [deg]"),
    "TARG_DEC": _k("meta.target.dec", "Target Dec at mid time of exposure [deg]"),
    # instrument
    "INSTRUME": _k("meta.instrument.name", "Instrument used to acquire the data"),
    "DETECTOR": _k("meta.instrument.detector", "Name of detector used to acquire the data"),
    "MODULE": _k("meta.instrument.module", "NIRCam module: A or B"),
    "CHANNEL": _k("meta.instrument.channel", "Instrument channel"),
    "BAND": _k("meta.instrument.band", "MRS wavelength band"),
    "FILTER": _k("meta.instrument.filter", "Name of the filter element used"),
    "PUPIL": _k("meta.instrument.pupil", "Name of the pupil element used"),
    "FWCPOS": _k("meta.instrument.filter_position", "[deg] Filter wheel position angle"),
    "GRATING": _k("meta.instrument.grating", "Name of the grating element used"),
    "FXD_SLIT": _k("meta.instrument.fixed_slit", "Name of fixed slit aperture used"),
    "MSAMETFL": _k("meta.instrument.msa_metadata_file", "MSA metadata file name"),
    "MSAMETID": _k("meta.instrument.msa_metadata_id", "MSA metadata ID"),
    # exposure
    "EXP_TYPE": _k("meta.exposure.type", "Type of data in the exposure"),
    "EXPCOUNT": _k("meta.exposure.count", "Running count of exposures in visit"),
    "EXPRIPAR": _k("meta.exposure.prime_parallel", "Prime or parallel exposure"),
    "IS_PSF": _k("meta.exposure.psf_reference", "PSF reference exposure"),
    "READPATT": _k("meta.exposure.readpatt", "Readout pattern"),
    "NOUTPUTS": _k("meta.exposure.noutputs", "Number of detector outputs used"),
    "NINTS": _k("meta.exposure.nints", "Number of integrations in exposure"),
    "INTSTART": _k("meta.exposure.integration_start", "Starting integration number in this segment"),
    "INTEND": _k("meta.exposure.integration_end", "Ending integration number in this segment"),
    "NGROUPS": _k("meta.exposure.ngroups", "Number of groups in integration"),
    "NFRAMES": _k("meta.exposure.nframes", "Number of frames per group"),
    "GROUPGAP": _k("meta.exposure.groupgap", "Number of frames dropped between groups"),
    "NRSTSTRT": _k("meta.exposure.nresets_at_start", "Number of resets at start of exposure"),
    "NRESETS": _k("meta.exposure.nresets_between_ints", "Number of resets between integrations"),
    "FRMDIVSR": _k("meta.exposure.frame_divisor", "Divisor applied to frame-averaged groups"),
    "TSAMPLE": _k("meta.exposure.sample_time", "Time between samples [us]"),
    "TFRAME": _k("meta.exposure.frame_time", "[s] Time between frames"),
    "TGROUP": _k("meta.exposure.group_time", "[s] Time between groups"),
    "EFFINTTM": _k("meta.exposure.integration_time", "[s] Effective integration time"),
    "EFFEXPTM": _k("meta.exposure.exposure_time", "[s] Effective exposure time"),
    "DURATION": _k("meta.exposure.duration", "[s] Total duration of exposure"),
    "TMEASURE": _k("meta.exposure.measurement_time", "[s] Measurement time"),
    "EXPSTART": _k("meta.exposure.start_time", "[d] Exposure start time in MJD"),
    "EXPMID": _k("meta.exposure.mid_time", "[d] Exposure mid time in MJD"),
    "EXPEND": _k("meta.exposure.end_time", "[d] Exposure end time in MJD"),
    "EXSEGTOT": _k("meta.exposure.segment_total", "Total number of segments"),
    "EXSEGNUM": _k("meta.exposure.segment_number", "Segment number"),
    "ZEROFRAM": _k("meta.exposure.zero_frame", "Zero frame was downlinked separately"),
    "DATAPROB": _k("meta.exposure.data_problem", "Science telemetry indicated a problem"),
    # subarray
    "SUBARRAY": _k("meta.subarray.name", "Subarray used"),
    "SUBSTRT1": _k("meta.subarray.xstart", "Starting pixel in axis 1 direction"),
    "SUBSTRT2": _k("meta.subarray.ystart", "Starting pixel in axis 2 direction"),
    "SUBSIZE1": _k("meta.subarray.xsize", "Number of pixels in axis 1 direction"),
    "SUBSIZE2": _k("meta.subarray.ysize", "Number of pixels in axis 2 direction"),
    "FASTAXIS": _k("meta.subarray.fastaxis", "Fast readout axis direction"),
    "SLOWAXIS": _k("meta.subarray.slowaxis", "Slow readout axis direction"),
    # dither
    "PATTTYPE": _k("meta.dither.primary_type", "Primary dither pattern type"),
    "DITHOPFR": _k("meta.dither.optimized_for", "Dither pattern optimization"),
    "NUMDTHPT": _k("meta.dither.total_points", "Total number of points in pattern"),
    "PATT_NUM": _k("meta.dither.position_number", "Position number in primary pattern"),
    "XOFFSET": _k("meta.dither.x_offset", "x offset from pattern starting position [arcsec]"),
    "DITH_RA": _k("meta.dither.dithered_ra", "RA of dithered pointing location [deg]"),
    "DITH_DEC": _k("meta.dither.dithered_dec", "Dec of dithered pointing location [deg]"),
    "YOFFSET": _k("meta.dither.y_offset", "y offset from pattern starting position [arcsec]"),
    # aperture and pointing
    "APERNAME": _k("meta.aperture.name", "PRD science aperture used"),
    # calibration steps: COMPLETE, SKIPPED or FAILED (every meta.cal_step of the public schema)
    **{kw: _k(f"meta.cal_step.{step}", f"{step} step status") for kw, step in _CAL_STEPS.items()},
    # reference files used: crds://<file> or N/A (every meta.ref_file of the public schema)
    **{kw: _k(f"meta.ref_file.{reftype}.name", f"{reftype} reference file used") for kw, reftype in _REF_FILES.items()},
    # associations and resampling
    "ASNPOOL": _k("meta.asn.pool_name", "Name of the ASN pool"),
    "ASNTABLE": _k("meta.asn.table_name", "Name of the ASN table"),
    "NDRIZ": _k("meta.resample.pointings", "Number of inputs in the resampled product"),
    "RESWHT": _k("meta.resample.weight_type", "Type of drizzle weighting of the inputs"),
    "PIXFRAC": _k("meta.resample.pixfrac", "Drizzle pixel shrink factor"),
    "PXSCLRT": _k("meta.resample.pixel_scale_ratio", "Output over input pixel scale"),
    # sky background (skymatch)
    "BKGMETH": _k("meta.background.method", "Background computation method"),
    "BKGLEVEL": _k("meta.background.level", "Computed constant background level"),
    "BKGSUB": _k("meta.background.subtracted", "Background subtracted from the data"),
    "BKGD_SCL": _k("meta.background.scaling_factor", "Background scale factor"),
    # guide star (the public meta.guidestar of every guided exposure and guider product)
    "GS_ORDER": _k("meta.guidestar.gs_order", "Index of guide star within list of selected guide stars"),
    "GSSTRTTM": _k("meta.guidestar.gs_start_time", "UTC time when guide star activity started"),
    "GSENDTIM": _k("meta.guidestar.gs_stop_time", "UTC time when guide star activity completed"),
    "GDSTARID": _k("meta.guidestar.gs_id", "Guide star identifier"),
    "GS_RA": _k("meta.guidestar.gs_ra", "[deg] Guide star right ascension"),
    "GS_DEC": _k("meta.guidestar.gs_dec", "[deg] Guide star declination"),
    "GS_URA": _k("meta.guidestar.gs_ura", "[deg] Guide star right ascension uncertainty"),
    "GS_UDEC": _k("meta.guidestar.gs_udec", "[deg] Guide star declination uncertainty"),
    "GS_MAG": _k("meta.guidestar.gs_mag", "Guide star magnitude in FGS detector"),
    "GS_UMAG": _k("meta.guidestar.gs_umag", "Guide star magnitude uncertainty"),
    "PCS_MODE": _k("meta.guidestar.pcs_mode", "Pointing Control System mode"),
    "GSIDL_X": _k("meta.guidestar.gs_ideal_x", "[arcsec] Guide star planned ideal x coordinate"),
    "GSIDL_Y": _k("meta.guidestar.gs_ideal_y", "[arcsec] Guide star planned ideal y coordinate"),
    "DATASTRT": _k("meta.guidestar.data_start", "[d] MJD start time of guider data in this file"),
    "DATAEND": _k("meta.guidestar.data_end", "[d] MJD end time of guider data in this file"),
    "GSACSTAT": _k("meta.guidestar.gs_acq_exec_stat", "Guide star acquisition execution status"),
    "GSCENTX": _k("meta.guidestar.gs_ctd_x", "[arcsec] Guide star x centroid (FGS ideal frame)"),
    "GSCENTY": _k("meta.guidestar.gs_ctd_y", "[arcsec] Guide star y centroid (FGS ideal frame)"),
    # this system's jitter statistics of an exposure (the public science schemas define none)
    "GSJITRMS": _k("meta.guidestar.dms_jitter_rms", "[mas] Rms guide star centroid offset in exposure"),
    "GSJITMAX": _k("meta.guidestar.dms_jitter_max", "[mas] Largest guide star centroid offset in exp."),
    "GSJITNUM": _k("meta.guidestar.dms_jitter_samples", "Fine-guide centroids within the exposure"),
    # SCI header
    "BUNIT": _k("meta.bunit_data", "Units of the data array", "SCI"),
    "XPOSURE": _k("meta.exposure.effective_exposure_time", "[s] Effective exposure time", "SCI"),
    "MJD-BEG": _k("meta.exposure.start_time_mjd", "[d] Exposure start time in MJD", "SCI"),
    "MJD-AVG": _k("meta.exposure.mid_time_mjd", "[d] Exposure mid time in MJD", "SCI"),
    "MJD-END": _k("meta.exposure.end_time_mjd", "[d] Exposure end time in MJD", "SCI"),
    "SRCTYAPT": _k("meta.target.source_type_apt", "Source type from APT"),
    "DISPAXIS": _k("meta.wcsinfo.dispersion_direction", "Dispersion direction", "SCI"),
    "SPORDER": _k("meta.wcsinfo.spectral_order", "Spectral order", "SCI"),
    # A slit's own keywords (SlitModel, and a MultiSpecModel's spectra): the model's slit
    # attributes, not under meta; in the SCI header (a spectrum's: its EXTRACT1D header).
    "SLTNAME": _k("name", "Name of the slit", "SCI"),
    "SLTSTRT1": _k("xstart", "Starting pixel in x direction", "SCI"),
    "SLTSIZE1": _k("xsize", "Number of pixels in x direction", "SCI"),
    "SLTSTRT2": _k("ystart", "Starting pixel in y direction", "SCI"),
    "SLTSIZE2": _k("ysize", "Number of pixels in y direction", "SCI"),
    "SLITID": _k("slitlet_id", "Slitlet ID", "SCI"),
    "SHUTTRID": _k("shutter_id", "Shutter ID", "SCI"),
    "SOURCEID": _k("source_id", "Source ID", "SCI"),
    "SRCNAME": _k("source_name", "Source name", "SCI"),
    "SRCRA": _k("source_ra", "Right ascension of the source", "SCI"),
    "SRCDEC": _k("source_dec", "Declination of the source", "SCI"),
    "SRCXPOS": _k("source_xpos", "Source position in slit (x-direction)", "SCI"),
    "SRCYPOS": _k("source_ypos", "Source position in slit (y-direction)", "SCI"),
    "STLARITY": _k("stellarity", "Source stellarity", "SCI"),
    "SHUTSTA": _k("shutter_state", "All shutters in slitlet (x: the source's)", "SCI"),
    "MSAQUAD": _k("quadrant", "MSA quadrant of the slitlet", "SCI"),
    "SRCTYPE": _k("meta.target.source_type", "Source type used for calibration", "SCI"),
    "PHOTMJSR": _k("meta.photometry.conversion_megajanskys", "Flux density (MJy/sr) producing 1 DN/s", "SCI"),
    "PHOTUJA2": _k("meta.photometry.conversion_microjanskys", "Flux density (uJy/arcsec2) producing 1 DN/s", "SCI"),
    "PIXAR_SR": _k("meta.photometry.pixelarea_steradians", "Nominal pixel area in steradians", "SCI"),
    "PIXAR_A2": _k("meta.photometry.pixelarea_arcsecsq", "Nominal pixel area in arcsec^2", "SCI"),
    "PA_APER": _k("meta.aperture.position_angle", "[deg] Position angle of aperture used", "SCI"),
    "RA_V1": _k("meta.pointing.ra_v1", "[deg] RA of telescope V1 axis", "SCI"),
    "DEC_V1": _k("meta.pointing.dec_v1", "[deg] Dec of telescope V1 axis", "SCI"),
    "PA_V3": _k("meta.pointing.pa_v3", "[deg] Position angle of telescope V3 axis", "SCI"),
    "RADESYS": _k("meta.coordinates.reference_frame", "Name of the coordinate reference frame", "SCI"),
    "WCSAXES": _k("meta.wcsinfo.wcsaxes", "Number of axes in the WCS", "SCI"),
    "CRPIX1": _k("meta.wcsinfo.crpix1", "Axis 1 coordinate of the reference pixel", "SCI"),
    "CRPIX2": _k("meta.wcsinfo.crpix2", "Axis 2 coordinate of the reference pixel", "SCI"),
    "CRVAL1": _k("meta.wcsinfo.crval1", "[deg] RA at the reference pixel", "SCI"),
    "CRVAL2": _k("meta.wcsinfo.crval2", "[deg] Dec at the reference pixel", "SCI"),
    "CTYPE1": _k("meta.wcsinfo.ctype1", "Projection type", "SCI"),
    "CTYPE2": _k("meta.wcsinfo.ctype2", "Projection type", "SCI"),
    "CUNIT1": _k("meta.wcsinfo.cunit1", "Units of the first axis", "SCI"),
    "CUNIT2": _k("meta.wcsinfo.cunit2", "Units of the second axis", "SCI"),
    "CDELT1": _k("meta.wcsinfo.cdelt1", "[deg] Pixel scale along axis 1", "SCI"),
    "CDELT2": _k("meta.wcsinfo.cdelt2", "[deg] Pixel scale along axis 2", "SCI"),
    "PC1_1": _k("meta.wcsinfo.pc1_1", "Linear transformation matrix element", "SCI"),
    "PC1_2": _k("meta.wcsinfo.pc1_2", "Linear transformation matrix element", "SCI"),
    "PC2_1": _k("meta.wcsinfo.pc2_1", "Linear transformation matrix element", "SCI"),
    "PC2_2": _k("meta.wcsinfo.pc2_2", "Linear transformation matrix element", "SCI"),
    "S_REGION": _k("meta.wcsinfo.s_region", "Spatial extent of the exposure", "SCI"),
    "V2_REF": _k("meta.wcsinfo.v2_ref", "[arcsec] Telescope v2 coordinate of the reference point", "SCI"),
    "XREF_SCI": _k("meta.wcsinfo.siaf_xref_sci", "Aperture X reference point in SCI frame", "SCI"),
    "YREF_SCI": _k("meta.wcsinfo.siaf_yref_sci", "Aperture Y reference point in SCI frame", "SCI"),
    "V3_REF": _k("meta.wcsinfo.v3_ref", "[arcsec] Telescope v3 coordinate of the reference point", "SCI"),
    "VPARITY": _k("meta.wcsinfo.vparity", "Relative sense of rotation between Ideal xy and V2V3", "SCI"),
    "V3I_YANG": _k("meta.wcsinfo.v3yangle", "[deg] Angle from V3 axis to Ideal y axis", "SCI"),
    # the observatory's ephemeris at MJD-AVG, and the velocity aberration
    "REFFRAME": _k("meta.ephemeris.reference_frame", "Ephemeris reference frame", "SCI"),
    "EPH_TYPE": _k("meta.ephemeris.type", "Definitive or Predicted", "SCI"),
    "EPH_TIME": _k("meta.ephemeris.time", "[d] MJD time of position and velocity vectors", "SCI"),
    "JWST_X": _k("meta.ephemeris.spatial_x_bary", "[km] barycentric JWST X coordinate at MJD-AVG", "SCI"),
    "JWST_Y": _k("meta.ephemeris.spatial_y_bary", "[km] barycentric JWST Y coordinate at MJD-AVG", "SCI"),
    "JWST_Z": _k("meta.ephemeris.spatial_z_bary", "[km] barycentric JWST Z coordinate at MJD-AVG", "SCI"),
    "JWST_DX": _k("meta.ephemeris.velocity_x_bary", "[km/s] barycentric JWST X velocity at MJD-AVG", "SCI"),
    "JWST_DY": _k("meta.ephemeris.velocity_y_bary", "[km/s] barycentric JWST Y velocity at MJD-AVG", "SCI"),
    "JWST_DZ": _k("meta.ephemeris.velocity_z_bary", "[km/s] barycentric JWST Z velocity at MJD-AVG", "SCI"),
    "OBSGEO-X": _k("meta.ephemeris.spatial_x_geo", "[m] geocentric JWST X coordinate at MJD-AVG", "SCI"),
    "OBSGEO-Y": _k("meta.ephemeris.spatial_y_geo", "[m] geocentric JWST Y coordinate at MJD-AVG", "SCI"),
    "OBSGEO-Z": _k("meta.ephemeris.spatial_z_geo", "[m] geocentric JWST Z coordinate at MJD-AVG", "SCI"),
    "OBSGEODX": _k("meta.ephemeris.velocity_x_geo", "[m/s] geocentric JWST X velocity at MJD-AVG", "SCI"),
    "OBSGEODY": _k("meta.ephemeris.velocity_y_geo", "[m/s] geocentric JWST Y velocity at MJD-AVG", "SCI"),
    "OBSGEODZ": _k("meta.ephemeris.velocity_z_geo", "[m/s] geocentric JWST Z velocity at MJD-AVG", "SCI"),
    "VA_SCALE": _k("meta.velocity_aberration.scale_factor", "Velocity aberration scale factor", "SCI"),
    "VA_RA": _k("meta.velocity_aberration.va_ra_ref", "[deg] Velocity aberrated apparent reference RA"),
    "VA_DEC": _k("meta.velocity_aberration.va_dec_ref", "[deg] Velocity aberrated apparent reference Dec"),
    # barycentric and heliocentric times (TDB, MJD) and corrections (s)
    "BARTDELT": _k("meta.time.barycentric_correction", "[s] Barycentric correction at exposure start"),
    "BSTRTIME": _k("meta.time.barycentric_expstart", "[d] Barycentric exposure start time in MJD"),
    "BMIDTIME": _k("meta.time.barycentric_expmid", "[d] Barycentric exposure mid time in MJD"),
    "BENDTIME": _k("meta.time.barycentric_expend", "[d] Barycentric exposure end time in MJD"),
    "HELIDELT": _k("meta.time.heliocentric_correction", "[s] Heliocentric correction at exposure start"),
    "HSTRTIME": _k("meta.time.heliocentric_expstart", "[d] Heliocentric exposure start time in MJD"),
    "HMIDTIME": _k("meta.time.heliocentric_expmid", "[d] Heliocentric exposure mid time in MJD"),
    "HENDTIME": _k("meta.time.heliocentric_expend", "[d] Heliocentric exposure end time in MJD"),
    "RA_REF": _k("meta.wcsinfo.ra_ref", "[deg] Right ascension of the reference point", "SCI"),
    "DEC_REF": _k("meta.wcsinfo.dec_ref", "[deg] Declination of the reference point", "SCI"),
    "ROLL_REF": _k("meta.wcsinfo.roll_ref", "[deg] V3 roll angle at the ref point (N over E)", "SCI"),
}

#: A slit's own keywords, kept per slit in a product of many slits (a MultiSlitModel's SCI
#: headers): the slit attributes (paths outside ``meta``) and its source type.
SLIT_KEYWORDS: frozenset[str] = frozenset(
    {name for name, kw in KEYWORDS.items() if kw.hdu == "SCI" and not kw.path.startswith("meta.")} | {"SRCTYPE", "SPORDER"})
