"""Verizon Wireless SMS/MMS gateways (vtext.com, vzwpix.com), two shapes:

* ``From: post_master@vtext.com``: "Error: ..." then ``RCPT TO:`` lines;
* ``From: sysadmin@...vzwpix.com``: "Message could not be delivered to mobile",
  ``To:`` and ``Error:`` lines.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.fields import address_of
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import squeeze

__all__ = ["read"]

_VZWPIX = re.compile(r"<?sysadmin@.+\.vzwpix\.com>?$")


def read(mail: Mail) -> Detected | None:
    """Read a Verizon gateway bounce."""
    headers = mail.headers
    if not any(".vtext.com (" in r for r in headers.get_all("received")):
        return None
    sender = headers.get("from")
    text = "\n".join(p.text for p in mail.parts if p.ctype.startswith("text/")) or mail.body
    drafts: list[Draft] = []
    if sender == "post_master@vtext.com":
        started = False
        reply = ""  # "Error message below:" comes before the "RCPT TO:" it is about
        for line in text.split("\n"):
            if not started:
                started = line.startswith(("Error:", "Error\t"))
                continue
            rcpt = re.match(r"^[ \t]+RCPT TO: (.*)$", line)
            if rcpt is not None:
                address = address_of(rcpt.group(1)) or rcpt.group(1).strip()
                drafts.append(Draft(recipient=address, diagnosis=reply))
            elif re.match(r"^\d{3}[ \t]-[ \t]", line):
                reply = line
                if drafts:
                    drafts[-1].diagnosis = line
        phrase = ("550 - Requested action not taken: no such user here", "userunknown")
    elif _VZWPIX.search(sender):
        started = False
        error = ""
        for line in text.split("\n"):
            if not started:
                started = line.startswith("Message could not be delivered to mobile")
                if not started:
                    continue
            to = re.match(r"^To:[ \t]+(.*)$", line)
            if to is not None:
                drafts.append(Draft(recipient=address_of(to.group(1)), diagnosis=error))
            elif line.startswith("Error:"):
                # The error comes before the "Original Message:" block it is about.
                error = line
                for draft in drafts:
                    draft.diagnosis = draft.diagnosis or line
        phrase = ("No valid recipients for this MM", "userunknown")
    else:
        return None
    drafts = [d for d in drafts if d.recipient]
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        if phrase[0] in draft.diagnosis:
            draft.reason = phrase[1]
    if not drafts:
        return None
    return Detected(dialect="verizon", drafts=drafts)
