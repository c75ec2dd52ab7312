"""Reading the human part of a bounce: which SMTP command failed, which host
answered, which addresses are mentioned.

MTAs quote the SMTP conversation in their own ways: Postfix "(in reply to RCPT
TO command)", Sendmail ">>> RCPT To:<...>" then "<<< 550 ...", Exim "SMTP error
from remote mail server after RCPT TO:<...>", qmail "most progress was RCPT TO
response". The command matters: a "user unknown" answer to RCPT is about the
address; the same words answering DATA come from a content filter.
"""

from __future__ import annotations

import re

__all__ = ["ADDRESS", "find_addresses", "find_command", "find_remote_host"]

#: An email address inside text (angle brackets and quotes excluded).
ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")

# Ordered by specificity: the first that matches wins. Each has a cheap
# lowercase marker that must be in the text before the pattern is tried.
_COMMAND_PATTERNS: tuple[tuple[str, re.Pattern[str], str | None], ...] = (
    # Postfix: "(in reply to RCPT TO command)", "(in reply to end of DATA command)"
    (
        "in reply to",
        re.compile(
            r"in reply to (?:end of )?(MAIL FROM|RCPT TO|DATA|HELO|EHLO|STARTTLS|AUTH|QUIT)\b", re.I
        ),
        None,
    ),
    # Exim: "SMTP error from remote mail server after RCPT TO:<...>:"
    ("after ", re.compile(r"after (?:end of data|data)\b", re.I), "DATA"),
    ("after ", re.compile(r"after (MAIL FROM|RCPT TO|HELO|EHLO|STARTTLS|AUTH)\b", re.I), None),
    ("after initial", re.compile(r"after initial connection", re.I), "CONN"),
    # Sendmail / Courier transcript: ">>> RCPT To:<...>"
    (">>> ", re.compile(r"^>>> (MAIL|RCPT|DATA|HELO|EHLO|STARTTLS|QUIT)\b", re.I | re.M), "last"),
    # qmail: "most progress was RCPT TO response"
    (" response", re.compile(r"(MAIL FROM|RCPT TO|DATA|HELO|EHLO) response", re.I), None),
)


def _normalize(command: str) -> str:
    word = command.upper().split()[0]
    if word.startswith("MAIL"):
        return "MAIL"
    if word.startswith("RCPT"):
        return "RCPT"
    return word


# A bare command name in uppercase, as replies quote it ("503 5.0.0 Need RCPT
# (recipient)", "554 5.5.1 Error: no valid recipients ... DATA").
# The neighbours (not inside a longer word, an address or a host name) are
# checked in code: a leading lookbehind would make every search slow.
_BARE_COMMAND = re.compile(r"HELO|EHLO|STARTTLS|AUTH|MAIL F|RCPT|DATA|QUIT")
_WORDLIKE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@.")
# Protocol order: when several are named, the latest step is the one that failed.
_PROTOCOL_ORDER = {
    "HELO": 0,
    "EHLO": 1,
    "STARTTLS": 2,
    "AUTH": 3,
    "MAIL": 4,
    "RCPT": 5,
    "DATA": 6,
    "QUIT": 7,
}


def find_command(text: str) -> str:
    """The SMTP command a failure answered, or ``""``."""
    if not text:
        return ""
    lowered = text.lower()
    for marker, pattern, fixed in _COMMAND_PATTERNS:
        if marker not in lowered:
            continue
        if fixed == "last":
            found = pattern.findall(text)
            if found:
                return _normalize(found[-1])
            continue
        match = pattern.search(text)
        if match is not None:
            return fixed if fixed is not None else _normalize(match.group(1))
    best = ""
    size = len(text)
    for match in _BARE_COMMAND.finditer(text):
        start, end = match.span()
        if (start and text[start - 1] in _WORDLIKE) or (end < size and text[end] in _WORDLIKE):
            continue
        word = _normalize(match.group())
        if not best or _PROTOCOL_ORDER[word] > _PROTOCOL_ORDER[best]:
            best = word
    return best


_HOST_SAID = re.compile(
    r"\bhost\s+([A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,})\.?\s*\[?[\d.:a-fA-F]*\]?\s+said:", re.I
)
_TALKING_TO = re.compile(r"while talking to\s+([A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,})\.?:", re.I)
_REMOTE_SERVER = re.compile(
    r"(?:remote (?:mail )?server|connect(?:ed|ion)? "
    r"to)\s+\[?([A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z0-9]{2,})\]?",
    re.I,
)


def find_remote_host(text: str) -> str:
    """The remote host a bounce says answered, or ``""``."""
    for pattern in (_HOST_SAID, _TALKING_TO, _REMOTE_SERVER):
        match = pattern.search(text)
        if match is not None:
            return match.group(1).rstrip(".").lower()
    return ""


def find_addresses(text: str) -> list[str]:
    """Email addresses in ``text``, in order, without duplicates."""
    seen: dict[str, None] = {}
    for match in ADDRESS.finditer(text):
        address = match.group(0).strip(".")
        seen.setdefault(address, None)
    return list(seen)
