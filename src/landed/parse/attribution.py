"""Finding landed tracking tokens in a report, and saying where each was found.

Tokens are looked for, never verified (no keys here): ingest verifies them.
Where a token was found says how far it can be trusted (DESIGN.md,
"Attribution"): the VERP envelope recipient first, then the DSN envelope id,
then the returned Message-ID, then our header in the returned message.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from landed.parse.report import Token
from landed.tokens import TOKEN_PATTERN

__all__ = ["DELIVERY_HEADERS", "TOKEN_HEADER", "find_tokens"]

#: Our header in outgoing mail; equal to ``landed.compose.message.TOKEN_HEADER``
#: (not imported: ``landed.compose`` pulls in ``email.utils`` and with it ``socket``).
TOKEN_HEADER = "X-Landed-Token"

_WHOLE = re.compile(rf"(?<![0-9A-Za-z])({TOKEN_PATTERN})(?![0-9A-Za-z])")
_VERP = re.compile(rf"\bbounces\+({TOKEN_PATTERN})@", re.I)
# Matched at the start of a line of the lowercased text (tokens are lowercase):
# case-insensitive patterns scanning whole texts cost more than the rest.
_MESSAGE_ID = re.compile(rf"message-id:\s*<({TOKEN_PATTERN})@")
_HEADER = re.compile(rf"{TOKEN_HEADER.lower()}:\s*({TOKEN_PATTERN})\b")
_VERP_VALUE = re.compile(rf"\bbounces\+({TOKEN_PATTERN})@", re.I)
# The report's own headers that say where it was delivered (our VERP address).
DELIVERY_HEADERS = ("x-original-to", "delivered-to", "envelope-to", "to")
# The returned message's (or ARF report's) copy of our envelope sender.
_RETURN_PATH = re.compile(rf"[^\n]*?\bbounces\+({TOKEN_PATTERN})@")
_RETURN_FIELDS = ("return-path:", "original-mail-from:")


def find_tokens(
    *,
    envelope_rcpt: str | None,
    envid: str,
    returned: str,
    delivered_to: tuple[str, ...] = (),
    body: str = "",
) -> tuple[Token, ...]:
    """Every token-looking string, in trust order, each (value, where) once.

    ``returned`` is the returned message (or its header block),
    ``delivered_to`` the values of the report's own Delivered-To /
    X-Original-To / To headers (where it was delivered: the VERP address when
    the envelope is not given), ``body`` the whole decoded text, searched for
    quoted headers of the original message only when there is no returned
    part (bounces that quote the original inline instead of attaching it).
    """
    found: dict[tuple[str, str], None] = {}

    def add(value: str, where: str) -> None:
        found.setdefault((value.lower(), where), None)

    if envelope_rcpt:
        for match in _VERP.finditer(envelope_rcpt):
            add(match.group(1), "verp")
    for value in delivered_to:
        if "+" in value:
            for match in _VERP_VALUE.finditer(value):
                add(match.group(1), "verp")
    if envid:
        whole = _WHOLE.search(envid)
        if whole is not None:
            add(whole.group(1), "envid")
    if returned:
        # Only the returned message's header block carries our headers.
        end = returned.find("\n\n")
        _scan(returned if end < 0 else returned[: end + 1], add)
    elif body:
        # No returned part: the bounce may quote the original header inline.
        _scan(body, add)
    return tuple(Token(value, where) for value, where in found)


def _scan(text: str, add: Callable[[str, str], None]) -> None:
    if not text:
        return
    lowered = "\n" + text.lower()
    for at in _line_starts(lowered, "message-id:"):
        match = _MESSAGE_ID.match(lowered, at)
        if match is not None:
            add(match.group(1), "message-id")
    for at in _line_starts(lowered, TOKEN_HEADER.lower() + ":"):
        match = _HEADER.match(lowered, at)
        if match is not None:
            add(match.group(1), "header")
    if "bounces+" in lowered:
        for name in _RETURN_FIELDS:
            for at in _line_starts(lowered, name):
                match = _RETURN_PATH.match(lowered, at + len(name))
                if match is not None:
                    add(match.group(1), "return-path")


def _line_starts(lowered: str, name: str) -> list[int]:
    """Where lines starting with ``name`` start in ``lowered`` (which begins with "\\n")."""
    found: list[int] = []
    needle = "\n" + name
    at = lowered.find(needle)
    while at >= 0:
        found.append(at + 1)
        at = lowered.find(needle, at + 1)
    return found
