"""``landed up``: every part of landed in one process, on threads.

Each part can also run on its own (``landed worker``, ``landed inbound smtp``,
``landed inbound imap``, ``landed reconcile``), so that several hosts can share
one PostgreSQL ledger; ``up`` is the single-host form. A part whose settings are
missing is left out with a log line saying what to set. If any part fails, the
whole service stops (exit status 1) rather than carry on half-working.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from landed.config import Settings, parse_hostport
from landed.store import Database

log = logging.getLogger("landed.up")


@dataclass
class Part:
    name: str
    run: Callable[[threading.Event], None]


class Service:
    """The parts of landed that the settings allow, ready to run together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.db.check_current()
        self.parts: list[Part] = []
        self.failed: list[str] = []
        self._build()

    def _build(self) -> None:
        from landed.alerts.dispatcher import Dispatcher
        from landed.reconcile import Reconciler

        s = self.settings
        if s.relay_url:
            from landed.sender import Sender
            from landed.transport.smtp import SMTPRelay

            transport = SMTPRelay(s.relay(), dsn_notify=s.dsn_notify, dsn_ret=s.dsn_ret)
            sender = Sender(self.db, s, transport)
            self.parts.append(Part("sender", sender.run))
        else:
            log.warning("not sending: set relay_url (LANDED_RELAY_URL)")
        if s.bounce_domain:
            from landed.inbound.smtpd import BounceHandler, InboundServer

            host, port = parse_hostport(s.inbound_listen)
            handler = BounceHandler(self.db, s.keyring(), {s.bounce_domain})
            server = InboundServer(
                handler, host, port, max_size=s.inbound_max_bytes, tls_context=s.inbound_tls()
            )
            self.parts.append(Part("inbound-smtp", server.serve_until))
        else:
            log.warning("not receiving bounces: set bounce_domain (LANDED_BOUNCE_DOMAIN)")
        if s.imap_url:
            from landed.inbound.imap import ImapPoller

            poller = ImapPoller(self.db, s.keyring(), s.imap())
            self.parts.append(Part("inbound-imap", poller.run))
        reconciler = Reconciler(self.db, s)
        self.parts.append(Part("reconciler", reconciler.run))
        dispatcher = Dispatcher(self.db, s)
        self.parts.append(Part("alert-sinks", dispatcher.run))

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
        except Exception:
            log.exception("%s failed; stopping landed", part.name)
            self.failed.append(part.name)
            stop.set()
