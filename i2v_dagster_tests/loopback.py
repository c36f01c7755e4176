"""A stdlib HTTP server on 127.0.0.1 (a free port), served from a daemon thread: the base of the fake
Hugging Face Hub and the fake Ollama server that the real clients talk to in tests."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: Any

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (a test's time bound) is expected; anything else is printed as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """Subclasses set ``handler``; a handler reaches the running fake as ``self.server.fake``."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]
    thread_name: ClassVar[str] = "loopback-server"
    _server: _Server | None = None
    _thread: threading.Thread | None = None
    _url: str | None = None

    def start(self):
        self._server = _Server(("127.0.0.1", 0), self.handler)
        self._server.fake = self
        self._url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The address (still known after ``stop()``, for messages that name it)."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} was never started")
        return self._url
