"""A stub mail world on the loopback interface: a DNS server and mail hosts.

Usage::

    from tests.dnsstub import StubDNS, MailHostStub, GreetingStub, shared_port

    with StubDNS() as dns:                        # UDP and TCP on 127.0.0.1:<port>
        dns.mx("a.test", (10, "mx1.a.test"), (20, "mx2.a.test"))
        dns.address("mx1.a.test", "127.0.0.2")    # A (or AAAA for an IPv6 address)
        dns.null_mx("nomail.test")                # "0 ."
        dns.servfail.add("broken.test")           # SERVFAIL for every query
        settings.mx_nameservers = [dns.nameserver]  # "127.0.0.1:PORT"

Names the stub holds no record for get NXDOMAIN; a name with records but none
of the asked type gets an empty NOERROR answer (as real servers do).

``MailHostStub(address, port, *, tls_context=None, delay=0.0)`` is an aiosmtpd
server on one loopback address; several share one port (``shared_port()``),
because the direct MX transport connects to every host on the same port (25 in
life). ``.received``, ``.rcpt_reply`` / ``.data_reply`` (a scripted answer),
``.sessions`` and ``.max_sessions`` (how many were open at once).
``GreetingStub(address, port, greeting)`` answers every connection with one
greeting line (``421 busy``) and hangs up after the client's next line.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import socket
import socketserver
import ssl
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["GreetingStub", "MailHostStub", "StubDNS", "shared_port"]


class StubDNS:
    """An authoritative-looking DNS server for ``*.test`` names, on 127.0.0.1 UDP and TCP."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.servfail: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self._records: dict[tuple[dns.name.Name, int], list[str]] = {}
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []

    # --- zone data --------------------------------------------------------------------

    def add(self, name: str, rdtype: str, *values: str) -> None:
        key = (dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
        with self._lock:
            self._records.setdefault(key, []).extend(values)

    def mx(self, domain: str, *hosts: tuple[int, str]) -> None:
        self.add(domain, "MX", *(f"{pref} {host}." for pref, host in hosts))

    def null_mx(self, domain: str) -> None:
        self.add(domain, "MX", "0 .")

    def address(self, name: str, *addresses: str) -> None:
        for address in addresses:
            self.add(name, "AAAA" if ":" in address else "A", address)

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    # --- answering --------------------------------------------------------------------

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        with self._lock:
            self.queries.append((name.to_text(omit_final_dot=True), dns.rdatatype.to_text(rdtype)))
            known = any(n == name for n, _ in self._records)
            values = list(self._records.get((name, rdtype), ()))
        if name.to_text(omit_final_dot=True) in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif not known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values:
            response.answer.append(
                dns.rrset.from_text_list(name, 60, dns.rdataclass.IN, rdtype, values)
            )
        return response.to_wire()

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> StubDNS:
        stub = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(stub.answer(data), self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                # RFC 1035 §4.2.2: each message is preceded by its two-byte length.
                header = self.request.recv(2)
                if len(header) < 2:
                    return
                (length,) = struct.unpack("!H", header)
                data = b""
                while len(data) < length:
                    chunk = self.request.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = stub.answer(data)
                self.request.sendall(struct.pack("!H", len(reply)) + reply)

        for _ in range(20):  # UDP and TCP on one port: retry if TCP's is taken
            udp = socketserver.ThreadingUDPServer((self.host, 0), UDPHandler)
            port = udp.server_address[1]
            try:
                tcp = socketserver.ThreadingTCPServer((self.host, port), TCPHandler)
            except OSError:
                udp.server_close()
                continue
            break
        else:  # pragma: no cover
            raise RuntimeError("no free port for the stub DNS server")
        udp.daemon_threads = tcp.daemon_threads = True
        self.port = port
        self._servers = [udp, tcp]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def __enter__(self) -> StubDNS:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def shared_port(*addresses: str) -> int:
    """A TCP port free on every one of ``addresses`` (loopback), for servers to share."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind((addresses[0], 0))
        port: int = probe.getsockname()[1]
        probe.close()
        free = True
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            with socket.socket(family) as other:
                try:
                    other.bind((address, port))
                except OSError:
                    free = False
                    break
        if free:
            return port
    raise RuntimeError("no shared free port")  # pragma: no cover


@dataclass
class Got:
    """One message a mail host accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    message: email.message.EmailMessage = field(repr=False)


class _SessionCounting(SMTP):
    """Counts a session from its first EHLO/HELO (the controller's start-up probe sends none)."""

    def __init__(self, host: MailHostStub, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.host = host
        self.counted = False

    def greeted(self) -> None:
        if not self.counted:
            self.counted = True
            self.host._opened()

    def connection_lost(self, error: Exception | None) -> None:
        if self.counted:
            self.counted = False
            self.host._closed()
        super().connection_lost(error)


class _Handler:
    def __init__(self, host: MailHostStub) -> None:
        self.host = host

    async def handle_EHLO(
        self,
        server: _SessionCounting,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        server.greeted()
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.host.rcpt_reply is not None:
            return self.host.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.host.delay:
            await asyncio.sleep(self.host.delay)
        if self.host.data_reply is not None:
            return self.host.data_reply
        data = envelope.original_content or b""
        transport = server.transport
        with self.host._lock:
            self.host._received.append(
                Got(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=data,
                    tls=transport is not None
                    and transport.get_extra_info("ssl_object") is not None,
                    message=email.message_from_bytes(data, policy=email.policy.default),
                )
            )
        return f"250 2.0.0 Ok: queued on {self.host.address}"


class _Controller(Controller):
    def __init__(self, host: MailHostStub, **kwargs: Any) -> None:
        super().__init__(_Handler(host), **kwargs)
        self.stub = host

    def factory(self) -> SMTP:
        return _SessionCounting(self.stub, self.handler, **self.SMTP_kwargs)


class MailHostStub:
    """A recipient's mail host: aiosmtpd on one loopback address and a given port."""

    def __init__(
        self,
        address: str,
        port: int,
        *,
        tls_context: ssl.SSLContext | None = None,
        delay: float = 0.0,
    ) -> None:
        self.address = address
        self.port = port
        self.delay = delay
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self._lock = threading.Lock()
        self._received: list[Got] = []
        self._live = 0
        self.sessions = 0
        self.max_sessions = 0
        self._controller = _Controller(
            self,
            hostname=address,
            port=port,
            server_hostname=f"stub-{address}",
            tls_context=tls_context,
            timeout=30,
        )

    def _opened(self) -> None:
        with self._lock:
            self._live += 1
            self.sessions += 1
            self.max_sessions = max(self.max_sessions, self._live)

    def _closed(self) -> None:
        with self._lock:
            self._live -= 1

    @property
    def received(self) -> list[Got]:
        with self._lock:
            return list(self._received)

    def start(self) -> MailHostStub:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> MailHostStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class GreetingStub:
    """Answers each connection with ``greeting``, then closes after one line from the client."""

    def __init__(self, address: str, port: int, greeting: str) -> None:
        self.address = address
        self.port = port
        self.greeting = greeting
        self.connections = 0
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                self.wfile.write(outer.greeting.encode() + b"\r\n")
                self.rfile.readline()

        self._server = socketserver.ThreadingTCPServer((address, port), Handler)
        self._server.daemon_threads = True

    def __enter__(self) -> GreetingStub:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
