"""Yahoo (Yahoo Mail, AOL's shared inbound servers ``*.yahoodns.net``).

Yahoo's published SMTP error codes (senders.yahooinc.com/smtp-error-codes)
carry a bracketed tag ("[TSS04]", "[BL21]", "[PH01]") and fixed sentences;
this table is keyed on the sentences, which stay the same when the tag changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".yahoodns.net",)

_MESSAGES = (
    # 550 5.7.9 This mail has been blocked because the sender is unauthenticated.
    ("authfailure", ("yahoo requires all senders to authenticate with either spf or dkim",)),
    # 553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.25, because
    # the ip is in Spamhaus's list; [BL23] ... on Spamhaus XBL
    (
        "blocked",
        (
            " because the ip is in spamhaus's list;",
            "not accepted from ip addresses on spamhaus xbl",
        ),
    ),
    ("norelaying", ("relaying denied for ",)),  # 550 relaying denied for <x@yahoo.com>
    ("notcompliantrfc", ("headers are not rfc compliant",)),
    # 554 Message not allowed - [PH01] Email not accepted for policy reasons.
    ("policyviolation", ("not accepted for policy reasons",)),
    (
        "rejected",
        (
            # 421 4.7.0 [TSS04] Messages from 192.0.2.25 temporarily deferred due to
            # unexpected volume or user complaints: Yahoo's answer to a sender it
            # does not trust, whatever the cause (no SPF/DKIM, complaints, volume).
            "temporarily deferred due to unexpected volume or user complaints",
            # 451 Message temporarily deferred due to unresolvable RFC.5321 from domain
            "due to unresolvable rfc.5321 domain",
            "due to unresolvable rfc.5321 from domain",
            # 553 5.7.2 [TSS09] All messages from 192.0.2.25 will be permanently deferred
            " will be permanently deferred",
        ),
    ),
    ("speeding", ("user is receiving mail too quickly",)),  # 450
    # 554 delivery error: dd x@yahoo.com is no longer valid. / This mailbox is disabled (554.30)
    ("suspend", (" is no longer valid.", "this mailbox is disabled")),
    ("syntaxerror", ("syntax error in parameters or arguments",)),  # 501
    ("toomanyconn", ("max message per connection reached",)),  # 421
    # 554 delivery error: dd This user doesn't have a yahoo.com account
    ("userunknown", ("dd this user doesn't have a ", "mailbox not found")),
)


def reason(facts: Facts) -> str:
    """The reason of Yahoo's sentence in the diagnostic, or ``""``."""
    for name, phrases in _MESSAGES:
        if any(p in facts.text for p in phrases):
            return name
    return ""
