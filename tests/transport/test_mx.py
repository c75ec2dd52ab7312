"""The direct MX transport against a stub DNS server and stub mail hosts, all on loopback.

Every mail host listens on its own 127.0.0.x address and one shared high port
(the transport's ``port``, 25 in life); the stub DNS answers for ``*.test``.
Nothing connects anywhere but the loopback interface.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from landed.compose.envelope import Envelope
from landed.errors import InputError
from landed.transport.base import Kind, Stage
from landed.transport.dnsresolver import MailResolver
from landed.transport.mx import MXResult, MXTransport
from landed.transport.routes import unreachable
from tests.dnsstub import GreetingStub, MailHostStub, StubDNS, shared_port

pytestmark = pytest.mark.timeout(60)

TOKEN = "01jd5x7k2q8m3n4p5r6s7t8v9wab3kq7"
MESSAGE = (
    b"From: Alerts <alerts@corp.test>\r\nTo: bob@a.test\r\nSubject: [INC-1] Disk full\r\n"
    b"Message-ID: <" + TOKEN.encode() + b"@corp.test>\r\n\r\nThe disk is full.\r\n"
)
#: Loopback addresses of the stub hosts; 127.0.0.9 never has a listener (refused).
MX1, MX2, MX3, REFUSING = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"


def envelope(rcpt: str = "bob@a.test") -> Envelope:
    return Envelope(mail_from=f"bounces+{TOKEN}@bounce.test", rcpt_to=rcpt, envid=TOKEN)


@pytest.fixture
def dns() -> Iterator[StubDNS]:
    with StubDNS() as server:
        yield server


@pytest.fixture
def port() -> int:
    return shared_port(MX1, MX2, MX3, REFUSING)


@pytest.fixture
def hosts(port: int) -> Iterator[Callable[..., MailHostStub]]:
    """Start mail hosts on ``port``; all are stopped at the end of the test."""
    started: list[MailHostStub] = []

    def start(address: str, **kwargs: object) -> MailHostStub:
        host = MailHostStub(address, port, **kwargs).start()  # type: ignore[arg-type]
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


@pytest.fixture
def transport(dns: StubDNS, port: int) -> Callable[..., MXTransport]:
    def make(**kwargs: object) -> MXTransport:
        options: dict[str, object] = {"port": port, "timeout": 5.0, "helo": "landed.test"}
        options.update(kwargs)
        resolver = MailResolver([("127.0.0.1", dns.port)], timeout=3.0)
        return MXTransport(resolver, **options)  # type: ignore[arg-type]

    return make


def test_delivers_to_the_most_preferred_host_and_250_is_sent(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (20, "mx2.a.test"), (10, "mx1.a.test"))
    dns.address("mx1.a.test", MX1)
    dns.address("mx2.a.test", MX2)
    first, second = hosts(MX1), hosts(MX2)
    result = transport().send(envelope(), MESSAGE)
    assert isinstance(result, MXResult)
    assert result.kind is Kind.SENT and result.route == "mx"
    assert result.reply.code == 250 and result.reply.stage is Stage.MESSAGE
    assert result.host.startswith(f"mx1.a.test [{MX1}]") and result.tried == ()
    assert result.tls is None and "no TLS" in result.note
    (got,) = first.received
    assert got.rcpt_tos == ["bob@a.test"] and got.mail_from == f"bounces+{TOKEN}@bounce.test"
    assert b"The disk is full." in got.data
    assert second.received == [] and second.sessions == 0


def test_next_host_when_the_connection_is_refused(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"), (20, "mx2.a.test"))
    dns.address("mx1.a.test", REFUSING)
    dns.address("mx2.a.test", MX2)
    backup = hosts(MX2)
    result = transport().send(envelope(), MESSAGE)
    assert isinstance(result, MXResult) and result.kind is Kind.SENT
    assert result.host.startswith("mx2.a.test")
    (failed,) = result.tried
    assert failed.startswith(f"mx1.a.test [{REFUSING}]") and "connection refused" in failed
    assert len(backup.received) == 1


def test_next_host_after_a_4xx_greeting(
    dns: StubDNS,
    port: int,
    hosts: Callable[..., MailHostStub],
    transport: Callable[..., MXTransport],
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"), (20, "mx2.a.test"))
    dns.address("mx1.a.test", MX1)
    dns.address("mx2.a.test", MX2)
    backup = hosts(MX2)
    with GreetingStub(MX1, port, "421 4.3.2 mx1 too busy, try later") as busy:
        result = transport().send(envelope(), MESSAGE)
    assert busy.connections == 1
    assert isinstance(result, MXResult) and result.kind is Kind.SENT
    assert "421 4.3.2 mx1 too busy" in result.tried[0]
    assert len(backup.received) == 1


def test_no_reachable_host_is_temporary_and_counts_as_unreachable(
    dns: StubDNS, port: int, transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"), (20, "mx2.a.test"))
    dns.address("mx1.a.test", REFUSING)
    dns.address("mx2.a.test", MX3)  # no listener there either
    result = transport().send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY
    assert result.reply.code == 0 and result.reply.stage is Stage.CONNECT
    assert "no mail host of a.test could be reached" in result.reply.text
    assert isinstance(result, MXResult) and len(result.tried) == 2
    assert unreachable(result), "the route may fail over at once"


def test_all_hosts_busy_keeps_the_reply_and_is_not_unreachable(
    dns: StubDNS, port: int, transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"))
    dns.address("mx1.a.test", MX1)
    with GreetingStub(MX1, port, "421 4.7.0 come back later"):
        result = transport().send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY and result.reply.code == 421
    assert not unreachable(result), "a host that answers 4xx is not unreachable"


def test_without_mx_the_domains_own_address_is_used(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.address("plain.test", MX1)
    host = hosts(MX1)
    result = transport().send(envelope("carol@plain.test"), MESSAGE)
    assert isinstance(result, MXResult) and result.kind is Kind.SENT
    assert result.host.startswith(f"plain.test [{MX1}]")
    assert host.received[0].rcpt_tos == ["carol@plain.test"]
    assert ("plain.test", "MX") in dns.queries and ("plain.test", "A") in dns.queries


def test_ipv6_only_domain_is_reached_over_ipv6(
    dns: StubDNS, port: int, transport: Callable[..., MXTransport]
) -> None:
    try:
        host = MailHostStub("::1", port).start()
    except OSError as exc:  # pragma: no cover - a kernel without IPv6
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        dns.address("six.test", "::1")
        result = transport().send(envelope("dee@six.test"), MESSAGE)
    finally:
        host.stop()
    assert isinstance(result, MXResult) and result.kind is Kind.SENT
    assert "[IPv6:::1]" in result.host and len(host.received) == 1


def test_null_mx_bounces_with_5_1_10_and_connects_nowhere(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.null_mx("nomail.test")
    dns.address("nomail.test", MX1)  # an address must not be used as an implicit MX
    host = hosts(MX1)
    result = transport().send(envelope("x@nomail.test"), MESSAGE)
    assert result.kind is Kind.PERMANENT
    assert result.reply.enhanced == "5.1.10" and "RFC 7505" in result.reply.text
    assert host.sessions == 0
    assert ("nomail.test", "A") not in dns.queries


def test_nonexistent_domain_is_permanent_and_dns_failure_temporary(
    dns: StubDNS, transport: Callable[..., MXTransport]
) -> None:
    mx = transport()
    gone = mx.send(envelope("x@gone.test"), MESSAGE)
    assert gone.kind is Kind.PERMANENT and gone.reply.enhanced == "5.1.2"
    assert "NXDOMAIN" in gone.reply.text
    dns.servfail.add("broken.test")
    broken = mx.send(envelope("x@broken.test"), MESSAGE)
    assert broken.kind is Kind.TEMPORARY and broken.reply.enhanced == "4.4.3"
    assert "SERVFAIL" in broken.reply.text
    dns.add("noaddr.test", "TXT", '"v=spf1 -all"')
    no_host = mx.send(envelope("x@noaddr.test"), MESSAGE)
    assert no_host.kind is Kind.PERMANENT and "no MX and no A/AAAA" in no_host.reply.text


def test_5xx_to_rcpt_is_permanent_and_no_other_host_is_tried(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"), (20, "mx2.a.test"))
    dns.address("mx1.a.test", MX1)
    dns.address("mx2.a.test", MX2)
    primary, backup = hosts(MX1), hosts(MX2)
    primary.rcpt_reply = "550 5.1.1 <bob@a.test>: Recipient address rejected: User unknown"
    result = transport().send(envelope(), MESSAGE)
    assert result.kind is Kind.PERMANENT
    assert result.reply.code == 550 and result.reply.stage is Stage.RCPT
    assert result.reply.enhanced == "5.1.1"
    assert backup.sessions == 0


def test_4xx_to_the_message_is_temporary_and_no_other_host_is_tried(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"), (20, "mx2.a.test"))
    dns.address("mx1.a.test", MX1)
    dns.address("mx2.a.test", MX2)
    primary, backup = hosts(MX1), hosts(MX2)
    primary.data_reply = "451 4.7.1 Greylisted, please try again in 5 minutes"
    result = transport().send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY and result.reply.code == 451
    assert result.reply.stage is Stage.MESSAGE and not unreachable(result)
    assert backup.sessions == 0


def test_per_domain_limit_bounds_concurrent_sessions(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"))
    dns.address("mx1.a.test", MX1)
    dns.mx("b.test", (10, "mx1.b.test"))
    dns.address("mx1.b.test", MX2)
    slow_a, slow_b = hosts(MX1, delay=0.3), hosts(MX2, delay=0.3)
    mx = transport(domain_limit=2)
    results = []
    lock = threading.Lock()

    def send(rcpt: str) -> None:
        result = mx.send(envelope(rcpt), MESSAGE)
        with lock:
            results.append(result)

    threads = [
        threading.Thread(target=send, args=(f"user{i}@{domain}",))
        for i in range(6)
        for domain in ("a.test", "b.test")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.kind for r in results] == [Kind.SENT] * 12
    assert slow_a.max_sessions == 2 and slow_b.max_sessions == 2, "limit reached, never passed"
    assert len(slow_a.received) == len(slow_b.received) == 6


def test_the_domain_limit_gives_up_after_the_timeout(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"))
    dns.address("mx1.a.test", MX1)
    hosts(MX1, delay=1.0)
    mx = transport(domain_limit=1, slot_wait=0.2)
    first = threading.Thread(target=mx.send, args=(envelope(), MESSAGE))
    first.start()
    try:
        for _ in range(100):  # until the first session holds the slot
            if mx._active:
                break
            threading.Event().wait(0.01)
        waited = mx.send(envelope("other@a.test"), MESSAGE)
    finally:
        first.join()
    assert waited.kind is Kind.TEMPORARY and "busy" in waited.reply.text


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names).configure_cert(context)
    return context


def test_starttls_is_opportunistic_and_not_verified(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"))
    dns.address("mx1.a.test", MX1)
    # A certificate from a CA nobody trusts, for another name: used all the same.
    host = hosts(MX1, tls_context=_server_context(trustme.CA(), "elsewhere.test"))
    result = transport().send(envelope(), MESSAGE)
    assert isinstance(result, MXResult) and result.kind is Kind.SENT
    assert result.tls is not None and result.tls.startswith("TLSv1.")
    assert f"TLS {result.tls}" in result.note
    assert host.received[0].tls


def test_tls_off_never_starts_tls(
    dns: StubDNS,
    hosts: Callable[..., MailHostStub],
    transport: Callable[..., MXTransport],
    ca: trustme.CA,
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"))
    dns.address("mx1.a.test", MX1)
    host = hosts(MX1, tls_context=_server_context(ca, "mx1.a.test"))
    result = transport(tls="off").send(envelope(), MESSAGE)
    assert isinstance(result, MXResult) and result.kind is Kind.SENT and result.tls is None
    assert not host.received[0].tls


def test_verify_checks_the_certificate_against_the_mx_name(
    dns: StubDNS,
    hosts: Callable[..., MailHostStub],
    transport: Callable[..., MXTransport],
    ca: trustme.CA,
    tmp_path: Path,
) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    dns.mx("a.test", (10, "mx1.a.test"), (20, "mx2.a.test"))
    dns.address("mx1.a.test", MX1)
    dns.address("mx2.a.test", MX2)
    wrong = hosts(MX1, tls_context=_server_context(ca, "someone-else.test"))
    right = hosts(MX2, tls_context=_server_context(ca, "mx2.a.test"))
    result = transport(tls="verify", cafile=str(cafile)).send(envelope(), MESSAGE)
    assert isinstance(result, MXResult) and result.kind is Kind.SENT
    assert result.host.startswith("mx2.a.test") and result.tls
    assert "not trusted" in result.tried[0]
    assert wrong.received == [] and right.received[0].tls


def test_verify_without_any_good_certificate_is_an_unreachable_hop(
    dns: StubDNS,
    hosts: Callable[..., MailHostStub],
    transport: Callable[..., MXTransport],
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"), (20, "mx2.a.test"))
    dns.address("mx1.a.test", MX1)
    dns.address("mx2.a.test", MX2)
    hosts(MX1, tls_context=_server_context(trustme.CA(), "mx1.a.test"))  # untrusted CA
    hosts(MX2)  # no STARTTLS at all
    result = transport(tls="verify").send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY and unreachable(result)
    assert isinstance(result, MXResult)
    assert "not trusted" in result.tried[0] and "does not offer STARTTLS" in result.tried[1]


def test_addresses_that_could_inject_commands_are_refused(
    transport: Callable[..., MXTransport],
) -> None:
    with pytest.raises(InputError):
        transport().send(envelope("bob@a.test\r\nRCPT TO:<x@evil.test>"), MESSAGE)


def test_the_body_goes_out_with_crlf_and_dot_stuffing(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.address("plain.test", MX1)
    host = hosts(MX1)
    bare = b"From: a@corp.test\nTo: c@plain.test\n\nline one\n.a dot line\r..two dots\n"
    result = transport().send(envelope("c@plain.test"), bare)
    assert result.kind is Kind.SENT
    (got,) = host.received
    assert got.data == (
        b"From: a@corp.test\r\nTo: c@plain.test\r\n\r\nline one\r\n.a dot line\r\n..two dots\r\n"
    )


def test_hosts_are_tried_within_the_time_budget_and_the_address_limit(
    dns: StubDNS, hosts: Callable[..., MailHostStub], transport: Callable[..., MXTransport]
) -> None:
    dns.mx("a.test", (10, "mx1.a.test"), (20, "mx2.a.test"))
    dns.address("mx1.a.test", REFUSING)
    dns.address("mx2.a.test", MX2)
    backup = hosts(MX2)
    result = transport(budget=0.0).send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY and isinstance(result, MXResult)
    assert "no more hosts tried after 0s" in result.tried[-1] and backup.sessions == 0
    dns.mx("many.test", *((i, f"mx{i}.many.test") for i in range(1, 8)))
    for i in range(1, 8):
        dns.address(f"mx{i}.many.test", REFUSING)
    many = transport().send(envelope("x@many.test"), MESSAGE)
    assert isinstance(many, MXResult) and len(many.tried) == 5, "at most 5 addresses"
