"""An unnamed MTA Sisimai calls "X1": ``From: "Mail Deliver System"`` (sic)::

The original message was received at Thu, 29 Apr 2011 23:34:45 +0900 (JST)
from shironeko@example.co.jp

---The following addresses had delivery errors---

kijitora@example.org [User unknown]
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_LINE = re.compile(r"^([^ ]+?@[^ ]+?)[ \t]+\[(.+)\]$")
_START = re.compile(r"^The original message was received at (.+)$", re.M)


def read(mail: Mail) -> Detected | None:
    """Read an X1 bounce or delay warning."""
    subject = mail.headers.get("subject")
    if not mail.headers.get("from").startswith('"Mail Deliver System" '):
        return None
    if not subject.startswith(("Returned Mail: ", "Warning--")):
        return None
    explanation, _ = cut(mail.body, ("Content-Type: message/rfc822", "\nReceived: from "))
    start = _START.search(explanation)
    if start is None:
        return None
    drafts = []
    for line in explanation[start.end() :].split("\n"):
        match = _LINE.match(line.strip())
        if match is not None:
            drafts.append(Draft(recipient=match.group(1), diagnosis=squeeze(match.group(2))))
    if not drafts:
        return None
    return Detected(dialect="x1", drafts=drafts, returned=returned_part(mail))
