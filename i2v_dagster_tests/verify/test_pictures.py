from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from i2v_dagster.verify.pictures import PAD, contact_sheet, motion_drift_plot, png_markdown
from i2v_dagster_tests.verify import videos

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _open(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_contact_sheet_is_a_png_of_the_expected_size(tmp_path):
    clips = videos.chain(2, frames=5)  # 96 x 128 frames: thumbnails 160 x 120
    rows = [
        ("keyframes", [clips[0][0], Image.fromarray(clips[1][0])]),
        ("clip 0: first | last", [clips[0][0], clips[0][-1]]),
        ("seam 0->1: last | first", [clips[0][-1], clips[1][0]]),
    ]
    path = contact_sheet(rows, tmp_path / "sheet.png", thumb_width=160)
    image = _open(path)
    label_height = 18
    assert image.size == (PAD + 2 * (160 + PAD), PAD + 3 * (label_height + 120 + PAD))
    pixels = np.asarray(image)
    # the first thumbnail sits below the first label, scaled from frame 0
    thumb = pixels[PAD + label_height : PAD + label_height + 120, PAD : PAD + 160]
    expected = np.asarray(Image.fromarray(clips[0][0]).resize((160, 120), Image.Resampling.BILINEAR))
    assert np.abs(thumb.astype(int) - expected).mean() < 2
    # the label is drawn: dark pixels in the label strip
    assert (pixels[PAD : PAD + label_height, PAD : PAD + 60] < 100).any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]  # no temporary left behind


def test_contact_sheet_wraps_long_rows(tmp_path):
    frame = videos.texture()
    image = _open(contact_sheet([("many", [frame] * 7)], tmp_path / "s.png", thumb_width=64, max_columns=3))
    assert image.size == (PAD + 3 * (64 + PAD), PAD + 18 + 3 * (48 + PAD))


def test_contact_sheet_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="rows"):
        contact_sheet([], tmp_path / "s.png")
    with pytest.raises(ValueError, match="row 0"):
        contact_sheet([("bad", [np.zeros((4, 4), dtype=np.float32)])], tmp_path / "s.png")


def test_motion_drift_plot(tmp_path):
    motion = [0.3, 0.35, 0.28, float("nan"), 0.01, 0.02, 0.4]
    path = motion_drift_plot(motion, [3], [2.0, 15.0], 0.05, 12.0, tmp_path / "plot.png", size=(600, 400))
    image = _open(path)
    assert image.size == (600, 400)
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    red = (pixels[:, 0] > 180) & (pixels[:, 1] < 80) & (pixels[:, 2] < 80)
    blue = (pixels[:, 2] > 150) & (pixels[:, 0] < 80)
    green = (pixels[:, 1] > 140) & (pixels[:, 0] < 120) & (pixels[:, 2] < 120)
    assert red.sum() > 500  # threshold lines and the failing bar
    assert blue.sum() > 50  # the motion line
    assert green.sum() > 500  # the passing bar
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_png_markdown_is_a_small_data_uri(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, size=(450, 800, 3), dtype=np.uint8)
    path = tmp_path / "big.png"
    Image.fromarray(noise).save(path)
    assert path.stat().st_size > 1_000_000
    markdown = png_markdown(path, "contact [sheet]", max_width=600, max_bytes=100_000)
    prefix = "![contact (sheet)](data:image/png;base64,"
    assert markdown.startswith(prefix) and markdown.endswith(")")
    data = base64.b64decode(markdown[len(prefix) : -1])
    assert len(data) <= 100_000
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    assert image.width <= 600
    assert image.width / image.height == pytest.approx(800 / 450, rel=0.02)


def test_png_markdown_keeps_a_small_picture_as_is(tmp_path):
    path = contact_sheet([("one", [videos.texture()])], tmp_path / "one.png")
    markdown = png_markdown(path, "one", max_width=900)
    data = base64.b64decode(markdown.split(",", 1)[1][:-1])
    assert Image.open(io.BytesIO(data)).size == Image.open(path).size
