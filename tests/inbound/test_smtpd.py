"""The inbound listener and ingest: real aiosmtpd server, real smtplib client, both engines."""

from __future__ import annotations

import smtplib
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from landed.client import Client
from landed.clock import FixedClock
from landed.config import Settings
from landed.inbound.smtpd import BounceHandler, InboundServer
from landed.ingest import ingest
from landed.store import Database
from landed.store import tables as t
from landed.store.inbound import list_inbound, store_inbound
from tests.inbound.dsn import Rcpt, postfix_dsn
from tests.relay import make_tls


class Harness:
    def __init__(self, settings: Settings, clock: FixedClock) -> None:
        self.db = Database(settings.database_url)
        self.client = Client(settings, clock=clock, database=self.db)
        self.keyring = settings.keyring()
        self.done = threading.Semaphore(0)
        self.handler = BounceHandler(
            self.db,
            self.keyring,
            {"bounce.test"},
            clock=clock,
            on_ingested=lambda _: self.done.release(),
        )
        self.server = InboundServer(self.handler, "127.0.0.1", 0, max_size=64 * 1024)

    def send(self, rcpt: str, data: bytes) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", self.server.port, timeout=10) as smtp:
            smtp.ehlo("mx.corp.test")
            smtp.mail("<>")
            code, _ = smtp.rcpt(rcpt)
            assert code == 250
            return smtp.data(data)

    def wait(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.done.acquire(timeout=10), "ingest did not finish"

    def view(self, delivery_id: str) -> object:
        (view,) = self.client.status(delivery_id)
        return view


@pytest.fixture
def harness(settings: Settings, clock: FixedClock) -> Iterator[Harness]:
    h = Harness(settings, clock)
    h.server.start()
    yield h
    h.server.stop()
    h.db.dispose()


def store(db: Database, clock: FixedClock, raw: bytes, rcpt_to: list[str] | None = None) -> int:
    """Keep a message as the IMAP poller would (no VERP envelope), or with ``rcpt_to``."""
    with db.write() as conn:
        return store_inbound(
            conn,
            channel="smtp" if rcpt_to else "imap",
            mail_from="",
            rcpt_to=rcpt_to or ["bounces@corp.test"],
            peer="test",
            raw=raw,
            now=clock.now(),
        )


def verp(token: str) -> str:
    return f"bounces+{token}@bounce.test"


def test_rcpt_is_refused_unless_a_token_verifies(harness: Harness) -> None:
    result = harness.client.notify_detailed(
        topic="INC-1", cls="c", to=["a@corp.test"], subject="s", text="t"
    )
    token = result.deliveries[0].token
    forged = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    with smtplib.SMTP("127.0.0.1", harness.server.port, timeout=10) as smtp:
        smtp.ehlo("mx.corp.test")
        smtp.mail("<>")
        assert smtp.rcpt(verp(forged))[0] == 550
        assert smtp.rcpt("postmaster@bounce.test")[0] == 550
        assert smtp.rcpt(f"bounces+{token}@elsewhere.test")[0] == 550
        assert smtp.rcpt(verp(token.upper()))[0] == 250, "case-folded tokens still verify"


def test_a_bounce_is_stored_before_250_then_becomes_evidence(harness: Harness) -> None:
    result = harness.client.notify_detailed(
        topic="INC-1", cls="c", to=["nosuchuser@corp.test"], subject="s", text="t"
    )
    d = result.deliveries[0]
    dsn = postfix_dsn(
        [
            Rcpt(
                "nosuchuser@corp.test",
                "failed",
                "5.1.1",
                "550 5.1.1 <nosuchuser@corp.test>: Recipient address rejected: User unknown",
            )
        ],
        envid=d.token,
    )
    code, reply = harness.send(verp(d.token), dsn)
    assert code == 250 and reply.startswith(b"2.0.0 Stored as ")
    inbound_id = int(reply.rsplit(b" ", 1)[1])
    with harness.db.read() as conn:
        stored = conn.execute(
            select(t.inbound.c.raw, t.inbound.c.rcpt_to).where(t.inbound.c.id == inbound_id)
        ).one()
    assert stored.raw == dsn, "kept byte for byte"
    assert stored.rcpt_to == verp(d.token)
    harness.wait()
    view = harness.view(d.delivery_id)
    assert view.outcome == "bounced"  # type: ignore[attr-defined]
    (evidence,) = view.evidence  # type: ignore[attr-defined]
    assert evidence.source == "dsn" and evidence.status == "5.1.1"
    assert "User unknown" in evidence.detail
    with harness.db.read() as conn:
        row = conn.execute(
            select(
                t.evidence.c.attribution,
                t.evidence.c.inbound_id,
                t.evidence.c.reason,
                t.evidence.c.hard,
                t.evidence.c.parser,
            )
        ).one()
    assert row.attribution == "verp" and row.inbound_id == inbound_id
    assert row.reason == "userunknown" and row.hard is True
    assert row.parser.startswith("landed.parse ")


def test_one_report_naming_several_recipients_updates_each(harness: Harness) -> None:
    result = harness.client.notify_detailed(
        topic="INC-2", cls="c", to=["alice@corp.test", "bob@corp.test"], subject="s", text="t"
    )
    alice, bob = result.deliveries
    dsn = postfix_dsn(
        [
            Rcpt("alice@corp.test", "delivered", "2.0.0", "250 2.0.0 Ok: delivered to maildir"),
            Rcpt("bob@corp.test", "failed", "5.2.2", "552 5.2.2 Mailbox full"),
        ]
    )
    harness.send(verp(alice.token), dsn)
    harness.wait()
    assert harness.view(alice.delivery_id).level == "delivered"  # type: ignore[attr-defined]
    assert harness.view(bob.delivery_id).outcome == "bounced"  # type: ignore[attr-defined]
    with harness.db.read() as conn:
        kinds = dict(conn.execute(select(t.evidence.c.delivery_id, t.evidence.c.attribution)).all())
    assert kinds == {alice.delivery_id: "verp", bob.delivery_id: "heuristic"}


def test_the_same_report_twice_is_stored_once_as_evidence(harness: Harness) -> None:
    d = harness.client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
    ).deliveries[0]
    dsn = postfix_dsn(
        [Rcpt("a@corp.test", "delayed", "4.4.1", "connect to mx: Connection timed out")]
    )
    harness.send(verp(d.token), dsn)
    harness.send(verp(d.token), dsn)
    harness.wait(2)
    view = harness.view(d.delivery_id)
    assert len(view.evidence) == 1  # type: ignore[attr-defined]
    assert view.outcome == "deferred" and view.level == "submitted"  # type: ignore[attr-defined]


def test_oversized_messages_are_refused(harness: Harness) -> None:
    d = harness.client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
    ).deliveries[0]
    code, _ = harness.send(verp(d.token), b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 1400)
    assert code == 552
    with harness.db.read() as conn:
        assert list_inbound(conn) == [], "nothing is stored from a refused message"


def test_envid_message_id_and_header_attribution(settings: Settings, clock: FixedClock) -> None:
    db = Database(settings.database_url)
    client = Client(settings, clock=clock, database=db)
    ring = settings.keyring()
    ds = client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test", "b@corp.test", "c@corp.test"], subject="s", text="t"
    ).deliveries
    cases = [
        (postfix_dsn([Rcpt("x@other.test", "failed", "5.1.1")], envid=ds[0].token), ds[0], "envid"),
        (
            postfix_dsn(
                [Rcpt("x@other.test", "failed", "5.1.1")], message_id=f"<{ds[1].token}@corp.test>"
            ),
            ds[1],
            "message-id",
        ),
        (
            postfix_dsn([Rcpt("x@other.test", "failed", "5.1.1")], landed_token=ds[2].token),
            ds[2],
            "header",
        ),
    ]
    for raw, delivery, how in cases:
        result = ingest(db, ring, store(db, clock, raw), now=clock.now())
        assert result.state == "ingested"
        assert f"by {how}" in result.detail
        (view,) = client.status(delivery.delivery_id)
        assert view.outcome == "bounced"
    db.dispose()


def test_forged_tokens_and_strangers_are_quarantined_not_dropped(
    settings: Settings, clock: FixedClock
) -> None:
    db = Database(settings.database_url)
    client = Client(settings, clock=clock, database=db)
    d = client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
    ).deliveries[0]
    forged = d.token[:-6] + "zzzzzz"
    raw = postfix_dsn([Rcpt("stranger@other.test", "failed", "5.1.1")], envid=forged)
    result = ingest(db, settings.keyring(), store(db, clock, raw), now=clock.now())
    assert result.state == "quarantined"
    assert "did not verify" in result.detail
    (view,) = client.status(d.delivery_id)
    assert view.evidence == () and view.outcome is None, "a forged token changes nothing"
    with db.read() as conn:
        (kept,) = list_inbound(conn, state="quarantined")
    assert kept.raw == raw
    db.dispose()


def test_messages_stored_before_a_crash_are_read_at_the_next_start(
    settings: Settings, clock: FixedClock
) -> None:
    db = Database(settings.database_url)
    client = Client(settings, clock=clock, database=db)
    d = client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
    ).deliveries[0]
    raw = postfix_dsn([Rcpt("a@corp.test", "delivered", "2.0.0")])
    store(db, clock, raw, rcpt_to=[verp(d.token)])
    handler = BounceHandler(db, settings.keyring(), {"bounce.test"}, clock=clock)
    server = InboundServer(handler, "127.0.0.1", 0)
    server.start()
    server.stop()
    (view,) = client.status(d.delivery_id)
    assert view.level == "delivered"
    db.dispose()


def test_starttls_is_offered_when_a_certificate_is_configured(
    settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    tls = make_tls(tmp_path)
    db = Database(settings.database_url)
    client = Client(settings, clock=clock, database=db)
    d = client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
    ).deliveries[0]
    done = threading.Semaphore(0)
    handler = BounceHandler(
        db, settings.keyring(), {"bounce.test"}, clock=clock, on_ingested=lambda _: done.release()
    )
    server = InboundServer(handler, "127.0.0.1", 0, tls_context=tls.server_context)
    server.start()
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file))
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
            smtp.ehlo("mx.corp.test")
            assert smtp.has_extn("starttls")
            smtp.starttls(context=context)
            smtp.ehlo("mx.corp.test")
            smtp.mail("<>")
            assert smtp.rcpt(verp(d.token))[0] == 250
            code, _ = smtp.data(postfix_dsn([Rcpt("a@corp.test", "delivered", "2.0.0")]))
        assert code == 250
        assert done.acquire(timeout=10)
    finally:
        server.stop()
    (view,) = client.status(d.delivery_id)
    assert view.level == "delivered"
    db.dispose()
