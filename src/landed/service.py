"""``landed up``: every part of landed in one process, on threads.

The parts: the HTTP service (REST API, tracking endpoints, dashboard), the
sender worker, the inbound SMTP listener, the IMAP bounce mailbox, the
reconciler and the alert sinks. Each can also run on its own (``landed api``,
``landed worker``, ``landed inbound smtp``, ``landed inbound imap``,
``landed reconcile``), so that several hosts can share one PostgreSQL ledger;
``up`` is the single-host form. A part whose settings are missing is left out
with a log line saying what to set. If any part fails, the whole service stops
(exit status 1) rather than carry on half-working.

Stopping (SIGTERM, Ctrl-C) is graceful: every part sees the same ``stop``
event and finishes what it holds. The HTTP service stops accepting and
completes the requests in progress; the sender finishes the message in hand,
records it and gives back the rows it had not started; the inbound listener
stops accepting, lets messages being received be stored and answered, and
reads what it stored; the reconciler's tick is one transaction; the alert
dispatcher gives back the notices it had not attempted.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from landed.clock import Clock
from landed.config import Settings, parse_hostport
from landed.store import Database

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("landed.up")

#: Seconds the HTTP service waits for requests in progress when stopping.
HTTP_GRACE_SECONDS = 10


@dataclass
class Part:
    name: str
    run: Callable[[threading.Event], None]


class HttpServer:
    """The HTTP service (``landed.api.create_app``) on uvicorn, stoppable from a thread.

    The socket is bound by ``bind()`` (or at the start of ``run``), so a busy
    port is an ``OSError`` in the caller, not an exit inside uvicorn.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database | None = None,
        *,
        clock: Clock | None = None,
        access_log: bool = True,
    ) -> None:
        import uvicorn

        from landed.api import create_app

        host, port = parse_hostport(settings.api_listen)
        self.app = create_app(settings, db, clock=clock)
        self.config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            # Log through landed's own logging set-up, not uvicorn's handlers.
            log_config=None,
            access_log=access_log,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=HTTP_GRACE_SECONDS,
        )
        self.server: uvicorn.Server = uvicorn.Server(self.config)
        self.socket: socket.socket | None = None

    def bind(self) -> int:
        """Bind the listening socket (once); return its port. ``OSError`` when the
        address is taken (uvicorn's own ``bind_socket`` would exit the process)."""
        if self.socket is None:
            host, port = self.config.host, self.config.port
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                # Listen at once: a client that connects before uvicorn has
                # started (the demo prints its URL first) waits in the backlog
                # instead of being refused.
                sock.listen(self.config.backlog)
            except OSError:
                sock.close()
                raise
            self.socket = sock
            log.info("HTTP service listening on http://%s:%d", host, sock.getsockname()[1])
        return int(self.socket.getsockname()[1])

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop``; then finish the requests in progress."""
        self.bind()
        assert self.socket is not None
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                if stop.wait(0.2):
                    # uvicorn's own graceful exit: stop accepting, finish requests.
                    self.server.should_exit = True
                    return

        watcher = threading.Thread(target=watch, name="landed-http-stop", daemon=True)
        watcher.start()
        try:
            self.server.run(sockets=[self.socket])
        except SystemExit:
            # uvicorn exits when the application fails to start (lifespan).
            raise RuntimeError("the HTTP service failed to start") from None
        finally:
            done.set()
            self.socket.close()
        if not stop.is_set():
            raise RuntimeError("the HTTP service stopped by itself")


class Service:
    """The parts of landed that the settings allow, ready to run together.

    ``http=False`` leaves the HTTP service out (for callers that serve it
    themselves). More parts can be added to ``parts`` before ``run``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: bool = True,
        clock: Clock | None = None,
        access_log: bool = True,
    ) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.db.check_current()
        self.clock = clock
        self.parts: list[Part] = []
        self.failed: list[str] = []
        self.http: HttpServer | None = None
        if http:
            self.http = HttpServer(settings, self.db, clock=clock, access_log=access_log)
            self.parts.append(Part("http", self.http.run))
        self._build()

    def _build(self) -> None:
        from landed.alerts.dispatcher import Dispatcher
        from landed.forwarder import Forwarder, forward_transport, reply_forwarding
        from landed.reconcile import Reconciler

        s = self.settings
        clock = self.clock
        forwarding = reply_forwarding(s)
        if s.relay_url or s.routes:
            from landed.sender import Sender
            from landed.transport.routes import build_router

            sender = Sender(self.db, s, build_router(s), clock=clock)
            self.parts.append(Part("sender", sender.run))
        else:
            log.warning("not sending: set relay_url (LANDED_RELAY_URL) or [[routes]]")
        if s.bounce_domain:
            from landed.inbound.smtpd import BounceHandler, InboundServer

            host, port = parse_hostport(s.inbound_listen)
            handler = BounceHandler(
                self.db, s.keyring(), {s.bounce_domain}, clock=clock, forwarding=forwarding
            )
            server = InboundServer(
                handler, host, port, max_size=s.inbound_max_bytes, tls_context=s.inbound_tls()
            )
            self.parts.append(Part("inbound-smtp", server.serve_until))
        else:
            log.warning("not receiving bounces: set bounce_domain (LANDED_BOUNCE_DOMAIN)")
        if s.imap_url:
            from landed.inbound.imap import ImapPoller

            poller = ImapPoller(self.db, s.keyring(), s.imap(), clock=clock, forwarding=forwarding)
            self.parts.append(Part("inbound-imap", poller.run))
        reconciler = Reconciler(self.db, s, clock=clock)
        self.parts.append(Part("reconciler", reconciler.run))
        dispatcher = Dispatcher(self.db, s, clock=clock)
        self.parts.append(Part("alert-sinks", dispatcher.run))
        if forwarding is not None and s.relay_url:
            forwarder = Forwarder(self.db, s, forward_transport(s), clock=clock)
            self.parts.append(Part("reply-forwarder", forwarder.run))
        elif forwarding is not None:
            log.warning("replies are queued, not forwarded: set relay_url (LANDED_RELAY_URL)")

    def run(self, stop: threading.Event) -> bool:
        """Run every part until ``stop`` (or a part fails); True if none failed."""
        threads = [
            threading.Thread(target=self._guard, args=(part, stop), name=f"landed-{part.name}")
            for part in self.parts
        ]
        for thread in threads:
            thread.start()
        log.info("landed up: %s", ", ".join(p.name for p in self.parts))
        try:
            stop.wait()
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            self.db.dispose()
        return not self.failed

    def _guard(self, part: Part, stop: threading.Event) -> None:
        try:
            part.run(stop)
        except (Exception, SystemExit):
            log.exception("%s failed; stopping landed", part.name)
            self.failed.append(part.name)
            stop.set()
