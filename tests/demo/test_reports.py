"""What the sandbox sends back reads as what it means: the project's own parser
and ingest classification are the check (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from landed.compose import OutgoingMessage, compose, parse_mailbox
from landed.compose.links import TrackingLinks
from landed.demo.reports import Received, Status, delivery_status, out_of_office
from landed.demo.sandbox import ack_link, decode_xtext, read_form
from landed.demo.world import Behaviour, behaviour_for
from landed.domain import EvidenceSource, Level, Outcome
from landed.ingest import classify
from landed.parse import Kind, parse
from landed.tokens import Keyring, new_id, topic_root_id

KEYRING = Keyring("k1", {"k1": b"0123456789abcdef0123456789abcdef"})
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def received(rcpt: str = "bob@corp.test", **kwargs: object) -> tuple[Received, str]:
    delivery_id = new_id()
    token = KEYRING.sign(delivery_id)
    data = compose(
        OutgoingMessage(
            sender=parse_mailbox("Alerts <alerts@corp.test>", "from"),
            recipient=parse_mailbox(rcpt, "to"),
            subject="Database down",
            text="db-3 is not answering.",
            topic_key="INC-1",
            topic_root=topic_root_id("INC-1", "corp.test"),
            delivery_id=delivery_id,
            token=token,
            message_id_domain="corp.test",
            seq=1,
            date=NOW,
            links=TrackingLinks("http://127.0.0.1:8025", token, KEYRING),
        )
    )
    values: dict[str, object] = {
        "mail_from": f"bounces+{token}@bounce.corp.test",
        "rcpt": rcpt,
        "data": data,
        "arrived": NOW,
        "queue_id": "4F3A2B1C9D",
        "envid": token,
        "orcpt": f"rfc822;{rcpt}",
        "notify": frozenset({"SUCCESS", "FAILURE", "DELAY"}),
        "ret": "HDRS",
    }
    values.update(kwargs)
    return Received(**values), token  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "kind", "level", "outcome", "reason"),
    [
        (
            Status("delivered", "2.0.0", "250 2.0.0 <bob@corp.test> Saved", "mx.corp.test"),
            Kind.DELIVERED,
            Level.DELIVERED,
            None,
            None,
        ),
        (
            Status("relayed", "2.0.0", "250 2.0.0 Ok: queued", "mx.example.test"),
            Kind.DELIVERED,
            Level.ACCEPTED,
            None,
            None,
        ),
        (
            Status(
                "failed",
                "5.1.1",
                "550 5.1.1 <bob@corp.test>: Recipient address rejected: User unknown",
                "mx.corp.test",
            ),
            Kind.BOUNCE,
            None,
            Outcome.BOUNCED,
            "userunknown",
        ),
        (
            Status("failed", "5.2.2", "552 5.2.2 <bob@corp.test>: Mailbox full", "mx.corp.test"),
            Kind.BOUNCE,
            None,
            Outcome.BOUNCED,
            "mailboxfull",
        ),
        (
            Status("delayed", "4.4.1", "421 4.4.1 mx.example.test: Connection timed out"),
            Kind.DELAY,
            Level.SUBMITTED,
            Outcome.DEFERRED,
            None,
        ),
    ],
)
def test_dsn_parses_as_what_it_says(
    status: Status, kind: Kind, level: Level | None, outcome: Outcome | None, reason: str | None
) -> None:
    got, token = received()
    raw = delivery_status(got, status, now=NOW, message_id="<r1@relay.corp.test>")
    assert b"report-type=delivery-status" in raw
    report = parse(raw, envelope_rcpt=got.mail_from)
    assert report.kind is kind
    assert report.envid == token
    (rcpt,) = report.recipients
    assert (rcpt.recipient, rcpt.original_recipient) == ("bob@corp.test", "bob@corp.test")
    assert (rcpt.action, rcpt.status) == (status.action, status.status)
    if reason is not None:
        assert rcpt.reason == reason
        assert rcpt.hard is (reason == "userunknown")
    # Every place landed looks for its token is there: ENVID, Message-ID, our header.
    assert {t.where for t in report.tokens if t.value == token} >= {
        "envid",
        "message-id",
        "header",
    }
    assert classify(report, rcpt, standard=True) == (EvidenceSource.DSN, level, outcome)


def test_failure_with_ret_full_returns_the_whole_message() -> None:
    got, _ = received(ret="FULL")
    raw = delivery_status(
        got, Status("failed", "5.1.1", "550 5.1.1 unknown"), now=NOW, message_id="<r@x>"
    )
    assert b"Content-Type: message/rfc822" in raw
    assert b"db-3 is not answering." in raw
    headers_only = delivery_status(
        received()[0], Status("failed", "5.1.1", "550 5.1.1 unknown"), now=NOW, message_id="<r@x>"
    )
    assert b"text/rfc822-headers" in headers_only
    assert b"db-3 is not answering." not in headers_only


def test_dsn_is_addressed_to_the_envelope_sender_and_never_auto_answered() -> None:
    got, token = received()
    raw = delivery_status(got, Status("delivered", "2.0.0"), now=NOW, message_id="<r@x>")
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert f"To: bounces+{token}@bounce.corp.test" in head
    assert "Auto-Submitted: auto-replied" in head
    assert "\n" not in raw.decode().replace("\r\n", "")  # CRLF only


def test_dsn_without_envid_or_orcpt_leaves_those_fields_out() -> None:
    got, _ = received(envid=None, orcpt=None)
    raw = delivery_status(got, Status("delivered", "2.0.0"), now=NOW, message_id="<r@x>")
    assert b"Original-Envelope-Id" not in raw
    assert b"Original-Recipient" not in raw
    report = parse(raw, envelope_rcpt=got.mail_from)
    assert report.kind is Kind.DELIVERED


def test_out_of_office_reads_as_an_autoreply_proving_delivery() -> None:
    got, token = received("carol@example.test")
    raw = out_of_office(got, name="Carol", until="Monday", now=NOW, message_id="<ooo@example>")
    report = parse(raw, envelope_rcpt=got.mail_from)
    assert report.kind is Kind.AUTOREPLY
    (rcpt,) = report.recipients
    assert rcpt.recipient == "carol@example.test"
    assert classify(report, rcpt) == (EvidenceSource.AUTOREPLY, Level.DELIVERED, None)
    text = raw.decode()
    assert f"In-Reply-To: <{token}@corp.test>" in text
    assert "Subject: Auto: [INC-1] Database down" in text


@pytest.mark.parametrize(
    ("notify", "kind", "wanted"),
    [
        (frozenset(), "SUCCESS", False),  # RFC 3461 §4.1: no NOTIFY, no success DSN
        (frozenset(), "FAILURE", True),
        (frozenset({"NEVER"}), "FAILURE", False),
        (frozenset({"SUCCESS", "FAILURE"}), "DELAY", False),
        (frozenset({"SUCCESS", "FAILURE", "DELAY"}), "SUCCESS", True),
    ],
)
def test_only_the_dsns_asked_for(notify: frozenset[str], kind: str, wanted: bool) -> None:
    assert received(notify=notify)[0].wants(kind) is wanted


def test_the_ack_link_is_read_from_the_message_a_person_sees() -> None:
    got, token = received()
    assert ack_link(got.data) == f"http://127.0.0.1:8025/t/ack/{token}"
    assert ack_link(b"Subject: x\r\n\r\nno link here\r\n") is None


def test_read_form_sends_what_a_browser_would() -> None:
    page = """<html><form method="get" action="/search"><input name="q"></form>
    <form method="post" action="/t/ack/abc"><input type="hidden" name="csrf" value="x1">
    <input type="checkbox" name="all" value="1">
    <input type="checkbox" name="mine" value="y" checked>
    <button name="go" value="yes">Confirm</button></form>"""
    assert read_form(page) == ("/t/ack/abc", {"csrf": "x1", "mine": "y", "go": "yes"})
    assert read_form("<p>nothing</p>") == (None, {})


def test_xtext_is_decoded() -> None:
    assert decode_xtext("rfc822;a+2Bb@corp.test") == "rfc822;a+b@corp.test"


@pytest.mark.parametrize(
    ("address", "behaviour"),
    [
        ("alice@corp.test", Behaviour.ACKNOWLEDGE),
        ("Dave@Corp.Test", Behaviour.UNKNOWN),
        ("<frank@example.test>", Behaviour.DEFER),
        ("someone@corp.test", Behaviour.DELIVER),
        ("someone+full@example.test", Behaviour.FULL),
        ("someone+nonsense@example.test", Behaviour.DELIVER),
        ("alice@gmail.com", None),
        ("@corp.test", None),
    ],
)
def test_who_does_what(address: str, behaviour: Behaviour | None) -> None:
    assert behaviour_for(address) is behaviour
