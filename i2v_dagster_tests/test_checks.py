"""Asset checks on a mock run: values from real pixels, skipped (never faked) without a scorer,
colour correction against drift, pictures in the materialization, report in the bundle."""

from __future__ import annotations

import zipfile

import dagster as dg
import pytest

from i2v_dagster.defs.storage import check_evaluations
from i2v_dagster_tests.helpers import mock_spec, render

pytestmark = pytest.mark.slow  # each test renders whole videos


@pytest.fixture()
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _evaluations(instance, run_id):
    out = {}
    for ev in check_evaluations(instance, run_id):
        out[(ev.asset_key.to_user_string(), ev.check_name, ev.partition)] = ev
    return out


def _planned(instance, run_id):
    recs = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
    ).records
    return {
        (
            r.event_log_entry.dagster_event.event_specific_data.asset_key.to_user_string(),
            r.event_log_entry.dagster_event.event_specific_data.check_name,
        )
        for r in recs
    }


def test_mock_run_passes_every_check_and_skips_scoring_with_reason(instance, tmp_path):
    result = render(instance, mock_spec("checked", tmp_path, width=320, height=192))
    assert result.success
    evals = _evaluations(instance, result.run_id)
    video_level = {(a, c): e for (a, c, p), e in evals.items() if a != "clip"}
    assert set(video_level) == {
        ("clips", n) for n in ("shape", "broken_frames", "motion", "color_drift", "seam_continuity")
    } | {("stitched_video", "sync"), ("stitched_video", "shape")}
    failed = {k: e.metadata["explanation"].value for k, e in evals.items() if not e.passed}
    assert failed == {}
    for ev in video_level.values():
        assert {"value", "threshold", "explanation", "details"} <= set(ev.metadata)
    clip_parts = {p for (a, _, p) in evals if a == "clip"}
    assert clip_parts == {f"{i:03d}|checked" for i in range(len(clip_parts))} and len(clip_parts) >= 3
    # prompt fidelity was planned but not evaluated (skipped), and the reason is recorded
    assert ("stitched_video", "prompt_fidelity") in _planned(instance, result.run_id)
    assert ("stitched_video", "prompt_fidelity", "checked") not in evals
    assert all(p == "checked" for (a, _, p) in evals if a != "clip")
    mat = result.asset_materializations_for_node("stitched_video")[0]
    assert "no scorer configured" in mat.metadata["skipped_checks"].value["prompt_fidelity"]
    # pictures: Markdown with an embedded PNG, for the UI
    for key in ("contact_sheet", "motion_drift_plot"):
        assert (
            mat.metadata[key].value.startswith("![") and "data:image/png;base64," in mat.metadata[key].value
        )
    bundle = next((tmp_path / "checked" / "bundles").glob("*.zip"))
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        report = zf.read("verify/report.html").decode()
    assert {"verify/contact_sheet.png", "verify/motion_drift.png", "verify/report.html"} <= names
    assert "seam_continuity" in report and "SKIPPED" in report and "no scorer configured" in report
    assert 'src="contact_sheet.png"' in report


def test_colour_correction_lowers_drift_of_a_drifting_mock(instance, tmp_path):
    drift = {}
    for corrected in (False, True):
        spec = mock_spec(f"cast{int(corrected)}", tmp_path, width=320, height=192, color_correction=corrected)
        spec["models"] = {"video": {"adapter": "mock_video", "options": {"color_cast": [6, 0, -6]}}}
        result = render(instance, spec)
        assert result.success
        ev = _evaluations(instance, result.run_id)[("clips", "color_drift", spec["name"])]
        drift[corrected] = (ev.metadata["value"].value, ev.passed)
    assert drift[False][0] > 12 and not drift[False][1]
    assert drift[True][0] < drift[False][0] / 4 and drift[True][1]


def test_single_clip_materialization_yields_its_checks(instance, tmp_path):
    from i2v_dagster_tests.helpers import materialize_clip

    assert render(instance, mock_spec("solo", tmp_path, width=320, height=192)).success
    result = materialize_clip(instance, "solo", 1)
    assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"shape", "broken_frames", "motion", "color_drift"}
    assert all(e.passed for e in checks.values())
    assert checks["motion"].metadata["value"].value >= 0.05
