"""Run the app on uvicorn (httptools + uvloop) with the shutdown sequence the chart relies on.

SIGTERM → readiness 503 at once → keep serving for DRAIN_SECONDS (endpoints are being removed from the
Service meanwhile) → stop accepting, let in-flight requests finish within SHUTDOWN_TIMEOUT_SECONDS (then
cancel them and terminate the pi worker process) → exit 0.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn

from model_api.app import App, create_app
from model_api.settings import Settings, remove_secrets_from_environ

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM/SIGINT starts a drain instead of stopping at once."""

    def __init__(self, config: uvicorn.Config, app: App, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self.draining_since: float | None = None
        self._drain_signal: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs in the signal handler: only flags here. Not calling super() also keeps uvicorn from
        # re-raising the signal after shutdown, which would end the process with 143 instead of 0.
        if self.draining_since is None:
            self.draining_since = time.monotonic()
            self.app.state.begin_shutdown()
            self._drain_signal = sig
            if self.drain_seconds <= 0:
                self.should_exit = True
        elif self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C skips waiting for in-flight requests, as in uvicorn
        else:
            self.should_exit = True  # a second signal ends the drain early

    async def on_tick(self, counter: int) -> bool:
        if self._drain_signal is not None:
            # Logged here rather than in the signal handler, which runs inside whatever request's
            # context was interrupted and would tag the line with that request's id.
            name, self._drain_signal = signal.Signals(self._drain_signal).name, None
            log.info("received %s: readiness is 503, draining for %.1f s", name, self.drain_seconds)
        if self.draining_since is not None and time.monotonic() - self.draining_since >= self.drain_seconds:
            self.should_exit = True
        return await super().on_tick(counter)


def build_server(settings: Settings) -> DrainingServer:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        interface="asgi3",
        log_config=None,  # logging is configured by model_api.logs
        access_log=False,  # our access log has the request id and skips probes
        proxy_headers=False,  # client addresses are not used; skips a middleware on every request
        server_header=False,
        timeout_keep_alive=settings.keepalive_seconds,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )
    return DrainingServer(config, app, settings.drain_seconds)


def serve(settings: Settings) -> int:
    """Serve until stopped; 0 after a signal-initiated shutdown, 1 if the server could not start."""
    remove_secrets_from_environ()  # read into `settings` already; before any child process is started
    server = build_server(settings)
    try:
        server.run()
    finally:
        # Done at lifespan shutdown already, except after a forced exit (second Ctrl-C), which skips it:
        # without it the interpreter would wait at exit for a pi computation still running.
        server.app.state.close()
    return 0 if server.started or server.draining_since is not None else 1  # uvicorn logged why not
