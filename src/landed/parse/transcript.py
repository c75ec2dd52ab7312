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
# lowercase marker that must be in the text before the pattern is tried; the
# patterns run on the lowercased text (a case-insensitive pattern cannot use the
# fast literal search, and human parts are long).
_COMMAND_PATTERNS: tuple[tuple[str, re.Pattern[str], str | None], ...] = (
    # Postfix: "(in reply to RCPT TO command)", "(in reply to end of DATA command)"
    (
        "in reply to",
        re.compile(
            r"in reply to (?:end of )?(mail from|rcpt to|data|helo|ehlo|starttls|auth|quit)\b"
        ),
        None,
    ),
    # Exim: "SMTP error from remote mail server after RCPT TO:<...>:"
    ("after ", re.compile(r"after (?:end of data|data)\b"), "DATA"),
    ("after ", re.compile(r"after (mail from|rcpt to|helo|ehlo|starttls|auth)\b"), None),
    ("after initial", re.compile(r"after initial connection"), "CONN"),
    # Sendmail / Courier transcript: ">>> RCPT To:<...>"
    (">>> ", re.compile(r"^>>> (mail|rcpt|data|helo|ehlo|starttls|quit)\b", re.M), "last"),
    # qmail: "most progress was RCPT TO response"
    (" response", re.compile(r"(mail from|rcpt to|data|helo|ehlo) response"), None),
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


def _has_command(text: str) -> bool:
    """Whether any command name is in ``text`` (plain substring tests: faster than the scan)."""
    return (
        "RCPT" in text
        or "DATA" in text
        or "MAIL F" in text
        or "HELO" in text
        or "EHLO" in text
        or "AUTH" in text
        or "STARTTLS" in text
        or "QUIT" in text
    )


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
            found = pattern.findall(lowered)
            if found:
                return _normalize(found[-1])
            continue
        match = pattern.search(lowered)
        if match is not None:
            return fixed if fixed is not None else _normalize(match.group(1))
    if not _has_command(text):
        return ""
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


# Run on the lowercased text, each after a cheap marker check (see above).
_HOST_SAID = re.compile(r"\bhost\s+([a-z0-9][a-z0-9.-]*\.[a-z]{2,})\.?\s*\[?[\d.:a-f]*\]?\s+said:")
_TALKING_TO = re.compile(r"while talking to\s+([a-z0-9][a-z0-9.-]*\.[a-z]{2,})\.?:")
_REMOTE_SERVER = re.compile(
    r"(?:remote (?:mail )?server|connect(?:ed|ion)? to)\s+\[?([a-z0-9][a-z0-9.-]*\.[a-z0-9]{2,})\]?"
)
_HOST_PATTERNS = (
    (("said:",), _HOST_SAID),
    (("while talking to",), _TALKING_TO),
    (("server", "connect"), _REMOTE_SERVER),
)


def find_remote_host(text: str) -> str:
    """The remote host a bounce says answered, or ``""``."""
    lowered = text.lower()
    for markers, pattern in _HOST_PATTERNS:
        if not any(marker in lowered for marker in markers):
            continue
        match = pattern.search(lowered)
        if match is not None:
            return match.group(1).rstrip(".")
    return ""


def find_addresses(text: str) -> list[str]:
    """Email addresses in ``text``, in order, without duplicates."""
    seen: dict[str, None] = {}
    for match in ADDRESS.finditer(text):
        address = match.group(0).strip(".")
        seen.setdefault(address, None)
    return list(seen)
