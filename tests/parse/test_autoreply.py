"""RFC 3834 auto-replies: headers and localized out-of-office subjects."""

from __future__ import annotations

import pytest

from landed.parse import Kind, parse


def message(subject: str, *headers: str, sender: str = "Kijitora <kijitora@example.org>") -> bytes:
    lines = [f"From: {sender}", "To: alerts@example.com", f"Subject: {subject}", *headers]
    body = "I am out of the office until Monday and will reply when I am back."
    return ("\n".join(lines) + "\n\n" + body + "\n").encode()


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "X-Autoreply: yes",
        "Precedence: auto_reply",
        "X-Apple-Action: VACATION",
    ],
)
def test_autoreply_headers(header: str) -> None:
    report = parse(message("Re: [INC-1234] Database down", header))
    assert report.kind is Kind.AUTOREPLY
    (reply,) = report.recipients
    assert (reply.recipient, reply.reason, reply.hard) == ("kijitora@example.org", "vacation", None)


def test_exchange_out_of_office_headers() -> None:
    raw = message(
        "Automatic reply: [INC-1234] Database down",
        "X-Auto-Response-Suppress: All",
        "X-MS-Exchange-Inbox-Rules-Loop: kijitora@example.org",
    )
    assert parse(raw).kind is Kind.AUTOREPLY


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: Database down",  # Exchange / Outlook, English
        "Automatische Antwort: Database down",  # German
        "Réponse automatique : Database down",  # French
        "Respuesta automática: Database down",  # Spanish
        "Risposta automatica: Database down",  # Italian
        "Automatisch antwoord: Database down",  # Dutch
        "Resposta automática: Database down",  # Portuguese
        "Autosvar: Database down",  # Swedish / Danish / Norwegian
        "Automatyczna odpowiedź: Database down",  # Polish
        "Автоматический ответ: Database down",  # Russian
        "自動応答: Database down",  # Japanese
        "自动回复: Database down",  # Chinese
        "Auto reply: Database down",  # Apple iCloud
        "Out of Office: Database down",  # Gmail users, Outlook rules
        "Abwesenheitsnotiz: Database down",  # German Outlook
    ],
)
def test_localized_subjects(subject: str) -> None:
    encoded = subject if subject.isascii() else "=?UTF-8?B?" + _b64(subject) + "?="
    report = parse(message(encoded))
    assert report.kind is Kind.AUTOREPLY, subject
    assert report.recipients[0].reason == "vacation"


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def test_raw_utf8_subject() -> None:
    assert parse(message("Réponse automatique : test")).kind is Kind.AUTOREPLY


def test_bounce_with_auto_submitted_is_not_an_autoreply() -> None:
    raw = message(
        "Undelivered Mail Returned to Sender",
        "Auto-Submitted: auto-replied",
        sender="MAILER-DAEMON@example.org (Mail Delivery System)",
    )
    assert parse(raw).kind is not Kind.AUTOREPLY


def test_retired_mailbox_autoreply_is_a_bounce() -> None:
    raw = (
        b"From: <noreply@example.com>\nTo: alerts@example.com\nSubject: Re: test\n"
        b"Auto-Submitted: auto-replied\n\n"
        b"This email inbox kijitora@example.com is no longer in use. Please contact someone else.\n"
    )
    report = parse(raw)
    assert report.kind is Kind.BOUNCE
    assert report.recipients[0].reason == "suspend"
