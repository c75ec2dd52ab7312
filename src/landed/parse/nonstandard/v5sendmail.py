"""Sendmail version 5 (and its 1990s relatives): no DSN, ``Subject: Returned mail: <Reason>``::

       ----- Transcript of session follows -----
    While talking to smtp.example.com:
    >>> RCPT To:<kijitora@example.org>
    <<< 550 <kijitora@example.org>, User Unknown
    550 <kijitora@example.org>... User unknown

       ----- Unsent message follows -----

Each ``NNN <address>... text`` line is one failed recipient; the ``<<<`` line
before it is the remote server's reply to the ``>>>`` command before that.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.fields import address_of
from landed.parse.mime import Mail, parse_headers, split_header_block
from landed.parse.nonstandard.common import squeeze
from landed.parse.transcript import find_command

__all__ = ["read"]

_SUBJECT = re.compile(r"^Returned mail: [A-Z]")
_RETURNED = re.compile(r"^ +----- (?:Unsent message follows|No message was collected) -----", re.M)
_START = "----- Transcript of session follows -----"
_RECIPIENT = re.compile(r"^\d{3}[ \t]+<([^ ]+@[^ ]+)>\.{3}[ \t]*(.+)$")
_COMMAND = re.compile(r"^>{3}[ \t]*([A-Z]{4})")
_REPLY = re.compile(r"^<{3} +(.+)$")
_TALKING = re.compile(r"^\.+ while talking to .+:$")
_OTHER = re.compile(r"^\d{3}[ \t]+.+\.{3}[ \t]*(.+)$")


def read(mail: Mail) -> Detected | None:
    """Read a Sendmail V5 bounce."""
    if not _SUBJECT.match(mail.headers.get("subject")):
        return None
    body = mail.body
    cut = _RETURNED.search(body)
    if cut is None:
        return None
    explanation, returned = body[: cut.start()], body[cut.end() :].lstrip("\n")
    start = explanation.find(_START)
    if start < 0:
        return None
    drafts: list[Draft] = []
    commands: dict[int, str] = {}
    replies: dict[int, str] = {}
    other = other_reply = ""
    in_session = False
    for line in explanation[start + len(_START) :].split("\n"):
        if not line:
            continue
        match = _RECIPIENT.match(line)
        if match is not None:
            draft = Draft(recipient=match.group(1), diagnosis=match.group(2))
            if replies.get(len(drafts)):
                draft.diagnosis += ": " + replies[len(drafts)]
            drafts.append(draft)
            continue
        match = _COMMAND.match(line)
        if match is not None:
            commands[len(drafts)] = match.group(1)
            continue
        match = _REPLY.match(line)
        if match is not None:
            replies[len(drafts)] = match.group(1)
            continue
        if in_session:
            continue
        if _TALKING.match(line):
            in_session = True
            continue
        match = _OTHER.match(line)
        if match is not None:
            # "421 example.org (smtp)... Deferred: Connection timed out ..."
            other = match.group(1)
            other_reply = line[:3]
    if not drafts:
        to = address_of(parse_headers(split_header_block(returned)[0]).get("to"))
        if not to:
            return None
        drafts.append(Draft(recipient=to))
    for index, draft in enumerate(drafts):
        draft.command = find_command(">>> " + commands[index]) if index in commands else ""
        if not draft.diagnosis:
            draft.diagnosis = other or replies.get(index, "")
            if other:
                draft.reply_code = other_reply
        draft.diagnosis = squeeze(draft.diagnosis)
    return Detected(dialect="v5sendmail", drafts=drafts, returned=returned)
