"""Apple iCloud Mail (support.apple.com/en-us/102322)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".mail.icloud.com", ".apple.com", ".me.com")

# Lowercase; quoted replies from iCloud's published list.
_MESSAGES = (
    # "554 5.7.1 Your message was rejected due to example.jp's DMARC policy."
    (
        "authfailure",
        ("s dmarc policy", "blocked for failing both spf and dkim autentication checks"),
    ),
    (
        "blocked",
        (
            "rejected due to having a domain present in the spamhaus",
            "rejected due to listing in spamhaus",
            "blocked - see https://support.proofpoint.com/dnsbl-lookup",
            # "554 ...smtpin001.me.com ESMTP not accepting connections"
            "not accepting connections",
        ),
    ),
    ("hasmoved", ("recipient no longer on server",)),  # 550 5.1.6
    ("mailboxfull", ("user is over quota",)),
    ("norelaying", ("relay access denied",)),
    ("notaccept", ("host/domain does not accept mail",)),
    ("policyviolation", ("due to local policy",)),  # "[CS01] Message rejected due to local policy."
    ("rejected", ("sender address rejected",)),
    ("speeding", ("due to excessive volume",)),
    ("userunknown", ("inactive email address", "user does not exist", "unknown or illegal alias")),
)


def reason(facts: Facts) -> str:
    """iCloud's wording."""
    text = facts.text
    for name, phrases in _MESSAGES:
        if any(p in text for p in phrases):
            return name
    return ""
