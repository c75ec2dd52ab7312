"""Replies and read receipts, when a policy asks for them: the headers go out, and what
comes back through the real inbound listener lands on the right rung of the ladder."""

from __future__ import annotations

import random
import smtplib
import threading
from collections.abc import Iterator

import pytest

from landed.client import Client
from landed.clock import FixedClock
from landed.config import RelayURL, Settings
from landed.inbound.smtpd import BounceHandler, InboundServer
from landed.sender import Sender
from landed.store import Database
from landed.transport.smtp import SMTPRelay
from tests.relay import TestRelay


@pytest.fixture
def world(
    settings: Settings, clock: FixedClock
) -> Iterator[tuple[Client, Sender, TestRelay, InboundServer, threading.Semaphore]]:
    policies = Settings(
        policies=[
            {
                "name": "ask",
                "required": "acknowledged",
                "deadline": "1h",
                "request_reply": True,
                "request_mdn": True,
            }
        ]
    ).policies
    with TestRelay() as relay:
        s = settings.model_copy(update={"relay_url": relay.url(), "policies": policies})
        db = Database(s.database_url)
        client = Client(s, clock=clock, database=db)
        sender = Sender(db, s, SMTPRelay(RelayURL(relay.url())), clock=clock, rng=random.Random(1))
        done = threading.Semaphore(0)
        handler = BounceHandler(
            db, s.keyring(), {"bounce.test"}, clock=clock, on_ingested=lambda _: done.release()
        )
        server = InboundServer(handler, "127.0.0.1", 0)
        server.start()
        yield client, sender, relay, server, done
        server.stop()
        sender.transport.close()
        db.dispose()


def deliver(server: InboundServer, rcpt: str, raw: bytes, mail_from: str = "bob@corp.test") -> None:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
        smtp.sendmail(mail_from, [rcpt], raw)


def test_reply_and_read_receipt_headers_go_out(world) -> None:  # type: ignore[no-untyped-def]
    client, sender, relay, _, _ = world
    (delivery_id,) = client.notify(
        topic="APR-1", cls="approval", to=["bob@corp.test"], subject="Approve?", text="t"
    )
    sender.run_once()
    (got,) = relay.received
    (view,) = client.status(delivery_id)
    assert got.message["Reply-To"] == f"reply+{view.token}@bounce.test"
    assert got.message["Disposition-Notification-To"] == f"bounces+{view.token}@bounce.test"


def test_a_human_reply_acknowledges_an_auto_reply_only_delivers(world) -> None:  # type: ignore[no-untyped-def]
    client, sender, _, server, done = world
    human, auto = client.notify(
        topic="APR-2",
        cls="approval",
        to=["bob@corp.test", "carol@corp.test"],
        subject="Approve?",
        text="t",
    )
    sender.run_once()
    (h,) = client.status(human)
    (a,) = client.status(auto)
    deliver(
        server,
        f"reply+{h.token}@bounce.test",
        (
            f"From: Bob <bob@corp.test>\r\nTo: reply+{h.token}@bounce.test\r\n"
            "Subject: Re: [APR-2] Approve?\r\n"
            f"In-Reply-To: {h.message_id}\r\nMessage-ID: <r1@corp.test>\r\n\r\nApproved.\r\n"
        ).encode(),
    )
    deliver(
        server,
        f"reply+{a.token}@bounce.test",
        (
            f"From: Carol <carol@corp.test>\r\nTo: reply+{a.token}@bounce.test\r\n"
            "Subject: Automatic reply: [APR-2] Approve?\r\nAuto-Submitted: auto-replied\r\n"
            "Message-ID: <r2@corp.test>\r\n\r\nI am out of the office until Monday.\r\n"
        ).encode(),
        mail_from="",
    )
    assert done.acquire(timeout=10) and done.acquire(timeout=10)
    (h,) = client.status(human)
    (a,) = client.status(auto)
    assert h.level == "acknowledged" and h.evidence[-1].source == "reply"
    assert a.level == "delivered" and a.evidence[-1].source == "autoreply"


def test_a_displayed_mdn_is_seen(world) -> None:  # type: ignore[no-untyped-def]
    client, sender, _, server, done = world
    (delivery_id,) = client.notify(
        topic="APR-3", cls="approval", to=["bob@corp.test"], subject="s", text="t"
    )
    sender.run_once()
    (v,) = client.status(delivery_id)
    mdn = (
        f"From: bob@corp.test\r\nTo: bounces+{v.token}@bounce.test\r\nSubject: Read: s\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n"
        "--B\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: mail.corp.test; Thunderbird\r\n"
        "Final-Recipient: rfc822;bob@corp.test\r\n"
        f"Original-Message-ID: {v.message_id}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n"
        "--B--\r\n"
    ).encode()
    deliver(server, f"bounces+{v.token}@bounce.test", mdn, mail_from="")
    assert done.acquire(timeout=10)
    (v,) = client.status(delivery_id)
    assert v.level == "seen" and v.evidence[-1].source == "mdn"
