"""thumbnail: a small square JPEG, the picture letterboxed on a plain background.

Deterministic: Pillow's JPEG encoder at a fixed quality and chroma subsampling, baseline
(not progressive), no EXIF, no comment, no timestamp.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["THUMB_QUALITY", "THUMB_SIZE", "thumbnail_jpeg"]

THUMB_SIZE = 128
THUMB_QUALITY = 85


def thumbnail_jpeg(
    rgb: np.ndarray,
    size: int = THUMB_SIZE,
    background: tuple[int, int, int] = (0, 0, 0),
    quality: int = THUMB_QUALITY,
    aspect: float | None = None,
) -> bytes:
    """JPEG bytes of ``rgb`` (uint8 (h, w, 3), top row first) fitted into ``size`` x ``size``.

    The picture keeps its aspect ratio (or is shown at ``aspect`` = width / height, as the
    preview shows a very elongated image), is resampled with Lanczos (up or down) and
    centred on a ``background`` square.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"thumbnail needs an (h, w, 3) array, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    if aspect is not None:
        w = h * aspect
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    picture = Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), background)
    canvas.paste(picture, ((size - new_w) // 2, (size - new_h) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=quality, subsampling=0, optimize=False, progressive=False)
    return buf.getvalue()
