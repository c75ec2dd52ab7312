"""Finding landed tracking tokens in a report, and saying where each was found.

Tokens are looked for, never verified (no keys here): ingest verifies them.
Where a token was found says how far it can be trusted (DESIGN.md,
"Attribution"): the VERP envelope recipient first, then the DSN envelope id,
then the returned Message-ID, then our header in the returned message.
"""

from __future__ import annotations

import re

from landed.parse.report import Token
from landed.tokens import TOKEN_PATTERN

__all__ = ["TOKEN_HEADER", "find_tokens"]

#: Our header in outgoing mail; equal to ``landed.compose.message.TOKEN_HEADER``
#: (not imported: ``landed.compose`` pulls in ``email.utils`` and with it ``socket``).
TOKEN_HEADER = "X-Landed-Token"

_WHOLE = re.compile(rf"(?<![0-9A-Za-z])({TOKEN_PATTERN})(?![0-9A-Za-z])")
_VERP = re.compile(rf"\bbounces\+({TOKEN_PATTERN})@", re.I)
_MESSAGE_ID = re.compile(rf"^message-id:\s*<({TOKEN_PATTERN})@", re.I | re.M)
_HEADER = re.compile(rf"^{TOKEN_HEADER}:\s*({TOKEN_PATTERN})\b", re.I | re.M)
# The report's own envelope-ish headers (where it was delivered: our VERP address).
_DELIVERED = re.compile(
    rf"^(?:x-original-to|delivered-to|envelope-to|to):[^\n]*?\bbounces\+({TOKEN_PATTERN})@",
    re.I | re.M,
)
# The returned message's (or ARF report's) copy of our envelope sender.
_RETURN_PATH = re.compile(
    rf"^(?:return-path|original-mail-from):[^\n]*?\bbounces\+({TOKEN_PATTERN})@", re.I | re.M
)


def find_tokens(
    *,
    envelope_rcpt: str | None,
    envid: str,
    returned: str,
    bounce_headers: str,
    body: str,
) -> tuple[Token, ...]:
    """Every token-looking string, in trust order, each (value, where) once.

    ``returned`` is the returned message (or its header block), ``bounce_headers``
    the report's own header block (its Delivered-To / X-Original-To carry the
    VERP address when the envelope is not given), ``body`` the whole decoded
    text, searched last for quoted headers of the original message.
    """
    found: dict[tuple[str, str], None] = {}

    def add(value: str, where: str) -> None:
        found.setdefault((value.lower(), where), None)

    if envelope_rcpt:
        for match in _VERP.finditer(envelope_rcpt):
            add(match.group(1), "verp")
    for match in _DELIVERED.finditer(bounce_headers):
        add(match.group(1), "verp")
    if envid:
        whole = _WHOLE.search(envid)
        if whole is not None:
            add(whole.group(1), "envid")
    for text in (returned, body):
        if not text:
            continue
        for match in _MESSAGE_ID.finditer(text):
            add(match.group(1), "message-id")
        if TOKEN_HEADER[2:].lower() in text.lower():
            for match in _HEADER.finditer(text):
                add(match.group(1), "header")
        for match in _RETURN_PATH.finditer(text):
            add(match.group(1), "return-path")
    return tuple(Token(value, where) for value, where in found)
