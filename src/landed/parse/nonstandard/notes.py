"""Lotus Notes (before Domino's SMTP wording): ``Subject: Undeliverable message``::

------- Failure Reasons  --------

User not listed in public Name & Address Book
kijitora@notes.example.jp

------- Returned Message --------
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.fields import address_of
from landed.parse.mime import Mail, parse_headers, split_header_block
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_START = "------- Failure Reasons "
_RETURNED = ("------- Returned Message --------",)
_ADDRESS = re.compile(r"^[^ ]+@[^ ]+")
_REASONS = (
    (
        "userunknown",
        ("User not listed in public Name & Address Book", "ディレクトリのリストにありません"),
    ),
    ("networkerror", ("Message has exceeded maximum hop count",)),
)


def read(mail: Mail) -> Detected | None:
    """Read a Lotus Notes bounce."""
    if not mail.headers.get("subject").startswith("Undeliverable message"):
        return None
    explanation, returned = cut(mail.body, _RETURNED)
    start = explanation.find(_START)
    if start < 0:
        return None
    returned = returned.partition("\n")[2].lstrip("\n")
    draft = Draft()
    drafts = [draft]
    for line in explanation[start:].split("\n")[1:]:
        if not line or line.startswith("-"):
            continue
        if _ADDRESS.match(line):
            if draft.recipient:
                draft = Draft()
                drafts.append(draft)
            draft.recipient = address_of(line) or line.strip()
        else:
            draft.diagnosis += line
    if not drafts[0].recipient:
        drafts[0].recipient = address_of(parse_headers(split_header_block(returned)[0]).get("to"))
    drafts = [d for d in drafts if d.recipient]
    for item in drafts:
        item.diagnosis = squeeze(item.diagnosis)
        item.reason = next(
            (r for r, phrases in _REASONS if any(p in item.diagnosis for p in phrases)), ""
        )
    if not drafts:
        return None
    return Detected(dialect="notes", drafts=drafts, returned=returned)
