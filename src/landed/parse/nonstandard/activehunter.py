"""TransWARE Active!hunter (a Japanese mail filter), recognized by its ``X-AHMAILID`` header::

  ----- The following addresses had permanent fatal errors -----

>>> kijitora@example.org <kijitora@example.org>

  ----- Transcript of session follows -----
550 sorry, no mailbox here by that name (#5.1.1 - chkusr)
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_START = "  ----- The following addresses had permanent fatal errors -----"
_RECIPIENT = re.compile(r"^>{3}[ \t]+.+<([^ ]+?@[^ ]+?)>$")
_TEXT = re.compile(r"^[0-9A-Za-z]")


def read(mail: Mail) -> Detected | None:
    """Read an Active!hunter bounce."""
    if "x-ahmailid" not in mail.headers:
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
        elif drafts and not drafts[-1].diagnosis and _TEXT.match(line):
            drafts[-1].diagnosis = squeeze(line)
    if not drafts:
        return None
    return Detected(dialect="activehunter", drafts=drafts, returned=returned_part(mail))
