"""Cloudflare Email Routing (developers.cloudflare.com/email-routing/postmaster/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".mx.cloudflare.net",)

_MESSAGES = (
    ("blocked", "found on one or more DNSBLs"),
    ("systemerror", "Upstream error"),
)


def reason(facts: Facts) -> str:
    """Cloudflare's wording."""
    return next((r for r, m in _MESSAGES if m in facts.diagnostic), "")
