"""The detector order and the assembly of a :class:`~landed.parse.report.Report`."""

from __future__ import annotations

import re
from collections.abc import Callable

from landed.parse import arf, autoreply, dsn, mdn, nonstandard
from landed.parse.attribution import DELIVERY_HEADERS, find_tokens
from landed.parse.classify import finish
from landed.parse.draft import Detected
from landed.parse.mime import (
    Mail,
    decode_header_value,
    first_fields,
    read_mail,
)
from landed.parse.report import Kind, RecipientReport, Report

__all__ = ["ORDER", "detect", "parse"]

Reader = Callable[[Mail], Detected | None]

#: Every detector, most reliable first; the first that reads the message wins.
ORDER: tuple[tuple[str, Reader], ...] = (
    ("arf", arf.read),
    ("rfc8098", mdn.read),
    *nonstandard.EARLY,
    ("rfc3464", dsn.read),
    # Auto-replies before the plain-text fallback: the fallback would read any
    # message from a daemon address; an auto-reply has headers that say what it is.
    ("rfc3834", autoreply.read),
    *nonstandard.LATE,
)

# A warning (still being retried) when the report gives no DSN Action.
# Matched against the lowercased subject.
_DELAY_SUBJECT = re.compile(
    r"delayed|delay(?:ed)? (?:mail|notification)|warning: could not send|not yet been delivered|"
    r"delivery status notification \(delay\)"
)
_FAILED_SUBJECT = re.compile(r"fail|undeliver|returned")


_FORWARDED = re.compile(r"^\s*(?:fwd?|tr|wg|rv|enc)\s*:", re.I)


def _unquote_forwarded(mail: Mail) -> None:
    """Undo "> " quoting of a bounce someone forwarded inline ("Fwd: Returned mail ...")."""
    if "\n>" not in mail.body:
        return
    mail.body = mail.body.replace("\n> ", "\n").replace("\n>\n", "\n\n")
    for part in mail.parts:
        if part.ctype.startswith("text/"):
            part.text = part.text.replace("\n> ", "\n").replace("\n>\n", "\n\n")


def _first(mail: Mail) -> Detected | None:
    for _name, reader in ORDER:
        detected = reader(mail)
        if detected is not None and detected.drafts:
            return detected
    return None


def detect(mail: Mail) -> Detected | None:
    """The first detector's reading of ``mail``, or None.

    A bounce forwarded inline is unquoted first; a bounce forwarded as an
    attachment (the first ``message/rfc822`` part) is read when the message
    itself is not one.
    """
    if _FORWARDED.match(mail.headers.get("subject")):
        _unquote_forwarded(mail)
    detected = _first(mail)
    if detected is not None:
        return detected
    embedded = mail.first_part("message/rfc822")
    if embedded is not None and len(embedded.text) >= 128:
        inner = read_mail(embedded.text.encode("latin-1", "replace"))
        if inner.headers.get("subject") or inner.parts:
            return _first(inner)
    return None


def _kind(detected: Detected, records: tuple[RecipientReport, ...], subject: str) -> Kind:
    if detected.kind:
        return Kind(detected.kind)
    reasons = {r.reason for r in records}
    if reasons == {"delivered"}:
        return Kind.DELIVERED
    actions = {r.action for r in records}
    if actions == {"delayed"}:
        return Kind.DELAY
    if actions <= {"delivered", "relayed", "expanded"} and actions:
        return Kind.DELIVERED
    lowered = subject.lower()
    if (
        "delayed" not in actions
        and _DELAY_SUBJECT.search(lowered)
        and not _FAILED_SUBJECT.search(lowered)
    ):
        return Kind.DELAY
    return Kind.BOUNCE


def _header_block(message: str) -> str:
    """The header block of a returned message, without copying its (maybe large) body."""
    start = 0
    while message.startswith("\n", start):
        start += 1
    end = message.find("\n\n", start)
    return message[start : end + 1] if end >= 0 else message[start:]


def parse(raw: bytes, envelope_rcpt: str | None = None) -> Report:
    """Read one message; never raises (unreadable input gives a ``not-bounce`` report)."""
    try:
        return _parse(raw, envelope_rcpt)
    except Exception:
        return Report(kind=Kind.NOT_BOUNCE, dialect="")


def _parse(raw: bytes, envelope_rcpt: str | None) -> Report:
    mail = read_mail(raw)
    subject = mail.subject
    sender = decode_header_value(mail.headers.get("from"))
    detected = detect(mail)
    delivered_to = tuple(v for h in DELIVERY_HEADERS for v in mail.headers.get_all(h))
    if detected is None:
        tokens = find_tokens(
            envelope_rcpt=envelope_rcpt, envid="", returned="", delivered_to=delivered_to
        )
        return Report(kind=Kind.NOT_BOUNCE, subject=subject, sender=sender, tokens=tokens)

    returned = _header_block(detected.returned)
    returned_headers = first_fields(returned, ("message-id", "subject", "from", "to"))
    tokens = find_tokens(
        envelope_rcpt=envelope_rcpt,
        envid=detected.envid,
        returned=returned,
        delivered_to=delivered_to,
        body=mail.body,
    )
    records = tuple(
        finish(draft, envid=detected.envid, tokens=tokens, reporting_mta=detected.reporting_mta)
        for draft in detected.drafts
    )
    return Report(
        kind=_kind(detected, records, subject),
        recipients=records,
        dialect=detected.dialect,
        envid=detected.envid,
        reporting_mta=detected.reporting_mta,
        subject=subject,
        sender=sender,
        original_message_id=returned_headers.get("message-id", ""),
        original_subject=decode_header_value(returned_headers.get("subject", "")),
        original_from=decode_header_value(returned_headers.get("from", "")),
        original_to=decode_header_value(returned_headers.get("to", "")),
        feedback_type=detected.extra.get("feedback_type", ""),
        disposition=detected.disposition,
        tokens=tokens,
    )
