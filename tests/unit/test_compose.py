from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from landed.compose import (
    OutgoingMessage,
    Outstanding,
    compose,
    dsn_mail_options,
    dsn_rcpt_options,
    parse_mailbox,
    verp_sender,
    xtext,
)
from landed.compose.request import validate_request
from landed.errors import HeaderInjectionError, InputError
from landed.tokens import Keyring, new_id, topic_root_id

RING = Keyring("k1", {"k1": b"k" * 32})
WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make(**overrides: object) -> OutgoingMessage:
    delivery_id = new_id()
    fields: dict[str, object] = {
        "sender": parse_mailbox("Alerts <alerts@corp.test>", "from"),
        "recipient": parse_mailbox("Bob <bob@corp.test>", "to"),
        "subject": "Database down",
        "text": "db-3 is not answering.\n",
        "topic_key": "INC-1234",
        "topic_root": topic_root_id("INC-1234", "corp.test"),
        "delivery_id": delivery_id,
        "token": RING.sign(delivery_id),
        "message_id_domain": "corp.test",
        "seq": 42,
        "date": WHEN,
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)  # type: ignore[arg-type]


def parsed(raw: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def test_headers_tracking_and_threading() -> None:
    out = make()
    msg = parsed(compose(out))
    assert msg["Message-ID"] == f"<{out.token}@corp.test>"
    root = f"<{topic_root_id('INC-1234', 'corp.test')}>"
    assert msg["In-Reply-To"] == root
    assert msg["References"] == root
    assert msg["Subject"] == "[INC-1234] Database down"
    assert msg["X-Landed-Token"] == out.token
    assert msg["To"].addresses[0].addr_spec == "bob@corp.test"
    assert "Auto-Submitted" not in msg
    assert not msg.defects


def test_subject_carries_topic_once() -> None:
    msg = parsed(compose(make(subject="INC-1234 resolved")))
    assert msg["Subject"] == "INC-1234 resolved"


def test_footer_has_reference_and_sequence() -> None:
    out = make()
    body = parsed(compose(out)).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    from landed.tokens import human_ref

    assert f"Ref {human_ref(out.delivery_id)} · #42 for you · INC-1234" in body


def test_outstanding_block_lists_earlier_notifications() -> None:
    earlier = Outstanding(40, "INC-1200", "Disk full on db-3", new_id(), WHEN)
    raw = compose(make(outstanding=(earlier,), html="<p>hi</p>"))
    msg = parsed(raw)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Still unconfirmed for you" in text and "#40  INC-1200  Disk full on db-3" in text
    assert "#40 INC-1200 Disk full on db-3" in html


def test_utf8_subject_and_display_names_are_encoded() -> None:
    raw = compose(
        make(
            subject="Café — panne de base 数据库",
            recipient=parse_mailbox("Zoë Ümlaut <zoe@corp.test>", "to"),
            sender=parse_mailbox('"Ops, Team" <ops@corp.test>', "from"),
        )
    )
    assert raw.isascii(), "headers and bodies go out 7-bit clean"
    msg = parsed(raw)
    assert msg["Subject"] == "[INC-1234] Café — panne de base 数据库"
    assert msg["To"].addresses[0].display_name == "Zoë Ümlaut"
    assert msg["From"].addresses[0].display_name == "Ops, Team"
    assert msg["From"].addresses[0].addr_spec == "ops@corp.test"


def test_long_subject_is_folded() -> None:
    raw = compose(make(subject="word " * 60))
    for line in raw.split(b"\r\n"):
        if line.startswith((b"Subject", b" ")):
            assert len(line) <= 78
    assert parsed(raw)["Subject"].startswith("[INC-1234] word word")


def test_multipart_alternative_with_html() -> None:
    raw = compose(make(html="<html><body><p>db-3 down</p></body></html>"))
    msg = parsed(raw)
    assert msg.get_content_type() == "multipart/alternative"
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert html.index("#42 for you") < html.index("</body>")
    assert msg.get_body(("plain",)) is not None


def test_non_ascii_body_round_trips() -> None:
    text = "Ünïcödé body ✓\nsecond line\n.starts with a dot\n" + "x" * 200
    msg = parsed(compose(make(text=text)))
    body = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert body.startswith(text)


def test_same_input_same_bytes() -> None:
    out = make(html="<p>x</p>")
    assert compose(out) == compose(out)
    assert b"\r\n" in compose(out) and b"\n" not in compose(out).replace(b"\r\n", b"")


@pytest.mark.parametrize("bad", ["a\r\nBcc: x@evil.test", "a\nb", "a\rb", "a\x00b"])
def test_header_injection_rejected_everywhere(bad: str) -> None:
    base = {
        "topic": "INC-1",
        "cls": "incident",
        "to": ["bob@corp.test"],
        "subject": "s",
        "text": "t",
    }
    for field in ("topic", "subject"):
        with pytest.raises(HeaderInjectionError):
            validate_request(**{**base, field: bad})  # type: ignore[arg-type]
    with pytest.raises(HeaderInjectionError):
        validate_request(**{**base, "to": [f"bob@corp.test{bad}"]})  # type: ignore[arg-type]
    with pytest.raises(HeaderInjectionError):
        parse_mailbox(f"Bob{bad} <bob@corp.test>", "to")
    with pytest.raises(HeaderInjectionError):
        compose(make(subject=bad))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "bob",
        "bob@",
        "@corp.test",
        "bob@corp",
        "bo b@corp.test",
        "bob@-corp.test",
        "Bob <bob@corp.test> x",
    ],
)
def test_bad_addresses_are_rejected_clearly(bad: str) -> None:
    with pytest.raises(InputError) as info:
        parse_mailbox(bad, "to[0]")
    assert "to[0]" in str(info.value) or "empty" in str(info.value)


def test_request_validation() -> None:
    req = validate_request(
        topic=" INC-1 ",
        cls="incident",
        to=["Bob <Bob@Corp.test>", "bob@corp.test", "alice@corp.test"],
        subject="s",
        text="t",
    )
    assert req.topic == "INC-1"
    assert [m.normalized() for m in req.to] == ["bob@corp.test", "alice@corp.test"]
    with pytest.raises(InputError):
        validate_request(topic="x", cls="Bad Class", to=["a@b.test"], subject="s", text="t")
    with pytest.raises(InputError):
        validate_request(topic="x", cls="c", to=[], subject="s", text="t")
    with pytest.raises(InputError):
        validate_request(topic="x", cls="c", to="a@b.test", subject="s", text="t")


def test_verp_and_dsn_parameters() -> None:
    token = RING.sign(new_id())
    assert verp_sender(token, "bounce.test") == f"bounces+{token}@bounce.test"
    assert dsn_mail_options(token) == ["RET=HDRS", f"ENVID={token}"]
    assert dsn_rcpt_options("bob+tag@corp.test") == [
        "NOTIFY=SUCCESS,FAILURE,DELAY",
        "ORCPT=rfc822;bob+2Btag@corp.test",
    ]
    assert xtext("a=b c") == "a+3Db+20c"
