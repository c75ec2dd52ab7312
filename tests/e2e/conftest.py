"""End-to-end fixtures: landed <-> a real Postfix (and Dovecot) on loopback.

One :class:`World` (package-scoped: started once for ``tests/e2e``) holds:

- a private Postfix and Dovecot (:mod:`tests.e2e.harness`);
- ``relay.test``: an in-process sink that does **not** advertise DSN, so
  Postfix reports ``Action: relayed``;
- ``slow.test``: an in-process sink answering ``451 4.7.1`` to every RCPT,
  so Postfix defers, then reports ``Action: delayed``, then (after
  ``maximal_queue_lifetime``) ``Action: failed`` with the last 4.x.x status;
- landed's real inbound SMTP listener, where Postfix's transport map sends
  ``bounce.test``: the DSNs to ``bounces+TOKEN@bounce.test`` land there;
- two ledgers (SQLite: storage on both engines is covered by the other
  suites, and the time here is Postfix's): ``world.smtp`` sends with the
  bounce domain ``bounce.test`` (DSNs come back over SMTP), ``world.imap``
  with ``corp.test`` (DSNs go to the local user ``bounces``, read over IMAP).

Needs root and the packages postfix, dovecot-core, dovecot-imapd (``scripts/test``
installs them). Without them the tests are skipped, or fail under ``CI=true``.
Set ``LANDED_E2E_KEEP=1`` to keep the server directory (configs, logs, mail)
for a look afterwards; its path is printed.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from landed.client import Client
from landed.clock import SystemClock
from landed.config import RelayURL, Settings
from landed.inbound.smtpd import BounceHandler, InboundServer
from landed.sender import Sender
from landed.store import Database
from landed.store import tables as t
from landed.store.queries import DeliveryView, EvidenceView
from landed.transport.smtp import SMTPRelay
from tests.conftest import TEST_KEY, need_service
from tests.e2e.harness import HarnessError, MailServer, Timings, check_prerequisites, remove_tree
from tests.relay import TestRelay

#: What the slow.test sink answers to every RCPT: Postfix defers, then sends a delay DSN.
SLOW_REPLY = "451 4.7.1 Greylisted, please try again later"

#: Postfix queue timings for tests/e2e (see Timings and docs/e2e.md). With
#: delay_warning 1s the delay DSN follows the first 451 at once (~0.1 s measured).
#: queue_lifetime 12s: Postfix gives up on slow.test (final "failed" DSN) some
#: 11.5-12.3 s after it took the message: soon enough to test it, and far enough after
#: the delay DSN that the two never race. Retries every 1-2 s.
TIMINGS = Timings(
    queue_run_delay="1s",
    backoff_min="1s",
    backoff_max="2s",
    delay_warning="1s",
    queue_lifetime="12s",
)

#: How long a test waits for a DSN before it fails (measured: ~0.1-0.3 s for all but
#: the expiry, ~12.3 s for that).
DSN_TIMEOUT = 30.0


#: (what, seconds from Postfix's 250 to the evidence in the ledger), for the summary.
MEASURED: list[tuple[str, float]] = []
#: Server directories kept for a look (LANDED_E2E_KEEP=1).
KEPT: list[Path] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASURED:
        terminalreporter.section("landed e2e: DSN timings (s after Postfix took the message)")
        for what, seconds in MEASURED:
            terminalreporter.write_line(f"{seconds:6.2f}  {what}")
    for root in KEPT:
        terminalreporter.write_line(f"landed e2e: kept {root} (configs, logs, mail)")


@dataclass
class Ledger:
    """One landed ledger with a client and a sender pointed at the test Postfix."""

    name: str
    settings: Settings
    db: Database
    client: Client
    sender: Sender
    mail: MailServer
    _extra: list[Sender] = field(default_factory=list)
    #: When Postfix accepted each delivery (time.monotonic()), to time the DSNs.
    _sent_at: dict[str, float] = field(default_factory=dict)

    def send(
        self,
        to: str,
        *,
        topic: str = "INC-E2E",
        cls: str = "incident",
        sender: Sender | None = None,
    ) -> str:
        """Record one notification to ``to``, send it through Postfix; its delivery id."""
        result = self.client.notify_detailed(
            topic=topic,
            cls=cls,
            to=[to],
            subject=f"e2e test to {to}",
            text="A notification sent through a real Postfix.\n",
        )
        (delivery,) = result.deliveries
        assert (sender or self.sender).run_once() == 1
        self._sent_at[delivery.delivery_id] = time.monotonic()
        (view,) = self.client.status(delivery.delivery_id)
        assert view.level == "submitted", f"Postfix did not take it: {view.evidence}"
        return delivery.delivery_id

    def sender_via(self, relay_url: str) -> Sender:
        """Another sender on this ledger, through another relay URL (e.g. with AUTH)."""
        settings = self.settings.model_copy(update={"relay_url": relay_url})
        sender = _sender(self.db, settings)
        self._extra.append(sender)
        return sender

    def view(self, delivery_id: str) -> DeliveryView:
        (view,) = self.client.status(delivery_id)
        return view

    def wait_for(
        self,
        delivery_id: str,
        match: Callable[[EvidenceView], bool],
        *,
        timeout: float = DSN_TIMEOUT,
        poll: Callable[[], object] | None = None,
        label: str | None = None,
    ) -> tuple[DeliveryView, EvidenceView, float]:
        """Wait until the delivery has evidence that ``match``es.

        Returns the delivery as it was at that moment, the evidence, and the
        seconds since Postfix accepted the message; with ``label``, those
        seconds are also listed at the end of the test run. ``poll`` is called
        on each round (e.g. an IMAP poll).
        """
        start = time.monotonic()
        while True:
            if poll is not None:
                poll()
            view = self.view(delivery_id)
            found = [e for e in view.evidence if match(e)]
            if found:
                took = time.monotonic() - self._sent_at.get(delivery_id, start)
                if label is not None:
                    MEASURED.append((label, took))
                return view, found[0], took
            if time.monotonic() - start > timeout:
                pytest.fail(
                    f"no matching evidence after {timeout:.0f} s for {view.recipient}; "
                    f"evidence: {view.evidence}\ninbound: {self.inbound_rows()}\n"
                    f"{self.mail.log_tail()}"
                )
            time.sleep(0.1)

    def inbound_raw(self, delivery_id: str, evidence_id: int) -> tuple[str, bytes]:
        """(channel, raw bytes) of the received message behind one piece of evidence."""
        with self.db.read() as conn:
            row = conn.execute(
                select(t.inbound.c.channel, t.inbound.c.raw)
                .join(t.evidence, t.evidence.c.inbound_id == t.inbound.c.id)
                .where(t.evidence.c.id == evidence_id, t.evidence.c.delivery_id == delivery_id)
            ).one()
        return row.channel, row.raw

    def inbound_rows(self) -> list[tuple[object, ...]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(t.inbound.c.id, t.inbound.c.channel, t.inbound.c.state, t.inbound.c.detail)
            ).all()
        return [tuple(r) for r in rows]

    def close(self) -> None:
        for sender in [self.sender, *self._extra]:
            sender.transport.close()
        self.client.close()
        self.db.dispose()


@dataclass
class World:
    mail: MailServer
    relay_sink: TestRelay
    slow_sink: TestRelay
    inbound: InboundServer
    smtp: Ledger
    imap: Ledger
    root: Path


def _sender(db: Database, settings: Settings) -> Sender:
    transport = SMTPRelay(RelayURL(settings.relay_url or ""), dsn_notify=settings.dsn_notify)
    return Sender(db, settings, transport, clock=SystemClock(), owner="e2e", rng=random.Random(7))


def _ledger(name: str, root: Path, mail: MailServer, bounce_domain: str) -> Ledger:
    with pytest.MonkeyPatch.context() as mp:
        # No config file and no LANDED_* variables of the developer's: only what is set here.
        mp.setenv("LANDED_CONFIG", "/nonexistent/landed-e2e.toml")
        for var in list(os.environ):
            if var.startswith("LANDED_") and var != "LANDED_CONFIG":
                mp.delenv(var)
        settings = Settings(
            database_url=f"sqlite:///{root / f'{name}.db'}",
            from_="Alerts <alerts@corp.test>",
            bounce_domain=bounce_domain,
            signing_keys={"k1": TEST_KEY},
            relay_url=mail.relay_url(),
        )
    db = Database(settings.database_url)
    db.upgrade()
    client = Client(settings, clock=SystemClock(), database=db)
    return Ledger(name, settings, db, client, _sender(db, settings), mail)


@pytest.fixture(scope="package")
def world() -> Iterator[World]:
    """The servers and ledgers, for all of tests/e2e (stopped when the package is done)."""
    try:
        check_prerequisites()
    except HarnessError as exc:
        need_service("Postfix and Dovecot", str(exc))
    yield from _world(keep=os.environ.get("LANDED_E2E_KEEP", "") not in ("", "0"))


def _world(keep: bool) -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="landed-e2e-"))
    root.chmod(0o755)
    relay_sink = TestRelay(dsn=False, hostname="mx.relay.test").start()
    slow_sink = TestRelay(dsn=True, hostname="mx.slow.test").start()
    slow_sink.script(at="rcpt", reply=SLOW_REPLY)
    # The inbound listener needs the ledger, the ledger's relay URL needs Postfix's
    # port, and Postfix needs the listener's port: so pick Postfix's ports first.
    mail = MailServer(
        root,
        relay_port=relay_sink.port,
        slow_port=slow_sink.port,
        bounce_port=0,
        timings=TIMINGS,
    )
    smtp = _ledger("smtp", root, mail, "bounce.test")
    imap = _ledger("imap", root, mail, "corp.test")
    handler = BounceHandler(smtp.db, smtp.settings.keyring(), {"bounce.test"}, clock=SystemClock())
    inbound = InboundServer(handler, "127.0.0.1", 0, hostname="inbound.landed.test")
    inbound.start()
    mail.bounce_port = inbound.port
    try:
        try:
            mail.start()
        except HarnessError as exc:
            need_service("Postfix and Dovecot", str(exc))
        yield World(mail, relay_sink, slow_sink, inbound, smtp, imap, root)
    finally:
        mail.stop()
        inbound.stop()
        relay_sink.stop()
        slow_sink.stop()
        smtp.close()
        imap.close()
        if keep:
            KEPT.append(root)
        else:
            remove_tree(root)
