"""Spectrum / Charter (charter.net): every rejection carries "AUP#<dir><NNNN>".

The numbers come from Spectrum's published list
(spectrumbusiness.net "understanding email error codes"): ``AUP#I1000`` on
mail coming in to Charter, ``AUP#O1000`` on mail going out; the number alone
decides the reason. Sisimai's Rhost::Spectrum maps the same table.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = ("charter.net", ".charter.net", "spectrum.net", ".spectrum.net")

_AUP = re.compile(r"AUP#[-A-Za-z]*(\d{4})")
_CODES = {
    1000: "blocked",  # your IP address has been blocked for suspicious activity
    1010: "rejected",  # this account is blocked from sending
    1090: "systemerror",  # the email can't be processed, try later
    1260: "networkerror",  # IPv6 is not processed, connect over IPv4
    1500: "rejected",  # sending as an address other than the signed-in one
    1520: "rejected",  # sending as a domain that is not hosted
    1530: "mesgtoobig",  # larger than 20MB
    1540: "toomanyconn",  # too many messages in one session
    1550: "toomanyconn",  # too many recipients in one message
    1560: "policyviolation",  # too many invalid recipients
}
_RANGES = (
    (1020, 1080, "rejected"),  # account with limited sending access
    (1100, 1150, "blocked"),  # DNS issue with the connecting IP
    (1160, 1190, "policyviolation"),  # against the domain's security policy
    (1200, 1210, "blocked"),  # flagged by Cloudmark CSI
    (1220, 1250, "blocked"),  # listed by Spamhaus
    (1300, 1340, "toomanyconn"),  # concurrent connection limit
    (1350, 1490, "toomanyconn"),  # message / recipient volume limits
)


def reason(facts: Facts) -> str:
    """The reason of Spectrum's AUP number, or ``""``."""
    match = _AUP.search(facts.diagnostic)
    if match is None:
        return ""
    code = int(match.group(1))
    if code in _CODES:
        return _CODES[code]
    for low, high, name in _RANGES:
        if low <= code <= high:
            return name
    return ""
