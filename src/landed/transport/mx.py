"""The direct MX transport: landed acts as its own MTA.

For each delivery: look up the recipient domain's mail hosts
(:mod:`landed.transport.dnsresolver`), then try them in preference order, one
SMTP session per delivery, until one answers the transaction:

* a connection that fails, a greeting or EHLO other than 2xx, or (with
  ``tls="verify"``) a TLS failure moves on to the next address or host
  (RFC 5321 §5.1: "the SMTP client SHOULD try at least two addresses");
* once ``MAIL`` has been sent, the host's answer stands: ``250`` after the
  message is ``SENT`` and proves ``accepted`` (the recipient's own mail system
  took it), a ``5xx`` is ``PERMANENT`` (a bounce), anything else ``TEMPORARY``
  (the sender's retry schedule and lifetime apply);
* a null MX (RFC 7505) or a domain that does not exist is ``PERMANENT`` with no
  connection made; other DNS trouble is ``TEMPORARY``.

STARTTLS is opportunistic by default, as Postfix's ``smtp_tls_security_level =
may`` (https://www.postfix.org/TLS_README.html#client_tls_may): offered TLS is
used without checking the certificate, a failed handshake is retried in clear,
because unverified TLS still beats cleartext and almost no MX certificate would
pass a check anyway. ``tls="verify"`` demands a certificate valid for the MX
host name; ``tls="off"`` never starts TLS. Each result says which host took the
session and whether it was encrypted (:class:`MXResult`), for the evidence.

Connections are limited per recipient domain and process (``domain_limit``),
as Postfix's ``default_destination_concurrency_limit``: receivers throttle or
block senders that open many sessions at once.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from landed.compose.envelope import Envelope, dsn_mail_options, dsn_rcpt_options
from landed.config import Settings
from landed.errors import InputError
from landed.transport.base import Kind, Reply, SendResult, Stage
from landed.transport.dnsresolver import Lookup, MailHost, MailResolver

__all__ = ["MXResult", "MXTransport", "TLSMode"]

TLSMode = Literal["opportunistic", "verify", "off"]

#: At most this many addresses are tried per delivery attempt, as Postfix's
#: ``smtp_mx_address_limit`` default (https://www.postfix.org/postconf.5.html).
MAX_ADDRESSES = 5

_CONTROL = frozenset(chr(c) for c in [*range(32), 127])
_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class MXResult(SendResult):
    """A direct-MX result: also which host answered, over what, after which failures."""

    #: ``mx1.example.com [192.0.2.1]:25``, the host whose reply this is ("" if none).
    host: str = ""
    #: The TLS version and cipher of the session, or None in clear.
    tls: str | None = None
    #: The hosts that failed before, each with why.
    tried: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        """One line for the evidence: where, encrypted or not, after what."""
        parts = []
        if self.host:
            parts.append(f"via {self.host}, " + (f"TLS {self.tls}" if self.tls else "no TLS"))
        if self.tried:
            parts.append("after " + "; ".join(self.tried))
        return "; ".join(parts)


class _NextHost(Exception):
    """This address cannot take the session: try the next one."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


class _Retry(Exception):
    """The TLS handshake failed on an opportunistic session: reconnect in clear."""


class MXTransport:
    """A :class:`~landed.transport.base.Transport` that delivers to recipients' MX hosts.

    Safe to share between threads: each ``send()`` opens its own session, and
    at most ``domain_limit`` run at once per recipient domain (a ``send()``
    waits up to ``slot_wait`` seconds, default ``timeout``, for a free slot).
    ``budget`` bounds the time one ``send()`` spends trying hosts, so that an
    attempt fits in the outbox lease. ``port`` is 25 except in tests.
    """

    def __init__(
        self,
        resolver: MailResolver,
        *,
        port: int = 25,
        timeout: float = 30.0,
        tls: TLSMode = "opportunistic",
        cafile: str | None = None,
        helo: str | None = None,
        domain_limit: int = 4,
        budget: float | None = None,
        slot_wait: float | None = None,
        dsn_notify: str = "SUCCESS,FAILURE,DELAY",
        dsn_ret: str = "HDRS",
        name: str = "mx",
    ) -> None:
        if domain_limit < 1:
            raise ValueError("domain_limit must be at least 1")
        self.name = name
        self.resolver = resolver
        self.port = port
        self.timeout = timeout
        self.tls: TLSMode = tls
        self.cafile = cafile
        self.domain_limit = domain_limit
        self.budget = budget
        self.slot_wait = timeout if slot_wait is None else slot_wait
        self.dsn_notify = dsn_notify
        self.dsn_ret = dsn_ret
        self._helo = helo
        self._active: dict[str, int] = {}
        self._slots = threading.Condition()

    @classmethod
    def from_settings(cls, settings: Settings) -> MXTransport:
        """The transport the ``mx_*`` settings describe."""
        resolver = MailResolver(settings.mx_nameserver_list(), timeout=settings.mx_timeout)
        return cls(
            resolver,
            port=settings.mx_port,
            timeout=settings.mx_timeout,
            tls=settings.mx_tls,
            cafile=settings.mx_cafile,
            helo=settings.mx_helo,
            domain_limit=settings.mx_domain_limit,
            # Two thirds of the lease: the sender renews its lease between
            # deliveries, never during one.
            budget=settings.lease_seconds * 2 / 3,
            dsn_notify=settings.dsn_notify,
            dsn_ret=settings.dsn_ret,
        )

    def close(self) -> None:
        """Nothing to close: every session ends with its delivery."""

    # --- one delivery ----------------------------------------------------------------

    def send(self, envelope: Envelope, message: bytes) -> SendResult:
        """Deliver ``message`` to the recipient's mail host; never raise for a delivery failure.

        Raises ``InputError`` only for an address containing control
        characters, which could inject SMTP commands.
        """
        for address in (envelope.mail_from, envelope.rcpt_to):
            if _CONTROL.intersection(address):
                raise InputError("address contains control characters")
        domain = envelope.rcpt_to.rpartition("@")[2].strip("[]").lower()
        if not domain:
            return self._result(Kind.PERMANENT, Reply(0, "5.1.3 no domain in address", Stage.RCPT))
        lookup = self.resolver.lookup(domain)
        if lookup.null_mx:
            text = f"5.1.10 {domain} accepts no mail: its MX record is null (RFC 7505)"
            return self._result(Kind.PERMANENT, Reply(0, text, Stage.CONNECT))
        if lookup.error is not None:
            if lookup.permanent:
                return self._result(
                    Kind.PERMANENT, Reply(0, f"5.1.2 {lookup.error}", Stage.CONNECT)
                )
            return self._result(Kind.TEMPORARY, Reply(0, f"4.4.3 {lookup.error}", Stage.CONNECT))
        with self._slot(domain) as free:
            if not free:
                text = f"all {self.domain_limit} sessions to {domain} busy for {self.slot_wait:g}s"
                return self._result(Kind.TEMPORARY, Reply(0, text, Stage.CONNECT))
            return self._deliver(lookup, envelope, message)

    def _deliver(self, lookup: Lookup, envelope: Envelope, message: bytes) -> SendResult:
        tried: list[str] = list(lookup.notes)
        refusals: list[Reply] = []
        started = time.monotonic()
        candidates = [(host, address) for host in lookup.hosts for address in host.addresses]
        for position, (host, address) in enumerate(candidates[:MAX_ADDRESSES]):
            elapsed = time.monotonic() - started
            if position and self.budget is not None and elapsed > self.budget:
                tried.append(f"no more hosts tried after {self.budget:g}s")
                break
            try:
                try:
                    return self._session(host, address, envelope, message, tried, tls=True)
                except _Retry:
                    return self._session(host, address, envelope, message, tried, tls=False)
            except _NextHost as failed:
                tried.append(f"{_where(host, address, self.port)}: {failed.reply}")
                refusals.append(failed.reply)
        # No host took the session. A host that answered (421 busy, 554 go away)
        # says more than "connection refused", so its reply is the one kept.
        answered = [r for r in refusals if r.code > 0]
        if answered:
            return self._result(Kind.TEMPORARY, answered[-1], tried=tried)
        text = f"no mail host of {lookup.domain} could be reached"
        return self._result(Kind.TEMPORARY, Reply(0, text, Stage.CONNECT), tried=tried)

    def _session(
        self,
        host: MailHost,
        address: str,
        envelope: Envelope,
        message: bytes,
        tried: list[str],
        *,
        tls: bool,
    ) -> SendResult:
        """One SMTP session with one address; ``_NextHost`` if it cannot take the mail."""
        conn = smtplib.SMTP(local_hostname=self._helo_name(), timeout=self.timeout)
        # smtplib takes the TLS server name (SNI, and the name checked in
        # "verify" mode) from _host, which connect() does not set: the MX host
        # name, not the address we connect to.
        conn._host = host.name  # type: ignore[attr-defined]
        where = _where(host, address, self.port)
        cipher: str | None = None
        try:
            try:
                code, text = _decoded(conn.connect(address, self.port))
            except (OSError, smtplib.SMTPException) as exc:
                raise _NextHost(
                    Reply(0, f"cannot connect: {_describe(exc)}", Stage.CONNECT)
                ) from None
            if code != 220:
                raise _NextHost(Reply(code, text, Stage.CONNECT))
            self._greet(conn)
            if tls and self.tls != "off":
                cipher = self._starttls(conn)
            kind, reply, dsn = self._transaction(conn, envelope, message)
            return self._result(kind, reply, dsn=dsn, host=where, tls=cipher, tried=tried)
        finally:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                if conn.sock is not None:
                    conn.quit()
            conn.close()

    def _greet(self, conn: smtplib.SMTP) -> None:
        reply = _ask(Stage.EHLO, lambda: conn.ehlo(self._helo_name()))
        if 500 <= reply.code < 600 and reply.code != 554:
            # Not an ESMTP server (RFC 5321 §4.1.4 allows falling back to HELO).
            reply = _ask(Stage.EHLO, lambda: conn.helo(self._helo_name()))
        if reply.code != 250:
            raise _NextHost(reply)

    def _starttls(self, conn: smtplib.SMTP) -> str | None:
        """Upgrade to TLS as ``tls`` says; the version and cipher, or None in clear."""
        verify = self.tls == "verify"
        if not conn.has_extn("starttls"):
            if verify:
                raise _NextHost(Reply(0, "does not offer STARTTLS (tls=verify)", Stage.STARTTLS))
            return None
        context = ssl.create_default_context(cafile=self.cafile)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            conn.starttls(context=context)
        except smtplib.SMTPResponseException as exc:
            # "454 TLS not available": in clear unless TLS is demanded.
            if verify or exc.smtp_code == 421:
                raise _NextHost(
                    Reply(exc.smtp_code, _text(exc.smtp_error), Stage.STARTTLS)
                ) from None
            return None
        except ssl.SSLCertVerificationError as exc:
            text = f"TLS certificate not trusted: {exc.verify_message or exc}"
            raise _NextHost(Reply(0, text, Stage.STARTTLS)) from None
        except (ssl.SSLError, OSError, smtplib.SMTPException) as exc:
            if verify:
                text = f"TLS handshake failed: {_describe(exc)}"
                raise _NextHost(Reply(0, text, Stage.STARTTLS)) from None
            raise _Retry from None
        # RFC 3207 §4.2: forget what the server said before TLS, and greet again.
        self._greet(conn)
        sock = conn.sock
        if isinstance(sock, ssl.SSLSocket):
            name = sock.cipher()
            return f"{sock.version()} {name[0]}" if name else sock.version()
        return None  # pragma: no cover - starttls() always wraps the socket

    def _transaction(
        self, conn: smtplib.SMTP, envelope: Envelope, message: bytes
    ) -> tuple[Kind, Reply, bool]:
        """MAIL, RCPT, DATA: the host's verdict on this delivery."""
        dsn = conn.does_esmtp and conn.has_extn("dsn")
        options: list[str] = []
        if not message.isascii() and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (envelope.mail_from.isascii() and envelope.rcpt_to.isascii()):
            if not conn.has_extn("smtputf8"):
                text = "5.6.7 address is not ASCII and the host does not offer SMTPUTF8"
                return Kind.PERMANENT, Reply(0, text, Stage.MAIL), dsn
            options.append("SMTPUTF8")
        if dsn:
            options += dsn_mail_options(envelope.envid, self.dsn_ret)
        rcpt_options = dsn_rcpt_options(envelope.rcpt_to, self.dsn_notify) if dsn else []
        try:
            reply = _ask(Stage.MAIL, lambda: conn.mail(envelope.mail_from, options))
            if 200 <= reply.code < 300:
                reply = _ask(Stage.RCPT, lambda: conn.rcpt(envelope.rcpt_to, rcpt_options))
            if 200 <= reply.code < 300:
                reply = _ask(Stage.MESSAGE, lambda: _data(conn, message))
        except _NextHost as lost:
            # Lost mid-transaction: nothing was accepted; retry later.
            return Kind.TEMPORARY, lost.reply, dsn
        if 200 <= reply.code < 300:
            return Kind.SENT, reply, dsn
        if 500 <= reply.code < 600:
            return Kind.PERMANENT, reply, dsn
        return Kind.TEMPORARY, reply, dsn

    # --- helpers ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _slot(self, domain: str) -> Iterator[bool]:
        """Hold one of the domain's ``domain_limit`` session slots (False if none came free)."""
        deadline = time.monotonic() + self.slot_wait
        with self._slots:
            while self._active.get(domain, 0) >= self.domain_limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._slots.wait(remaining)
            free = self._active.get(domain, 0) < self.domain_limit
            if free:
                self._active[domain] = self._active.get(domain, 0) + 1
        try:
            yield free
        finally:
            if free:
                with self._slots:
                    left = self._active[domain] - 1
                    if left:
                        self._active[domain] = left
                    else:
                        del self._active[domain]  # the map holds busy domains only
                    self._slots.notify_all()

    def _helo_name(self) -> str:
        if self._helo is None:
            # getfqdn() may consult DNS: once, and only when first needed.
            self._helo = socket.getfqdn()
        return self._helo

    def _result(
        self,
        kind: Kind,
        reply: Reply,
        *,
        dsn: bool = False,
        host: str = "",
        tls: str | None = None,
        tried: list[str] | tuple[str, ...] = (),
    ) -> MXResult:
        return MXResult(
            kind=kind, reply=reply, route=self.name, dsn=dsn, host=host, tls=tls, tried=tuple(tried)
        )


def _where(host: MailHost, address: str, port: int) -> str:
    shown = f"[{address}]" if ":" not in address else f"[IPv6:{address}]"
    return f"{host.name} {shown}:{port}"


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw


def _decoded(reply: tuple[int, bytes]) -> tuple[int, str]:
    return reply[0], _text(reply[1])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


def _data(conn: smtplib.SMTP, message: bytes) -> tuple[int, bytes | str, Stage]:
    """DATA, then the message with CRLF line endings and dot-stuffed (RFC 5321
    §4.5.2; smtplib's ``data()`` stuffs bytes but leaves their line endings),
    and the final reply. A bare CR or LF is never sent: it is the raw
    material of SMTP smuggling."""
    try:
        code, text = conn.data(_EOL.sub(b"\r\n", message))
    except smtplib.SMTPDataError as exc:  # the reply to DATA itself was not 354
        return exc.smtp_code, exc.smtp_error, Stage.DATA
    return code, text, Stage.MESSAGE


def _ask(
    stage: Stage, call: Callable[[], tuple[int, bytes] | tuple[int, bytes | str, Stage]]
) -> Reply:
    """Run one smtplib call: the server's reply, or ``_NextHost`` if the connection was lost."""
    try:
        answer = call()
    except (OSError, smtplib.SMTPException) as exc:
        text = f"connection lost at {stage.upper()}: {_describe(exc)}"
        raise _NextHost(Reply(0, text, stage)) from None
    code, raw = answer[0], answer[1]
    if len(answer) == 3:
        stage = answer[2]
    if code < 0:
        raise _NextHost(Reply(0, f"unparseable reply: {_text(raw)}", stage))
    return Reply(code, _text(raw), stage)
