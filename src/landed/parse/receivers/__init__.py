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
    spectrum,
    tencent,
    yahoo,
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
    ("spectrum", spectrum.HOSTS, spectrum.reason),
    ("tencent", tencent.HOSTS, tencent.reason),
    ("yahoo", yahoo.HOSTS, yahoo.reason),
    ("zoho", zoho.HOSTS, zoho.reason),
)


def _suffixes(host: str) -> list[str]:
    """``mx.a.example.com`` -> [mx.a.example.com, a.example.com, example.com, com]."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


# Lookup tables built once: a recipient domain is served by a provider when it
# is one of its host names or a parent domain of one ("outlook.com" is served
# by ".protection.outlook.com"); a host belongs to it when it ends with one.
_BY_DOMAIN: dict[str, Callable[[Facts], str]] = {}
_BY_SUFFIX: dict[str, Callable[[Facts], str]] = {}
for _name, _hosts, _rules in _PROVIDERS:
    for _host in _hosts:
        _BY_SUFFIX.setdefault(_host, _rules)
        for _parent in _suffixes(_host.lstrip("."))[:-1]:
            _BY_DOMAIN.setdefault(_parent, _rules)


def provider_of(*, domain: str, remote: str, local: str) -> Callable[[Facts], str] | None:
    """The rules of the provider serving ``domain`` (or running ``remote``/``local``)."""
    if domain:
        rules = _BY_DOMAIN.get(domain.lower())
        if rules is not None:
            return rules
    for host in (remote, local):
        if not host:
            continue
        host = host.lower()
        rules = _BY_SUFFIX.get(host) or _BY_SUFFIX.get("." + host)
        at = host.find(".")
        while rules is None and at >= 0:
            # ".example.com" (a parent-domain key), then "example.com" (a host key).
            rules = _BY_SUFFIX.get(host[at:]) or _BY_SUFFIX.get(host[at + 1 :])
            at = host.find(".", at + 1)
        if rules is not None:
            return rules
    return None


def reason(facts: Facts, *, domain: str, remote: str, local: str) -> str:
    """The reason the receiving provider's wording names, or ``""``."""
    if not facts.diagnostic:
        return ""
    rules = provider_of(domain=domain, remote=remote, local=local)
    return rules(facts) if rules is not None else ""
