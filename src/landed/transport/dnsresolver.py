"""Where a domain's mail goes: MX lookup with the fallbacks of RFC 5321 §5.1 and RFC 7505.

* MX records, lowest preference first; hosts of equal preference in random
  order (RFC 5321 §5.1: "the SMTP client SHOULD randomize them").
* No MX record at all: the domain itself is the mail host, preference 0 (the
  "implicit MX", RFC 5321 §5.1), reached through its A/AAAA records.
* A null MX (``0 .``, RFC 7505): the domain accepts no mail. The caller bounces
  at once with ``5.1.10`` (RFC 7505 §4.2 and RFC 7504) and connects nowhere.
* The domain does not exist (NXDOMAIN): a permanent failure, as Postfix and Exim
  treat it. Any other DNS trouble (timeout, SERVFAIL) is temporary.

The resolver is dnspython's, either the system's (``/etc/resolv.conf``) or the
configured name servers, each with its own port, so that tests can answer from
a stub server on the loopback interface.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

__all__ = ["Lookup", "MailHost", "MailResolver"]


@dataclass(frozen=True, slots=True)
class MailHost:
    """One host that takes mail for a domain, with the addresses to try."""

    name: str
    preference: int
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lookup:
    """What DNS says about a domain's mail hosts.

    Exactly one of: ``hosts`` to try in order; ``null_mx``; or ``error``, with
    ``permanent`` saying whether the domain can never take mail as things are.
    """

    domain: str
    hosts: tuple[MailHost, ...] = ()
    #: The hosts came from the domain's own A/AAAA records (no MX record).
    implicit: bool = False
    null_mx: bool = False
    error: str | None = None
    permanent: bool = False
    #: Why some MX hosts have no address (shown in the evidence when all fail).
    notes: tuple[str, ...] = field(default_factory=tuple)


class MailResolver:
    """MX, A and AAAA lookups for mail delivery.

    ``nameservers`` are ``(address, port)`` pairs; empty means the system's
    resolver configuration. ``timeout`` bounds each whole lookup.
    IPv4 addresses are tried before IPv6 ones: a sender's IPv6 address often
    lacks the reverse DNS and SPF that receivers demand of IPv6 mail (Gmail:
    https://support.google.com/a/answer/81126, "Additional requirements for IPv6").
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] = (),
        *,
        timeout: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        if nameservers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [host for host, _ in nameservers]
            resolver.nameserver_ports = {host: port for host, port in nameservers}
        else:
            resolver = dns.resolver.Resolver()
        resolver.lifetime = timeout
        resolver.timeout = min(timeout, 5.0)
        self._resolver = resolver
        self._rng = rng or random.Random()

    def lookup(self, domain: str) -> Lookup:
        """The mail hosts of ``domain``, in the order to try them; never raises."""
        domain = domain.strip().rstrip(".").lower()
        try:
            name = dns.name.from_text(domain)
        except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
            return Lookup(domain, error=f"not a domain name: {exc}", permanent=True)
        try:
            answer = self._resolver.resolve(name, "MX", raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return Lookup(
                domain, error=f"domain {domain} does not exist (NXDOMAIN)", permanent=True
            )
        except dns.exception.DNSException as exc:
            return Lookup(domain, error=f"MX lookup for {domain} failed: {_describe(exc)}")

        records = [(r.preference, r.exchange) for r in answer]
        if records and all(exchange == dns.name.root for _, exchange in records):
            # RFC 7505 §3: a null MX is the only MX record, "0 .". A domain that
            # publishes "." at any preference and nothing else gets the same reading.
            return Lookup(domain, null_mx=True)
        records = [(pref, exchange) for pref, exchange in records if exchange != dns.name.root]
        if not records:
            addresses, note = self._addresses(name)
            if not addresses:
                # The name exists (no NXDOMAIN) but has no MX and no address:
                # it is not a mail domain. Permanent, unless the lookup failed.
                return Lookup(
                    domain,
                    error=f"{domain} has no MX and no A/AAAA record"
                    + (f" ({note})" if note else ""),
                    permanent=note is None,
                )
            return Lookup(domain, hosts=(MailHost(domain, 0, addresses),), implicit=True)

        self._rng.shuffle(records)  # randomise among equal preferences...
        records.sort(key=lambda item: item[0])  # ...which a stable sort keeps
        hosts: list[MailHost] = []
        notes: list[str] = []
        for preference, exchange in records:
            host = exchange.to_text(omit_final_dot=True).lower()
            addresses, note = self._addresses(exchange)
            if note:
                notes.append(f"{host}: {note}")
            elif not addresses:
                notes.append(f"{host}: no A/AAAA record")
            hosts.append(MailHost(host, preference, addresses))
        return Lookup(domain, hosts=tuple(hosts), notes=tuple(notes))

    def _addresses(self, name: dns.name.Name) -> tuple[tuple[str, ...], str | None]:
        """The IPv4 then IPv6 addresses of ``name``, and what went wrong, if anything."""
        found: list[str] = []
        trouble: str | None = None
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = self._resolver.resolve(name, rdtype, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                return (), "no such host (NXDOMAIN)"
            except dns.exception.DNSException as exc:
                trouble = f"{dns.rdatatype.to_text(rdtype)} lookup failed: {_describe(exc)}"
                continue
            found.extend(r.address for r in answer)
        return tuple(found), None if found else trouble


def _describe(exc: dns.exception.DNSException) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return "timed out"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "no name server answered (SERVFAIL or refused)"
    return str(exc) or exc.__class__.__name__
