"""AOL Mail (now Yahoo's infrastructure): its MTA's own DNS failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".mail.aol.com", ".mx.aol.com")

_MESSAGES = (
    ("hostunknown", "Host or domain name not found"),
    ("notaccept", "type=MX: Malformed or unexpected name server reply"),
)


def reason(facts: Facts) -> str:
    """AOL's wording."""
    return next((r for r, m in _MESSAGES if m in facts.diagnostic), "")
