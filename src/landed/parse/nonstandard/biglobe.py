"""BIGLOBE and its partner ISPs (biglobe.ne.jp, inacatv, tmtv, ttv):
``Subject: Returned mail: ...``::

   ----- The following addresses had delivery problems -----
kijitora@biglobe.ne.jp

   ----- Non-delivered information -----
The number of messages in recipient's mailbox exceeded the local limit.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_SENDER = re.compile(r"postmaster@(?:biglobe|inacatv|tmtv|ttv)\.ne\.jp")
_START = "   ----- The following addresses had delivery problems -----"
_ADDRESS = re.compile(r"^([^ ]+@[^ ]+)$")
_REASONS = (
    ("filtered", "Mail Delivery Failed... User unknown"),
    ("mailboxfull", "The number of messages in recipient's mailbox exceeded the local limit."),
)


def read(mail: Mail) -> Detected | None:
    """Read a BIGLOBE bounce."""
    if not _SENDER.search(mail.headers.get("from")) or not mail.headers.get("subject").startswith(
        "Returned mail:"
    ):
        return None
    explanation, _ = cut(mail.body, ("Content-Type: message/rfc822",))
    start = explanation.find(_START)
    if start < 0:
        return None
    drafts: list[Draft] = []
    for line in explanation[start + len(_START) :].split("\n"):
        if not line:
            continue
        match = _ADDRESS.match(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1).strip("<>")))
        elif drafts and (line[0].isalnum() or line[0] == "_"):
            drafts[-1].diagnosis += line + " "
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        draft.reason = next((r for r, p in _REASONS if p in draft.diagnosis), "")
    if not drafts:
        return None
    return Detected(dialect="biglobe", drafts=drafts, returned=returned_part(mail))
