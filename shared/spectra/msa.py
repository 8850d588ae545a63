"""NIRSpec's micro-shutter assembly (MSA) for the MOS (``NRS_MSASPEC``): which shutters an
exposure opened and what they hold, where a shutter images on the detector, and which
shutters are stuck open.

The exposure's plan. The MSA metadata file (MSAMETFL, ``_msa.fits``, the public layout)
lists in SHUTTER_INFO one row per open shutter and configuration: ``slitlet_id``,
``msa_metadata_id`` (the exposure's MSAMETID), ``dither_point_index`` (its PATT_NUM),
``shutter_quadrant``, ``shutter_row``, ``shutter_column`` (1-based), ``source_id``,
``background`` ('N' for the shutter holding the source), ``primary_source`` ('Y' there),
``shutter_state`` ('OPEN'; 'CLOSED' for a shutter of the slitlet that is stuck closed)
and the source's estimated place in that shutter (``estimated_source_in_shutter_x/y``,
0 to 1; NaN where unknown, taken as the centre, as the public pipeline does); SOURCE_INFO
one row per source (``source_id``, ``source_name``, ``alias``, ``ra``, ``dec``,
``stellarity``). :func:`open_slitlets` reads the slitlets of one exposure from them with
the public pipeline's rules: the shutters of one ``slitlet_id`` make a slitlet; one of
them at most holds the primary source (none: a background slitlet, whose source id is its
slitlet id); the source's place is given from the primary shutter's centre, in shutter
units (``estimated - 0.5``), as the public SRCXPOS (along the shutter row, the dispersion)
and SRCYPOS (along the slitlet). The slitlet's shutter state (the public SHUTSTA) has a
character per shutter: 'x' the source's, '1' an open one, '0' a closed one (a failed-closed
shutter the plan lists CLOSED: it passes no light, but the slitlet's extent spans it).

The geometry. NIRSpec's MOS SPECWCS here (this system's format; the public pipeline uses
an optical model) holds one table, ``SHUTTER``: the trace of one shutter relative to the
shutter's reference point, in the layout of the fixed slits' tables
(:mod:`shared.spectra.trace`), and the cards of :class:`MsaGeometry`: a shutter's
reference point (its centre's image at the disperser's reference wavelength) moves by
ROWPITCH pixels along detector x per shutter row from MSAX0 and by COLPITCH pixels along y
per shutter column from its quadrant's QnY0; a quadrant without QnY0 images on the other
detector.

Stuck shutters. The MSAOPER reference (the public JSON: ``msaoper``, a list of shutters
with ``Q``, ``x`` = the shutter row, ``y`` = the shutter column and their ``state``,
``TA state`` and ``Internal state``) lists the shutters that failed open (any state
"open" lets light through, as the public msaflagopen reads it: :func:`failed_open_shutters`)
and those that failed closed (every state "closed": nothing to flag, the MSA planning
keeps sources out of them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from shared.spectra.trace import SlitTrace, in_frame, slit_trace, wavelength_image

__all__ = ["CUTOUT_MARGIN_SHUTTERS", "MsaGeometry", "MsaMetadata", "Slitlet", "failed_open_shutters", "mos_specwcs",
           "open_slitlets", "shutter_footprint"]

CUTOUT_MARGIN_SHUTTERS = 0.5  # a slitlet's cutout reaches this far beyond its end shutters (the public margin)

_FLAGGABLE_STATES = ("Internal state", "TA state", "state")
_SHUTTER_COLUMNS = ("slitlet_id", "msa_metadata_id", "dither_point_index", "shutter_quadrant", "shutter_row",
                    "shutter_column", "source_id", "background", "primary_source")


@dataclass(frozen=True)
class MsaMetadata:
    """An MSA metadata file's tables: SHUTTER_INFO and SOURCE_INFO (structured arrays;
    :func:`shared.datamodels.msa.read_msa_metadata` reads them from the file)."""

    filename: str
    shutter_info: np.ndarray
    source_info: np.ndarray


@dataclass(frozen=True)
class Slitlet:
    """One slitlet of an exposure: consecutive shutters ``columns`` of one ``row`` of a
    ``quadrant``, open but for those in ``closed`` (failed closed: no light through them);
    ``primary`` the column of the shutter holding the source (None for a background
    slitlet); the source's id, name and sky position (SOURCE_INFO); its place from the
    primary shutter's centre in shutter units, ``source_x`` along the row (the dispersion)
    and ``source_y`` along the slitlet (the public SRCXPOS, SRCYPOS)."""

    slitlet_id: int
    quadrant: int
    row: int
    columns: tuple[int, ...]
    primary: int | None
    source_id: int
    source_name: str
    source_x: float = 0.0
    source_y: float = 0.0
    source_ra: float = math.nan
    source_dec: float = math.nan
    stellarity: float = 0.0
    closed: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        """SLTNAME: the slitlet id."""
        return str(self.slitlet_id)

    @property
    def shutter_id(self) -> int:
        """The public SHUTTRID: ``row + (column - 1) x 365`` of the primary shutter (of the
        middle one for a background slitlet)."""
        column = self.primary if self.primary is not None else self.columns[len(self.columns) // 2]
        return self.row + (column - 1) * 365

    @property
    def open_columns(self) -> tuple[int, ...]:
        """The columns of its shutters that let light through."""
        return tuple(c for c in self.columns if c not in self.closed)

    @property
    def shutter_state(self) -> str:
        """The public SHUTSTA of the slitlet: a character per shutter, ``x`` the one with
        the source, ``1`` the other open ones, ``0`` a closed one."""
        return "".join("x" if c == self.primary else "0" if c in self.closed else "1" for c in self.columns)

    def keywords(self) -> dict:
        """The slit keywords of its cutout, as the public extract_2d sets a MOS slit's:
        SLTNAME, SLITID, SOURCEID, SRCNAME, SRCRA, SRCDEC, STLARITY, SRCXPOS, SRCYPOS,
        SHUTSTA, MSAQUAD, SHUTTRID (:meth:`from_keywords` reads them back)."""
        return {"SLTNAME": self.name, "SLITID": self.slitlet_id, "SOURCEID": self.source_id,
                "SRCNAME": self.source_name, "SRCRA": self.source_ra, "SRCDEC": self.source_dec,
                "STLARITY": self.stellarity, "SRCXPOS": self.source_x, "SRCYPOS": self.source_y,
                "SHUTSTA": self.shutter_state, "MSAQUAD": self.quadrant, "SHUTTRID": self.shutter_id}

    @classmethod
    def from_keywords(cls, kw: Mapping) -> Slitlet:
        """The slitlet of a MOS slit from its keywords (:meth:`keywords`): its shutters from
        SHUTTRID (the row and the column of the source's shutter, or of the middle one) and
        SHUTSTA (one character per shutter, ``x`` the source's, ``1`` open, ``0`` closed).

        Raises
        ------
        ValueError
            A keyword missing or not what the public pipeline writes there.
        """
        try:
            state = str(kw["SHUTSTA"]).strip()
            shutter = int(kw["SHUTTRID"])
            quadrant, slitlet_id, source_id = int(kw["MSAQUAD"]), int(kw["SLITID"]), int(kw["SOURCEID"])
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]} keyword: not a MOS slit (its extract_2d writes SLITID, SOURCEID, "
                             "MSAQUAD, SHUTTRID, SHUTSTA)") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a MOS slit keyword is not a number: {exc}") from None
        if not state or set(state) - {"1", "0", "x"} or state.count("x") > 1 or "0" * len(state) == state \
                or shutter < 1:
            raise ValueError(f"SHUTSTA {state!r} / SHUTTRID {shutter} do not describe a slitlet (one character per "
                             "shutter, '1' open, '0' closed, 'x' the source's at most once, at least one open; a "
                             "shutter id from 1)")
        row, column = (shutter - 1) % 365 + 1, (shutter - 1) // 365 + 1
        at = state.index("x") if "x" in state else len(state) // 2
        columns = tuple(range(column - at, column - at + len(state)))

        def number(key: str, default: float) -> float:
            value = kw.get(key)
            return default if value is None else float(value)

        return cls(slitlet_id, quadrant, row, columns, column if "x" in state else None, source_id,
                   str(kw.get("SRCNAME") or source_id), number("SRCXPOS", 0.0), number("SRCYPOS", 0.0),
                   number("SRCRA", math.nan), number("SRCDEC", math.nan), number("STLARITY", 0.0),
                   closed=tuple(c for c, flag in zip(columns, state, strict=True) if flag == "0"))


def _text(value) -> str:
    return (value.decode() if isinstance(value, bytes) else str(value)).strip().upper()


def _fraction(value) -> float:
    v = float(value)
    return 0.5 if not math.isfinite(v) else v


def open_slitlets(shutter_info: np.ndarray, source_info: np.ndarray, metadata_id: int, dither_point: int,
                  *, program: str = "") -> list[Slitlet]:
    """The slitlets an exposure of MSA configuration ``metadata_id`` (MSAMETID) at dither
    point ``dither_point`` (PATT_NUM) opened, by slitlet id. A shutter listed with
    ``shutter_state`` CLOSED (stuck closed) stays in its slitlet as a closed one (``0`` in
    its shutter state); without the column, every listed shutter is open.

    Raises
    ------
    ValueError
        A table without the public columns, no shutter for that configuration and dither
        point, a slitlet whose shutters are not consecutive shutters of one row, one with
        more than one primary shutter, a closed primary shutter, no open shutter, or a
        primary source missing from SOURCE_INFO.
    """
    names = set(shutter_info.dtype.names or ())
    missing = [c for c in _SHUTTER_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"SHUTTER_INFO has no {', '.join(missing)} column(s)")
    mine = shutter_info[(shutter_info["msa_metadata_id"] == metadata_id)
                        & (shutter_info["dither_point_index"] == dither_point)]
    if mine.size == 0:
        raise ValueError(f"SHUTTER_INFO opens no shutter for MSA configuration {metadata_id} at dither point "
                         f"{dither_point} (it has configurations {sorted(set(shutter_info['msa_metadata_id'].tolist()))}, "
                         f"dither points {sorted(set(shutter_info['dither_point_index'].tolist()))})")
    sources = {int(s["source_id"]): s for s in source_info} if source_info is not None else {}
    out = []
    for slitlet_id in sorted(set(mine["slitlet_id"].tolist())):
        rows = mine[mine["slitlet_id"] == slitlet_id]
        where = {(int(r["shutter_quadrant"]), int(r["shutter_row"])) for r in rows}
        columns = tuple(sorted(int(c) for c in rows["shutter_column"]))
        if len(where) != 1 or columns != tuple(range(columns[0], columns[0] + len(columns))):
            raise ValueError(f"slitlet {slitlet_id}: its shutters (quadrant, row, column) "
                             f"{sorted((int(r['shutter_quadrant']), int(r['shutter_row']), int(r['shutter_column'])) for r in rows)} "
                             "are not consecutive shutters of one row")
        (quadrant, row), = where
        closed = tuple(sorted(int(r["shutter_column"]) for r in rows if "shutter_state" in names
                              and _text(r["shutter_state"]) == "CLOSED"))
        if len(closed) == len(columns):
            raise ValueError(f"slitlet {slitlet_id}: every shutter of it is CLOSED; a slitlet needs an open one")
        primary = [r for r in rows if _text(r["primary_source"]) == "Y"]
        if len(primary) > 1:
            raise ValueError(f"slitlet {slitlet_id}: {len(primary)} shutters hold the primary source; one may")
        if not primary:
            out.append(Slitlet(int(slitlet_id), quadrant, row, columns, None, int(slitlet_id),
                               f"{program}_BKG{slitlet_id}", closed=closed))
            continue
        if int(primary[0]["shutter_column"]) in closed:
            raise ValueError(f"slitlet {slitlet_id}: the shutter holding its source (column "
                             f"{int(primary[0]['shutter_column'])}) is CLOSED: no light of it would be seen")
        p = primary[0]
        source_id = int(p["source_id"])
        if source_id not in sources:
            raise ValueError(f"slitlet {slitlet_id}: its source {source_id} is not in SOURCE_INFO")
        src = sources[source_id]
        x = _fraction(p["estimated_source_in_shutter_x"]) if "estimated_source_in_shutter_x" in names else 0.5
        y = _fraction(p["estimated_source_in_shutter_y"]) if "estimated_source_in_shutter_y" in names else 0.5
        out.append(Slitlet(int(slitlet_id), quadrant, row, columns, int(p["shutter_column"]), source_id,
                           _text(src["source_name"]) if "source_name" in (src.dtype.names or ()) else str(source_id),
                           x - 0.5, y - 0.5, float(src["ra"]), float(src["dec"]), float(src["stellarity"]),
                           closed=closed))
    return out


@dataclass(frozen=True)
class MsaGeometry:
    """Where MSA shutters image on one detector (the cards of the MOS SPECWCS: see the
    module docstring). Pixels are 1-based full-frame, as IMX/IMY."""

    x0: float  # MSAX0: reference column of row 1's shutters
    row_pitch: float  # ROWPITCH: pixels along x per shutter row
    column_pitch: float  # COLPITCH: pixels along y per shutter column
    y0: Mapping[int, float]  # QnY0: reference row of column 1, per quadrant on this detector
    shutter_width: float  # SHUTWID: arcsec, the open width along the row
    shutter_pitch: float  # SHUTPTCH: arcsec, a shutter's pitch along the slitlet
    pixel_scale: float  # PIXSCALE: arcsec per pixel

    @classmethod
    def from_cards(cls, cards: Mapping) -> MsaGeometry:
        """Read the geometry from a MOS SPECWCS header.

        Raises
        ------
        ValueError
            A card missing or not a number, or no quadrant on this detector.
        """
        try:
            y0 = {q: float(cards[f"Q{q}Y0"]) for q in range(1, 5) if cards.get(f"Q{q}Y0") is not None}
            geometry = cls(float(cards["MSAX0"]), float(cards["ROWPITCH"]), float(cards["COLPITCH"]), y0,
                           float(cards["SHUTWID"]), float(cards["SHUTPTCH"]), float(cards["PIXSCALE"]))
        except KeyError as exc:
            raise ValueError(f"no MSA geometry card {exc.args[0]} (a MOS SPECWCS has MSAX0, ROWPITCH, COLPITCH, "
                             "QnY0, SHUTWID, SHUTPTCH, PIXSCALE)") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"an MSA geometry card is not a number: {exc}") from None
        if not y0:
            raise ValueError("no quadrant images on this detector (no QnY0 card)")
        return geometry

    def on_detector(self, quadrant: int) -> bool:
        return quadrant in self.y0

    def reference_point(self, quadrant: int, row: float, column: float) -> tuple[float, float]:
        """(IMX, IMY) of a shutter (``column`` may be fractional: the middle of several).

        Raises
        ------
        ValueError
            The quadrant images on another detector."""
        if not self.on_detector(quadrant):
            raise ValueError(f"quadrant {quadrant} does not image on this detector (it sees "
                             f"{', '.join(map(str, sorted(self.y0)))})")
        return self.x0 + self.row_pitch * (row - 1), self.y0[quadrant] + self.column_pitch * (column - 1)

    def slitlet_reference(self, slitlet: Slitlet) -> tuple[float, float]:
        """(IMX, IMY) of a slitlet's centre: the middle of its shutters'."""
        return self.reference_point(slitlet.quadrant, slitlet.row, 0.5 * (slitlet.columns[0] + slitlet.columns[-1]))

    def half_length(self, nshutters: int) -> float:
        """Half the image of ``nshutters`` shutters along the slitlet, pixels."""
        return 0.5 * nshutters * self.column_pitch

    def cutout_half_length(self, nshutters: int) -> float:
        """Half the height of a slitlet's cutout, pixels: its shutters' image and half a
        shutter beyond either end (:data:`CUTOUT_MARGIN_SHUTTERS`)."""
        return self.half_length(nshutters) + CUTOUT_MARGIN_SHUTTERS * self.column_pitch

    def slitlet_trace(self, table: np.ndarray, slitlet: Slitlet, *, xstart: int, ystart: int,
                      ncolumns: int) -> SlitTrace:
        """A slitlet's trace (along x, dispersion frame) on a window from full-frame pixel
        (``xstart``, ``ystart``) ``ncolumns`` wide: the SPECWCS SHUTTER table moved to
        its reference point (:meth:`slitlet_reference`)."""
        imx, imy = self.slitlet_reference(slitlet)
        return slit_trace(table, imx, imy, xstart=xstart, ystart=ystart, ny=ncolumns, dispaxis=1)

    def source_offset(self, slitlet: Slitlet) -> tuple[float, float]:
        """(along the slitlet, across it) in pixels of the source from the slitlet's
        reference point: its primary shutter's offset from the slitlet's centre plus its
        place in that shutter (0 for a background slitlet)."""
        if slitlet.primary is None:
            return 0.0, 0.0
        middle = 0.5 * (slitlet.columns[0] + slitlet.columns[-1])
        along = (slitlet.primary - middle + slitlet.source_y) * self.column_pitch
        return along, slitlet.source_x * self.row_pitch


def mos_specwcs(header: Mapping, tables: Mapping[str, np.ndarray]) -> tuple[MsaGeometry, np.ndarray]:
    """The MSA geometry (:meth:`MsaGeometry.from_cards`) and the SHUTTER trace table of a
    MOS SPECWCS reference's header and tables.

    Raises
    ------
    ValueError
        No SHUTTER table, or the geometry cards missing or malformed.
    """
    if "SHUTTER" not in tables:
        raise ValueError("no SHUTTER table (a MOS SPECWCS has one)")
    return MsaGeometry.from_cards(header), tables["SHUTTER"]


def failed_open_shutters(msaoper: Mapping) -> list[tuple[int, int, int]]:
    """(quadrant, row, column) of every shutter the MSAOPER reference says is open in any
    of its states (one failed closed, "closed" in every state, is not one).

    Raises
    ------
    ValueError
        No ``msaoper`` list, or a shutter without ``Q``, ``x``, ``y`` as integers."""
    shutters = msaoper.get("msaoper") if isinstance(msaoper, Mapping) else None
    if not isinstance(shutters, list):
        raise ValueError("the MSAOPER reference has no 'msaoper' list of shutters")
    out = []
    for i, shutter in enumerate(shutters):
        if not any(str(shutter.get(state, "")).strip().lower() == "open" for state in _FLAGGABLE_STATES):
            continue
        try:
            out.append((int(shutter["Q"]), int(shutter["x"]), int(shutter["y"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"MSAOPER shutter {i}: no quadrant Q, row x and column y as integers ({exc})") from None
    return out


def shutter_footprint(table: np.ndarray, geometry: MsaGeometry, shutters: Iterable[tuple[int, int, int]],
                      shape: tuple[int, int], *, xstart: int = 1, ystart: int = 1) -> np.ndarray:
    """Where the spectra of ``shutters`` (quadrant, row, column; those of a quadrant on
    another detector are left out) fall on a readout window of ``shape`` (ny, nx) starting
    at full-frame pixel (``xstart``, ``ystart``): a boolean mask, each shutter's image one
    pitch long about its trace over the SHUTTER table's wavelengths. The table disperses
    along detector x (DISPAXIS 1)."""
    ny, nx = shape
    mask = np.zeros(shape, bool)
    half = geometry.half_length(1)
    for quadrant, row, column in shutters:
        if not geometry.on_detector(quadrant):
            continue
        imx, imy = geometry.reference_point(quadrant, row, column)
        trace: SlitTrace = slit_trace(table, imx, imy, xstart=xstart, ystart=ystart, ny=nx, dispaxis=1)
        if trace.rows.size:
            mask |= np.isfinite(in_frame(wavelength_image(trace, ny, half), 1))
    return mask
