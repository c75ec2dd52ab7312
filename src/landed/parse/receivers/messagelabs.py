"""Symantec / Broadcom Email Security.cloud (MessageLabs): knowledge.broadcom.com articles."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".messagelabs.com",)

# Case as published; the article number is in the comment.
_MESSAGES = (
    (
        "authfailure",
        ("domain authentication fail",),
    ),  # 175407: "553-SPF ... domain authentication fail"
    ("badreputation", ("Connection rejected by policy",)),  # 164955, 384503
    (
        "blocked",
        (
            "mail rejected because your IP is in the PBL",  # 165165
            "your IP address has been ",
            "your IP address (ip-addr) has been blocked",
            "your email address (addr) has been blocked",
        ),
    ),
    ("contenterror", ("Stray linefeeds in message",)),  # bare LF (RFC 5322)
    ("failedstarttls", ("TLS/SSLv3 Connection required",)),  # 162152
    ("norelaying", (" as a relay, ",)),  # 162137
    (
        "notcompliantrfc",
        ("550 Requested action aborted [4]", "has detected that this message is not RFC 5322"),
    ),
    (
        "rejected",
        (
            "sender envelope domain not allowed for sender IP address",
            "your domain has been blocked",
            "your email address has been blocked",
            "your envelope sender is in my badmailfrom list",  # 162232
            "your email address has been blacklisted",  # 173082
            "your domain has been blacklisted",
        ),
    ),
    ("securityerror", ("Please turn on SMTP Authentication in your mail client",)),
    ("spamdetected", ("Message Filtered", "filtered by Outbound scanning")),  # 173867
    (
        "toomanyconn",
        ("Too many recipients received this hour", "too many messages"),
    ),  # 385809, 164767
    (
        "userunknown",
        ("No such user", "Invalid recipient", "mailbox is not allowed"),
    ),  # 165163, 175710
)


def reason(facts: Facts) -> str:
    """Email Security.cloud's wording."""
    for name, phrases in _MESSAGES:
        if any(p in facts.diagnostic for p in phrases):
            return name
    return ""
