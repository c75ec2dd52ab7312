"""Postfix (postfix.org) bounces: ``Subject: Undelivered Mail Returned to Sender``.

Postfix sends an RFC 3464 DSN, but the most precise text is in the human
part (bounce(5) templates), one paragraph per recipient::

    <kijitora@example.jp> (expanded from <neko@example.org>): host
        mx.example.jp[192.0.2.153] said: 550 5.1.1 <kijitora@example.jp>...
        User Unknown (in reply to RCPT TO command)

The paragraph names the SMTP command; the DSN's Diagnostic-Code has only the
reply, and for Postfix's own failures a type ``X-Postfix`` and a terse text.
Old Postfix (before 2.3) wrote the paragraphs only, no DSN part.
"""

from __future__ import annotations

import re

from landed.parse import dsn
from landed.parse.draft import Detected, Draft
from landed.parse.fields import DsnFields
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import squeeze
from landed.parse.statuscodes import find_reply, find_status
from landed.parse.transcript import find_command

__all__ = ["read"]

_SUBJECT = "Undelivered Mail Returned to Sender"
# bounce(5) template openings.
_OPENINGS = re.compile(
    r"^(?:This is the (?:Postfix program|mail system)|The (?:Postfix|mail system)|"
    r"The \S+ program)",
    re.M,
)
_PARAGRAPH = re.compile(r"^<([^<>\s]+@[^<>\s]+)>(?: \(expanded from <([^<>]+)>\))?:\s*(.*)$")
_IN_REPLY = re.compile(r"\(in reply to ([A-Z ]+?) command\)", re.I)


def _paragraphs(human: str) -> tuple[dict[str, tuple[str, str]], list[str], bool]:
    """recipient -> (alias, text); the commands named, in order; report unavailable."""
    found: dict[str, tuple[str, str]] = {}
    commands: list[str] = []
    unavailable = "--- Delivery report unavailable ---" in human
    current = ""
    alias = ""
    pieces: list[str] = []
    for line in human.split("\n"):
        match = _PARAGRAPH.match(line)
        if match is not None:
            if current:
                found[current] = (alias, squeeze(" ".join(pieces)))
            current, alias, pieces = match.group(1), match.group(2) or "", [match.group(3)]
        elif current and line.startswith((" ", "\t")) and line.strip():
            pieces.append(line.strip())
        elif current and not line.strip():
            found[current] = (alias, squeeze(" ".join(pieces)))
            current = ""
        for command in _IN_REPLY.findall(line):
            commands.append(find_command(f"in reply to {command} command"))
    if current:
        found[current] = (alias, squeeze(" ".join(pieces)))
    return found, commands, unavailable


def read(mail: Mail) -> Detected | None:
    """Read a Postfix bounce."""
    if mail.headers.get("subject") != _SUBJECT and "(Mail Delivery System)" not in mail.headers.get(
        "from"
    ):
        return None
    human = dsn.human_text(mail) if mail.ctype.startswith("multipart/") else mail.body
    if mail.headers.get("subject") != _SUBJECT and _OPENINGS.search(human) is None:
        return None
    fields = dsn.dsn_fields(mail)
    if fields is None or not fields.records:
        inline = dsn.inline_fields(mail)
        if inline is not None:
            fields, human = inline
    paragraphs, commands, unavailable = _paragraphs(human)
    if fields is None or not fields.records:
        fields = DsnFields()
    detected = dsn.read_report(mail, fields, "postfix", human)
    if not detected.drafts:
        # No DSN fields: the paragraphs are all there is.
        for recipient, (alias, _text) in paragraphs.items():
            detected.drafts.append(Draft(recipient=recipient, original_recipient=alias))
        if not detected.drafts and unavailable:
            detected.drafts.append(Draft(recipient=""))
        if not detected.returned and "Content-Type: message/rfc822" in mail.body:
            detected.returned = mail.body.split("Content-Type: message/rfc822", 1)[1]
    for draft in detected.drafts:
        _merge(draft, paragraphs, commands)
    detected.drafts = [d for d in detected.drafts if d.recipient]
    return detected if detected.drafts else None


def _merge(draft: Draft, paragraphs: dict[str, tuple[str, str]], commands: list[str]) -> None:
    if draft.spec == "X-POSTFIX":
        draft.spec = "SMTP"
    lowered = {k.lower(): v for k, v in paragraphs.items()}
    own = lowered.get(draft.recipient.lower()) or lowered.get(draft.original_recipient.lower())
    if own is None:
        for alias, text in paragraphs.values():
            if alias and alias.lower() in (
                draft.recipient.lower(),
                draft.original_recipient.lower(),
            ):
                own = (alias, text)
                break
    if own is None and len(paragraphs) == 1:
        own = next(iter(paragraphs.values()))
    text = own[1] if own is not None else ""
    diagnosis = squeeze(draft.diagnosis)
    if text:
        if not diagnosis or diagnosis.isdigit():
            diagnosis = text
        else:
            in_text = reply = ""
            if not draft.status or draft.status.endswith(".0.0"):
                in_text = find_status(text)
                if in_text and not in_text.endswith(".0.0"):
                    draft.status = in_text
            if not draft.reply_code or draft.reply_code.endswith("00"):
                reply = find_reply(text)
                if reply and not reply.endswith("00"):
                    draft.reply_code = reply
            if (in_text or reply) and len(text) >= len(diagnosis) and diagnosis in text:
                diagnosis = text
    draft.diagnosis = diagnosis
    draft.command = commands[0] if commands else find_command(diagnosis)
    if not draft.command and "refused to talk to me:" in diagnosis:
        draft.command = "HELO"
    if not draft.spec and "host " in diagnosis and " said:" in diagnosis:
        draft.spec = "SMTP"
