"""MailFoundry appliances (``Subject: Message delivery has failed``,
``Received: ... (MAILFOUNDRY) id``)::

    Unable to deliver message to: <kijitora@example.org>
    Delivery failed for the following reason:
    Server mx22.example.org[192.0.2.222] failed with: 550 <kijitora@example.org> No such user here
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_RECIPIENT = re.compile(r"^Unable to deliver message to: <([^ ]+@[^ ]+)>$")
_ERROR = "Delivery failed for the following reason:"


def read(mail: Mail) -> Detected | None:
    """Read a MailFoundry bounce."""
    headers = mail.headers
    if headers.get("subject") != "Message delivery has failed":
        return None
    if not any("(MAILFOUNDRY) id" in r for r in headers.get_all("received")):
        return None
    explanation, _ = cut(mail.body, ("Content-Type: message/rfc822",))
    drafts: list[Draft] = []
    for line in explanation.split("\n"):
        match = _RECIPIENT.match(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1)))
        elif drafts and line == _ERROR:
            drafts[-1].diagnosis = line
        elif drafts and drafts[-1].diagnosis and line and not line.startswith("-"):
            drafts[-1].diagnosis += " " + line
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
    if not drafts:
        return None
    return Detected(dialect="mailfoundry", drafts=drafts, returned=returned_part(mail))
