"""The inbound SMTP listener for the bounce domain (aiosmtpd).

Edge rules, after GNU Mailman's LMTP runner: refuse what cannot be ours at
``RCPT`` time, so the sending MTA reports a clear error instead of us
swallowing mail; accept what is ours only once it is stored.

- ``RCPT TO`` must be ``bounces+TOKEN@`` or ``reply+TOKEN@`` one of our
  domains, and the token must verify. Anything else gets ``550`` right there.
- At the end of ``DATA`` the raw message and its envelope are committed to
  the ledger *before* ``250`` is answered, so a crash after ``250`` loses
  nothing. If the ledger cannot be written, the answer is ``451`` and the
  sender retries.
- Reading the message into evidence (``landed.ingest``) happens afterwards,
  off the SMTP path; messages left ``pending`` by a crash are read at the next
  start.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from landed.clock import Clock, SystemClock
from landed.errors import TokenError
from landed.ingest import _TRACKED_LOCAL, ingest
from landed.store import Database
from landed.store.forwards import ReplyForwarding
from landed.store.inbound import pending_ids, store_inbound
from landed.tokens import Keyring

log = logging.getLogger("landed.inbound")

#: Default largest message accepted: DSNs with RET=FULL of a big notification fit.
DEFAULT_MAX_SIZE = 10 * 1024 * 1024


class BounceHandler:
    """aiosmtpd hooks: token check at RCPT, store-then-250 at DATA."""

    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        domains: set[str],
        *,
        clock: Clock | None = None,
        on_ingested: Callable[[int], None] | None = None,
        forwarding: ReplyForwarding | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.domains = {d.lower() for d in domains}
        self.clock = clock or SystemClock()
        self.on_ingested = on_ingested
        #: Where new human replies are forwarded (``landed.forwarder``); None: nowhere.
        self.forwarding = forwarding
        # One thread for the ledger: SQLite has one writer anyway, and it keeps
        # blocking database calls off the event loop.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landed-inbound")
        self.stored = 0
        #: Messages between the end of DATA and their reply (event loop only).
        self.in_flight = 0
        #: Set when ``in_flight`` drops to 0 while a stop is waiting for it.
        self.idle: asyncio.Event | None = None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        domain = address.rpartition("@")[2]
        match = _TRACKED_LOCAL.match(address)
        if not match or domain.lower() not in self.domains:
            return "550 5.1.1 No such recipient here"
        try:
            self.keyring.verify(match.group(2))
        except TokenError:
            log.info("refused RCPT %s from %s: token does not verify", address, session.peer)
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # decode_data=False: aiosmtpd hands over the bytes exactly as received.
        raw = bytes(envelope.original_content or b"")
        mail_from = envelope.mail_from or ""
        peer = _peer(session)
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        try:
            inbound_id = await loop.run_in_executor(
                self.executor, self._store, mail_from, list(envelope.rcpt_tos), peer, raw
            )
        except Exception:
            log.exception("could not store a message from %s", peer)
            return "451 4.3.0 Temporarily unable to store the message; try again later"
        finally:
            # aiosmtpd writes the reply in the same step as this return, before
            # anything else on the loop runs: a stop that waits for in_flight
            # to reach 0 never cuts off a 250.
            self.in_flight -= 1
            if not self.in_flight and self.idle is not None:
                self.idle.set()
        self.stored += 1
        loop.run_in_executor(self.executor, self._ingest, inbound_id)
        return f"250 2.0.0 Stored as {inbound_id}"

    def _store(self, mail_from: str, rcpt_to: list[str], peer: str, raw: bytes) -> int:
        with self.db.write() as conn:
            return store_inbound(
                conn,
                channel="smtp",
                mail_from=mail_from,
                rcpt_to=rcpt_to,
                peer=peer,
                raw=raw,
                now=self.clock.now(),
            )

    def _ingest(self, inbound_id: int) -> None:
        try:
            ingest(
                self.db,
                self.keyring,
                inbound_id,
                now=self.clock.now(),
                forwarding=self.forwarding,
            )
        except Exception:
            # The message stays "pending" and is read again at the next start.
            log.exception("could not read inbound message %d", inbound_id)
            return
        if self.on_ingested is not None:
            self.on_ingested(inbound_id)

    def ingest_pending(self) -> int:
        """Read messages a previous run stored but did not read; return how many."""
        with self.db.read() as conn:
            ids = pending_ids(conn, limit=10_000)
        for inbound_id in ids:
            self._ingest(inbound_id)
        return len(ids)

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def _peer(session: Session) -> str:
    peer: Any = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class _SMTP(SMTP):
    """aiosmtpd's session, registered while its connection is open (for a clean stop)."""

    def __init__(self, handler: Any, sessions: set[SMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)


class _Controller(Controller):
    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        #: Open sessions (event loop only).
        self.sessions: set[SMTP] = set()

    def factory(self) -> SMTP:
        return _SMTP(self.handler, self.sessions, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # aiosmtpd 1.4 cannot find the port it bound itself when asked for port 0.
        if self.port == 0:
            server = cast(asyncio.Server, self.server)
            self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class InboundServer:
    """The listener, running on its own thread (aiosmtpd's Controller)."""

    def __init__(
        self,
        handler: BounceHandler,
        host: str,
        port: int,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        tls_context: ssl.SSLContext | None = None,
        hostname: str | None = None,
    ) -> None:
        self.handler = handler
        self.controller = _Controller(
            handler,
            hostname=host,
            port=port,
            server_hostname=hostname,
            data_size_limit=max_size,
            tls_context=tls_context,
            require_starttls=False,
            # Bounces are not authenticated mail: no AUTH is offered.
            auth_require_tls=False,
            decode_data=False,
            ready_timeout=10,
        )

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def start(self) -> None:
        self.handler.ingest_pending()
        self.controller.start()
        log.info("inbound SMTP listening on %s:%d", self.controller.hostname, self.port)

    def stop(self, grace: float = 10.0) -> None:
        """Stop gracefully: refuse new connections, let messages whose DATA has
        ended be stored and answered (up to ``grace`` seconds), then close the
        sessions and finish reading what was stored.

        A client cut off before the end of its DATA got no ``250`` and sends
        again later (RFC 5321 §4.5.4.1), so nothing is lost.
        """
        loop = self.controller.loop
        if self.controller.server is not None and loop.is_running():
            drained = asyncio.run_coroutine_threadsafe(self._drain(grace), loop)
            try:
                drained.result(grace + 5)
            except Exception:
                log.exception("inbound SMTP: could not drain before stopping")
        self.controller.stop()
        self.handler.close()

    async def _drain(self, grace: float) -> None:
        server = cast(asyncio.Server, self.controller.server)
        server.close()  # no new connections; open sessions carry on
        if self.handler.in_flight:
            self.handler.idle = asyncio.Event()
            try:
                await asyncio.wait_for(self.handler.idle.wait(), grace)
            except TimeoutError:
                log.warning(
                    "inbound SMTP: %d message(s) still being stored", self.handler.in_flight
                )
        # Close what is still open: a transport's close() sends what it has
        # buffered (the last 250) first. A connection accepted just before the
        # listener closed gets its session a loop iteration later: look again
        # until none is left.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        for round_ in itertools.count():
            for session in list(self.controller.sessions):
                if session.transport is not None:
                    session.transport.close()
            await asyncio.sleep(0.01)
            if (round_ and not self.controller.sessions) or loop.time() > deadline:
                break

    def serve_until(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()
