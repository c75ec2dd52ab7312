"""The SMTP relay transport: hand each delivery to a smarthost over SMTP.

One ``SMTPRelay`` keeps one connection open between deliveries and runs one
transaction per ``send()``: ``MAIL`` (with the VERP sender and, when the relay
advertises DSN, ``RET``/``ENVID``), one ``RCPT`` (with ``NOTIFY``/``ORCPT``),
``DATA``. Every reply is captured with the stage it came from, because the
reply text (``250 2.0.0 Ok: queued as ABC123``) is evidence: it is what links a
delivery to the relay's own logs.

It is built on the low-level calls of :mod:`smtplib` (``ehlo``, ``starttls``,
``login``, ``mail``, ``rcpt``, ``DATA``) rather than ``sendmail()``, which hides
the replies of successful steps and raises for partial failures.

Failures are results, never exceptions: a 4xx, a dropped connection, a timeout
or any TLS or authentication trouble is ``TEMPORARY``; a 5xx to the
transaction itself (``MAIL``, ``RCPT``, ``DATA``, the message) is
``PERMANENT``. A 5xx while connecting, greeting or logging in is a problem with
our relay or its configuration, not with the delivery, so it is ``TEMPORARY``:
a wrong relay password must not bounce every notification.
"""

from __future__ import annotations

import ipaddress
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NoReturn

from landed.compose.envelope import Envelope, dsn_mail_options, dsn_rcpt_options
from landed.config import RelayURL
from landed.errors import InputError
from landed.transport.base import Kind, Reply, SendResult, Stage

__all__ = ["SMTPRelay", "credentials_allowed", "is_loopback_host"]

#: Stages whose 5xx means "this delivery will never be accepted": the relay
#: judged the sender, the recipient or the message. Earlier stages judge us.
_TRANSACTION_STAGES = frozenset({Stage.MAIL, Stage.RCPT, Stage.DATA, Stage.MESSAGE})

#: RFC 4954 "Authentication required": a 5xx at MAIL that says our relay
#: configuration lacks credentials, not that this delivery is undeliverable.
_AUTH_REQUIRED = 530

_EOL = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_NOTIFY_WORDS = frozenset({"SUCCESS", "FAILURE", "DELAY"})


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def credentials_allowed(host: str, *, encrypted: bool) -> bool:
    """Whether relay credentials may be sent: over TLS, or in clear only to a loopback host.

    A password sent in clear over a network is a password given away; on the
    loopback interface nobody else can listen (a local Postfix, a test relay).
    """
    return encrypted or is_loopback_host(host)


class _Stop(Exception):
    """Ends one attempt early with a result. Internal: never escapes ``send()``."""

    def __init__(self, kind: Kind, reply: Reply, *, lost: bool = False) -> None:
        super().__init__(str(reply))
        self.kind = kind
        self.reply = reply
        #: The connection is gone (dropped, timed out, or closing with 421).
        self.lost = lost


def _kind(stage: Stage, code: int) -> Kind:
    """Classify a non-success reply."""
    if 500 <= code < 600 and stage in _TRANSACTION_STAGES and code != _AUTH_REQUIRED:
        return Kind.PERMANENT
    # 4xx, code 0 (no reply at all), protocol oddities, and any 5xx from the
    # connect/EHLO/STARTTLS/AUTH stages: retry later, and alert if it persists.
    return Kind.TEMPORARY


def _decode(raw: bytes | str) -> str:
    """A reply's text: smtplib gives bytes, multi-line replies already joined by ``\\n``."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    return raw


def _describe(exc: BaseException) -> str:
    """A one-line account of an exception, naming a timeout as such."""
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return "timed out"
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, ssl.SSLError | ConnectionError):
        return f"{exc.__class__.__name__}: {text}"
    return text


def _wire_body(message: bytes) -> bytes:
    """The DATA payload: CRLF line endings, dot-stuffed, with the final ``.``.

    Bare CR or LF are turned into CRLF: SMTP requires it, and a bare LF before
    a dot is the raw material of SMTP smuggling, so we never send one.
    """
    # What landed composes is CRLF throughout and rarely has a line starting
    # with a dot: check with two C-speed scans before running the regexes,
    # which cost ~50 µs per message in bench/send.py profiles.
    bare = message.replace(b"\r\n", b"")
    data = _EOL.sub(b"\r\n", message) if b"\r" in bare or b"\n" in bare else message
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    return data + b".\r\n"


def _check_address(address: str, what: str) -> None:
    """Refuse an address that would inject SMTP commands (a programming error)."""
    if _CONTROL.search(address):
        raise InputError(f"{what} address contains control characters")


class SMTPRelay:
    """A :class:`~landed.transport.base.Transport` through an SMTP relay (smarthost).

    ``relay`` says where and how to connect (TLS mode, credentials, timeout,
    HELO name). ``dsn_notify`` and ``dsn_ret`` are the RFC 3461 ``NOTIFY`` and
    ``RET`` values, sent only when the relay advertises DSN. The HELO name is
    ``relay.helo``, else ``local_hostname``, else ``socket.getfqdn()``.

    One instance is one connection, used by one worker: calls are serialised
    with a lock. The connection stays open between ``send()`` calls; ``close()``
    ends it.
    """

    def __init__(
        self,
        relay: RelayURL,
        *,
        dsn_notify: str = "SUCCESS,FAILURE,DELAY",
        dsn_ret: str = "HDRS",
        local_hostname: str | None = None,
        name: str = "relay",
    ) -> None:
        notify = ",".join(word.strip().upper() for word in dsn_notify.split(",") if word.strip())
        if notify != "NEVER" and not (notify and set(notify.split(",")) <= _NOTIFY_WORDS):
            raise ValueError(
                f"dsn_notify must be NEVER or a subset of SUCCESS,FAILURE,DELAY: {dsn_notify!r}"
            )
        ret = dsn_ret.strip().upper()
        if ret not in ("HDRS", "FULL"):
            raise ValueError(f"dsn_ret must be HDRS or FULL: {dsn_ret!r}")
        self.name = name
        self.relay = relay
        self.dsn_notify = notify
        self.dsn_ret = ret
        self._local_hostname = relay.helo or local_hostname
        self._conn: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    # --- public API --------------------------------------------------------------------

    def send(self, envelope: Envelope, message: bytes) -> SendResult:
        """Run one SMTP transaction for ``envelope``; never raise for a delivery failure.

        Raises ``InputError`` only for an address containing control characters
        (CR, LF, NUL...), which could inject SMTP commands and which no caller
        should ever pass.
        """
        _check_address(envelope.mail_from, "sender")
        _check_address(envelope.rcpt_to, "recipient")
        payload = _wire_body(message)
        with self._lock:
            return self._send_one(envelope, payload)

    def send_many(self, items: Iterable[tuple[Envelope, bytes]]) -> Iterator[SendResult]:
        """Send each ``(envelope, message)`` in turn; one result per item, in order.

        With a relay that offers PIPELINING, one message's content and the next
        message's ``MAIL``, ``RCPT`` and ``DATA`` go in one write (RFC 2920
        §3.1: the message content may be the first "command" of a group, and
        ``DATA`` ends it): one round trip per message instead of two. The next
        item is taken from ``items`` after that write and before the replies
        are read, so building it overlaps the relay's work. A message counts
        as sent when the reply to its content is read, exactly as with
        :meth:`send`. The connection is held (and ``send`` waits) until the
        iteration ends; closing the iterator while a message's content is
        still owed drops the connection, so nothing half-sent is delivered.

        Raises ``InputError`` for an address with control characters, as
        :meth:`send` does, when that item is taken from ``items``.
        """
        with self._lock:
            yield from self._pipeline(iter(items))

    def _send_one(self, envelope: Envelope, payload: bytes) -> SendResult:
        reused = self._conn is not None
        try:
            return self._transaction(envelope, payload, reused=reused)
        except _Retry:
            # The relay closed the idle connection we kept (servers time out
            # idle clients, often with a 421 we only read at our next
            # command). Nothing was accepted yet, so a fresh connection is
            # not a second attempt at the delivery: retry once, silently.
            try:
                return self._transaction(envelope, payload, reused=False)
            except _Retry as retry:  # pragma: no cover - reused=False never retries
                return retry.result

    def _pipeline(self, items: Iterator[tuple[Envelope, bytes]]) -> Iterator[SendResult]:
        """``send_many``'s loop; the lock is held."""
        #: A message whose DATA got 354: its content goes out with the next write.
        held: _Held | None = None
        item = _next_item(items)
        finished = False
        try:
            while item is not None or held is not None:
                conn = self._conn
                if held is None:
                    assert item is not None
                    if conn is None or not (conn.does_esmtp and conn.has_extn("pipelining")):
                        # No connection yet (this connects), or a relay without
                        # PIPELINING: one whole transaction at a time.
                        yield self._send_one(*item)
                        item = _next_item(items)
                        continue
                assert conn is not None
                results, held, item = self._pipelined_step(conn, held, item, items)
                yield from results
            finished = True
        finally:
            if not finished and (held is not None or self._conn is not None):
                # Left mid-way (the caller stopped iterating, or building the
                # next item raised) with commands or content on the wire whose
                # replies are unread: the connection's state is unknown. Drop
                # it; a message whose content was never sent is not delivered.
                self._discard(polite=False)

    def _pipelined_step(
        self,
        conn: smtplib.SMTP,
        held: _Held | None,
        item: tuple[Envelope, bytes] | None,
        items: Iterator[tuple[Envelope, bytes]],
    ) -> tuple[list[SendResult], _Held | None, tuple[Envelope, bytes] | None]:
        """One write (``held``'s content, then ``item``'s commands) and its replies.

        Returns the results settled by this step, the new held message (``item``
        if its DATA got 354) and the next item to send.
        """
        results: list[SendResult] = []
        group = held.payload if held is not None else b""
        opened: _Held | None = None
        if item is not None:
            try:
                opened = self._open(conn, *item)
            except _Stop as stop:  # refused before anything was sent (SMTPUTF8)
                results.append(self._result(stop.kind, stop.reply, False))
            else:
                group += opened.commands
        try:
            conn.send(group)
        except (OSError, smtplib.SMTPException) as exc:
            results = self._lost(held, opened, item, Stage.MESSAGE, exc, results)
            return results, None, _next_item(items) if item is not None else None
        # Taken now, while the relay reads what was just written.
        following = _next_item(items) if item is not None else None
        if held is not None:
            try:
                code, text = _exchange(Stage.MESSAGE, conn.getreply)
            except _Stop as stop:
                results.insert(0, self._result(stop.kind, stop.reply, held.dsn))
                self._discard(polite=False)
                return self._redo(opened, item, results), None, following
            results.insert(0, self._held_result(held, code, text))
            if code == 421 or not 200 <= code < 600:
                # The relay is closing (or talking nonsense): the next message's
                # commands went nowhere. Nothing of it was accepted: start afresh.
                self._discard(polite=False)
                return self._redo(opened, item, results), None, following
        if opened is None or item is None:
            return results, None, following
        try:
            code, text = self._group_replies(conn, conn.getreply, reused=True, dsn=opened.dsn)
            if code != 354:
                self._refuse(Stage.DATA, code, text)
        except _Retry:
            # The kept connection was dead or closing at our MAIL: nothing of
            # this message was accepted, so this is not an attempt. Afresh.
            return self._redo(opened, item, results), None, following
        except _Stop as stop:
            if stop.lost:
                self._discard(polite=False)
            results.append(self._result(stop.kind, stop.reply, opened.dsn))
            return results, None, following
        return results, opened, following

    def _open(self, conn: smtplib.SMTP, envelope: Envelope, payload: bytes) -> _Held:
        mail_line, rcpt_line, dsn = self._command_lines(conn, envelope, payload)
        return _Held(mail_line + rcpt_line + b"DATA\r\n", payload, dsn)

    def _held_result(self, held: _Held, code: int, text: str) -> SendResult:
        """The result of a message whose content was sent: the reply to it."""
        if 200 <= code < 300:
            return self._result(Kind.SENT, Reply(code, text, Stage.MESSAGE), held.dsn)
        if code > 0:
            return self._result(
                _kind(Stage.MESSAGE, code), Reply(code, text, Stage.MESSAGE), held.dsn
            )
        text = f"unparseable reply: {text}"
        return self._result(Kind.TEMPORARY, Reply(0, text, Stage.MESSAGE), held.dsn)

    def _lost(
        self,
        held: _Held | None,
        opened: _Held | None,
        item: tuple[Envelope, bytes] | None,
        stage: Stage,
        exc: BaseException,
        results: list[SendResult],
    ) -> list[SendResult]:
        """The write failed: the held message may or may not have arrived; redo the next."""
        self._discard(polite=False)
        if held is not None:
            text = f"connection lost at {stage.upper()}: {_describe(exc)}"
            results.insert(0, self._result(Kind.TEMPORARY, Reply(0, text, stage), held.dsn))
        return self._redo(opened, item, results)

    def _redo(
        self,
        opened: _Held | None,
        item: tuple[Envelope, bytes] | None,
        results: list[SendResult],
    ) -> list[SendResult]:
        """Send ``item`` again on a fresh connection: its commands were never answered."""
        if opened is not None and item is not None:
            results.append(self._send_one(*item))
        return results

    def close(self) -> None:
        """Say QUIT and close the connection; errors are ignored."""
        with self._lock:
            self._discard(polite=True)

    def __enter__(self) -> SMTPRelay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- one transaction ---------------------------------------------------------------

    def _transaction(self, envelope: Envelope, payload: bytes, *, reused: bool) -> SendResult:
        dsn = False
        try:
            conn = self._conn if self._conn is not None else self._connect()
            self._conn = conn
            dsn = conn.does_esmtp and conn.has_extn("dsn")
            mail_line, rcpt_line, dsn = self._command_lines(conn, envelope, payload)
            if conn.has_extn("pipelining"):
                # RFC 2920: MAIL, RCPT and DATA go in one write and their three
                # replies are read afterwards: two round trips per message
                # instead of four. The body must wait for the 354.
                group = mail_line + rcpt_line + b"DATA\r\n"
                code, text = self._group_replies(
                    conn, lambda: _command(conn, group), reused=reused, dsn=dsn
                )
            else:
                code, text = self._mail_reply(conn, lambda: _command(conn, mail_line), reused, dsn)
                self._expect(Stage.MAIL, code, text)
                code, text = _exchange(Stage.RCPT, lambda: _command(conn, rcpt_line))
                self._expect(Stage.RCPT, code, text)
                code, text = _exchange(Stage.DATA, lambda: _command(conn, b"DATA\r\n"))
            if code != 354:
                self._refuse(Stage.DATA, code, text)

            code, text = _exchange(Stage.MESSAGE, lambda: _send_body(conn, payload))
            self._expect(Stage.MESSAGE, code, text)
            return self._result(Kind.SENT, Reply(code, text, Stage.MESSAGE), dsn)
        except _Stop as stop:
            if stop.lost:
                self._discard(polite=False)
            return self._result(stop.kind, stop.reply, dsn)

    def _command_lines(
        self, conn: smtplib.SMTP, envelope: Envelope, payload: bytes
    ) -> tuple[bytes, bytes, bool]:
        """The MAIL and RCPT lines for this relay, and whether they ask for DSNs.

        ``_Stop`` (PERMANENT, nothing sent) for a non-ASCII address the relay
        cannot take.
        """
        conn.command_encoding = "ascii"  # SMTPUTF8 may have switched it last time
        dsn = conn.does_esmtp and conn.has_extn("dsn")
        mail_options: list[str] = []
        if not payload.isascii() and conn.has_extn("8bitmime"):
            mail_options.append("BODY=8BITMIME")
        if not (envelope.mail_from.isascii() and envelope.rcpt_to.isascii()):
            if not conn.has_extn("smtputf8"):
                text = "address is not ASCII and the relay does not offer SMTPUTF8"
                raise _Stop(Kind.PERMANENT, Reply(0, text, Stage.MAIL))
            mail_options.append("SMTPUTF8")
        if dsn:
            mail_options += dsn_mail_options(envelope.envid, self.dsn_ret)
        encoding = "utf-8" if "SMTPUTF8" in mail_options else "ascii"
        rcpt_options = dsn_rcpt_options(envelope.rcpt_to, self.dsn_notify) if dsn else []
        mail_line = _command_line("MAIL FROM:", envelope.mail_from, mail_options, encoding)
        rcpt_line = _command_line("RCPT TO:", envelope.rcpt_to, rcpt_options, encoding)
        return mail_line, rcpt_line, dsn

    def _group_replies(
        self,
        conn: smtplib.SMTP,
        call: Callable[[], tuple[int, bytes]],
        *,
        reused: bool,
        dsn: bool,
    ) -> tuple[int, str]:
        """The replies to a pipelined MAIL, RCPT, DATA group: the reply to DATA.

        ``call`` writes what is still to be written, if anything, and reads the
        reply to MAIL. A refused MAIL or RCPT ends the attempt (``_Stop``) once
        the replies still owed are read (``_drain``).
        """
        code, text = self._mail_reply(conn, call, reused, dsn)
        if not 200 <= code < 300:
            self._drain(conn, Stage.MAIL, code, text, replies=2)
        code, text = _exchange(Stage.RCPT, conn.getreply)
        if not 200 <= code < 300:
            self._drain(conn, Stage.RCPT, code, text, replies=1)
        return _exchange(Stage.DATA, conn.getreply)

    def _mail_reply(
        self, conn: smtplib.SMTP, call: Callable[[], tuple[int, bytes]], reused: bool, dsn: bool
    ) -> tuple[int, str]:
        """The reply to MAIL; on a kept connection that turns out dead, ``_Retry``."""
        try:
            code, text = _exchange(Stage.MAIL, call)
        except _Stop as stop:
            if reused and stop.lost:
                self._discard(polite=False)
                raise _Retry(self._result(stop.kind, stop.reply, dsn)) from None
            raise
        if code == 421 and reused:
            self._discard(polite=False)
            raise _Retry(self._result(Kind.TEMPORARY, Reply(code, text, Stage.MAIL), dsn))
        return code, text

    def _drain(
        self, conn: smtplib.SMTP, stage: Stage, code: int, text: str, *, replies: int
    ) -> NoReturn:
        """A pipelined command was refused: read the replies still owed, then refuse.

        The commands after the refused one were sent already. Their replies
        must be read before the connection can be reused; and should a server
        accept DATA anyway (354) the transaction is ended with an empty
        message, as RFC 2920 section 3.1 asks, never with our body.
        """
        try:
            last = 0
            for later in (Stage.RCPT, Stage.DATA)[-replies:]:
                last, _ = _exchange(later, conn.getreply)
            if last == 354:
                _exchange(Stage.MESSAGE, lambda: _send_body(conn, b".\r\n"))
        except _Stop:
            # The refusal is what matters; the connection is not worth keeping.
            self._discard(polite=False)
            raise _Stop(_kind(stage, code), Reply(code, text, stage), lost=True) from None
        self._refuse(stage, code, text)

    def _expect(self, stage: Stage, code: int, text: str) -> None:
        """Continue on 2xx; otherwise end the attempt with this reply."""
        if not 200 <= code < 300:
            self._refuse(stage, code, text)

    def _refuse(self, stage: Stage, code: int, text: str) -> NoReturn:
        """End the attempt with a server's refusal, leaving the connection reusable if we can."""
        reply = (
            Reply(code, text, stage) if code > 0 else Reply(0, f"unparseable reply: {text}", stage)
        )
        if code == 421 or not 400 <= code < 600:
            # 421: the server is closing the connection. Anything that is not a
            # 4xx/5xx here is a protocol error; start afresh next time.
            raise _Stop(_kind(stage, code), reply, lost=True)
        self._reset()
        raise _Stop(_kind(stage, code), reply)

    def _reset(self) -> None:
        """RSET after a failed transaction, to reuse the connection; drop it if RSET fails."""
        conn = self._conn
        if conn is None:
            return
        try:
            code, _ = conn.rset()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code != 250:
            self._discard(polite=False)

    def _discard(self, *, polite: bool) -> None:
        """Forget the connection; with ``polite``, say QUIT first. Never raises."""
        conn, self._conn = self._conn, None
        if conn is not None:
            _close(conn, polite=polite)

    def _result(self, kind: Kind, reply: Reply, dsn: bool) -> SendResult:
        return SendResult(kind=kind, reply=reply, route=self.name, dsn=dsn)

    # --- opening a connection ----------------------------------------------------------

    def _helo_name(self) -> str:
        if self._local_hostname is None:
            # getfqdn() may consult DNS: do it once, and only when first needed.
            self._local_hostname = socket.getfqdn()
        return self._local_hostname

    def _connect(self, *, skip_starttls: bool = False) -> smtplib.SMTP:
        """Connect, greet, secure and log in, or raise ``_Stop`` (TEMPORARY)."""
        relay = self.relay
        if (
            relay.username
            and not relay.implicit_tls
            and relay.starttls == "off"
            and not credentials_allowed(relay.host, encrypted=False)
        ):
            # Known before connecting: do not even open the connection.
            raise _Stop(Kind.TEMPORARY, self._cleartext_refusal())

        conn = self._open_socket()
        try:
            encrypted = relay.implicit_tls
            self._greet(conn)
            if not relay.implicit_tls and relay.starttls != "off" and not skip_starttls:
                try:
                    encrypted = self._starttls(conn)
                except _TLSHandshakeFailed as failed:
                    if relay.starttls == "required":
                        raise failed.stop from None
                    # Opportunistic TLS, like Postfix's "may" level: a relay
                    # whose TLS is broken still gets our mail in clear, on a new
                    # connection (the old one is unusable after a failed handshake).
                    _close(conn, polite=False)
                    return self._connect(skip_starttls=True)
            if relay.username:
                self._login(conn, encrypted=encrypted)
        except _Stop as stop:
            _close(conn, polite=not stop.lost)
            raise
        return conn

    def _open_socket(self) -> smtplib.SMTP:
        relay = self.relay
        where = f"{relay.host}:{relay.port}"
        try:
            # Passing the host to the constructor connects and reads the
            # greeting, and lets smtplib use it for TLS SNI and verification.
            if relay.implicit_tls:
                return smtplib.SMTP_SSL(
                    relay.host,
                    relay.port,
                    local_hostname=self._helo_name(),
                    timeout=relay.timeout,
                    context=self._verified_context(),
                )
            return smtplib.SMTP(
                relay.host, relay.port, local_hostname=self._helo_name(), timeout=relay.timeout
            )
        except smtplib.SMTPConnectError as exc:
            # A greeting other than 220 (421 busy, 554 no service for you).
            code = exc.smtp_code if exc.smtp_code > 0 else 0
            raise _Stop(
                Kind.TEMPORARY, Reply(code, _decode(exc.smtp_error), Stage.CONNECT), lost=True
            ) from None
        except ssl.SSLCertVerificationError as exc:
            text = f"TLS certificate of {where} not trusted: {exc.verify_message or exc}"
            raise _Stop(Kind.TEMPORARY, Reply(0, text, Stage.CONNECT), lost=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            text = f"cannot connect to relay {where}: {_describe(exc)}"
            raise _Stop(Kind.TEMPORARY, Reply(0, text, Stage.CONNECT), lost=True) from None

    def _greet(self, conn: smtplib.SMTP) -> None:
        """EHLO, falling back to HELO for a server that does not speak ESMTP."""
        code, text = _exchange(Stage.EHLO, lambda: conn.ehlo(self._helo_name()))
        if 500 <= code < 600 and code != 554:
            code, text = _exchange(Stage.EHLO, lambda: conn.helo(self._helo_name()))
        if code != 250:
            raise _Stop(Kind.TEMPORARY, Reply(code, text, Stage.EHLO), lost=code == 421)

    def _starttls(self, conn: smtplib.SMTP) -> bool:
        """Upgrade to TLS if we must or may; return whether the connection is now encrypted."""
        required = self.relay.starttls == "required"
        if not conn.has_extn("starttls"):
            if required:
                text = "relay does not offer STARTTLS, and starttls=required"
                raise _Stop(Kind.TEMPORARY, Reply(0, text, Stage.STARTTLS))
            return False
        # Opportunistic TLS does not verify the certificate, as Postfix's "may"
        # level: it protects against passive eavesdropping only, and a failed
        # verification would otherwise make us fall back to sending in clear,
        # which is strictly worse than unverified TLS.
        context = self._verified_context() if required else _unverified_context()
        raw: bytes | str
        try:
            code, raw = conn.starttls(context=context)
        except smtplib.SMTPResponseException as exc:
            code, raw = exc.smtp_code, exc.smtp_error
        except ssl.SSLCertVerificationError as exc:
            text = f"TLS certificate of {self.relay.host} not trusted: {exc.verify_message or exc}"
            raise _TLSHandshakeFailed(Reply(0, text, Stage.STARTTLS)) from None
        except ssl.SSLError as exc:
            text = f"TLS handshake failed: {_describe(exc)}"
            raise _TLSHandshakeFailed(Reply(0, text, Stage.STARTTLS)) from None
        except (OSError, smtplib.SMTPException) as exc:
            text = f"connection lost during STARTTLS: {_describe(exc)}"
            raise _Stop(Kind.TEMPORARY, Reply(0, text, Stage.STARTTLS), lost=True) from None
        if code != 220:
            if required or code == 421:
                raise _Stop(
                    Kind.TEMPORARY, Reply(code, _decode(raw), Stage.STARTTLS), lost=code == 421
                )
            return False  # "454 TLS not available": opportunistic, carry on in clear
        # RFC 3207: forget what the server said before TLS, and greet again.
        self._greet(conn)
        return True

    def _login(self, conn: smtplib.SMTP, *, encrypted: bool) -> None:
        relay = self.relay
        assert relay.username is not None
        if not credentials_allowed(relay.host, encrypted=encrypted):
            raise _Stop(Kind.TEMPORARY, self._cleartext_refusal())
        if not conn.has_extn("auth"):
            text = "relay does not offer AUTH, but credentials are configured"
            raise _Stop(Kind.TEMPORARY, Reply(0, text, Stage.AUTH))
        try:
            conn.login(relay.username, relay.password or "")
        except smtplib.SMTPResponseException as exc:
            # 535 bad credentials, 538 encryption required, 454 temporary...
            # all TEMPORARY: our configuration, not the delivery, is at fault.
            raise _Stop(
                Kind.TEMPORARY,
                Reply(exc.smtp_code, _decode(exc.smtp_error), Stage.AUTH),
                lost=exc.smtp_code == 421,
            ) from None
        except smtplib.SMTPServerDisconnected as exc:
            text = f"connection lost during AUTH: {_describe(exc)}"
            raise _Stop(Kind.TEMPORARY, Reply(0, text, Stage.AUTH), lost=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            # "No suitable authentication method found", or a socket error.
            lost = not isinstance(exc, smtplib.SMTPException) or conn.sock is None
            raise _Stop(
                Kind.TEMPORARY, Reply(0, f"AUTH failed: {_describe(exc)}", Stage.AUTH), lost=lost
            ) from None

    def _cleartext_refusal(self) -> Reply:
        text = (
            f"refusing to send relay credentials in clear to {self.relay.host}, which is not "
            "a loopback address: use smtps://, or starttls=required (configuration error)"
        )
        return Reply(0, text, Stage.AUTH)

    def _verified_context(self) -> ssl.SSLContext:
        if not self.relay.verify:
            return _unverified_context()
        return ssl.create_default_context(cafile=self.relay.cafile)


class _Retry(Exception):
    """A reused connection turned out to be dead before anything was accepted."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(str(result.reply))
        self.result = result


class _TLSHandshakeFailed(Exception):
    """STARTTLS was accepted but the handshake failed; the connection is unusable."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.stop = _Stop(Kind.TEMPORARY, reply, lost=True)


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _exchange(stage: Stage, call: Callable[[], tuple[int, bytes]]) -> tuple[int, str]:
    """Run one smtplib call: a reply is ``(code, text)``, a lost connection ``_Stop``."""
    raw: bytes | str
    try:
        code, raw = call()
    except smtplib.SMTPResponseException as exc:
        code, raw = exc.smtp_code, exc.smtp_error
    except smtplib.SMTPNotSupportedError as exc:
        raise _Stop(Kind.TEMPORARY, Reply(0, str(exc), stage)) from None
    except (OSError, smtplib.SMTPException) as exc:
        # SMTPServerDisconnected, timeouts, resets, broken pipes, TLS errors.
        text = f"connection lost at {stage.upper()}: {_describe(exc)}"
        raise _Stop(Kind.TEMPORARY, Reply(0, text, stage), lost=True) from None
    if code < 0:
        # smtplib's -1: the line did not start with a number.
        raise _Stop(
            Kind.TEMPORARY, Reply(0, f"unparseable reply: {_decode(raw)}", stage), lost=True
        )
    return code, _decode(raw)


@dataclass(frozen=True, slots=True)
class _Held:
    """A message in a pipelined exchange: its commands, its content, and DSN or not."""

    commands: bytes
    payload: bytes
    dsn: bool


def _next_item(items: Iterator[tuple[Envelope, bytes]]) -> tuple[Envelope, bytes] | None:
    """The next item as ``(envelope, DATA payload)``, its addresses checked; None at the end."""
    found = next(items, None)
    if found is None:
        return None
    envelope, message = found
    _check_address(envelope.mail_from, "sender")
    _check_address(envelope.rcpt_to, "recipient")
    return envelope, _wire_body(message)


def _command_line(verb: str, address: str, options: list[str], encoding: str) -> bytes:
    """``MAIL FROM:<address> OPTIONS``, CRLF-terminated.

    Written here rather than by ``smtplib.quoteaddr``, which re-parses the
    address with ``email.utils`` (a third of the worker's CPU per message in
    bench/send.py profiles). The address was checked for control characters
    by ``send()`` and for syntax when the notification was recorded.
    """
    line = f"{verb}<{address}>"
    if options:
        line += " " + " ".join(options)
    return (line + "\r\n").encode(encoding)


def _command(conn: smtplib.SMTP, line: bytes) -> tuple[int, bytes]:
    conn.send(line)
    return conn.getreply()


def _send_body(conn: smtplib.SMTP, payload: bytes) -> tuple[int, bytes]:
    conn.send(payload)
    return conn.getreply()


def _close(conn: smtplib.SMTP, *, polite: bool) -> None:
    """Close ``conn``, first saying QUIT when ``polite``; never raises."""
    try:
        if polite and conn.sock is not None:
            conn.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        conn.close()
