"""Tencent QQ Mail / Foxmail (service.mail.qq.com/detail/122)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".qq.com",)

# Lowercase; the number is the help article under service.mail.qq.com/detail/122/.
_MESSAGES = (
    ("authfailure", ("spf check failed", "dmarc check failed")),  # 72
    (
        "blocked",
        ("suspected bounce attacks", "suspected spam ip", "connection denied"),
    ),  # 57, 66, 170
    ("mesgtoobig", ("message too large",)),  # 168
    ("rejected", ("suspected spam", "mail is rejected by recipients")),  # 71, 92
    ("spamdetected", ("spam is embedded in the email", "mail content denied")),  # 59, 171
    (
        "speeding",
        ("mailbox unavailable or access denined", "frequency of receiving messages is limited"),
    ),
    ("suspend", ("is a deactivated mailbox",)),
    ("syntaxerror", ("bad address syntax",)),  # 167
    (
        "toomanyconn",
        (
            "ip frequency limited",
            "domain frequency limited",
            "sender frequency limited",
            "connection frequency limited",
        ),
    ),
    ("userunknown", ("mailbox not found",)),  # 169
)


def reason(facts: Facts) -> str:
    """Tencent's wording."""
    text = facts.text
    for name, phrases in _MESSAGES:
        if any(p in text for p in phrases):
            return name
    return ""
