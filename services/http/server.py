"""Runs the HTTP service with uvicorn: in a background thread of the worker, or in the foreground."""

from __future__ import annotations

import threading

import uvicorn
from fastapi import FastAPI


class HttpServer:
    """``app`` on ``host:port`` (``port=0`` picks a free one, see ``url``)."""

    def __init__(self, app: FastAPI, host: str, port: int):
        self.app = app
        # No uvicorn access log: the worker's log is for the pipeline. lifespan off: the app opens nothing at start.
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                                    lifespan="off", timeout_graceful_shutdown=5))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> HttpServer:
        """Serve in a daemon thread; returns once the socket listens (raises if it cannot bind)."""
        self._thread = threading.Thread(target=self.server.run, name="http", daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise OSError(f"the HTTP service could not listen on {self.server.config.host}:"
                              f"{self.server.config.port} (taken? set OMNITRAIL_API_PORT)")
            self._thread.join(0.02)
        return self

    def run(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM."""
        try:
            self.server.run()
        finally:
            self.app.state.close()

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.app.state.close()
