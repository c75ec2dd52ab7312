"""Trend Micro InterScan Messaging Security Suite (``From: "InterScan MSS"``,
``"InterScan Notification"``; subjects "Mail could not be delivered" and their
Japanese versions)::

    Sent <<< RCPT TO:<kijitora@example.co.jp>
    Received >>> 550 5.1.1 <kijitora@example.co.jp>... user unknown
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_SUBJECTS = (
    "Mail could not be delivered",
    "メッセージを配信できません。",
    "メール配信に失敗しました",
)
_RECIPIENT = re.compile(
    r"^.+[<>]{3}[ \t]+.+<([^ ]+@[^ ]+)>|^(?:Reason:[ ]+)?Unable to deliver message to <(.+?)>"
)
_SENT = re.compile(r"^Sent[ \t]+<{3}[ \t]+([A-Z]{4})[ \t]")
_RECEIVED = re.compile(r"^Received[ \t]+>{3}[ \t]+(\d{3}[ \t]+.+)$")


def read(mail: Mail) -> Detected | None:
    """Read an InterScan MSS bounce."""
    headers = mail.headers
    sender = headers.get("from")
    if not (
        sender.startswith(('"InterScan MSS"', '"InterScan Notification"'))
        or mail.subject in _SUBJECTS
    ):
        return None
    explanation, _ = cut(
        mail.body, ("Content-Type: message/rfc822", "Content-type: message/rfc822")
    )
    drafts: list[Draft] = []
    for line in explanation.split("\n"):
        if not line:
            continue
        match = _RECIPIENT.match(line)
        if match is not None:
            address = match.group(1) or match.group(2)
            if not drafts or drafts[-1].recipient != address:
                drafts.append(Draft(recipient=address))
            if "Unable to deliver " in line:
                drafts[-1].diagnosis = line
        if not drafts:
            continue
        sent = _SENT.match(line)
        received = _RECEIVED.match(line)
        if sent is not None:
            drafts[-1].command = sent.group(1)
        elif received is not None:
            drafts[-1].diagnosis = received.group(1)
        elif re.search(r" [<>]{3} ", line):
            command = re.search(r" >{3} ([A-Z]{4})", line)
            reply = re.search(r" <{3} (.+)", line)
            if command is not None:
                drafts[-1].command = command.group(1)
            if reply is not None:
                drafts[-1].diagnosis = reply.group(1)
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        if "Unable to deliver" in draft.diagnosis:
            draft.reason = "userunknown"
    if not drafts:
        return None
    return Detected(dialect="interscanmss", drafts=drafts, returned=returned_part(mail))
