"""Test support for the browser tests: `dagster-webserver` on a free local port (ended with its whole
process group), its GraphQL endpoint, and headless Chromium on a fresh profile."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

CHROMIUM = Path("/usr/bin/chromium")
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

LOCATIONS_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


@dataclass(frozen=True)
class WebServer:
    url: str
    pid: int
    log: Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, *, data: bytes | None = None, timeout: float = 5.0) -> bytes:
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.read()


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 10.0) -> dict:
    """The ``data`` of a GraphQL answer from the webserver at ``url`` (an answer with ``errors`` raises)."""
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    answer = json.loads(_get(f"{url}/graphql", data=body, timeout=timeout))
    if answer.get("errors"):
        raise ValueError(f"GraphQL errors: {answer['errors']}")
    return answer["data"]


RUNS_COUNT_QUERY = """
query RunsCount($filter: RunsFilter) { runsOrError(filter: $filter) {
    __typename ... on Runs { count } ... on PythonError { message } } }
"""


def run_count(url: str, partition: str | None = None) -> int:
    """How many runs the instance holds (of the `videos` partition ``partition``, when given)."""
    tags = [{"key": "dagster/partition", "value": partition}] if partition is not None else None
    runs = graphql(url, RUNS_COUNT_QUERY, {"filter": {"tags": tags} if tags else None})["runsOrError"]
    if runs["__typename"] != "Runs":
        raise RuntimeError(f"runs query answered {runs}")
    return int(runs["count"])


def _locations(url: str) -> list[dict]:
    workspace = graphql(url, LOCATIONS_QUERY, timeout=5.0)["workspaceOrError"]
    if workspace["__typename"] != "Workspace":
        raise RuntimeError(f"workspace query answered {workspace['__typename']}")
    return workspace["locationEntries"]


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout_s: float) -> None:
    """Wait until `/server_info` answers and every code location has loaded (without an error)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {proc.returncode}; log tail:\n{_tail(log)}")
        try:
            _get(f"{url}/server_info")
            entries = _locations(url)
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [
                    e for e in entries if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"
                ]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors}")
                return
            last = f"locations: {[(e['name'], e['loadStatus']) for e in entries]}"
        time.sleep(0.5)
    raise TimeoutError(
        f"dagster-webserver at {url} not ready after {timeout_s:.0f} s ({last}); log tail:\n{_tail(log)}"
    )


def _stop(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM the server's process group (webserver and its code server), then SIGKILL what is left."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    # the group outlives its leader while a member (the code server) is alive
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=grace_s)


@contextmanager
def dagster_webserver(
    dagster_home: Path,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 90.0,
) -> Iterator[WebServer]:
    """Run this interpreter's `dagster-webserver -w workspace.yaml` from the repo root on 127.0.0.1.

    It listens on a free port and is waited for (at most ``timeout_s``) until the code location has
    loaded. It runs in its own session (process group), which is ended on exit whatever happened.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "dagster_webserver",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "workspace.yaml",
    ]
    full_env = {**os.environ, **(env or {}), "DAGSTER_HOME": str(dagster_home)}
    # this checkout's package first (an editable install may point at another checkout)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH", "")) if p)
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_ready(proc, url, log, timeout_s)
        yield WebServer(url=url, pid=proc.pid, log=log)
    finally:
        _stop(proc)


@contextmanager
def chromium_page(user_data: Path, *, timeout_ms: float, navigation_timeout_ms: float) -> Iterator[Any]:
    """A Playwright page in headless Chromium (``CHROMIUM``, ``CHROMIUM_ARGS``) on the fresh profile
    ``user_data``, with the community dialog dismissed; default timeouts (and ``expect``'s) as given,
    restored and closed on exit."""
    from playwright import sync_api

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
            context.set_default_timeout(timeout_ms)
            context.set_default_navigation_timeout(navigation_timeout_ms)
            sync_api.expect.set_options(timeout=timeout_ms)
            yield context.new_page()
        finally:
            sync_api.expect.set_options(timeout=None)  # back to Playwright's default
            context.close()


def screenshot(target: Any, path: Path, **options: Any) -> Path:
    """A screenshot of a Playwright page or locator (``options``: its screenshot options, e.g.
    ``animations="disabled"`` to finish a dialog's opening transition first), its path printed (see them
    with ``pytest -s``)."""
    target.screenshot(path=str(path), **options)
    print(f"screenshot: {path}")
    return path


# --- what both browser test modules share ----------------------------------------------------------------

NAVIGATION_TIMEOUT_MS = 60_000
WAIT_TIMEOUT_MS = 30_000


def require_browser() -> Any:
    """Skips the calling test module where Chromium or Playwright is missing; else Playwright's
    ``sync_api``."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@contextmanager
def fresh_instance(root: Path) -> Iterator[tuple[Any, Path, Path]]:
    """A Dagster instance in a new DAGSTER_HOME under ``root`` holding the repo's dagster.yaml, with
    ``I2V_OUTPUTS`` set to ``root/outputs``: ``(instance, home, outputs)``."""
    import dagster as dg

    home, outputs = root / "dagster_home", root / "outputs"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        mp.setenv("I2V_OUTPUTS", str(outputs))
        with dg.DagsterInstance.get() as instance:
            yield instance, home, outputs


@pytest.fixture(scope="module")
def server(rendered, tmp_path_factory) -> Iterator[WebServer]:
    """`dagster-webserver` on the module's ``rendered`` instance (its ``home`` and ``outputs``); the test
    modules import this fixture and ``page`` and ``shots`` by name and define their own ``rendered``."""
    log = tmp_path_factory.mktemp("ui_log") / "dagster-webserver.log"
    with dagster_webserver(rendered.home, log, env={"I2V_OUTPUTS": str(rendered.outputs)}) as web:
        yield web


@pytest.fixture(scope="module")
def page(server, tmp_path_factory) -> Iterator[Any]:
    """Chromium on a fresh profile; after `server`, so the render runs before Playwright's event loop."""
    user_data = tmp_path_factory.mktemp("chromium_profile")
    with chromium_page(
        user_data, timeout_ms=WAIT_TIMEOUT_MS, navigation_timeout_ms=NAVIGATION_TIMEOUT_MS
    ) as browser_page:
        yield browser_page


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """The screenshots' folder: ``$I2V_UI_SCREENSHOTS`` or a temporary one."""
    folder = os.environ.get("I2V_UI_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("ui_screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
