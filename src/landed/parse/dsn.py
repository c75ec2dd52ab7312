"""RFC 3464 delivery status notifications.

A DSN is ``multipart/report; report-type=delivery-status`` with three parts: a
human explanation, a ``message/delivery-status`` part (machine-readable fields,
see :mod:`~landed.parse.fields`), and the returned message or its header
(``message/rfc822`` or ``text/rfc822-headers``). This module reads any message
that has a delivery-status part, whichever MTA made it; MTAs whose DSNs need
more (the failed SMTP command is often only in the human part) use
:func:`read_report` and add to it.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.fields import DsnFields, read_fields
from landed.parse.localagents import local_agent_reason, names_an_agent
from landed.parse.mime import Mail
from landed.parse.transcript import find_addresses, find_command

__all__ = ["DSN_TYPES", "RETURNED_TYPES", "read", "read_report", "returned_part"]

#: Part types that carry delivery-status fields (RFC 3464, RFC 6533 for SMTPUTF8).
DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
#: Part types that carry the returned message or its header.
RETURNED_TYPES = (
    "message/rfc822",
    "text/rfc822-headers",
    "message/global",
    "message/global-headers",
)


def returned_part(mail: Mail) -> str:
    """The returned message (or header) carried by ``mail``, or ``""``."""
    part = mail.first_part(*RETURNED_TYPES)
    return part.text if part is not None else ""


def human_text(mail: Mail) -> str:
    """The human-readable explanation: text parts before the DSN and returned parts."""
    pieces: list[str] = []
    for part in mail.parts:
        if part.ctype in DSN_TYPES or part.ctype in RETURNED_TYPES:
            break
        if part.ctype.startswith("text/"):
            pieces.append(part.text)
    return "\n".join(pieces)


def dsn_fields(mail: Mail) -> DsnFields | None:
    """The delivery-status fields of ``mail``, or None if it has no DSN part."""
    # Several detectors look at the fields of the same message: read them once.
    # Callers only read the result.
    if "dsn" in mail.memo:
        cached = mail.memo["dsn"]
        return cached if isinstance(cached, DsnFields) else None
    texts = [p.text for p in mail.parts if p.ctype in DSN_TYPES]
    fields = read_fields("\n\n".join(texts)) if texts else None
    mail.memo["dsn"] = fields
    return fields


_INLINE_STOP = re.compile(r"^content-type:\s*(?:message/rfc822|text/rfc822-headers)", re.I | re.M)
_INLINE_START = re.compile(r"^(?:reporting-mta|final-recipient|original-recipient):", re.I | re.M)


def inline_fields(mail: Mail) -> tuple[DsnFields, str] | None:
    """Delivery-status fields written into the text itself, and the text before them.

    Old Sendmail and Postfix reports whose MIME boundaries were lost (or never
    written) still carry the fields as plain lines.
    """
    body = mail.body
    if "inal-Recipient:" not in body and "inal-recipient:" not in body:
        return None
    stop = _INLINE_STOP.search(body)
    text = body[: stop.start()] if stop is not None else body
    start = _INLINE_START.search(text)
    if start is None:
        return None
    fields = read_fields(text[start.start() :])
    fields.records = [r for r in fields.records if r.final_recipient and (r.status or r.action)]
    if not fields.records:
        return None
    return fields, text[: start.start()]


# PowerMTA (Port25) files each failure under a bounce category, sent as
# "X-PowerMTA-BounceCategory:" in its DSNs; its own classification of the remote
# reply, made with the full SMTP session at hand (PowerMTA User Guide,
# "bounce categories"). Categories too broad to name a reason ("other",
# "bad-connection", "protocol-errors") are left to the text.
_POWERMTA_CATEGORIES = {
    "bad-domain": "hostunknown",
    "bad-mailbox": "userunknown",
    "inactive-mailbox": "suspend",
    "message-expired": "expired",
    "no-answer-from-host": "networkerror",
    "policy-related": "policyviolation",
    "quota-issues": "mailboxfull",
    "routing-errors": "systemerror",
    "spam-related": "spamdetected",
    "virus-related": "virusdetected",
}


def read_report(mail: Mail, fields: DsnFields, dialect: str, human: str | None = None) -> Detected:
    """Drafts from DSN fields, the SMTP command taken from the human part."""
    if human is None:
        human = human_text(mail)
    detected = Detected(
        dialect=dialect,
        returned=returned_part(mail),
        envid=fields.envid,
        reporting_mta=fields.reporting_mta,
    )
    for record in fields.records:
        recipient = record.final_recipient or record.original_recipient
        if record.original_recipient and "." not in recipient.rpartition("@")[2]:
            # "Final-recipient: rfc822;@smtp.example.net:kijitora@server" (Sun ONE /
            # Oracle Messaging Server after LMTP): an internal name; the address
            # the sender used is the Original-recipient.
            recipient = record.original_recipient
        if not recipient and record.final_raw.startswith("@"):
            # "Final-Recipient: RFC822; @mx.example.org" (Sendmail, local part lost):
            # the address is in the explanation.
            recipient = _address_at(human, record.final_raw) or _address_at(
                record.diagnostic, record.final_raw
            )
        if not recipient:
            continue
        draft = Draft(
            recipient=recipient,
            original_recipient=record.original_recipient,
            action=record.action,
            status=record.status,
            diagnosis=f"{record.diagnostic} {record.status_comment}".strip(),
            spec=record.diagnostic_type,
            remote_mta=record.remote_mta,
            reporting_mta=fields.reporting_mta,
            date=record.last_attempt,
            reason=_POWERMTA_CATEGORIES.get(record.category, ""),
        )
        draft.command = find_command(record.diagnostic) or _command_near(human, recipient)
        detected.drafts.append(draft)
    return detected


def _address_at(text: str, host: str) -> str:
    addresses = find_addresses(text)
    for address in addresses:
        if address.lower().endswith(host.lower()):
            return address
    return addresses[0] if len(addresses) == 1 else ""


def _command_near(human: str, recipient: str) -> str:
    """The command named in the human text's paragraph about ``recipient``."""
    if not human:
        return ""
    lowered = human.lower()
    at = lowered.find(recipient.lower())
    if at < 0:
        return find_command(human)
    end = lowered.find("\n\n", at)
    return find_command(human[at : end if end > 0 else len(human)]) or find_command(human)


# Lines of the human part that are boilerplate, not an explanation.
_BOILERPLATE = (
    "Content-", "This is a MIME", "This is a multi", "This is an auto",
    "This multi-part", "###", "***", "--",
)  # fmt: skip


def leading_text(human: str) -> str:
    """The human explanation as one line, boilerplate and section rules dropped."""
    kept: list[str] = []
    for line in human.split("\n"):
        line = line.strip()
        if not line or line.startswith(_BOILERPLATE):
            continue
        if "--- The follow" in line or "--- Transcript" in line:
            continue
        kept.append(line)
    return " ".join(kept)


def read(mail: Mail) -> Detected | None:
    """Read any message with a delivery-status part (or delivery-status fields in its text).

    With one recipient, the human explanation is part of the diagnostic: many
    MTAs put the remote server's reply there and leave Diagnostic-Code empty or
    generic ("5.0.0 (permanent failure)"). With several, it cannot be told
    which sentence is about whom, so only each recipient's own fields count.
    """
    fields = dsn_fields(mail)
    human: str | None = None
    if fields is None or not fields.records:
        inline = inline_fields(mail)
        if inline is None:
            return None
        fields, human = inline
    else:
        human = "\n".join(p.text for p in mail.parts if p.ctype == "text/plain" and p.text)
        human = human_text(mail) if not human else _before_report(mail)
    detected = read_report(mail, fields, "rfc3464", human)
    if len(detected.drafts) == 1 and human:
        draft = detected.drafts[0]
        own = " ".join(draft.diagnosis.split())
        # A remote reply in the DSN says it all, unless the explanation is a
        # local delivery agent's own message (Dovecot's "Your message to <x>
        # was automatically rejected: Not enough disk space" beside a 5.1.1).
        merge = not _is_remote_reply(own)
        if not merge:
            lowered = human.lower()
            merge = names_an_agent(lowered) and bool(
                local_agent_reason(" ".join(lowered.split()), "")
            )
        leading = leading_text(human) if merge else ""
        if leading:
            if own and own.lower() in leading.lower():
                draft.diagnosis = leading
            else:
                draft.diagnosis = f"{leading} {own}".strip()
            draft.command = find_command(own) or find_command(leading)
    return detected if detected.drafts else None


_REMOTE_REPLY = re.compile(r"^[245]\d\d[ -]+(?:[245]\.\d{1,3}\.\d{1,3}[ ]+)?\S+ \S+ \S+")


def _is_remote_reply(diagnostic: str) -> bool:
    """Whether ``diagnostic`` is a whole remote reply ("550 5.1.1 No such user here")."""
    return _REMOTE_REPLY.match(diagnostic) is not None and not diagnostic.startswith(
        ("500 ", "400 ")
    )


def _before_report(mail: Mail) -> str:
    pieces: list[str] = []
    for part in mail.parts:
        if part.ctype in DSN_TYPES or part.ctype in RETURNED_TYPES:
            break
        if part.ctype == "text/plain":
            pieces.append(part.text)
    return "\n".join(pieces)
