"""1&1 / IONOS (kundenserver.de, web.de's sister systems): ``From: "Mail
Delivery System"``, ``Subject: Mail delivery failed: returning message to
sender``. The wording is Exim's opening, but the recipients are bare lines and
the returned header follows a banner of its own::

    The following address failed:

    kijitora@example.eu

    For the following reason:

    Mail size limit exceeded. For explanation visit
    http://postmaster.1and1.com/en/error-messages?ip=%1s

    --- The header of the original message is following. ---

Newer ones say where the remote server answered: "SMTP error from remote
server for RCPT TO command, host: mx.example.org (192.0.2.1) reason: 550 ...";
"TEXT command" is their name for the message body (DATA).
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, returned_after, squeeze

__all__ = ["read"]

_SUBJECT = "Mail delivery failed: returning message to sender"
_START = "This message was created automatically by mail delivery software"
_RETURNED = ("--- The header of the original message is following. ---",)
_RECIPIENT = re.compile(r"^[ \t]*<?([^ <>]+@[^ <>]+?)>?:?[ \t]*$")
_HOST = re.compile(r"host:[ ]+(\S+?)[ ]+.*reason:")
_COMMAND = re.compile(r"for ([A-Z]{4}(?: TO)?|TEXT) command")
# 1&1's own sentence for a message over the recipient's size limit.
_REASONS = (("mesgtoobig", "Mail size limit exceeded"),)


def read(mail: Mail) -> Detected | None:
    """Read a 1&1 bounce."""
    if mail.subject != _SUBJECT or not mail.headers.get("from").startswith(
        '"Mail Delivery System"'
    ):
        return None
    explanation, _ = cut(mail.body, _RETURNED)
    start = explanation.find(_START)
    if start < 0:
        return None
    drafts: list[Draft] = []
    for line in explanation[start:].split("\n")[1:]:
        if not line.strip() or line.startswith("For the following reason:"):
            continue
        match = _RECIPIENT.match(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1)))
        elif drafts:
            drafts[-1].diagnosis += " " + line
    if not drafts:
        return None
    # An address list followed by one reason: the reason is every address's.
    shared = ""
    for draft in reversed(drafts):
        if draft.diagnosis.strip():
            shared = draft.diagnosis
        else:
            draft.diagnosis = shared
    for draft in drafts:
        text = squeeze(draft.diagnosis)
        draft.diagnosis = text
        host = _HOST.search(text)
        if host is not None:
            draft.remote_mta = host.group(1)
            command = _COMMAND.search(text)
            if command is not None:
                name = command.group(1)
                draft.command = "DATA" if name == "TEXT" else name[:4]
        for reason, phrase in _REASONS:
            if phrase in text:
                draft.reason = reason
    return Detected(
        dialect="einsundeins", drafts=drafts, returned=returned_after(mail.body, _RETURNED)
    )
