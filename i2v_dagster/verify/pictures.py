"""Pictures for people: a labelled contact sheet, a motion/drift chart, and PNGs as Markdown data URIs.

Every PNG is written to a temporary file in the target folder and renamed into place.
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from i2v_dagster.fsutil import write_bytes_atomic
from i2v_dagster.verify.chart import default_font, draw_bar_panel, draw_line_panel

PAD = 8
LABEL_HEIGHT = 18
BACKGROUND = (250, 250, 250)
INK = (20, 20, 20)

ImageLike = np.ndarray | Image.Image


def _to_pil(image: ImageLike, *, where: str) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(
            f"{where} must be a PIL image or a (H, W, 3) uint8 array but is {arr.dtype} {arr.shape}."
        )
    return Image.fromarray(arr, "RGB")


def save_png(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Encode ``image`` as PNG and write it atomically to ``path``."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return write_bytes_atomic(path, buffer.getvalue())


Tile = ImageLike | tuple[str, ImageLike]
"""A picture, or a (caption, picture) pair: the caption is drawn under the thumbnail."""


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[Tile]]],
    path: str | os.PathLike[str],
    *,
    thumb_width: int = 160,
    max_columns: int = 6,
) -> Path:
    """A PNG grid: each row is a label line above its thumbnails (``thumb_width`` px wide, aspect kept),
    each thumbnail with its caption (scene, clip, first/last/seam) under it when one is given.

    A row with more than ``max_columns`` images wraps onto further lines under the same label.
    """
    if not rows:
        raise ValueError("`rows` is empty: a contact sheet needs at least one row.")
    if thumb_width < 16 or max_columns < 1:
        raise ValueError(
            f"`thumb_width` ({thumb_width}) must be >= 16 and `max_columns` ({max_columns}) >= 1."
        )
    font = default_font()
    laid_out: list[tuple[str, list[list[tuple[str, Image.Image]]]]] = []
    captioned = False
    for r, (label, images) in enumerate(rows):
        thumbs = []
        for i, tile in enumerate(images):
            caption, image = tile if isinstance(tile, tuple) else ("", tile)
            captioned |= bool(caption)
            pil = _to_pil(image, where=f"row {r} ({label!r}) image {i}")
            height = max(1, round(pil.height * thumb_width / pil.width))
            thumbs.append(
                (str(caption), pil.resize((thumb_width, height), Image.Resampling.BILINEAR, reducing_gap=2.0))
            )
        lines = [thumbs[i : i + max_columns] for i in range(0, len(thumbs), max_columns)] or [[]]
        laid_out.append((str(label), lines))

    caption_height = LABEL_HEIGHT if captioned else 0
    columns = max(1, max(len(line) for _, lines in laid_out for line in lines))
    width = PAD + columns * (thumb_width + PAD)
    height = PAD
    for _, lines in laid_out:
        height += LABEL_HEIGHT + sum(
            max((t.height for _, t in line), default=0) + caption_height + PAD for line in lines
        )
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = PAD
    for label, lines in laid_out:
        draw.text((PAD, y + 2), label, fill=INK, font=font)
        y += LABEL_HEIGHT
        for line in lines:
            x = PAD
            tallest = max((t.height for _, t in line), default=0)
            for caption, thumb in line:
                sheet.paste(thumb, (x, y))
                if caption:
                    draw.text((x + 2, y + thumb.height + 2), caption, fill=INK, font=font)
                x += thumb_width + PAD
            y += tallest + caption_height + PAD
    return save_png(sheet, path)


def motion_drift_plot(
    per_frame_motion: Sequence[float],
    clip_boundaries: Sequence[int],
    drift_per_clip: Sequence[float],
    min_motion: float,
    max_color_drift: float,
    path: str | os.PathLike[str],
    *,
    size: tuple[int, int] = (900, 560),
) -> Path:
    """Two panels: motion per frame pair (a line, clip starts as dashed verticals, ``min_motion`` in red)
    and colour drift per clip (bars, red above ``max_color_drift``, the threshold as a red line).

    ``per_frame_motion`` is the per-pair changed-pixel fraction of all clips in order; ``clip_boundaries``
    the indices in it where clips 1, 2, ... start (see ``motion.video_motion_series``).
    """
    width, height = size
    if width < 300 or height < 240:
        raise ValueError(f"`size` must be at least 300x240 but is {width}x{height}.")
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = default_font()
    half = height // 2
    draw_line_panel(
        draw,
        font,
        box=(0, 0, width, half),
        values=[float(v) for v in per_frame_motion],
        boundaries=[int(b) for b in clip_boundaries],
        threshold=float(min_motion),
        title=f"Motion per frame pair (changed-pixel fraction); check: median per clip >= {min_motion:g}",
        x_label="frame pair",
        threshold_label=f"min_motion {min_motion:g}",
    )
    draw_bar_panel(
        draw,
        font,
        box=(0, half, width, height),
        values=[float(v) for v in drift_per_clip],
        threshold=float(max_color_drift),
        title=f"Lab colour drift per clip from keyframe 0; check: <= {max_color_drift:g}",
        x_label="clip",
        threshold_label=f"max_color_drift {max_color_drift:g}",
    )
    return save_png(image, path)


def png_markdown(
    path: str | os.PathLike[str], alt: str, max_width: int = 900, *, max_bytes: int = 300_000
) -> str:
    """``![alt](data:image/png;base64,...)`` of the PNG at ``path``, scaled to at most ``max_width`` px wide.

    If the PNG is still over ``max_bytes`` (PNG bytes; the base64 text is a third longer) it is reduced to
    256 colours, then scaled down until it fits, so the Markdown stays small enough for run metadata.
    """
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    if image.width > max_width:
        image = image.resize(
            (max_width, max(1, round(image.height * max_width / image.width))), Image.Resampling.LANCZOS
        )
    data = _encode(image)
    quantize = False
    for _ in range(8):
        if len(data) <= max_bytes:
            break
        if not quantize:
            quantize = True
        else:
            factor = max(0.3, math.sqrt(max_bytes / len(data)) * 0.9)
            image = image.resize(
                (max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                Image.Resampling.LANCZOS,
            )
        data = _encode(image, quantize=quantize)
    safe_alt = " ".join(str(alt).replace("[", "(").replace("]", ")").split())
    return f"![{safe_alt}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"


def _encode(image: Image.Image, *, quantize: bool = False) -> bytes:
    buffer = io.BytesIO()
    out = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE) if quantize else image
    out.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def animated_webp(
    frames: Sequence[ImageLike],
    path: str | os.PathLike[str],
    *,
    frame_ms: int,
    width: int = 192,
    quality: int = 40,
) -> Path:
    """An animated WebP of ``frames`` (scaled to ``width`` px wide), written atomically: a preview small
    enough (tens of KB a clip) to show inline in the UI's metadata."""
    if not frames:
        raise ValueError("`frames` is empty: an animation needs at least one frame.")
    thumbs = []
    for i, frame in enumerate(frames):
        image = _to_pil(frame, where=f"frame {i}")
        if image.width > width * 2:
            image = image.reduce(max(1, image.width // (width * 2)))
        height = max(2, round(image.height * width / image.width))
        thumbs.append(image.resize((width, height), Image.Resampling.BILINEAR))
    buffer = io.BytesIO()
    thumbs[0].save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=thumbs[1:],
        duration=max(20, int(frame_ms)),
        loop=0,
        quality=quality,
        method=0,
    )
    return write_bytes_atomic(path, buffer.getvalue())


def webp_frames(path: str | os.PathLike[str]) -> list[Image.Image]:
    """Every frame of an (animated) WebP, as RGB images."""
    from PIL import ImageSequence

    with Image.open(path) as image:
        return [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]


def webp_markdown(path: str | os.PathLike[str], alt: str) -> str:
    """``![alt](data:image/webp;base64,...)`` of a WebP file (animated previews play in the UI)."""
    data = Path(path).read_bytes()
    safe_alt = " ".join(str(alt).replace("[", "(").replace("]", ")").split())
    return f"![{safe_alt}](data:image/webp;base64,{base64.b64encode(data).decode('ascii')})"
