"""The pure readers of provider events: mapping tables, tokens, classification."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from landed.domain import Level, Outcome
from landed.parse.providers import EventFormatError, mailgun, postmark, sendgrid, ses

TOKEN = "01jnkq3m4n5p6q7r8s9t0vwxyzk1abcdefghjkmnpqrs"


def test_the_readers_do_no_io() -> None:
    code = (
        "import json, sys\n"
        "import landed.parse.providers.ses, landed.parse.providers.sendgrid\n"
        "import landed.parse.providers.mailgun, landed.parse.providers.postmark\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    for module in ("httpx", "sqlalchemy", "fastapi", "landed.store", "socket", "pydantic"):
        assert module not in loaded, module


def test_no_provider_engagement_event_reaches_acknowledged() -> None:
    tables = [
        *sendgrid.EVENTS.values(),
        *mailgun.EVENTS.values(),
        *postmark.RECORDS.values(),
        *ses.EVENTS.values(),
        *((level, outcome) for level, outcome, _ in postmark.BOUNCE_TYPES.values()),
    ]
    assert all(level is not Level.ACKNOWLEDGED for level, _ in tables)
    for delivered in (
        sendgrid.EVENTS["delivered"],
        mailgun.EVENTS[("delivered", "")],
        postmark.RECORDS["Delivery"],
        ses.EVENTS["Delivery"],
    ):
        assert delivered == (Level.ACCEPTED, None)


@pytest.mark.parametrize(
    ("kind", "block", "expected"),
    [
        ("Send", {}, (Level.SUBMITTED, None)),
        ("Reject", {"reason": "Bad content"}, (None, Outcome.REJECTED)),
        ("Complaint", {"complainedRecipients": [{"emailAddress": "b@x.test"}],
                       "complaintFeedbackType": "abuse"}, (Level.DELIVERED, Outcome.COMPLAINED)),
        ("DeliveryDelay", {"delayType": "MailboxFull", "delayedRecipients": [
            {"emailAddress": "b@x.test", "status": "4.2.2",
             "diagnosticCode": "smtp; 452 4.2.2 Mailbox full"}]},
         (Level.SUBMITTED, Outcome.DEFERRED)),
        ("Open", {"userAgent": "Mozilla/5.0", "ipAddress": "192.0.2.1"}, (Level.SEEN, None)),
        ("Click", {"link": "https://x.test/"}, (Level.SEEN, None)),
        ("Brand New Thing", {}, (None, None)),
    ],
)  # fmt: skip
def test_ses_event_types(kind: str, block: dict[str, object], expected: object) -> None:
    name = {"DeliveryDelay": "deliveryDelay", "Brand New Thing": "x"}.get(kind, kind.lower())
    body = {
        "eventType": kind,
        "mail": {
            "messageId": "m1",
            "destination": ['"B" <b@x.test>'],
            "commonHeaders": {"messageId": f"<{TOKEN}@corp.test>"},
        },
        name: block,
    }
    [event] = ses.read(json.dumps(body), "sns-1")
    assert (event.level, event.outcome) == expected
    assert event.recipient == "b@x.test"
    # No tag and no header: the token comes from our Message-ID.
    assert event.token == TOKEN
    assert event.provider_reported is (kind in ("Open", "Click"))
    if kind == "DeliveryDelay":
        assert (event.status, event.reason, event.hard) == ("4.2.2", "mailboxfull", False)


def test_sendgrid_dropped_and_unsubscribe() -> None:
    events = sendgrid.read(
        json.dumps([
            {"event": "dropped", "email": "A@X.test", "reason": "Bounced Address",
             "sg_event_id": "e1", "landed_token": TOKEN.upper(), "timestamp": 1772366400},
            {"event": "unsubscribe", "email": "a@x.test", "timestamp": "1772366401"},
        ]).encode()
    )  # fmt: skip
    assert [(e.level, e.outcome) for e in events] == [(None, Outcome.REJECTED), (None, None)]
    assert events[0].token == TOKEN and events[0].recipient == "a@x.test"
    assert events[1].token is None and len(events[1].event_id) == 64  # content hash
    assert events[1].observed_at is not None and events[1].observed_at.year == 2026


@pytest.mark.parametrize("body", [b"{}", b"not json", b"[1]"])
def test_sendgrid_malformed_bodies(body: bytes) -> None:
    with pytest.raises(EventFormatError):
        sendgrid.read(body)


def test_mailgun_suppressed_failure_is_a_rejection_and_an_id_is_required() -> None:
    base = {"id": "e1", "event": "failed", "severity": "permanent", "recipient": "a@x.test",
            "reason": "suppress-bounce", "user-variables": {"landed_token": TOKEN}}  # fmt: skip
    [event] = mailgun.read({"event-data": base})
    assert (event.level, event.outcome, event.token) == (None, Outcome.REJECTED, TOKEN)
    with pytest.raises(EventFormatError):
        mailgun.read({"event-data": {"event": "delivered"}})
    with pytest.raises(EventFormatError):
        mailgun.read({"signature": {}})


@pytest.mark.parametrize(
    ("bounce_type", "expected"),
    [
        ("Transient", (Level.SUBMITTED, Outcome.DEFERRED)),
        ("SoftBounce", (None, Outcome.BOUNCED)),
        ("AutoResponder", (Level.DELIVERED, None)),
        ("ManuallyDeactivated", (None, Outcome.REJECTED)),
        ("SomethingNew", (None, Outcome.BOUNCED)),
    ],
)
def test_postmark_bounce_types(bounce_type: str, expected: object) -> None:
    [event] = postmark.read(
        {"RecordType": "Bounce", "ID": 7, "Type": bounce_type, "Email": "a@x.test",
         "Details": "smtp;452 4.2.2 mailbox full", "Metadata": {"landed_token": TOKEN}}
    )  # fmt: skip
    assert (event.level, event.outcome) == expected
    assert event.event_id == "Bounce:7" and event.token == TOKEN
