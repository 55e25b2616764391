"""The dashboard's HTTP server: uvicorn in a thread with its own event loop, as the SMTP listener runs.

Starlette and uvicorn are a small, well-kept ASGI pair: the pages are plain functions run in
Starlette's thread pool (the database calls block), uvicorn serves HTTP/1.1 with TLS when
`[web] tls_cert`/`tls_key` are set, and neither brings a framework's worth of machinery the
dashboard would not use. The server is started by `helpdesk serve` when `[web] listen` is set.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

import uvicorn

from helpdesk.app import App
from helpdesk.web.app import Dashboard, build
from models.base import utcnow
from models.db import schema_is_current

log = logging.getLogger("helpdesk.web")
START_TIMEOUT = 15.0


def dashboard_of(app: App, *, clock: Callable[[], datetime] = utcnow) -> Dashboard:
    """The dashboard over a running desk: its database, its sender, its models."""

    def ready() -> dict[str, bool]:
        checks = {"database": False, "models": True}
        try:
            checks["database"] = schema_is_current(app.engine)
        except Exception:  # any failure to reach the database is "not ready", and said so
            log.warning("READYZ the database is not reachable", exc_info=True)
        for target in ("category", "priority"):
            try:
                version = app.models.active(target)
                if version is not None:
                    app.models.load(version)
            except Exception:
                checks["models"] = False
        return checks

    return Dashboard(
        settings=app.settings,
        sessions=app.sessions,
        readers=app.readers,
        clock=clock,
        wake_sender=app.sender.wake.set,
        ready=ready,
        models_dir=app.settings.models.dir,
    )


class WebServer:
    """Serves the dashboard in a thread; `port` is the bound one (useful with port 0)."""

    def __init__(self, board: Dashboard, host: str, port: int) -> None:
        web = board.settings.web
        self.board = board
        self.config = uvicorn.Config(
            build(board),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            ssl_certfile=str(web.tls_cert) if web.tls_cert else None,
            ssl_keyfile=str(web.tls_key) if web.tls_key else None,
        )
        self.server = uvicorn.Server(self.config)
        self.thread: threading.Thread | None = None
        self.port = port

    def _serve(self) -> None:
        try:
            self.server.run()
        except (SystemExit, Exception) as exc:  # uvicorn exits when it cannot bind: say so, once
            log.error("DASHBOARD stopped: %s: %s", exc.__class__.__name__, exc)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._serve, name="helpdesk-web", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard could not listen on {self.config.host}:{self.config.port}")
            time.sleep(0.02)
        sockets = [s for server in self.server.servers for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("DASHBOARD on %s:%d", self.config.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
