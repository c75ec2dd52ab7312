"""I.UA (Ukraine): every rejection links to ``https://mail.i.ua/err/N/``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".email.ua",)

_CODE = re.compile(r"\.i\.ua/err/(\d+)/")
_CODES = {
    "1": "norelaying",  # SMTP as a mail gate is forbidden
    "2": "userunknown",
    "3": "suspend",  # mailbox unused for more than 3 months
    "4": "mailboxfull",
    "5": "toomanyconn",  # sending limit exceeded
    "6": "norelaying",  # use your provider's SMTP
    "7": "blocked",  # bad HELO/EHLO
    "8": "rejected",  # sender address could not be verified
    "9": "blocked",  # sending IP blacklisted
    "10": "filtered",  # not in the recipient's address list
}


def reason(facts: Facts) -> str:
    """I.UA's error page number."""
    match = _CODE.search(facts.text)
    return _CODES.get(match.group(1), "") if match is not None else ""
