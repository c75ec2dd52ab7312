"""landed.parse on small synthetic samples (tests/parse/samples/, written for these tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from landed.parse import Kind, parse

SAMPLES = Path(__file__).resolve().parent / "samples"
TOKEN = "01hqz8w5v4t3s2r1q0p9n8m7k6a7mx2c9d4e6f8g0h1j2"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_dsn_with_two_recipients() -> None:
    report = parse(sample("dsn-two-recipients.eml"))
    assert report.kind is Kind.BOUNCE
    assert report.dialect == "postfix"
    assert report.envid == TOKEN
    assert report.reporting_mta == "mx.sender.example"
    assert report.original_subject == "[INC-1234] Database down"
    alice, bob = report.recipients
    assert (alice.recipient, alice.action, alice.status, alice.reason, alice.hard) == (
        "alice@example.org",
        "failed",
        "5.1.1",
        "userunknown",
        True,
    )
    assert alice.original_recipient == "alice@example.org"
    assert alice.smtp_command == "RCPT"
    assert alice.remote_mta == "mx.example.org"
    assert "User unknown in local recipient table" in alice.diagnostic
    assert (bob.recipient, bob.status, bob.reason, bob.hard) == (
        "bob@example.net",
        "5.2.2",
        "mailboxfull",
        False,
    )


def test_dsn_tokens_and_where_they_were_found() -> None:
    report = parse(
        sample("dsn-two-recipients.eml"), envelope_rcpt=f"bounces+{TOKEN}@bounce.example.com"
    )
    where = {t.where for t in report.tokens if t.value == TOKEN}
    assert {"verp", "envid", "message-id", "header", "return-path"} <= where
    # Trust order: the envelope first.
    assert report.tokens[0].where == "verp"
    for recipient in report.recipients:
        assert recipient.tokens == report.tokens


def test_token_header_name_matches_compose() -> None:
    from landed.compose.message import TOKEN_HEADER as COMPOSED
    from landed.parse.attribution import TOKEN_HEADER

    assert TOKEN_HEADER == COMPOSED


def test_mdn_displayed() -> None:
    report = parse(sample("mdn-displayed.eml"))
    assert report.kind is Kind.MDN
    assert "displayed" in report.disposition
    (bob,) = report.recipients
    assert bob.recipient == "bob@example.net"
    assert bob.action == "displayed"
    assert any(t.where == "message-id" and t.value == TOKEN for t in report.tokens)


def test_arf_complaint() -> None:
    report = parse(sample("arf-abuse.eml"))
    assert report.kind is Kind.FEEDBACK
    assert report.feedback_type == "abuse"
    (carol,) = report.recipients
    assert (carol.recipient, carol.reason, carol.feedback_type, carol.hard) == (
        "carol@isp.example",
        "feedback",
        "abuse",
        None,
    )
    assert carol.status == ""
    assert {t.where for t in report.tokens} >= {"message-id", "return-path"}


def test_qmail_plain_text_bounce() -> None:
    report = parse(sample("qmail-plain.eml"))
    assert report.kind is Kind.BOUNCE
    assert report.dialect == "qmail"
    (dave,) = report.recipients
    assert (dave.recipient, dave.status, dave.reason, dave.smtp_command) == (
        "dave@example.org",
        "5.1.1",
        "userunknown",
        "RCPT",
    )
    assert any(t.where == "verp" for t in report.tokens)


def test_delay_warning() -> None:
    report = parse(sample("delay-warning.eml"))
    assert report.kind is Kind.DELAY
    (erin,) = report.recipients
    assert (erin.action, erin.status, erin.reason, erin.hard) == (
        "delayed",
        "4.4.1",
        "expired",
        False,
    )


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.eml")))
def test_samples_parse_without_the_safety_net(name: str) -> None:
    from landed.parse.pipeline import _parse

    assert _parse(sample(name), None).recipients


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.eml")))
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_line_endings_give_the_same_report(name: str, newline: bytes) -> None:
    raw = sample(name).replace(b"\r\n", b"\n")
    expected = parse(raw)
    converted = parse(raw.replace(b"\n", newline))
    assert converted == expected


def test_mixed_line_endings() -> None:
    lines = sample("dsn-two-recipients.eml").replace(b"\r\n", b"\n").split(b"\n")
    mixed = b"".join(line + (b"\r\n", b"\n", b"\r")[i % 3] for i, line in enumerate(lines))
    assert parse(mixed).recipients == parse(b"\n".join(lines)).recipients


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe",
        b"hello",
        b"\n\n\n",
        b"Subject: nothing here\n\njust a note from a person\n",
        b"Content-Type: multipart/report; boundary=x\n\n"
        b"--x\nContent-Type: message/delivery-status\n\n",
        b"Content-Type: multipart/mixed; boundary=\n\n--\n--\n",
        b"From: MAILER-DAEMON\nSubject: Undelivered Mail Returned to Sender\n\n<a@b>: ???\n",
        b"Content-Transfer-Encoding: base64\n\n!!!!not base64!!!!\n",
        bytes(range(256)) * 4,
    ],
)
def test_garbage_gives_undefined_and_no_exception(raw: bytes) -> None:
    report = parse(raw)
    if not report.recipients:
        assert report.reason == "undefined"
        assert report.kind is Kind.NOT_BOUNCE


def test_not_a_bounce() -> None:
    raw = (
        b"From: Bob <bob@example.net>\nTo: alerts@example.com\nSubject: Re: lunch\n\nSure, noon.\n"
    )
    report = parse(raw)
    assert report.kind is Kind.NOT_BOUNCE
    assert report.recipients == ()


def test_as_dict_is_json_ready() -> None:
    import json

    report = parse(sample("dsn-two-recipients.eml"))
    data = report.as_dict()
    json.dumps(data)
    assert data["kind"] == "bounce"
    assert [r["recipient"] for r in data["recipients"]] == ["alice@example.org", "bob@example.net"]
