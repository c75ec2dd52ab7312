"""HCL (formerly IBM Lotus) Domino: ``Subject: DELIVERY FAILURE: ...``::

Your message

  Subject: Nyaan

was not delivered to:

  kijitora@example.net

because:

  User kijitora (kijitora@example.net) not listed in Domino Directory
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.fields import read_fields
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_SUBJECT = re.compile(r"^DELIVERY(?: |_)FAILURE:")
_ADDRESS = re.compile(r"^  ([^ ]+@[^ ]+)$")
# Domino's messages, in the languages it ships.
_REASONS = (
    (
        "userunknown",
        (
            "not listed in Domino Directory",
            "not listed in public Name & Address Book",
            "non répertorié dans l'annuaire Domino",
            "Domino ディレクトリには見つかりません",
        ),
    ),
    ("filtered", ("Cannot route mail to user",)),
    ("systemerror", ("Several matches found in Domino Directory",)),
)


def read(mail: Mail) -> Detected | None:
    """Read a Domino bounce."""
    if not _SUBJECT.match(mail.headers.get("subject")):
        return None
    explanation, _ = cut(mail.body, ("Content-Type: message/rfc822",))
    start = explanation.find("Your message")
    if start < 0:
        return None
    drafts: list[Draft] = []
    because = False
    fields: list[str] = []
    for line in explanation[start:].split("\n")[1:]:
        if not line:
            continue
        if line == "was not delivered to:":
            drafts.append(Draft())
            continue
        if not drafts:
            continue
        match = _ADDRESS.match(line)
        if match is not None and not drafts[-1].recipient:
            drafts[-1].recipient = match.group(1).strip("<>")
        elif line == "because:":
            because = True
        elif because:
            drafts[-1].diagnosis = line
            because = False
        elif ":" in line and line[0].isalpha():
            fields.append(line)
    records = read_fields("\n".join(fields)).records if fields else []
    for index, draft in enumerate(drafts):
        draft.diagnosis = squeeze(draft.diagnosis)
        if index < len(records):
            draft.status = records[index].status
            draft.diagnosis = draft.diagnosis or records[index].diagnostic
        for reason, phrases in _REASONS:
            if any(p in draft.diagnosis for p in phrases):
                draft.reason = reason
                break
    drafts = [d for d in drafts if d.recipient]
    if not drafts:
        return None
    return Detected(dialect="domino", drafts=drafts, returned=returned_part(mail))
