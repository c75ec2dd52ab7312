"""landed through a real Postfix: the DSNs it sends come back and become evidence.

Each test records a notification, sends it with landed's sender through the
test Postfix (``tests/e2e/conftest.py``), and waits for Postfix's DSN to reach
landed: over SMTP at landed's inbound listener (``bounces+TOKEN@bounce.test``),
or, in the IMAP variant, in the ``bounces`` mailbox that Dovecot serves.
Timings measured with these settings are in ``docs/e2e.md``.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import time
from typing import Any

import pytest

from landed.config import ImapURL
from landed.inbound.imap import ImapPoller
from landed.parse import parse
from tests.e2e.conftest import SLOW_REPLY, World
from tests.e2e.harness import USERS

pytestmark = pytest.mark.slow


def _dsn(evidence: Any) -> bool:
    return bool(evidence.source == "dsn")


def test_existing_local_user_gives_delivered(world: World) -> None:
    ledger = world.smtp
    delivery_id = ledger.send("alice@corp.test")
    view, evidence, _ = ledger.wait_for(
        delivery_id, _dsn, label="delivered (alice@corp.test, local)"
    )
    assert evidence.level == "delivered" and evidence.outcome is None
    assert evidence.status == "2.0.0"
    assert view.level == "delivered" and view.outcome is None
    # The message itself is in alice's Maildir, with our Message-ID.
    inbox = [p.read_bytes() for p in (world.mail.maildir("alice") / "new").iterdir()]
    assert any(view.message_id.encode() in message for message in inbox)
    channel, raw = ledger.inbound_raw(delivery_id, evidence.id)
    assert channel == "smtp"
    report = parse(raw)
    assert report.envid == view.token, "ENVID came back in Original-Envelope-Id"
    assert report.original_message_id.strip("<>") == view.message_id.strip("<>")
    (rcpt,) = report.recipients
    assert rcpt.action == "delivered"


def test_unknown_local_user_gives_bounced_userunknown(world: World) -> None:
    ledger = world.smtp
    delivery_id = ledger.send("nosuchuser@corp.test")
    view, evidence, _ = ledger.wait_for(
        delivery_id, _dsn, label="bounced 5.1.1 (nosuchuser@corp.test, local)"
    )
    assert evidence.outcome == "bounced" and evidence.level is None
    assert evidence.status == "5.1.1"
    assert "userunknown" in (evidence.detail or "")
    assert view.outcome == "bounced" and view.level == "submitted"
    _, raw = ledger.inbound_raw(delivery_id, evidence.id)
    (rcpt,) = parse(raw).recipients
    assert rcpt.action == "failed" and rcpt.status == "5.1.1"
    assert rcpt.reason == "userunknown" and rcpt.hard is True
    assert "unknown user" in rcpt.diagnostic


def test_relayed_to_a_server_without_dsn_gives_accepted(world: World) -> None:
    ledger = world.smtp
    delivery_id = ledger.send("x@relay.test")
    view, evidence, _ = ledger.wait_for(
        delivery_id, _dsn, label="accepted (relayed to relay.test, no DSN there)"
    )
    assert evidence.level == "accepted" and evidence.outcome is None
    assert evidence.status == "2.0.0"
    assert view.level == "accepted" and view.outcome is None
    # The sink got the message without DSN parameters (it did not advertise DSN).
    (got,) = [r for r in world.relay_sink.received if r.rcpt_tos == ["x@relay.test"]]
    assert got.message["Message-ID"] == view.message_id
    assert not any(p.startswith("NOTIFY=") for p in got.rcpt_options[0])
    _, raw = ledger.inbound_raw(delivery_id, evidence.id)
    (rcpt,) = parse(raw).recipients
    assert rcpt.action == "relayed"
    assert rcpt.remote_mta, "Postfix names the server it relayed to"


def test_deferring_domain_gives_deferred_from_the_delay_dsn(world: World) -> None:
    ledger = world.smtp
    delivery_id = ledger.send("y@slow.test")
    view, evidence, _ = ledger.wait_for(delivery_id, _dsn, label="deferred (delay DSN, slow.test)")
    assert evidence.outcome == "deferred" and evidence.level == "submitted"
    assert evidence.status == "4.7.1"
    assert view.outcome == "deferred" and view.level == "submitted"
    _, raw = ledger.inbound_raw(delivery_id, evidence.id)
    (rcpt,) = parse(raw).recipients
    assert rcpt.action == "delayed"
    assert SLOW_REPLY.split(" ", 2)[2] in rcpt.diagnostic


def test_queue_lifetime_expiry_gives_bounced_despite_the_4xx_status(world: World) -> None:
    # After maximal_queue_lifetime Postfix gives up with "Action: failed" and the
    # last *temporary* status: landed must go by the action, not the status class.
    ledger = world.smtp
    delivery_id = ledger.send("z@slow.test")
    ledger.wait_for(
        delivery_id,
        lambda e: _dsn(e) and e.outcome == "deferred",
        label="deferred (delay DSN, slow.test, second message)",
    )
    view, evidence, _ = ledger.wait_for(
        delivery_id,
        lambda e: _dsn(e) and e.outcome == "bounced",
        label="bounced after queue lifetime (slow.test)",
    )
    assert evidence.status == "4.7.1"
    assert view.outcome == "bounced"
    _, raw = ledger.inbound_raw(delivery_id, evidence.id)
    (rcpt,) = parse(raw).recipients
    assert rcpt.action == "failed" and rcpt.status == "4.7.1"


def test_submission_with_auth_through_postfix(world: World) -> None:
    # AUTH PLAIN against a real server: Postfix checks the password with Dovecot (SASL).
    ledger = world.smtp
    sender = ledger.sender_via(world.mail.submission_url("alice"))
    delivery_id = ledger.send("alice@corp.test", sender=sender)
    view, evidence, _ = ledger.wait_for(delivery_id, _dsn, label="delivered via submission + AUTH")
    assert view.level == "delivered" and evidence.status == "2.0.0"
    # Postfix logs the login (through postlogd, so give it a moment).
    log = world.mail.log_dir / "postfix.log"
    deadline = time.monotonic() + 10
    while "sasl_username=alice" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "sasl_username=alice" in log.read_text()


def _imap_messages(world: World) -> list[email.message.EmailMessage]:
    """What is in the bounces INBOX now, read with the standard library's IMAP client."""
    with imaplib.IMAP4("127.0.0.1", world.mail.imap_port, timeout=10) as imap:
        imap.login("bounces", USERS["bounces"])
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "ALL")
        found: list[email.message.EmailMessage] = []
        for num in data[0].split():
            _, parts = imap.fetch(num, "(BODY.PEEK[])")
            item = parts[0]
            assert isinstance(item, tuple)
            found.append(email.message_from_bytes(item[1], policy=email.policy.default))
        return found


def test_bounce_mailbox_receives_the_dsn_over_imap(world: World) -> None:
    # The harness part of the IMAP variant, without landed's poller: Postfix
    # delivers the DSN for bounces+TOKEN@corp.test to the user "bounces"
    # (recipient_delimiter +), and Dovecot serves it.
    ledger = world.imap
    delivery_id = ledger.send("nosuchuser@corp.test", topic="INC-IMAP-1")
    token = ledger.view(delivery_id).token
    deadline = time.monotonic() + 30
    while True:
        mine = [m for m in _imap_messages(world) if token in str(m.get("Delivered-To", ""))]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine, f"no DSN for {token} in the bounces mailbox\n{world.mail.log_tail()}"
    (msg,) = mine
    assert msg["Delivered-To"] == f"bounces+{token}@corp.test"
    (rcpt,) = parse(msg.as_bytes()).recipients
    assert rcpt.action == "failed" and rcpt.status == "5.1.1"


def test_imap_poller_reads_the_bounce_mailbox(world: World) -> None:
    # The IMAP variant: Postfix delivers the DSNs into the bounces mailbox, and
    # landed's poller reads them from Dovecot into evidence.
    ledger = world.imap
    poller = ImapPoller(
        ledger.db,
        ledger.settings.keyring(),
        ImapURL(world.mail.imap_url("bounces")),
        clock=ledger.client.clock,
    )
    try:
        bounced = ledger.send("nosuchuser@corp.test", topic="INC-IMAP-2")
        delivered = ledger.send("alice@corp.test", topic="INC-IMAP-2")
        view, evidence, _ = ledger.wait_for(
            bounced, _dsn, poll=poller.poll_once, label="bounced 5.1.1 via IMAP poller"
        )
        assert view.outcome == "bounced" and evidence.status == "5.1.1"
        assert evidence.route == "imap"
        assert "userunknown" in (evidence.detail or "")
        view, evidence, _ = ledger.wait_for(
            delivered, _dsn, poll=poller.poll_once, label="delivered via IMAP poller"
        )
        assert view.level == "delivered" and evidence.status == "2.0.0"
        channel, _ = ledger.inbound_raw(delivered, evidence.id)
        assert channel == "imap"
        # Read messages were moved out of INBOX into the processed folder.
        assert poller.poll_once() == 0
        tokens = {ledger.view(d).token for d in (bounced, delivered)}
        left = [str(m["Delivered-To"]) for m in _imap_messages(world)]
        assert not [to for to in left if any(token in to for token in tokens)]
    finally:
        poller.close()
