"""Cox Communications (cox.com postmaster: "AUP#CODE" in every rejection)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = ("cox.net",)

_AUP = re.compile(r"AUP#([A-Z0-9]+)")
_CODES = {
    "CXBL": "blocked",  # IP blocked for spam-like behaviour
    "CXDNS": "requireptr",  # reverse DNS of the sending IP fails
    "CXSNDR": "authfailure",  # SPF / DKIM failed for the sending domain
    "CXSMTP": "rejected",  # SMTP protocol violation
    "CXCNCT": "toomanyconn",  # too many concurrent connections
    "CXMXRT": "toomanyconn",  # too many recipients
    "CDRBL": "blocked",  # temporary block for spam-like behaviour
    "CXTHRT": "securityerror",  # suspicious account activity
    "CXMJ": "securityerror",
    "URLBL011": "spamdetected",  # a URL in the body is on SURBL / Spamhaus DBL
    "URLBL101": "spamdetected",
    "URLBL110": "spamdetected",
    "URLBL1001": "spamdetected",
}
_MESSAGES = (
    ("blocked", ("cox too many bad commands from", "too many invalid recipients")),
    ("requireptr", ("dns check failure - try again later", "rejected - no rdns")),
    ("policyviolation", ("esmtp no data before greeting", "attachment extension is forbidden")),
    ("rejected", ("sender rejected",)),
    ("systemerror", ("esmtp server temporarily not available",)),
    (
        "toomanyconn",
        (
            "too many sessions from",
            "requested action aborted: try again later",
            "message threshold exceeded",
        ),
    ),
    ("userunknown", ("recipient rejected",)),
)


def reason(facts: Facts) -> str:
    """Cox's AUP code, else its wording."""
    match = _AUP.search(facts.diagnostic)
    if match is not None:
        code = match.group(1)
        if code.startswith("IPBL"):
            return "blocked"  # IPBL0001..IPBL1111: listed on one or more DNSBLs
        if code in _CODES:
            return _CODES[code]
    for name, phrases in _MESSAGES:
        if any(p in facts.text for p in phrases):
            return name
    return ""
