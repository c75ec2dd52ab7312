"""au by KDDI's EZweb mail (ezweb.ne.jp, au.com): ``Subject: Mail System Error - Returned Mail``.

The explanation is in fixed English sentences (a Japanese paragraph may
precede them)::

    The user(s) account is disabled.

    <kijitora@ezweb.ne.jp>: 550 user unknown

``X-SPASIGN: NG`` marks a message the recipient's spam filter refused.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.fields import read_fields
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_START = re.compile(r"^(?:The user\(s\) |Your message |Each of the following|<[^ ]+@[^ ]+>$)")
_RECIPIENT = re.compile(
    r"^<([^ ]+@[^ ]+)>$|^<([^ ]+@[^ ]+)>:?(.*)$|^[ \t]+Recipient: <([^ ]+@[^ ]+)>"
)
_COMMAND = re.compile(r"^[ \t]+>{3}[ \t]+([A-Z]{4})")
# EZweb's fixed sentences.
_FAILURES = (
    ("mailboxfull", ("The user(s) account is temporarily over quota",)),
    (
        "suspend",
        ("The user(s) account is disabled.", "The user(s) account is temporarily limited."),
    ),
    ("expired", ("Your message was not delivered within ",)),
    ("onhold", ("Each of the following recipients was rejected by a remote mail server",)),
)
_SENTENCES = tuple(p for _, phrases in _FAILURES for p in phrases)
_FIELD = re.compile(
    r"^(Final-Recipient|Original-Recipient|Action|Status|Remote-MTA|Diagnostic-Code):", re.I
)


def _is_ezweb(mail: Mail) -> bool:
    headers = mail.headers
    sender = headers.get("from")
    received = headers.get_all("received")
    message_id = headers.get("message-id")
    votes = sum(
        (
            "Postmaster@ezweb.ne.jp" in sender,
            "Postmaster@au.com" in sender,
            headers.get("subject") == "Mail System Error - Returned Mail",
            any("ezweb.ne.jp (EZweb Mail) with" in r for r in received),
            any(".au.com (" in r for r in received),
            message_id.endswith(".ezweb.ne.jp>"),
            message_id.endswith(".au.com>"),
        )
    )
    return votes >= 2


def read(mail: Mail) -> Detected | None:
    """Read an EZweb bounce."""
    if not _is_ezweb(mail):
        return None
    explanation, _ = cut(mail.body, ("-" * 50, "Content-Type: message/rfc822"))
    drafts: list[Draft] = []
    notes: list[list[str]] = []
    others: list[list[str]] = []
    fields: list[list[str]] = []
    started = False
    for line in explanation.split("\n"):
        if not started:
            started = _START.match(line) is not None
            if not started:
                continue
        if not line or not line.isascii():
            continue
        match = _RECIPIENT.match(line)
        if match is not None:
            address = match.group(1) or match.group(2) or match.group(4)
            if drafts and not drafts[-1].recipient:
                drafts[-1].recipient = address
            else:
                drafts.append(Draft(recipient=address))
                notes.append([])
                others.append([])
                fields.append([])
            continue
        if not drafts:
            drafts.append(Draft())
            notes.append([])
            others.append([])
            fields.append([])
        if _FIELD.match(line):
            fields[-1].append(line)
            continue
        command = _COMMAND.match(line)
        if command is not None:
            drafts[-1].command = command.group(1)
        elif any(s in line for s in _SENTENCES):
            notes[-1].append(line)
        else:
            others[-1].append(line)
    spam = mail.headers.get("x-spasign") == "NG"
    for draft, note, other, field in zip(drafts, notes, others, fields, strict=True):
        records = read_fields("\n".join(field)).records if field else []
        if records:
            draft.status = records[0].status or draft.status
        diagnosis = squeeze(" ".join(note)) or squeeze(" ".join(other))
        draft.diagnosis = diagnosis
        if spam:
            draft.reason = "filtered"
        elif draft.command == "RCPT":
            draft.reason = "userunknown"
        else:
            draft.reason = next(
                (r for r, phrases in _FAILURES if any(p in diagnosis for p in phrases)), ""
            )
        if not draft.reason and not draft.recipient.endswith(("@ezweb.ne.jp", "@au.com")):
            draft.reason = "userunknown"
    drafts = [d for d in drafts if d.recipient]
    if not drafts:
        return None
    return Detected(dialect="ezweb", drafts=drafts, returned=returned_part(mail))
