"""DragonFly Mail Agent (dma), the MTA of DragonFly BSD (github.com/corecode/dma).

Plain text, one paragraph per failed recipient (mail.c, net.c)::

    This is the DragonFly Mail Agent v0.13 at df.example.jp.

    There was an error delivering your mail to <kijitora@example.com>.

    email.example.jp [192.0.2.25] did not like our RCPT TO:
    552 5.2.2 <kijitora@example.com>: Recipient address rejected: Mailbox full

    Original message follows.        (or "Message headers follow.")
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import angle_address, cut, returned_after, squeeze
from landed.parse.transcript import find_command

__all__ = ["read"]

_START = "This is the DragonFly Mail Agent "
_RETURNED = ("Original message follows.", "Message headers follow")
_RECIPIENT = "There was an error delivering your mail to <"
# net.c: "%s [%s] did not like our %s:\n%s"
_DID_NOT_LIKE = re.compile(r"^(\S+) \[[^\]]*\] did not like our ([A-Z ]+?):?$")
_REASONS = (
    # dma.c: "Could not deliver for the last %d seconds. Giving up."
    ("expired", "Could not deliver for the last "),
    # net.c: "DNS lookup failure: host %s not found"
    ("hostunknown", "DNS lookup failure: host "),
)


def read(mail: Mail) -> Detected | None:
    """Read a dma bounce."""
    body = mail.body
    start = body.find(_START)
    if start < 0:
        return None
    explanation, _ = cut(body[start:], _RETURNED)
    drafts: list[Draft] = []
    current: Draft | None = None
    for line in explanation.split("\n")[1:]:
        if not line.strip():
            continue
        if line.startswith(_RECIPIENT):
            current = Draft(recipient=angle_address(line))
            drafts.append(current)
            continue
        if current is None:
            continue
        current.diagnosis += line if not current.diagnosis else " " + line
        match = _DID_NOT_LIKE.match(line.strip())
        if match is not None and not current.remote_mta:
            current.remote_mta = match.group(1)
            current.command = find_command(">>> " + match.group(2).replace("final ", ""))
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        for reason, phrase in _REASONS:
            if phrase in draft.diagnosis:
                draft.reason = reason
                break
    if not drafts:
        return None
    return Detected(dialect="dragonfly", drafts=drafts, returned=returned_after(body, _RETURNED))
