"""An HTTP server on 127.0.0.1 running in a daemon thread, as a context manager.

The evaluation's replay and prompt-recording servers share this life cycle, so both always
stop (and release their port) however a run ends.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Self


class BackgroundHTTPServer:
    def __init__(self, server: ThreadingHTTPServer, *, name: str) -> None:
        self._server = server
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _serve(self) -> None:
        # A short poll interval makes shutdown() return quickly.
        self._server.serve_forever(poll_interval=0.05)

    def _release(self) -> None:
        """Close what a subclass holds besides the socket (called once the server is down)."""

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits forever on a server never started
            self._server.shutdown()
        self._server.server_close()
        self._release()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
