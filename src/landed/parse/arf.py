"""RFC 5965 abuse reports (ARF) and the complaint formats that predate it.

An ARF report is ``multipart/report; report-type=feedback-report`` with a
``message/feedback-report`` part (``Feedback-Type``, ``Original-Rcpt-To``,
``Source-IP`` ...) and the reported message or its header. Some providers
send reports without ``report-type``; the part type is enough. Microsoft's
JMRP (Outlook.com / Hotmail) is not ARF at all: ``multipart/mixed`` with the
reported message attached, the complainant in ``X-HmXmrOriginalRecipient``.
"""

from __future__ import annotations

from landed.parse.draft import Detected, Draft
from landed.parse.fields import address_of
from landed.parse.mime import Mail, parse_headers, split_header_block

__all__ = ["read"]

_REPORT_TYPES = ("message/feedback-report",)
_RETURNED = (
    "message/rfc822",
    "text/rfc822-headers",
    "text/rfc822-header",
    "message/rfc822-headers",
)


def _returned(mail: Mail) -> str:
    for part in mail.parts:
        if part.ctype in _RETURNED:
            return part.text
    return ""


def _recipients_from_returned(returned: str) -> list[str]:
    headers = parse_headers(split_header_block(returned)[0])
    found: list[str] = []
    for value in headers.get_all("to"):
        address = address_of(value)
        if address:
            found.append(address)
    return found


def _read_jmrp(mail: Mail) -> Detected | None:
    # Microsoft JMRP: the complaint is the attached message itself; the
    # complainant's address is in its X-HmXmrOriginalRecipient header.
    returned = _returned(mail)
    if "X-HmXmrOriginalRecipient:" not in returned:
        return None
    headers = parse_headers(split_header_block(returned)[0])
    recipient = address_of(headers.get("x-hmxmroriginalrecipient"))
    if not recipient:
        return None
    draft = Draft(recipient=recipient, reason="feedback", feedback_type="abuse")
    return Detected(dialect="arf", drafts=[draft], returned=returned, kind="feedback")


def read(mail: Mail) -> Detected | None:
    """Read an abuse report, or return None."""
    report = mail.first_part(*_REPORT_TYPES)
    if report is None:
        if (
            mail.ctype == "multipart/mixed"
            and mail.headers.get("from").lower().find("hotmail.com") >= 0
        ):
            return _read_jmrp(mail)
        return None
    fields = parse_headers(report.text.lstrip("\n"))
    feedback_type = fields.get("feedback-type").strip().lower() or "abuse"
    returned = _returned(mail)
    recipients = [a for a in (address_of(v) for v in fields.get_all("original-rcpt-to")) if a]
    if not recipients:
        recipients = [a for a in (address_of(v) for v in fields.get_all("removal-recipient")) if a]
    if not recipients:
        recipients = _recipients_from_returned(returned)
    detected = Detected(
        dialect="arf",
        returned=returned,
        kind="feedback",
        reporting_mta=fields.get("reporting-mta").partition(";")[2].strip(),
    )
    detected.extra["feedback_type"] = feedback_type
    original_from = fields.get("original-mail-from")
    if original_from:
        # Our envelope sender as the reporter saw it: keep it with the returned
        # header so its token (a VERP address) is found like a Return-Path.
        detected.returned = f"Original-Mail-From: {original_from}\n{returned}"
    for key in ("user-agent", "source-ip", "arrival-date", "original-mail-from", "reported-domain"):
        if key in fields:
            detected.extra[key] = fields.get(key)
    diagnosis = (
        mail.parts[0].text.strip() if mail.parts and mail.parts[0].ctype == "text/plain" else ""
    )
    for recipient in recipients or [""]:
        detected.drafts.append(
            Draft(
                recipient=recipient,
                reason="feedback",
                feedback_type=feedback_type,
                diagnosis=diagnosis[:1000],
            )
        )
    return detected
