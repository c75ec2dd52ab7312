"""Apache James (james.apache.org): ``Subject: [BOUNCE]``, JavaMail Message-IDs::

Hi. This is the James mail server at mx.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
...
Error message below:
550 - Requested action not taken: no such user here

Message details:
  Subject: Nyaaan
  Sent date: Thu Apr 29 23:34:45 JST 2011
  MAIL FROM: shironeko@example.jp
  RCPT TO: kijitora@example.org
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_RCPT = re.compile(r"^  RCPT TO: ([^ ]+@[^ ]+)$")


def read(mail: Mail) -> Detected | None:
    """Read an Apache James bounce."""
    headers = mail.headers
    if not (
        headers.get("subject") == "[BOUNCE]"
        or ".JavaMail." in headers.get("message-id")
        or any("JAMES SMTP Server" in r for r in headers.get_all("received"))
    ):
        return None
    explanation, _ = cut(mail.body, ("Content-Type: message/rfc822",))
    recipients: list[str] = []
    error: list[str] = []
    in_error = done = False
    for line in explanation.split("\n"):
        match = _RCPT.match(line)
        if match is not None:
            recipients.append(match.group(1))
            continue
        if done or not line:
            continue
        if line == "Error message below:":
            in_error = True
            error.append(line)
        elif in_error:
            if line == "Message details:":
                done = True
            else:
                error.append(line)
    if not recipients:
        return None
    diagnosis = squeeze(" ".join(error))
    drafts = [Draft(recipient=r, diagnosis=diagnosis) for r in recipients]
    return Detected(dialect="apachejames", drafts=drafts, returned=returned_part(mail))
