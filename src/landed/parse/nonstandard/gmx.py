"""GMX and WEB.DE (Germany), recognized by their ``X-GMX-Antispam`` header.

Exim-derived wording, one block per recipient::

    "kijitora@example.jp":
    SMTP error from remote server after RCPT command:
    host: mx.example.jp
    5.1.1 <kijitora@example.jp>... User Unknown
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_START = "This message was created automatically by mail delivery software"
_RETURNED = ("--- The header of the original message is following. ---",)
_RECIPIENT = re.compile(r'^"([^ ]+@[^ ]+)":$|^<([^ ]+@[^ ]+)>$')
_COMMAND = re.compile(r"^SMTP error .+ ([A-Z]{4}) command:$")
_HOST = re.compile(r"^host:[ \t]*(.+)$")
_CODED = re.compile(r"\b[45]\.\d\.\d\b|<[^ ]+@[^ ]+>|\b[45]\d{2}\b")


def read(mail: Mail) -> Detected | None:
    """Read a GMX bounce."""
    if "x-gmx-antispam" not in mail.headers:
        return None
    explanation, returned = cut(mail.body, _RETURNED)
    start = explanation.find(_START)
    if start < 0:
        return None
    drafts: list[Draft] = []
    for line in explanation[start:].split("\n")[1:]:
        if not line:
            continue
        match = _RECIPIENT.match(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1) or match.group(2)))
            continue
        if not drafts:
            continue
        draft = drafts[-1]
        command = _COMMAND.match(line)
        host = _HOST.match(line)
        if command is not None:
            draft.command = command.group(1)
        elif host is not None:
            draft.remote_mta = host.group(1).strip()
        elif _CODED.search(line):
            draft.diagnosis = draft.diagnosis or line
        elif line == "Reason:" or draft.diagnosis == "Reason:":
            draft.diagnosis = line
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        if "delivery retry timeout exceeded" in draft.diagnosis:
            draft.reason = "expired"
    if not drafts:
        return None
    return Detected(dialect="gmx", drafts=drafts, returned=returned.partition("\n")[2])
