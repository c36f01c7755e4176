"""The Dagster UI in headless Chromium: a mock render's contact sheet and plot show, and its run is listed.

A small mock video is rendered into a temporary instance, `dagster-webserver` serves that instance and the
repo's workspace, and Playwright opens the `stitched_video` partition page (`?view=partitions&partition=`),
opens the Markdown metadata dialogs and checks the embedded PNGs decoded in the browser.
Screenshots go to `$I2V_UI_SCREENSHOTS` (or a temporary folder); their paths are printed (see them with -s).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from PIL import Image

from i2v_dagster_tests.helpers import mock_spec, render, step_failure_message
from i2v_dagster_tests.ui_server import REPO_ROOT, WebServer, dagster_webserver

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# localStorage flag the UI sets when its "Join the Dagster community" dialog is dismissed
DISMISS_COMMUNITY_DIALOG = "window.localStorage.setItem('communityNux', JSON.stringify('1'));"
PARTITION = "uitest"
DATA_PNG = "data:image/png;base64,"
NAVIGATION_TIMEOUT_MS = 60_000
WAIT_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Rendered:
    home: Path
    outputs: Path
    run_id: str
    markdown: dict[str, str]  # metadata label -> Markdown text of the stitched_video materialization


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Rendered:
    """A mock video rendered into a fresh DAGSTER_HOME that holds the repo's dagster.yaml."""
    root = tmp_path_factory.mktemp("ui")
    home, outputs = root / "dagster_home", root / "outputs"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        mp.setenv("I2V_OUTPUTS", str(outputs))
        with dg.DagsterInstance.get() as instance:
            result = render(instance, mock_spec(PARTITION, outputs, width=320, height=192))
            assert result.success, step_failure_message(instance, result.run_id)
            event = instance.get_latest_materialization_event(dg.AssetKey("stitched_video"))
    assert event is not None and event.run_id == result.run_id
    metadata = event.asset_materialization.metadata
    markdown = {label: metadata[label].value for label in ("contact_sheet", "motion_drift_plot")}
    return Rendered(home=home, outputs=outputs, run_id=result.run_id, markdown=markdown)


@pytest.fixture(scope="module")
def server(rendered, tmp_path_factory) -> Iterator[WebServer]:
    log = tmp_path_factory.mktemp("ui_log") / "dagster-webserver.log"
    with dagster_webserver(rendered.home, log, env={"I2V_OUTPUTS": str(rendered.outputs)}) as web:
        yield web


@pytest.fixture(scope="module")
def page(server, tmp_path_factory) -> Iterator[sync_api.Page]:
    """Chromium on a fresh profile; after `server`, so the render runs before Playwright's event loop."""
    user_data = tmp_path_factory.mktemp("chromium_profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            context.add_init_script(DISMISS_COMMUNITY_DIALOG)
            context.set_default_timeout(WAIT_TIMEOUT_MS)
            context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
            sync_api.expect.set_options(timeout=WAIT_TIMEOUT_MS)
            yield context.new_page()
        finally:
            sync_api.expect.set_options(timeout=None)  # back to Playwright's default
            context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("I2V_UI_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("ui_screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _screenshot(page: sync_api.Page, path: Path) -> None:
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")


def _embedded_png(markdown: str) -> tuple[str, tuple[int, int]]:
    """The data URI of the single Markdown image in ``markdown`` and the size of its PNG."""
    found = re.fullmatch(r"!\[[^\]]*\]\((data:image/png;base64,[A-Za-z0-9+/=]+)\)\s*", markdown)
    assert found, f"not one Markdown PNG image: {markdown[:80]!r}"
    uri = found.group(1)
    with Image.open(io.BytesIO(base64.b64decode(uri[len(DATA_PNG) :]))) as image:
        return uri, image.size


def _check_markdown_image(
    page: sync_api.Page, server: WebServer, rendered: Rendered, label: str, shot: Path
) -> None:
    """Open `label`'s [Show Markdown] dialog on the partition page; its PNG must be shown, decoded."""
    page.goto(f"{server.url}/assets/stitched_video?view=partitions&partition={PARTITION}")
    sync_api.expect(page.get_by_text(rendered.run_id[:8]).first).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=label, exact=True))
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has_text=label)
    image = dialog.locator(f'img[src^="{DATA_PNG}"]')
    sync_api.expect(image).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=WAIT_TIMEOUT_MS
    )
    uri, (width, height) = _embedded_png(rendered.markdown[label])
    assert image.get_attribute("src") == uri
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural == [width, height]
    box = image.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0
    _screenshot(page, shot)
    dialog.get_by_role("button", name="Close").click()
    sync_api.expect(dialog).to_be_hidden()


def test_contact_sheet_shows_on_partition_page(page, server, rendered, shots):
    _check_markdown_image(page, server, rendered, "contact_sheet", shots / "contact_sheet.png")


def test_motion_drift_plot_shows_on_partition_page(page, server, rendered, shots):
    _check_markdown_image(page, server, rendered, "motion_drift_plot", shots / "motion_drift_plot.png")


def test_run_listed_on_runs_page(page, server, rendered, shots):
    page.goto(f"{server.url}/runs")
    link = page.locator(f'a[href$="/runs/{rendered.run_id}"]').filter(has_text=rendered.run_id[:8])
    sync_api.expect(link).to_be_visible()
    # the runs feed is a grid of divs, one `rowGrid` box per run
    row = page.locator('[class*="rowGrid"]').filter(has=link)
    sync_api.expect(row).to_have_count(1)
    sync_api.expect(row).to_contain_text("render_video")
    sync_api.expect(row).to_contain_text("Success")
    sync_api.expect(row).to_contain_text(f"partition: {PARTITION}")
    _screenshot(page, shots / "runs.png")
