"""au by KDDI's older mail system (dion.ne.jp, auone-net.jp): a short English
notice from ``no-reply@...dion.ne.jp`` (``Reply-To: no-reply@app.auone-net.jp``)::

    Your mail sent on: Thu, 29 Apr 2013 00:00:00 +0900
         Could not be delivered to: <kijitora@example.dion.ne.jp>
         As their mailbox is full.

The last sentence is one of a few fixed ones; ``X-SPASIGN: NG`` marks a
message au's spam filter refused.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_START = re.compile(
    r"^Your mail (?:sent on:? |attempted to be delivered on:? )[A-Z][a-z]{2},", re.M
)
_RECIPIENT = re.compile(r"^[ \t]+Could not be delivered to: <([^ ]+@[^ ]+)>")
_SENTENCES = (
    ("mailboxfull", "As their mailbox is full"),
    ("norelaying", "Due to the following SMTP relay error"),
    ("hostunknown", "As the remote domain doesnt exist"),
)


def _is_kddi(mail: Mail) -> bool:
    headers = mail.headers
    if re.search(r"no-reply@.+\.dion\.ne\.jp", headers.get("from")):
        return True
    if headers.get("reply-to") == "no-reply@app.auone-net.jp":
        return True
    return any(
        "ezweb.ne.jp (" in r or ".au.com (" in r or "auone-net.jp" in r
        for r in headers.get_all("received")
    )


def read(mail: Mail) -> Detected | None:
    """Read an au (KDDI) notice."""
    if "Could not be delivered to: <" not in mail.body or not _is_kddi(mail):
        return None
    explanation, _ = cut(mail.body, ("Content-Type: message/rfc822",))
    start = _START.search(explanation)
    if start is None:
        return None
    drafts: list[Draft] = []
    for line in explanation[start.end() :].split("\n"):
        match = _RECIPIENT.match(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1)))
        elif drafts and line[:1] in (" ", "\t"):
            drafts[-1].diagnosis += " " + line
    if not drafts:
        return None
    spam = mail.headers.get("x-spasign") == "NG"
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        if spam:
            draft.reason = "filtered"
            continue
        for reason, sentence in _SENTENCES:
            if sentence in draft.diagnosis:
                draft.reason = reason
                break
    return Detected(dialect="kddi", drafts=drafts, returned=returned_part(mail))
