"""Forwarding human replies: queued with the evidence, sent through a real relay, kept
while the relay refuses, never for an auto-reply, and nothing of the reply in our headers."""

from __future__ import annotations

import email
import random
import smtplib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from typing import cast

import pytest

from landed.client import Client
from landed.clock import FixedClock
from landed.compose.headers import parse_mailbox
from landed.config import RelayURL, Settings
from landed.errors import ConfigError
from landed.forwarder import Forwarder, forward_message, forward_transport, reply_forwarding
from landed.inbound.smtpd import BounceHandler, InboundServer
from landed.ingest import ingest
from landed.sender import Sender
from landed.service import Service
from landed.store import Database
from landed.store.forwards import HeldForward, ReplyForwarding, ReplyMaterial, pending_forwards
from landed.tokens import topic_root_id
from landed.transport.smtp import SMTPRelay
from tests.relay import TestRelay

POLICIES = [
    {"name": "ask", "classes": ["approval"], "required": "acknowledged", "deadline": "1h",
     "request_reply": True},
    {"name": "private", "classes": ["hr"], "required": "acknowledged", "deadline": "1h",
     "request_reply": True, "reply_forward_to": ""},
    {"name": "sales", "classes": ["deal"], "required": "acknowledged", "deadline": "1h",
     "request_reply": True, "reply_forward_to": "Sales Desk <desk@corp.test>"},
]  # fmt: skip


@dataclass
class World:
    settings: Settings
    db: Database
    client: Client
    sender: Sender
    relay: TestRelay
    server: InboundServer
    ingested: threading.Semaphore
    forwarder: Forwarder
    clock: FixedClock

    def notify(self, cls: str = "approval", to: str = "Bob <bob@corp.test>") -> str:
        (delivery_id,) = self.client.notify(
            topic="APR-7", cls=cls, to=[to], subject="Approve the budget?", text="Please reply."
        )
        self.sender.run_once()
        return delivery_id

    def reply(self, delivery_id: str, raw: bytes, mail_from: str = "bob@corp.test") -> None:
        (view,) = self.client.status(delivery_id)
        with smtplib.SMTP("127.0.0.1", self.server.port, timeout=10) as smtp:
            smtp.sendmail(mail_from, [f"reply+{view.token}@bounce.test"], raw)
        assert self.ingested.acquire(timeout=10), "the reply was not read"

    def pending(self) -> list[dict[str, object]]:
        with self.db.read() as conn:
            return pending_forwards(conn)


@pytest.fixture
def world(settings: Settings, clock: FixedClock) -> Iterator[World]:
    with TestRelay() as relay:
        s = settings.model_copy(
            update={
                "relay_url": relay.url(),
                "policies": Settings(policies=POLICIES).policies,
                "reply_forward_to": "Owner <owner@corp.test>",
            }
        )
        db = Database(s.database_url)
        client = Client(s, clock=clock, database=db)
        sender = Sender(db, s, SMTPRelay(RelayURL(relay.url())), clock=clock, rng=random.Random(1))
        ingested = threading.Semaphore(0)
        handler = BounceHandler(
            db,
            s.keyring(),
            {"bounce.test"},
            clock=clock,
            on_ingested=lambda _: ingested.release(),
            forwarding=reply_forwarding(s),
        )
        server = InboundServer(handler, "127.0.0.1", 0)
        server.start()
        forwarder = Forwarder(db, s, forward_transport(s), clock=clock, rng=random.Random(2))
        yield World(s, db, client, sender, relay, server, ingested, forwarder, clock)
        server.stop()
        forwarder.close()
        sender.transport.close()
        db.dispose()


def human_reply(message_id: str, subject: str = "Re: [APR-7] Approve the budget?") -> bytes:
    return (
        f"From: Bob Example <bob@corp.test>\r\nTo: reply@bounce.test\r\nSubject: {subject}\r\n"
        f"In-Reply-To: {message_id}\r\nMessage-ID: <r1@corp.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nApproved, go ahead. – Bob\r\n"
    ).encode()


def attached(forward: Message) -> bytes:
    """The bytes of the reply attached to a forward, as a receiver would take them out."""
    part = [p for p in forward.walk() if p.get_content_type() == "message/rfc822"]
    assert len(part) == 1
    payload = part[0].get_payload()
    assert isinstance(payload, list)
    return cast(Message, payload[0]).as_bytes(policy=default_policy.clone(linesep="\r\n"))


def test_a_human_reply_is_forwarded_once_with_the_reply_attached(world: World) -> None:
    delivery_id = world.notify()
    (view,) = world.client.status(delivery_id)
    raw = human_reply(view.message_id)
    world.reply(delivery_id, raw)

    (queued,) = world.pending()
    assert queued["to_address"] == "owner@corp.test" and queued["delivery_id"] == delivery_id
    (view,) = world.client.status(delivery_id)
    assert view.level == "acknowledged"

    assert world.forwarder.tick() == 1
    assert world.pending() == [], "a sent forward leaves the outbox"
    notification, forward = world.relay.received
    assert forward.mail_from == "alerts@corp.test" and forward.rcpt_tos == ["owner@corp.test"]
    assert forward.rcpt_options[0] == ["NOTIFY=FAILURE", "ORCPT=rfc822;owner@corp.test"]
    msg = email.message_from_bytes(forward.data, policy=default_policy)
    assert msg["From"] == "Alerts <alerts@corp.test>"
    assert msg["To"] == "owner@corp.test"
    assert msg["Reply-To"] == "bob@corp.test", "answering the forward answers the person"
    assert msg["Subject"] == "Fwd: Re: [APR-7] Approve the budget?"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["In-Reply-To"] == view.message_id
    root = f"<{topic_root_id('APR-7', 'corp.test')}>"
    assert msg["References"].split() == [root, view.message_id]
    assert notification.message["References"] == root, "threaded with the topic"
    assert attached(msg) == raw, "the reply travels whole, byte for byte"
    summary = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    text = cast(EmailMessage, summary).get_content()
    assert "APR-7" in text and "#1 for bob@corp.test" in text

    # Reading the same reply again adds no evidence and queues nothing.
    with world.db.read() as conn:
        (inbound_id,) = [r[0] for r in conn.exec_driver_sql("SELECT id FROM inbound")]
    again = ingest(
        world.db,
        world.settings.keyring(),
        inbound_id,
        now=world.clock.now(),
        forwarding=reply_forwarding(world.settings),
    )
    assert again.evidence == 0 and world.pending() == []


def test_auto_replies_and_policies_that_opt_out_are_not_forwarded(world: World) -> None:
    auto = world.notify()
    world.reply(
        auto,
        (
            b"From: Bob <bob@corp.test>\r\nSubject: Automatic reply: Approve the budget?\r\n"
            b"Auto-Submitted: auto-replied\r\nMessage-ID: <ooo@corp.test>\r\n\r\n"
            b"I am out of the office.\r\n"
        ),
        mail_from="",
    )
    (view,) = world.client.status(auto)
    assert view.level == "delivered" and world.pending() == []

    private = world.notify(cls="hr", to="carol@corp.test")
    (view,) = world.client.status(private)
    world.reply(private, human_reply(view.message_id), mail_from="carol@corp.test")
    (view,) = world.client.status(private)
    assert view.level == "acknowledged", "kept and acknowledged, just not forwarded"
    assert world.pending() == []

    deal = world.notify(cls="deal", to="dave@corp.test")
    (view,) = world.client.status(deal)
    world.reply(deal, human_reply(view.message_id), mail_from="dave@corp.test")
    assert [row["to_address"] for row in world.pending()] == ["desk@corp.test"]


def test_a_refusing_relay_delays_the_forward_and_loses_nothing(world: World) -> None:
    delivery_id = world.notify()
    (view,) = world.client.status(delivery_id)
    world.reply(delivery_id, human_reply(view.message_id))
    world.relay.script(at="rcpt", rcpt="owner@corp.test", reply="451 4.3.0 Try later", times=1)
    world.relay.script(at="rcpt", rcpt="owner@corp.test", reply="550 5.1.1 No such user", times=1)

    assert world.forwarder.tick() == 1
    (row,) = world.pending()
    assert row["attempts"] == 1 and "451" in str(row["last_error"])
    assert world.forwarder.tick() == 0, "not due again before its backoff"

    world.clock.advance(3600)
    assert world.forwarder.tick() == 1
    (row,) = world.pending()
    assert row["attempts"] == 2 and "550" in str(row["last_error"]), "kept after a 5xx too"

    world.clock.advance(3600)
    assert world.forwarder.tick() == 1
    assert world.pending() == []
    forwards = [r for r in world.relay.received if r.rcpt_tos == ["owner@corp.test"]]
    assert len(forwards) == 1


def test_the_relay_being_down_keeps_the_row_until_it_is_back(world: World) -> None:
    delivery_id = world.notify()
    (view,) = world.client.status(delivery_id)
    world.reply(delivery_id, human_reply(view.message_id))
    down = world.settings.model_copy(update={"relay_url": "smtp://127.0.0.1:1?starttls=off"})
    offline = Forwarder(world.db, down, forward_transport(down), clock=world.clock)
    assert offline.tick() == 1
    offline.close()
    (row,) = world.pending()
    assert row["attempts"] == 1 and row["last_error"]
    world.clock.advance(3600)
    assert world.forwarder.tick() == 1 and world.pending() == []


# --- the message, without a ledger -----------------------------------------------------


def _held(to: str = "owner@corp.test") -> HeldForward:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return HeldForward(
        id=5, inbound_id=9, delivery_id="d", to_address=to, attempts=0, created_at=at, until=at
    )


def _material(raw: bytes) -> ReplyMaterial:
    return ReplyMaterial(
        raw=raw,
        received_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        topic="INC-1",
        subject="Disk full",
        recipient="bob@corp.test",
        seq=3,
        message_id="<tok@corp.test>",
        ref="7k3q9xp2",
    )


def test_nothing_in_a_reply_can_add_a_header_to_the_forward() -> None:
    raw = (
        b"From: =?utf-8?b?RXZpbA0KQmNjOiB2aWN0aW1AeC50ZXN0?= <bob@corp.test>\r\n"
        b"Subject: =?utf-8?q?Hi=0D=0ABcc:_victim@x.test=0D=0A=0D=0Abody?=\r\n"
        b"\r\nhello\r\n"
    )
    out = forward_message(
        _held(), _material(raw), sender=parse_mailbox("landed@corp.test", "f"), id_domain="c.test"
    )
    msg = email.message_from_bytes(out, policy=default_policy)
    assert msg["Bcc"] is None
    assert msg["Subject"] == "Fwd: Hi Bcc: victim@x.test body"
    assert msg["Reply-To"] == "bob@corp.test"
    assert msg["Message-ID"] == "<fwd.5.9@c.test>"
    assert attached(msg) == raw


def test_a_reply_that_is_not_valid_as_a_message_is_attached_as_bytes() -> None:
    raw = b"Subject: long\r\n\r\n" + b"x" * 1200 + b"\r\n\x00\r\n"
    out = forward_message(
        _held(), _material(raw), sender=parse_mailbox("landed@corp.test", "f"), id_domain="c.test"
    )
    assert all(len(line) <= 998 for line in out.split(b"\r\n"))
    msg = email.message_from_bytes(out, policy=default_policy)
    (part,) = [p for p in msg.walk() if p.get_filename() == "reply.eml"]
    assert part.get_content_type() == "application/octet-stream"
    assert part.get_payload(decode=True) == raw


def test_forwarding_settings_per_policy_and_checked_at_start(settings: Settings) -> None:
    assert reply_forwarding(settings) is None
    s = settings.model_copy(update={"policies": Settings(policies=POLICIES).policies})
    rules = reply_forwarding(s)
    assert rules == ReplyForwarding(
        default=None, by_policy={"private": None, "sales": "desk@corp.test"}
    )
    assert rules.address_for("sales") == "desk@corp.test"
    assert rules.address_for("ask") is None and rules.address_for(None) is None
    with pytest.raises(ConfigError, match="reply_forward_to"):
        reply_forwarding(settings.model_copy(update={"reply_forward_to": "not an address"}))


def test_landed_up_runs_the_forwarder_when_forwarding_is_configured(settings: Settings) -> None:
    with socket.socket() as probe:  # a free port for the inbound listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    quiet = settings.model_copy(update={"inbound_listen": f"127.0.0.1:{port}"})
    stop = threading.Event()
    stop.set()  # build, start and stop every part at once
    for forward_to, expected in ((None, False), ("owner@corp.test", True)):
        service = Service(quiet.model_copy(update={"reply_forward_to": forward_to}), http=False)
        assert ("reply-forwarder" in [p.name for p in service.parts]) is expected
        assert service.run(stop)
