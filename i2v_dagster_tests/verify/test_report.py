from __future__ import annotations

import numpy as np
import pytest

from i2v_dagster.verify.outcome import CheckOutcome
from i2v_dagster.verify.pictures import contact_sheet
from i2v_dagster.verify.report import write_report
from i2v_dagster_tests.verify import videos


def _outcomes():
    return [
        CheckOutcome("motion", True, 0.4, 0.05, "Passed: moves.", {"pairs": 8}),
        CheckOutcome("seam <script>alert(1)</script>", False, float("nan"), 3.0, "Failed: a & b < c.", {}),
        CheckOutcome.skipped("clip_score", "no CLIP weights <here>", threshold=0.2),
    ]


def test_report_lists_every_check_and_escapes_text(tmp_path):
    sheet = contact_sheet([("keyframes", [videos.texture()])], tmp_path / "contact sheet.png")
    path = write_report(
        tmp_path / "report.html",
        title="Video <demo>",
        video_info={"name": "demo", "clips": np.int64(3), "note": "<b>bold</b>"},
        outcomes=_outcomes(),
        pictures={"Contact sheet": sheet},
    )
    html = path.read_text(encoding="utf-8")
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "seam &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Video &lt;demo&gt;" in html
    assert "a &amp; b &lt; c" in html
    for name, status in [("motion", "PASS"), ("seam &lt;script&gt;", "FAIL"), ("clip_score", "SKIPPED")]:
        row = next(r for r in html.split("<tr>") if f"<td>{name}" in r)
        assert f'class="{status}">{status}<' in row
    assert "no CLIP weights &lt;here&gt;" in html
    assert "1 passed, 1 failed, 1 skipped" in html
    assert 'src="contact%20sheet.png"' in html  # relative to the report's folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contact sheet.png", "report.html"]


def test_report_refuses_pictures_outside_its_folder(tmp_path):
    outside = contact_sheet([("x", [videos.texture()])], tmp_path / "outside.png")
    with pytest.raises(ValueError, match="outside"):
        write_report(
            tmp_path / "bundle" / "report.html",
            title="t",
            video_info={},
            outcomes=[],
            pictures={"x": outside},
        )


def test_report_takes_relative_picture_paths_from_its_folder(tmp_path):
    contact_sheet([("x", [videos.texture()])], tmp_path / "figs" / "sheet.png")
    html = write_report(
        tmp_path / "report.html", title="t", video_info={}, outcomes=[], pictures={"s": "figs/sheet.png"}
    ).read_text()
    assert 'src="figs/sheet.png"' in html
    with pytest.raises(FileNotFoundError, match="missing.png"):
        write_report(
            tmp_path / "r2.html", title="t", video_info={}, outcomes=[], pictures={"m": "missing.png"}
        )
