"""Rules for how big receiving providers word their rejections.

Gmail, Microsoft 365, Orange, Tencent and others document their SMTP replies,
often with their own codes inside the text ("AUP#CXBL" at Cox, "LPN007_416"
at La Poste, "IB508" at GoDaddy). When the recipient's domain, the remote host
or the reporting host belongs to one of them, its table is consulted before the
generic phrases of :mod:`~landed.parse.reasons`, because there the provider's
own wording is exact.

Each provider module has ``HOSTS`` (host name suffixes; a recipient domain
matches when it is one of them or a parent of one) and ``reason(facts)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from landed.parse.receivers import (
    aol,
    apple,
    cloudflare,
    cox,
    facebook,
    godaddy,
    google,
    iua,
    japan,
    messagelabs,
    microsoft,
    mimecast,
    orange,
    tencent,
    zoho,
)

if TYPE_CHECKING:
    from landed.parse.classify import Facts

__all__ = ["provider_of", "reason"]

_PROVIDERS: tuple[tuple[str, tuple[str, ...], Callable[[Facts], str]], ...] = (
    ("aol", aol.HOSTS, aol.reason),
    ("apple", apple.HOSTS, apple.reason),
    ("cloudflare", cloudflare.HOSTS, cloudflare.reason),
    ("cox", cox.HOSTS, cox.reason),
    ("facebook", facebook.HOSTS, facebook.reason),
    ("godaddy", godaddy.HOSTS, godaddy.reason),
    ("google", google.HOSTS, google.reason),
    ("gsuite", google.WORKSPACE_HOSTS, google.workspace_reason),
    ("iua", iua.HOSTS, iua.reason),
    ("kddi", japan.KDDI_HOSTS, japan.kddi_reason),
    ("nttdocomo", japan.DOCOMO_HOSTS, japan.docomo_reason),
    ("messagelabs", messagelabs.HOSTS, messagelabs.reason),
    ("microsoft", microsoft.HOSTS, microsoft.reason),
    ("outlook", microsoft.OUTLOOK_HOSTS, microsoft.outlook_reason),
    ("mimecast", mimecast.HOSTS, mimecast.reason),
    ("orange", orange.HOSTS, orange.reason),
    ("tencent", tencent.HOSTS, tencent.reason),
    ("zoho", zoho.HOSTS, zoho.reason),
)


def _domain_matches(domain: str, suffix: str) -> bool:
    # "ezweb.ne.jp" is served by ".ezweb.ne.jp" hosts; "outlook.com" by ".protection.outlook.com".
    host = suffix.lstrip(".")
    return host == domain or host.endswith("." + domain)


def provider_of(*, domain: str, remote: str, local: str) -> Callable[[Facts], str] | None:
    """The rules of the provider serving ``domain`` (or running ``remote``/``local``)."""
    domain = domain.lower()
    if domain:
        for _name, hosts, rules in _PROVIDERS:
            if any(_domain_matches(domain, h) for h in hosts):
                return rules
    for host in (remote.lower(), local.lower()):
        if not host:
            continue
        for _name, hosts, rules in _PROVIDERS:
            if any(host.endswith(h) for h in hosts):
                return rules
    return None


def reason(facts: Facts, *, domain: str, remote: str, local: str) -> str:
    """The reason the receiving provider's wording names, or ``""``."""
    if not facts.diagnostic:
        return ""
    rules = provider_of(domain=domain, remote=remote, local=local)
    return rules(facts) if rules is not None else ""
