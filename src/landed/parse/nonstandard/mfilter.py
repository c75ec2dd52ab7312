"""Digital Arts m-FILTER (``X-Mailer: m-FILTER``, ``Subject: failure notice``)::

kijitora@example.jp

-------server message
550 5.1.1 <kijitora@example.jp>... User Unknown

-------SMTP command
DATA

-------original message
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import squeeze

__all__ = ["read"]

_RETURNED = re.compile(r"^-------original (?:message|mail info)", re.M)
_ADDRESS = re.compile(r"^([^ ]+@[^ ]+)$")
_START = re.compile(r"^[^ ]+@[^ ]+\.[a-zA-Z]+$")


def read(mail: Mail) -> Detected | None:
    """Read an m-FILTER bounce."""
    headers = mail.headers
    if headers.get("x-mailer") != "m-FILTER" or headers.get("subject") != "failure notice":
        return None
    cut = _RETURNED.search(mail.body)
    explanation = mail.body[: cut.start()] if cut is not None else mail.body
    returned = mail.body[cut.end() :].partition("\n")[2] if cut is not None else ""
    drafts: list[Draft] = []
    started = in_command = False
    for line in explanation.split("\n"):
        if not started:
            started = _START.match(line) is not None
            if not started:
                continue
        if not line:
            continue
        match = _ADDRESS.match(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1)))
        elif not drafts:
            continue
        elif re.match(r"^[A-Z]{4}", line):
            if in_command and not drafts[-1].command:
                drafts[-1].command = line.strip()[:4]
        elif line == "-------SMTP command":
            in_command = True
        elif not line.startswith("-") and not drafts[-1].diagnosis:
            drafts[-1].diagnosis = squeeze(line)
    if not drafts:
        return None
    return Detected(dialect="mfilter", drafts=drafts, returned=returned)
