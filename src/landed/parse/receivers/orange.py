"""Orange, Wanadoo and La Poste (France): error labels such as ``LPN007_416`` or ``OFR_417``.

The number after the label is the error (postmastery.com "Orange postmaster
SMTP error codes", smtpfieldmanual.com/provider/orange).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".laposte.net", ".orange.fr", ".wanadoo.fr")

_CODES = {
    "101": "blocked",  # client blocked using Spamhaus
    "102": "blocked",  # source IP blocked for spam
    "103": "blocked",  # service refused, please try later
    "104": "toomanyconn",  # too many connections, slow down
    "305": "securityerror",  # invalid authentication code
    "401": "authfailure",  # SPF: not allowed to send mail
    "402": "securityerror",  # authentication required
    "403": "rejected",  # invalid sender
    "405": "rejected",
    "415": "rejected",
    "416": "userunknown",  # invalid recipient
    "417": "mailboxfull",  # recipient over quota
    "420": "suspend",  # archived recipient
    "421": "rejected",  # mail from not owned by user
    "426": "suspend",  # recipient account blocked
    "505": "systemerror",
    "506": "spamdetected",  # mail rejected
    "510": "blocked",
    "514": "mesgtoobig",
    "517": "authfailure",  # DMARC verification failed
    "630": "policyviolation",  # client host rejected
    "999": "blocked",
}
# Labels with no reason of their own ("veuillez essayer plus tard"): the text decides.
_VAGUE = frozenset({"105", "107", "108", "109", "201", "423", "424", "513"})


def reason(facts: Facts) -> str:
    """The reason of an Orange / La Poste error label."""
    text = facts.text.replace("_", "-")
    for label in ("lpn", "lpnaaa", "ofr", "ouk"):
        at = text.rfind(label)
        if at < 0:
            continue
        token = text[at:].split(" ", 1)[0]
        for code, name in _CODES.items():
            if token.endswith(code) or token.rstrip(".])").endswith(code):
                return name
        if any(token.endswith(code) for code in _VAGUE):
            return ""
        break
    if "spf/dns de votre nom de domaine" in text:
        return "authfailure"  # "Emetteur invalide, Veuillez verifier la configuration SPF/DNS"
    return ""
