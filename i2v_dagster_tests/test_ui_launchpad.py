"""The `render_video` Launchpad in headless Chromium: a bad spec is refused before any run exists, and a
re-launch is safe.

A small mock video is rendered into a temporary instance and `dagster-webserver` serves it. Playwright
opens the job's Launchpad (`/locations/<location>/jobs/render_video/playground`, picks a partition), and the
asset graph's "Materialize all -> Open launchpad" (which can add a partition), types specs into the config
editor and clicks launch:

- an unknown video adapter is flagged by Dagster's own enum check in the editor; launching is impossible
  (the button is disabled) and the GraphQL launch is refused too;
- a bad `name` or `fps` passes Dagster's types but is refused when launched (the spec's rules run while
  Dagster resolves the run config), within 2 s, with a message naming the field;
- an existing video's Launchpad holds the spec it was rendered with; a new video's stub (no scenes) is
  refused as it is, saying to fill in the scenes;

and the run count (GraphQL) does not change for any refused launch.
Screenshots go to `$I2V_UI_SCREENSHOTS` (or a temporary folder); their paths are printed (see them with -s).
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from i2v_dagster_tests.helpers import mock_spec, render, run_config, step_failure_message
from i2v_dagster_tests.ui_server import (  # noqa: F401  (server, page, shots: fixtures)
    WAIT_TIMEOUT_MS,
    WebServer,
    fresh_instance,
    graphql,
    page,
    require_browser,
    run_count,
    screenshot,
    server,
    shots,
)

sync_api = require_browser()

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PARTITION = "uilaunch"
NEW_PARTITION = "fresh-video"
LOCATION = "i2v_dagster.definitions"
JOB_PAGE = f"/locations/{LOCATION}/jobs/render_video"
JOB_LAUNCHPAD = f"{JOB_PAGE}/playground"
REFUSED_WITHIN_S = 2.0

LAUNCH_MUTATION = """
mutation Launch($params: ExecutionParams!) { launchPipelineExecution(executionParams: $params) {
    __typename
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
    ... on LaunchRunSuccess { run { runId } } } }
"""


@dataclass(frozen=True)
class Rendered:
    home: Path
    outputs: Path
    run_id: str
    spec: dict[str, Any]  # the spec the video was rendered with
    stored: dict[str, Any]  # the video's stored spec.json


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Rendered:
    """A mock video rendered into a fresh DAGSTER_HOME that holds the repo's dagster.yaml."""
    with fresh_instance(tmp_path_factory.mktemp("ui_launch")) as (instance, home, outputs):
        spec = mock_spec(PARTITION, outputs, seed=4242)
        result = render(instance, spec)
        assert result.success, step_failure_message(instance, result.run_id)
    stored = json.loads((outputs / PARTITION / "spec.json").read_text(encoding="utf-8"))
    return Rendered(home=home, outputs=outputs, run_id=result.run_id, spec=spec, stored=stored)


# --- the Launchpad ---------------------------------------------------------------------------------------


def _fresh_session(page: sync_api.Page, server: WebServer) -> None:
    """Forget the Launchpad sessions the UI keeps in localStorage (each test starts from the prefill)."""
    page.goto(f"{server.url}/server_info")
    page.evaluate("() => window.localStorage.clear()")


def _editor_text(editor: sync_api.Locator) -> str:
    """The whole text of a Launchpad config editor (CodeMirror renders only the lines in view)."""
    return editor.evaluate("el => el.CodeMirror.getValue()")


def _spec_in(editor: sync_api.Locator) -> dict[str, Any]:
    config = yaml.safe_load(_editor_text(editor)) or {}
    return ((config.get("ops") or {}).get("script") or {}).get("config") or {}


def _wait_for_spec(editor: sync_api.Locator, ready: Callable[[dict[str, Any]], bool], what: str) -> dict:
    deadline = time.monotonic() + WAIT_TIMEOUT_MS / 1000
    while True:
        try:
            spec = _spec_in(editor)
        except yaml.YAMLError:
            spec = {}
        if ready(spec):
            return spec
        if time.monotonic() > deadline:
            raise AssertionError(f"the config editor never showed {what}; it holds:\n{_editor_text(editor)}")
        time.sleep(0.2)


def _type_config(page: sync_api.Page, editor: sync_api.Locator, config: dict[str, Any]) -> str:
    """Replace the editor's text with ``config`` as YAML, as a paste would (select all, insert)."""
    text = yaml.safe_dump(config, sort_keys=False)
    editor.locator(".CodeMirror-lines").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)
    assert _editor_text(editor) == text
    return text


def _open_job_launchpad(page: sync_api.Page, server: WebServer, partition: str) -> sync_api.Locator:
    """Jobs -> render_video -> Launchpad, ``partition`` picked; returns the config editor once it holds
    that partition's prefilled config."""
    _fresh_session(page, server)
    page.goto(f"{server.url}{JOB_LAUNCHPAD}")
    editor = page.locator(".CodeMirror")
    sync_api.expect(editor).to_be_visible()
    # the picker's list fills when the partitions have loaded; a list opened before shows none of them
    deadline = time.monotonic() + WAIT_TIMEOUT_MS / 1000
    while True:
        page.get_by_placeholder("Partition").click()
        try:
            page.get_by_role("menuitem", name=partition, exact=True).click(timeout=3_000)
            break
        except sync_api.TimeoutError:
            if time.monotonic() > deadline:
                raise
            page.keyboard.press("Escape")
    sync_api.expect(page.get_by_text(f"partition: {partition}", exact=True)).to_be_visible()
    _wait_for_spec(editor, lambda spec: spec.get("name") == partition, f"the spec of {partition}")
    return editor


def _spec_with(rendered: Rendered, **changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(rendered.spec)
    spec.update(changes)
    return spec


def _launch_refused(
    page: sync_api.Page,
    server: WebServer,
    button: sync_api.Locator,
    says: list[re.Pattern[str]],
    shot: Path,
) -> str:
    """Click ``button``: the launch must be refused within REFUSED_WITHIN_S by an error whose text matches
    every pattern in ``says``, and no run may be made. Returns the refusal's text."""
    runs_before = run_count(server.url)
    sync_api.expect(button).to_be_enabled()
    with page.expect_response(lambda r: "op=LaunchPipelineExecution" in r.url) as answer:
        started = time.monotonic()
        button.click()
        error = page.get_by_role("dialog").filter(has_text="invalid job spec")
        sync_api.expect(error).to_be_visible(timeout=REFUSED_WITHIN_S * 1000)
        elapsed = time.monotonic() - started
    launched = answer.value.json()["data"]["launchPipelineExecution"]
    assert launched["__typename"] != "LaunchRunSuccess", launched
    text = error.inner_text()
    for pattern in says:
        assert pattern.search(text), f"the refusal does not say {pattern.pattern!r}:\n{text}"
        assert pattern.search(launched.get("message", "")), launched
    assert elapsed < REFUSED_WITHIN_S, f"refused after {elapsed:.2f} s"
    print(f"launch refused after {elapsed:.2f} s ({launched['__typename']})")
    screenshot(page, shot, animations="disabled")  # the dialog fully faded in
    error.get_by_role("button", name="OK").click()
    sync_api.expect(error).to_be_hidden()
    assert "/runs/" not in page.url
    assert run_count(server.url) == runs_before, "a refused launch made a run"
    return text


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


# --- tests ------------------------------------------------------------------------------------------------


def test_existing_video_launchpad_holds_its_stored_spec(page, server, rendered, shots):
    editor = _open_job_launchpad(page, server, PARTITION)
    spec = _spec_in(editor)
    for key, value in rendered.stored.items():
        assert spec.get(key) == value, f"{key}: the Launchpad holds {spec.get(key)!r}, the video {value!r}"
    assert spec["seed"] == 4242 and spec["width"] == rendered.spec["width"]
    assert [s["narration"] for s in spec["scenes"]] == [s["narration"] for s in rendered.spec["scenes"]]
    sync_api.expect(page.get_by_text("No errors")).to_be_visible()
    sync_api.expect(page.get_by_role("button", name=re.compile("Launch Run$"))).to_be_enabled()
    # the scenes in view, as a person scrolling the editor sees them
    line = _line_of(_editor_text(editor), "scenes:")
    editor.evaluate("(el, line) => el.CodeMirror.scrollIntoView({line: line, ch: 0}, 300)", line)
    sync_api.expect(editor.locator(".CodeMirror-code")).to_contain_text(
        rendered.spec["scenes"][0]["narration"]
    )
    screenshot(page, shots / "launchpad_existing_video.png")


def test_unknown_video_adapter_flagged_and_cannot_launch(page, server, rendered, shots):
    runs_before = run_count(server.url)
    editor = _open_job_launchpad(page, server, PARTITION)
    config = run_config(_spec_with(rendered, models={"video": {"adapter": "sora"}}))
    text = _type_config(page, editor, config)
    problem = page.get_by_text(re.compile(r"models:video:adapter not in enum .* got sora"))
    sync_api.expect(problem).to_be_visible()
    launch = page.get_by_role("button", name=re.compile("Launch Run$"))
    sync_api.expect(launch).to_be_disabled()
    # the message leads to the field: clicking it puts the cursor on the adapter's line
    problem.click()
    cursor_line = editor.evaluate("el => el.CodeMirror.getCursor().line")
    assert cursor_line == _line_of(text, "adapter: sora")
    screenshot(page, shots / "launchpad_unknown_adapter.png")

    # past the UI, the launch itself is refused by Dagster's config check
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "pipelineName": "render_video",
        },
        "runConfigData": config,
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": PARTITION}]},
    }
    launched = graphql(server.url, LAUNCH_MUTATION, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "RunConfigValidationInvalid", launched
    assert any("sora" in e["message"] for e in launched["errors"]), launched
    assert run_count(server.url) == runs_before


NAME_REFUSED = re.compile(r"^\s*name: .*\(got 'Bad Name'\)\s*$", re.MULTILINE)
FPS_REFUSED = re.compile(r"^\s*fps: .*\(got 1000\)\s*$", re.MULTILINE)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": "Bad Name"}, [NAME_REFUSED]),
        ({"fps": 1000}, [FPS_REFUSED]),
        ({"name": "Bad Name", "fps": 1000}, [NAME_REFUSED, FPS_REFUSED]),
    ],
    ids=["name", "fps", "name+fps"],
)
def test_bad_name_or_fps_refused_at_launch(page, server, rendered, shots, changes, says):
    editor = _open_job_launchpad(page, server, PARTITION)
    _type_config(page, editor, run_config(_spec_with(rendered, **changes)))
    launch = page.get_by_role("button", name=re.compile("Launch Run$"))
    shot = shots / f"launchpad_refused_{'_'.join(changes)}.png"
    _launch_refused(page, server, launch, says, shot)
    assert run_count(server.url, PARTITION) == 1  # the render's run only


STUB_REFUSED = re.compile(r"scenes: empty.*fill in the scenes")


def test_new_video_stub_cannot_be_launched(page, server, rendered, shots):
    # the asset graph: Materialize all -> Open launchpad -> Add new partition
    _fresh_session(page, server)
    page.goto(f"{server.url}{JOB_PAGE}")
    materialize_all = page.get_by_role("button", name=re.compile("Materialize all"))
    materialize_all.locator("xpath=..").locator("xpath=following-sibling::*[1]").click()
    page.get_by_role("menuitem", name="Open launchpad").click()
    launchpad = page.get_by_role("dialog").filter(has_text="Launchpad (configure assets)")
    launchpad.get_by_role("button", name="Add new partition").click()
    add = page.get_by_role("dialog").filter(has_text="Add a partition for videos")
    add.get_by_role("textbox").fill(NEW_PARTITION)
    add.get_by_role("button", name="Save").click()
    sync_api.expect(add).to_be_hidden()
    editor = launchpad.locator(".CodeMirror")
    stub = _wait_for_spec(editor, lambda spec: spec.get("name") == NEW_PARTITION, "the new video's stub")
    assert stub["scenes"] == [], stub
    # Dagster's types accept the stub (so it can be launched, and refused); the scenes in view
    sync_api.expect(launchpad.get_by_text("No errors")).to_be_visible()
    line = _line_of(_editor_text(editor), "scenes: []")
    editor.evaluate("(el, line) => el.CodeMirror.scrollIntoView({line: line, ch: 0}, 300)", line)
    shown = editor.locator(".CodeMirror-code")
    sync_api.expect(shown).to_contain_text(f"name: '{NEW_PARTITION}'")
    sync_api.expect(shown).to_contain_text("scenes: []")
    screenshot(page, shots / "launchpad_new_video_stub.png")
    materialize = launchpad.get_by_role("button", name=re.compile("Materialize$"))
    _launch_refused(page, server, materialize, [STUB_REFUSED], shots / "launchpad_new_video_refused.png")

    # the job's Launchpad, that partition picked: the same stub, refused the same way
    editor = _open_job_launchpad(page, server, NEW_PARTITION)
    assert _spec_in(editor)["scenes"] == []
    launch = page.get_by_role("button", name=re.compile("Launch Run$"))
    _launch_refused(page, server, launch, [STUB_REFUSED], shots / "launchpad_new_video_refused_job.png")

    assert run_count(server.url, NEW_PARTITION) == 0
    assert not (rendered.outputs / NEW_PARTITION).exists(), "a refused launch made the video's folder"
