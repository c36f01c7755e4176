"""The Dagster UI in headless Chromium: a mock render's contact sheet, plot and animated previews show, and
its run is listed.

A small mock video is rendered into a temporary instance, `dagster-webserver` serves that instance and the
repo's workspace, and Playwright opens the `stitched_video` and `clip` partition pages
(`?view=partitions&partition=`), opens the Markdown metadata dialogs and checks the embedded images decoded
in the browser: the PNGs at their size, the WebP previews as animations of more than one distinct frame
(decoded by the browser's own `ImageDecoder`, and seen changing on screen).
Screenshots go to `$I2V_UI_SCREENSHOTS` (or a temporary folder); their paths are printed (see them with -s).
"""

from __future__ import annotations

import base64
import io
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import numpy as np
import pytest
from PIL import Image, ImageSequence

from i2v_dagster_tests.helpers import mock_spec, render, step_failure_message
from i2v_dagster_tests.ui_server import (  # noqa: F401  (server, page, shots: fixtures)
    WAIT_TIMEOUT_MS,
    WebServer,
    fresh_instance,
    page,
    require_browser,
    screenshot,
    server,
    shots,
)

sync_api = require_browser()

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PARTITION = "uitest"
CLIP_PARTITION = f"001|{PARTITION}"
DATA_PNG = "data:image/png;base64,"
DATA_WEBP = "data:image/webp;base64,"
ANIMATION_WATCH_S = 5.0  # how long the on-screen preview is watched for a second distinct frame

# Decodes the <img>'s own src with the browser's WebCodecs ImageDecoder: frame count, whether the track is
# animated, and a SHA-256 of every decoded frame's RGBA pixels.
DECODE_IN_BROWSER = """async img => {
  if (typeof ImageDecoder === 'undefined') return {error: 'no ImageDecoder in this browser'};
  const blob = await (await fetch(img.src)).blob();
  const decoder = new ImageDecoder({data: blob.stream(), type: blob.type});
  await decoder.tracks.ready;
  await decoder.completed;
  const track = decoder.tracks.selectedTrack;
  const digests = [];
  for (let i = 0; i < track.frameCount; i++) {
    const {image} = await decoder.decode({frameIndex: i});
    const canvas = new OffscreenCanvas(image.displayWidth, image.displayHeight);
    const context = canvas.getContext('2d');
    context.drawImage(image, 0, 0);
    const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', pixels));
    digests.push(Array.from(digest, b => b.toString(16).padStart(2, '0')).join(''));
    image.close();
  }
  decoder.close();
  return {type: blob.type, frameCount: track.frameCount, animated: track.animated, digests,
          natural: [img.naturalWidth, img.naturalHeight]};
}"""


@dataclass(frozen=True)
class Rendered:
    home: Path
    outputs: Path
    run_id: str
    markdown: dict[str, str]  # metadata label -> Markdown text of the stitched_video materialization
    clip_markdown: dict[str, str]  # the same, of the CLIP_PARTITION materialization of `clip`
    clip_run_id: str


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Rendered:
    """A mock video rendered into a fresh DAGSTER_HOME that holds the repo's dagster.yaml."""
    with fresh_instance(tmp_path_factory.mktemp("ui")) as (instance, home, outputs):
        result = render(instance, mock_spec(PARTITION, outputs, width=320, height=192))
        assert result.success, step_failure_message(instance, result.run_id)
        event = instance.get_latest_materialization_event(dg.AssetKey("stitched_video"))
        clip_records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("clip"), asset_partitions=[CLIP_PARTITION]),
            limit=1,
        ).records
    assert event is not None and event.run_id == result.run_id
    metadata = event.asset_materialization.metadata
    markdown = {label: metadata[label].value for label in ("contact_sheet", "motion_drift_plot", "preview")}
    assert len(clip_records) == 1, f"no materialization of clip {CLIP_PARTITION}"
    clip_record = clip_records[0]
    clip_markdown = {"preview": clip_record.asset_materialization.metadata["preview"].value}
    return Rendered(
        home=home,
        outputs=outputs,
        run_id=result.run_id,
        markdown=markdown,
        clip_markdown=clip_markdown,
        clip_run_id=clip_record.run_id,
    )


def _embedded_image(markdown: str, data_prefix: str) -> tuple[str, bytes]:
    """The data URI of the single Markdown image in ``markdown`` (of type ``data_prefix``) and its bytes."""
    found = re.fullmatch(rf"!\[[^\]]*\]\(({re.escape(data_prefix)}[A-Za-z0-9+/=]+)\)\s*", markdown)
    assert found, f"not one Markdown {data_prefix} image: {markdown[:80]!r}"
    uri = found.group(1)
    return uri, base64.b64decode(uri[len(data_prefix) :])


def _embedded_png(markdown: str) -> tuple[str, tuple[int, int]]:
    """The data URI of the single Markdown image in ``markdown`` and the size of its PNG."""
    uri, data = _embedded_image(markdown, DATA_PNG)
    with Image.open(io.BytesIO(data)) as image:
        return uri, image.size


def _partition_page(page: sync_api.Page, server: WebServer, asset: str, partition: str, run_id: str) -> None:
    page.goto(f"{server.url}/assets/{asset}?view=partitions&partition={quote(partition, safe='')}")
    sync_api.expect(page.get_by_text(run_id[:8]).first).to_be_visible()


def _open_markdown(
    page: sync_api.Page, label: str, data_prefix: str
) -> tuple[sync_api.Locator, sync_api.Locator]:
    """Open `label`'s [Show Markdown] dialog on the open page; the dialog and its decoded, shown image."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=label, exact=True))
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has_text=label)
    image = dialog.locator(f'img[src^="{data_prefix}"]')
    sync_api.expect(image).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=WAIT_TIMEOUT_MS
    )
    box = image.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0
    return dialog, image


def _close(dialog: sync_api.Locator) -> None:
    dialog.get_by_role("button", name="Close").click()
    sync_api.expect(dialog).to_be_hidden()


def _check_markdown_image(
    page: sync_api.Page, server: WebServer, rendered: Rendered, label: str, shot: Path
) -> None:
    """Open `label`'s [Show Markdown] dialog on the partition page; its PNG must be shown, decoded."""
    _partition_page(page, server, "stitched_video", PARTITION, rendered.run_id)
    dialog, image = _open_markdown(page, label, DATA_PNG)
    uri, (width, height) = _embedded_png(rendered.markdown[label])
    assert image.get_attribute("src") == uri
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural == [width, height]
    screenshot(page, shot)
    _close(dialog)


def _nearest_frame(shot_png: bytes, frames: list[np.ndarray]) -> tuple[int, float]:
    """The index of the decoded frame an on-screen element screenshot shows, and the mean absolute
    difference (0-255) to it (the screenshot may hold one more row or column: a fractional position)."""
    shot = np.asarray(Image.open(io.BytesIO(shot_png)).convert("RGB"), dtype=np.float32)
    diffs = []
    for frame in frames:
        rows, cols = min(shot.shape[0], frame.shape[0]), min(shot.shape[1], frame.shape[1])
        assert rows >= frame.shape[0] - 1 and cols >= frame.shape[1] - 1, (shot.shape, frame.shape)
        diffs.append(float(np.abs(shot[:rows, :cols] - frame[:rows, :cols]).mean()))
    best = int(np.argmin(diffs))
    return best, diffs[best]


def _check_animated_preview(page: sync_api.Page, markdown: str, shots: Path, name: str) -> dict:
    """The open page's `preview` metadata: an animated WebP that the browser decodes to more than one
    distinct frame, at its size, and that plays on screen (the element shows one decoded frame, then
    another). Returns what the browser decoded."""
    dialog, image = _open_markdown(page, "preview", DATA_WEBP)
    src = image.get_attribute("src")
    uri, _ = _embedded_image(markdown, DATA_WEBP)
    assert src == uri, "the dialog's image is not the materialization's preview"

    decoded = image.evaluate(DECODE_IN_BROWSER)
    assert "error" not in decoded, decoded
    assert decoded["type"] == "image/webp"
    assert decoded["animated"] is True
    assert decoded["frameCount"] > 1, decoded
    assert len(set(decoded["digests"])) > 1, "every frame the browser decoded is the same picture"

    # the src read out of the DOM, decoded again in Python
    with Image.open(io.BytesIO(base64.b64decode(src[len(DATA_WEBP) :]))) as webp:
        assert webp.format == "WEBP"
        assert webp.n_frames == decoded["frameCount"]
        width, height = webp.size
        frames = [np.asarray(f.convert("RGB"), dtype=np.float32) for f in ImageSequence.Iterator(webp)]
    assert decoded["natural"] == [width, height] and width > 0 and height > 0

    # it plays: what the element shows on screen is one frame of the animation, then another
    seen: dict[int, bytes] = {}
    deadline = time.monotonic() + ANIMATION_WATCH_S
    while len(seen) < 2 and time.monotonic() < deadline:
        shot = image.screenshot()
        index, diff = _nearest_frame(shot, frames)
        assert diff < 2.0, (
            f"the element on screen is none of the preview's frames (closest {index}: {diff:.1f})"
        )
        seen.setdefault(index, shot)
        page.wait_for_timeout(100)
    assert len(seen) >= 2, f"the preview showed only frame {list(seen)} on screen in {ANIMATION_WATCH_S} s"
    for index, shot in seen.items():
        (shots / f"{name}_frame{index:02d}.png").write_bytes(shot)
        print(f"screenshot: {shots / f'{name}_frame{index:02d}.png'} (frame {index} on screen)")
    screenshot(page, shots / f"{name}.png")
    _close(dialog)
    return decoded


def test_contact_sheet_shows_on_partition_page(page, server, rendered, shots):
    _check_markdown_image(page, server, rendered, "contact_sheet", shots / "contact_sheet.png")


def test_motion_drift_plot_shows_on_partition_page(page, server, rendered, shots):
    _check_markdown_image(page, server, rendered, "motion_drift_plot", shots / "motion_drift_plot.png")


def test_video_preview_plays_on_stitched_video_partition_page(page, server, rendered, shots):
    _partition_page(page, server, "stitched_video", PARTITION, rendered.run_id)
    decoded = _check_animated_preview(page, rendered.markdown["preview"], shots, "video_preview")
    _, data = _embedded_image(rendered.markdown["preview"], DATA_WEBP)
    assert data == (rendered.outputs / PARTITION / "verify" / "preview.webp").read_bytes()
    print(f"video preview: {decoded['frameCount']} frames, {decoded['natural']}")


def test_clip_preview_plays_on_clip_partition_page(page, server, rendered, shots):
    _partition_page(page, server, "clip", CLIP_PARTITION, rendered.clip_run_id)
    decoded = _check_animated_preview(page, rendered.clip_markdown["preview"], shots, "clip_preview")
    _, data = _embedded_image(rendered.clip_markdown["preview"], DATA_WEBP)
    assert data == (rendered.outputs / PARTITION / "clips" / "clip_001_preview.webp").read_bytes()
    print(f"clip {CLIP_PARTITION} preview: {decoded['frameCount']} frames, {decoded['natural']}")


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
    screenshot(page, shots / "runs.png")
