"""Zoho Mail's own bounces (``X-ZohoMail`` header)::

This message was created automatically by mail delivery software.
A message that you sent could not be delivered to one or more of its recipients.

kijitora@example.co.jp Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <...>... User Unknown
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_START = "This message was created automatically by mail delivery"
_RETURNED = ("Received: from mail.zoho.com by mx.zohomail.com", "Content-Type: message/rfc822")
_LINE = re.compile(r"^([^ ]+@[^ ]+)[ \t]+(.+)$")
_STATUS = re.compile(r"^\[Status: .+<([^ ]+@[^ ]+)>,")


def read(mail: Mail) -> Detected | None:
    """Read a Zoho Mail bounce."""
    if "x-zohomail" not in mail.headers:
        return None
    explanation, returned = cut(mail.body, _RETURNED)
    start = explanation.find(_START)
    if start < 0:
        return None
    drafts: list[Draft] = []
    continued = False
    for line in explanation[start:].split("\n")[1:]:
        if not line:
            continue
        match = _LINE.match(line)
        status = _STATUS.match(line)
        if match is not None:
            draft = Draft(recipient=match.group(1).strip("<>"), diagnosis=match.group(2))
            # A quoted-printable soft break ("=" at the end) continues on the next line.
            continued = draft.diagnosis.endswith("=")
            draft.diagnosis = draft.diagnosis.rstrip("=")
            drafts.append(draft)
        elif status is not None:
            drafts.append(Draft(recipient=status.group(1), diagnosis=line))
        elif continued and drafts:
            drafts[-1].diagnosis += line
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        if "Host not reachable" in draft.diagnosis:
            draft.reason = "expired"
    if not drafts:
        return None
    return Detected(dialect="zoho", drafts=drafts, returned=returned)
