"""An unnamed gateway Sisimai calls "X6": ``Subject: There was an error sending your mail``::

1 error(s):

SMTP Server <smtpd.example.org> rejected recipient <kijitora@example.org>
(Error following RCPT command). It responded as follows: [550 5.1.1 User unknown]

The attachment contains the original mail headers. ...
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_START = re.compile(r"^\d+ *error\(s\):", re.M)
_ADDRESS = re.compile(r"<([^ @]+@[^ @]+)>|errors:[ ]*([^ ]+@[^ ]+)")
_COMMAND = re.compile(r"\b(HELO|EHLO|MAIL|RCPT|DATA)\b")


def read(mail: Mail) -> Detected | None:
    """Read an X6 bounce."""
    if not mail.headers.get("subject").startswith("There was an error sending your mail"):
        return None
    explanation, _ = cut(mail.body, ("The attachment contains the original mail headers",))
    start = _START.search(explanation)
    if start is None:
        return None
    drafts: list[Draft] = []
    for line in explanation[start.end() :].split("\n"):
        match = _ADDRESS.search(line)
        if match is None:
            continue
        address = (match.group(1) or match.group(2)).strip(".")
        draft = Draft(recipient=address, diagnosis=squeeze(line))
        command = _COMMAND.search(line)
        draft.command = command.group(1) if command is not None else ""
        drafts.append(draft)
    if not drafts:
        return None
    return Detected(dialect="x6", drafts=drafts, returned=returned_part(mail))
