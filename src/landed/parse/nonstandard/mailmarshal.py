"""Trustwave (Marshal) MailMarshal SMTP: ``Subject: Undeliverable Mail: "<original subject>"``::

    Your message:
       From:    sender@example.com
       Subject: ...

    Could not be delivered because of

    550 5.1.1 User unknown

    The following recipients were affected:
        dummyuser@example.com

    Additional Information
    ======================
    Original Sender:    <sender@example.com>
    Sender-MTA:         <10.11.12.13>
    Remote-MTA:         <10.0.0.1>
    Reporting-MTA:      <relay.example.com>

The reason is given once for all recipients listed after it.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import squeeze

__all__ = ["read"]

_RECIPIENT = re.compile(r"^[ \t]{2,}([^ \t]+@[^ \t]+)$")
_INFO = re.compile(r"^(Remote-MTA|Reporting-MTA):[ \t]+<(.+)>$")


def read(mail: Mail) -> Detected | None:
    """Read a MailMarshal bounce."""
    if not mail.subject.startswith('Undeliverable Mail: "'):
        return None
    body = mail.body
    start = body.find("Your message:")
    if start < 0 or "Could not be delivered because of" not in body:
        return None
    reason_lines: list[str] = []
    recipients: list[str] = []
    info: dict[str, str] = {}
    state = ""
    for line in body[start:].split("\n"):
        stripped = line.strip()
        if stripped == "Could not be delivered because of":
            state = "reason"
            continue
        if stripped.startswith("The following recipients were affected:"):
            state = "recipients"
            continue
        if stripped.startswith("Additional Information"):
            state = "info"
            continue
        if state == "reason" and stripped:
            reason_lines.append(stripped)
        elif state == "recipients":
            match = _RECIPIENT.match(line.rstrip())
            if match is not None:
                recipients.append(match.group(1))
            elif stripped:
                state = ""
        elif state == "info":
            match = _INFO.match(stripped)
            if match is not None:
                info[match.group(1)] = match.group(2)
    if not recipients:
        return None
    diagnosis = squeeze(" ".join(reason_lines))
    drafts = [
        Draft(
            recipient=address,
            diagnosis=diagnosis,
            remote_mta=info.get("Remote-MTA", ""),
            reporting_mta=info.get("Reporting-MTA", ""),
        )
        for address in recipients
    ]
    return Detected(dialect="mailmarshal", drafts=drafts, returned=returned_part(mail))
