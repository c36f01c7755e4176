"""A stand-in Ollama server for tests: real HTTP on 127.0.0.1, talked to by the real ``ollama`` client.

It speaks the parts of Ollama's REST API the client uses here: ``POST /api/chat`` (non-streaming),
``GET /api/tags`` and ``GET /api/version``. The chat reply's content is set per test (``reply``: a string,
or a function of the request body), a model not in ``models`` gets Ollama's 404, and every request is
recorded in ``requests`` so a test can check what was sent::

    with FakeOllama(reply=script_reply(3)) as server:
        writer = OllamaScriptWriter(AdapterSettings(options={"host": server.url}))
        ...
        assert server.chat_requests[0].body["options"]["seed"] == 0
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from i2v_dagster_tests.loopback import LoopbackServer

Reply = str | Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: dict[str, Any] | None


def script_reply(num_scenes: int, subject: str = "a lighthouse keeper") -> str:
    """A valid script as the JSON text a model would reply with."""
    scenes = [
        {
            "narration": f"Scene {i + 1}: the keeper climbs the stairs.",
            "visual_prompt": f"{subject} on a stone stair, lamp light, scene {i + 1}",
            "motion_prompt": "slow push in",
        }
        for i in range(num_scenes)
    ]
    return json.dumps({"subject": subject, "scenes": scenes})


class _Handler(BaseHTTPRequestHandler):
    server: Any  # the running loopback server; its `fake` is the FakeOllama

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        fake = self.server.fake
        fake._record(RecordedRequest("GET", self.path, None))
        if self.path == "/api/version":
            self._send(200, {"version": fake.version})
        elif self.path == "/api/tags":
            models = [
                {
                    "name": name,
                    "model": name,
                    "modified_at": "2026-01-01T00:00:00Z",
                    "size": 4_920_753_328,
                    "digest": f"sha256:{i:064x}",
                    "details": {"format": "gguf", "family": "llama", "parameter_size": "8.0B"},
                }
                for i, name in enumerate(fake.models)
            ]
            self._send(200, {"models": models})
        else:
            self._send(404, {"error": f"fake ollama: no route GET {self.path}"})

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        fake._record(RecordedRequest("POST", self.path, body))
        if self.path != "/api/chat":
            self._send(404, {"error": f"fake ollama: no route POST {self.path}"})
            return
        if body.get("stream", True):
            self._send(400, {"error": "fake ollama: only non-streaming chat is supported"})
            return
        model = body.get("model", "")
        if model not in fake.models:
            self._send(404, {"error": f"model '{model}' not found"})
            return
        if fake.delay_s:
            time.sleep(fake.delay_s)
        content = fake.reply(body) if callable(fake.reply) else fake.reply
        self._send(
            200,
            {
                "model": model,
                "created_at": "2026-01-01T00:00:00.000000Z",
                "message": {"role": "assistant", "content": content},
                "done": True,
                "done_reason": "stop",
                "total_duration": 1_000_000,
                "eval_count": len(content),
            },
        )


class FakeOllama(LoopbackServer):
    """A running fake Ollama server while used as a context manager (``url`` is its address)."""

    handler = _Handler
    thread_name = "fake-ollama"

    def __init__(
        self,
        *,
        reply: Reply = "",
        models: tuple[str, ...] | list[str] = ("llama3.1:8b",),
        version: str = "0.12.6",
        delay_s: float = 0.0,
    ) -> None:
        self.reply = reply
        self.models = list(models)
        self.version = version
        self.delay_s = delay_s
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/api/chat"]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
