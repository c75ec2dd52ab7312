"""Validation of caller-supplied header material.

Header injection is made impossible at the door: any CR, LF or NUL in a value
that will reach a header is an error, never silently stripped, because a caller
that sends one is either buggy or under attack and should hear about it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from functools import lru_cache

from landed.errors import HeaderInjectionError, InputError

_FORBIDDEN = re.compile(r"[\r\n\x00]")
# RFC 5322 dot-atom local part (atext), plus the domain as hostname labels.
# Quoted local parts and internationalized addresses (RFC 6531) are refused for now.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATEXT}(\.{_ATEXT})*$")
_DOMAIN = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# A bare ``local@domain`` that ``_LOCAL`` and ``_DOMAIN`` accept as they stand:
# parseaddr() would hand it back unchanged with no display name, so it can be
# taken apart without parseaddr(), whose pure-Python tokenizer is the slowest
# part of building a message.
_PLAIN = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9.-]+)")


def check_header_value(value: str, field: str) -> str:
    """Return ``value``; raise ``HeaderInjectionError`` if it holds CR, LF or NUL."""
    match = _FORBIDDEN.search(value)
    if match:
        names = {"\r": "CR", "\n": "LF", "\x00": "NUL"}
        raise HeaderInjectionError(
            f"{field} contains {names[match.group()]} at position {match.start()}: "
            "line breaks and NUL are not allowed in header fields"
        )
    return value


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An address with an optional display name."""

    local: str
    domain: str
    display_name: str = ""

    @property
    def address(self) -> str:
        """``local@domain``, with the domain lowercased."""
        return f"{self.local}@{self.domain}"

    def normalized(self) -> str:
        """The key a recipient is stored under: the whole address lowercased.

        RFC 5321 lets a local part be case-sensitive, but no mail system in use
        treats ``Bob@`` and ``bob@`` as different people, and one recipient
        ledger per person matters more than the theoretical distinction.
        """
        return self.address.lower()


def parse_mailbox(text: str, field: str) -> Mailbox:
    """Parse ``addr@example.com`` or ``Name <addr@example.com>``; ``InputError`` if bad."""
    check_header_value(text, field)
    text = text.strip()
    if not text:
        raise InputError(f"{field} is empty")
    plain = _PLAIN.fullmatch(text)
    if plain is not None:
        local, domain = plain.groups()
        if len(local) <= 64 and len(domain) <= 253 and _DOMAIN.match(domain):
            return Mailbox(local=local, domain=domain.lower())
    return _parse_named(text, field)


@lru_cache(maxsize=1024)
def _parse_named(text: str, field: str) -> Mailbox:
    # Addresses with a display name repeat (the From of every notification), and
    # a Mailbox is immutable, so a parsed one can be handed out again.
    name, addr = parseaddr(text)
    if not addr or "@" not in addr:
        raise InputError(f"{field}: not an email address: {text!r}")
    # parseaddr is lenient: make sure it consumed what we think it did.
    if "<" in text and not text.rstrip().endswith(">"):
        raise InputError(f"{field}: unexpected text after the address in {text!r}")
    local, _, domain = addr.rpartition("@")
    if len(local) > 64 or not _LOCAL.match(local):
        raise InputError(f"{field}: unsupported local part in {addr!r}")
    if len(domain) > 253 or not _DOMAIN.match(domain):
        raise InputError(f"{field}: not a valid domain in {addr!r}")
    return Mailbox(local=local, domain=domain.lower(), display_name=name.strip())
