"""GoDaddy (secureserver.net): "IBnnn" codes documented in its help article 40685."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = ("smtp.secureserver.net", "mailstore1.secureserver.net")

_CODE = re.compile(r" (IB\d{3})\b")
_CODES = {
    "IB401": "securityerror",  # authentication on an inbound server
    "IB501": "notcompliantrfc",  # blank From
    "IB502": "notcompliantrfc",  # IP address as From
    "IB506": "rejected",  # From domain invalid
    "IB508": "authfailure",  # invalid SPF
    "IB108": "requireptr",
    "IB212": "spamdetected",
    "IB705": "virusdetected",
    "IB605": "toomanyconn",
    "IB007": "toomanyconn",
    "IB101": "speeding",
    "IB110": "blocked",
    "IB111": "blocked",
    "IB112": "blocked",
    "IB113": "blocked",
    "IB504": "speeding",
    "IB510": "speeding",
    "IB607": "speeding",
    "IB103": "badreputation",  # poor Cloudmark CSI reputation
    "IB104": "blocked",  # Spamhaus SBL
    "IB105": "blocked",  # Spamhaus XBL
    "IB106": "blocked",  # Spamhaus PBL
}
_MESSAGES = (
    ("blocked", ("rbl reject", "www.spamhaus.org/query/bl?ip=")),
    ("expired", ("has been in the queue too long", "delivery timeout")),
    ("mailboxfull", ("account storage limit",)),
    ("spamdetected", ("message rejected for spam or virus content",)),
    ("suspend", ("account disabled",)),
    ("systemerror", ("message is looping",)),
    ("userunknown", ("recipient not found", "account does not exist")),
)


def reason(facts: Facts) -> str:
    """GoDaddy's IB code, else its wording."""
    match = _CODE.search(facts.diagnostic)
    if match is not None and match.group(1) in _CODES:
        return _CODES[match.group(1)]
    for name, phrases in _MESSAGES:
        if any(p in facts.text for p in phrases):
            return name
    return ""
