"""Serving the app with uvicorn until told to stop (``landed api``, ``landed up``).

The socket is bound when the server is made, so a port in use is a one-line
error before anything starts, and ``HOST:0`` gets a free port that
``address`` reports. Stopping is driven by a ``threading.Event`` like every
other long-running part of landed (``landed.cli.base.stop_on_signals`` sets it
on SIGTERM/SIGINT): uvicorn then stops accepting connections, lets requests in
flight finish (up to ``grace_seconds``) and runs the app's shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator

import uvicorn

from landed.api.app import create_app
from landed.clock import Clock
from landed.config import Settings, parse_hostport
from landed.errors import LandedError
from landed.store import Database

log = logging.getLogger("landed.api")


class _Server(uvicorn.Server):
    """uvicorn, stopped by an event instead of its own signal handlers."""

    def __init__(self, config: uvicorn.Config, stop: threading.Event) -> None:
        super().__init__(config)
        self._stop = stop

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The caller owns the signals (they set ``stop``); uvicorn's handlers would
        # re-raise SIGTERM after shutting down and so kill the process uncleanly.
        yield

    async def on_tick(self, counter: int) -> bool:
        if self._stop.is_set():
            self.should_exit = True
        return await super().on_tick(counter)


class ApiServer:
    """The HTTP app (REST API, webhooks, tracking, dashboard) on one listening socket."""

    def __init__(
        self,
        settings: Settings,
        *,
        listen: str | None = None,
        db: Database | None = None,
        clock: Clock | None = None,
        grace_seconds: int = 10,
    ) -> None:
        listen = listen or settings.api_listen
        # Port 0 (any free port, reported by ``address``) is allowed here, not in settings.
        any_port = listen.endswith(":0")
        try:
            host, port = parse_hostport(listen[:-1] + "1" if any_port else listen)
        except ValueError as exc:
            raise LandedError(f"cannot listen: {exc}") from None
        port = 0 if any_port else port
        self.app = create_app(settings, db, clock=clock)
        self.grace_seconds = grace_seconds
        self._socket = _bind(host, port)
        bound = self._socket.getsockname()
        self._address = (str(bound[0]), int(bound[1]))

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the port chosen, for ``HOST:0``)."""
        return self._address

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_until(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set, then finish the requests in flight and return."""
        config = uvicorn.Config(
            self.app,
            log_config=None,  # keep landed's logging set-up
            lifespan="on",
            timeout_graceful_shutdown=self.grace_seconds,
            server_header=False,
        )
        log.info("API listening on %s (OpenAPI docs at %s/docs)", self.url, self.url)
        _Server(config, stop).run(sockets=[self._socket])
        log.info("API stopped")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        raise LandedError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
