"""An unnamed MTA Sisimai calls "X3": ``From: Mail Delivery System``,
``Subject: Delivery status notification``::

          This is an automatically generated Delivery Status Notification.

    Delivery to the following recipients failed permanently:

       * kijitora@example.com

    SMTP:RCPT host 192.0.2.8: 553 5.3.0 <kijitora@example.com>... No such user here
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_START = "      This is an automatically generated Delivery Status Notification."
_RECIPIENT = re.compile(r"^[ \t]+\*[ \t]([^ ]+@[^ ]+)$")
_SMTP = re.compile(r"^SMTP:([^ ]+)[ \t](.+)$")
_OTHER = re.compile(r"^(?:Routing: |Diagnostic-Code: smtp; )(.+)$")


def read(mail: Mail) -> Detected | None:
    """Read an X3 bounce."""
    headers = mail.headers
    if not headers.get("from").startswith("Mail Delivery System"):
        return None
    if not headers.get("subject").startswith("Delivery status notification"):
        return None
    explanation, _ = cut(mail.body, ("Content-Type: message/rfc822",))
    start = explanation.find(_START)
    if start < 0:
        return None
    drafts: list[Draft] = []
    for line in explanation[start + len(_START) :].split("\n"):
        match = _RECIPIENT.match(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1)))
            continue
        if not drafts:
            continue
        smtp = _SMTP.match(line)
        if smtp is not None:
            drafts[-1].command = smtp.group(1).upper()
            drafts[-1].diagnosis = smtp.group(2)
            continue
        other = _OTHER.match(line)
        if other is not None:
            drafts[-1].diagnosis = other.group(1)
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
    if not drafts:
        return None
    return Detected(dialect="x3", drafts=drafts, returned=returned_part(mail))
