"""Minimal chart drawing with PIL: axes, ticks, labels, a line or bars, and a dashed threshold line."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import ImageDraw, ImageFont

Box = tuple[int, int, int, int]
Font = ImageFont.ImageFont | ImageFont.FreeTypeFont

AXIS = (60, 60, 60)
GRID = (225, 225, 225)
LINE = (31, 119, 180)
OK_BAR = (90, 160, 90)
BAD_BAR = (214, 39, 40)
THRESHOLD = (214, 39, 40)
BOUNDARY = (150, 150, 150)
MARGINS = (64, 30, 24, 42)  # left, top, right, bottom


def nice_ticks(upper: float, count: int = 5) -> list[float]:
    """Ticks 0, step, 2*step, ... covering ``upper``, with step 1, 2, 2.5 or 5 times a power of ten."""
    if not math.isfinite(upper) or upper <= 0:
        upper = 1.0
    raw = upper / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    ticks = [0.0]
    while ticks[-1] < upper - 1e-12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def default_font(size: int = 12) -> Font:
    """PIL's default font at ``size`` (the bitmap default where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom - top)


def _dashed(
    draw: ImageDraw.ImageDraw,
    start: tuple[float, float],
    end: tuple[float, float],
    fill: tuple[int, int, int],
    width: int = 1,
) -> None:
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    dash, gap = 6.0, 4.0
    pos = 0.0
    while pos < length:
        a, b = pos / length, min(pos + dash, length) / length
        draw.line(
            [(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)], fill, width
        )
        pos += dash + gap


def _frame(
    draw: ImageDraw.ImageDraw, font: Font, box: Box, title: str, x_label: str, y_top: float
) -> tuple[Box, list[float]]:
    """Draw title, y axis with ticks and grid, x axis and its label; return the plot area and y ticks."""
    x0, y0, x1, y1 = box
    left, top, right, bottom = MARGINS
    area = (x0 + left, y0 + top, x1 - right, y1 - bottom)
    draw.text((x0 + 8, y0 + 8), title, fill=AXIS, font=font)
    ticks = nice_ticks(y_top)
    for tick in ticks:
        y = _y(tick, ticks[-1], area)
        draw.line([(area[0], y), (area[2], y)], GRID)
        label = f"{tick:g}"
        w, h = _text_size(draw, label, font)
        draw.text((area[0] - w - 6, y - h / 2 - 1), label, fill=AXIS, font=font)
    draw.line([(area[0], area[1]), (area[0], area[3]), (area[2], area[3])], AXIS, 1)
    w, _ = _text_size(draw, x_label, font)
    draw.text(((area[0] + area[2]) / 2 - w / 2, y1 - 16), x_label, fill=AXIS, font=font)
    return area, ticks


def _y(value: float, top_value: float, area: Box) -> float:
    return area[3] - (area[3] - area[1]) * min(max(value / top_value, 0.0), 1.0)


def _threshold(
    draw: ImageDraw.ImageDraw, font: Font, area: Box, y_value: float, top: float, label: str
) -> None:
    y = _y(y_value, top, area)
    _dashed(draw, (area[0], y), (area[2], y), THRESHOLD, 2)
    w, h = _text_size(draw, label, font)
    x, top = area[2] - w - 4, y - h - 8
    draw.rectangle([x - 3, top - 1, x + w + 3, top + h + 5], fill=(255, 255, 255))
    draw.text((x, top), label, fill=THRESHOLD, font=font)


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def draw_line_panel(
    draw: ImageDraw.ImageDraw,
    font: Font,
    *,
    box: Box,
    values: Sequence[float],
    boundaries: Sequence[int],
    threshold: float,
    title: str,
    x_label: str,
    threshold_label: str,
) -> None:
    """A line of ``values`` over their index, dashed verticals at ``boundaries``, and the threshold."""
    highest = max([*_finite(values), threshold, 1e-9])
    # Fractions: head room of 10%, but no axis beyond 1.0 when nothing exceeds it.
    y_top = min(highest * 1.1, 1.0) if highest <= 1.0 else highest * 1.1
    area, ticks = _frame(draw, font, box, title, x_label, y_top)
    top = ticks[-1]
    span = max(len(values) - 1, 1)

    def x_of(i: float) -> float:
        return area[0] + (area[2] - area[0]) * i / span

    for tick in nice_ticks(span, count=8):
        if tick > span or tick != int(tick):
            continue
        label = str(int(tick))
        w, _ = _text_size(draw, label, font)
        draw.line([(x_of(tick), area[3]), (x_of(tick), area[3] + 4)], AXIS)
        draw.text((x_of(tick) - w / 2, area[3] + 6), label, fill=AXIS, font=font)
    for clip, start in enumerate(boundaries, start=1):
        _dashed(draw, (x_of(start), area[1]), (x_of(start), area[3]), BOUNDARY)
        draw.text((x_of(start) + 3, area[1] + 2), f"clip {clip}", fill=BOUNDARY, font=font)
    if not values:
        draw.text((area[0] + 10, (area[1] + area[3]) / 2), "no data", fill=AXIS, font=font)
    segment: list[tuple[float, float]] = []
    for i, value in enumerate([*values, math.nan]):
        if math.isfinite(value):
            segment.append((x_of(i), _y(value, top, area)))
            continue
        if len(segment) > 1:
            draw.line(segment, LINE, 2)
        elif segment:
            x, y = segment[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=LINE)
        segment = []
    _threshold(draw, font, area, threshold, top, threshold_label)


def draw_bar_panel(
    draw: ImageDraw.ImageDraw,
    font: Font,
    *,
    box: Box,
    values: Sequence[float],
    threshold: float,
    title: str,
    x_label: str,
    threshold_label: str,
) -> None:
    """One bar per value (red above ``threshold``), index labels under the bars, and the threshold line."""
    top_value = max([*_finite(values), threshold, 1e-9]) * 1.15
    area, ticks = _frame(draw, font, box, title, x_label, top_value)
    top = ticks[-1]
    count = len(values)
    if count == 0:
        draw.text((area[0] + 10, (area[1] + area[3]) / 2), "no data", fill=AXIS, font=font)
    slot = (area[2] - area[0]) / max(count, 1)
    label_every = max(1, math.ceil(count / 30))
    for i, value in enumerate(values):
        left = area[0] + slot * i + slot * 0.15
        right = area[0] + slot * (i + 0.85)
        if math.isfinite(value):
            colour = BAD_BAR if value > threshold else OK_BAR
            draw.rectangle([left, _y(value, top, area), right, area[3]], fill=colour)
        if i % label_every == 0:
            label = str(i)
            w, _ = _text_size(draw, label, font)
            draw.text(((left + right) / 2 - w / 2, area[3] + 6), label, fill=AXIS, font=font)
    _threshold(draw, font, area, threshold, top, threshold_label)
