"""Japanese mobile carriers: au by KDDI (ezweb.ne.jp) and NTT DOCOMO (docomo.ne.jp).

Both used to reject at DATA with "550 Unknown user" for addresses the
recipient's own reception filter refused (not only for unknown users), which
is why the command and status matter here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

KDDI_HOSTS = (".ezweb.ne.jp", "msmx.au.com")
DOCOMO_HOSTS = ("mfsmax.docomo.ne.jp",)


def kddi_reason(facts: Facts) -> str:
    """au's "550 : User unknown" (a filter) versus "550 <addr>: User unknown"."""
    if "550 : user unknown" in facts.text:
        return "filtered"
    if ">: user unknown" in facts.text:
        return "userunknown"
    return ""


_DOCOMO = (
    ("mailboxfull", ("552 too much mail data",)),
    ("syntaxerror", ("503 bad sequence of commands", "504 command parameter not implemented")),
    ("toomanyconn", ("552 too many recipients",)),
)
# Note: since March 2025 docomo says it no longer refuses over SMTP for its
# reception filters, so a "550 Unknown user" may now always mean what it says
# (go-sisimai issue 64). Bounces before that used it at DATA for filtered mail,
# which is what the status and command tests below tell apart.


def docomo_reason(facts: Facts) -> str:
    """DOCOMO's status code, command and wording."""
    status = facts.status
    if status in ("5.1.1", "5.0.911"):
        return "userunknown"
    if status == "5.2.0":
        return "filtered"
    for name, phrases in _DOCOMO:
        if any(p in facts.text for p in phrases):
            return name
    if status == "5.0.0":
        if facts.command == "RCPT":
            return "userunknown"
        if facts.command == "DATA":
            return "rejected"
    return ""
