"""Facebook's mail servers (facebook.com/postmaster/response_codes: "RCP-P2" style codes)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".facebook.com",)

_CODE = re.compile(r"\b([A-Z]{3}-[PT]\d)\b")
_CODES = {
    "POL-P7": "authfailure",  # domain authentication requirements not met
    "POL-P1": "blocked",  # IP on the Spamhaus PBL
    "POL-P2": "blocked",
    "POL-P3": "blocked",
    "POL-P4": "blocked",
    "POL-T1": "blocked",
    "POL-T2": "blocked",
    "POL-T3": "blocked",
    "MSG-P2": "contenterror",  # attachment type not accepted
    "RCP-P2": "filtered",  # recipient's preferences
    "RCP-P3": "filtered",  # recipient's privacy settings
    "MSG-P1": "mesgtoobig",
    "INT-P2": "mesgtoobig",
    "MSG-P3": "notcompliantrfc",  # a header that may appear once appears twice
    "DNS-P1": "rejected",  # MAIL FROM domain does not exist
    "DNS-P2": "rejected",
    "DNS-T1": "rejected",
    "DNS-P3": "requireptr",
    "DNS-T2": "requireptr",
    "POL-P6": "spamdetected",  # blocked URL
    "RCP-T4": "suspend",  # recipient deactivated
    "RCP-T1": "systemerror",
    "CON-T1": "toomanyconn",
    "CON-T2": "toomanyconn",
    "CON-T3": "toomanyconn",
    "CON-T4": "toomanyconn",
    "MSG-T1": "toomanyconn",
    "RCP-P1": "userunknown",
    "INT-P1": "userunknown",
    "INT-P3": "userunknown",
    "INT-P4": "userunknown",
    "POL-P5": "virusdetected",
}


def reason(facts: Facts) -> str:
    """Facebook's response code."""
    match = _CODE.search(facts.diagnostic)
    return _CODES.get(match.group(1), "") if match is not None else ""
