"""A real SMTP relay for tests: aiosmtpd in a thread on 127.0.0.1, recording what it gets.

Usage::

    from tests.relay import TestRelay, make_tls

    with TestRelay() as relay:                       # plain SMTP, advertises DSN
        transport = SMTPRelay(RelayURL(relay.url()))
        transport.send(envelope, message)
        [got] = relay.received                       # or relay.wait_for(1)
        got.mail_from, got.mail_options, got.rcpt_tos, got.rcpt_options, got.data, got.message

API
---
``TestRelay(*, dsn=True, pipelining=True, tls_context=None, require_starttls=False,
implicit_tls_context=None, auth=None, auth_require_tls=False, delay=0.0,
port=0, hostname="relay.test")``
    A context manager (or ``start()`` / ``stop()``). ``port=0`` picks a free
    port. ``tls_context`` enables STARTTLS; ``implicit_tls_context`` makes it an
    smtps:// server instead. ``auth=(user, password)`` offers AUTH PLAIN/LOGIN
    and refuses ``MAIL`` with ``530 5.7.0`` until the client has logged in.
    ``dsn=False`` neither advertises DSN nor accepts its parameters (``555``,
    as aiosmtpd and real servers without DSN do). ``pipelining=False`` does
    not advertise PIPELINING (RFC 2920), so clients send one command at a
    time. ``delay`` (seconds, may be
    changed while running) is slept before the final reply to each message.

``.host``, ``.port``; ``.url(starttls=None, *, username=None, password=None, **query)``
    A relay URL for :class:`landed.config.RelayURL`: ``smtp://127.0.0.1:PORT?starttls=off&timeout=5``
    (``smtps://`` for implicit TLS; ``starttls`` defaults to ``off``, or
    ``required`` when STARTTLS is offered; ``timeout`` defaults to 5).

``.received`` (a copy of ``list[Received]``), ``.wait_for(count, timeout=5.0)``, ``.clear()``
    Accepted transactions, in order; thread-safe.

``.connections``
    How many SMTP sessions reached EHLO/HELO (a bare TCP probe does not count;
    STARTTLS does not make a second one).

``.script(*, at, reply=None, action="reply", rcpt=None, mail_from=None, times=None)``
    Scripted trouble. ``at``: ``"mail"``, ``"rcpt"`` or ``"data"`` (the final
    reply to the message). ``action="reply"`` answers with ``reply`` (e.g.
    ``"550 5.1.1 <x@corp.test>: Recipient address rejected"``; a ``\\n`` in it
    makes a multi-line reply; a ``421`` reply also closes the connection).
    ``action="drop"`` closes the connection without replying; at ``"data"`` it
    does so mid-DATA, after the ``354`` and the first line of the body.
    ``rcpt`` / ``mail_from`` restrict it to a recipient / sender
    (case-insensitive); ``times`` limits how often it fires (``None``: always),
    so that a retry can succeed. Scripts are tried in the order they were added;
    ``.clear_scripts()`` removes them all.

``.disconnect_all(reply=None)``
    Close every open client connection, as a server dropping idle clients does
    (optionally writing e.g. ``"421 4.4.2 Idle timeout"`` first).

``make_tls(directory) -> TLSFiles``
    A trustme CA and a server certificate for 127.0.0.1 and localhost:
    ``.server_context`` for the relay, ``.ca_file`` (PEM) for ``cafile=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.message
import email.policy
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AnyStr, Literal, cast
from urllib.parse import quote, urlencode

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from aiosmtpd.smtp import Envelope as AioEnvelope

__all__ = ["Received", "TLSFiles", "TestRelay", "make_tls"]

_MAIL_DSN = frozenset({"RET", "ENVID"})
_RCPT_DSN = frozenset({"NOTIFY", "ORCPT"})
_REPLY = re.compile(r"^[2-5]\d\d( |$)")


@dataclass(frozen=True)
class Received:
    """One accepted transaction, exactly as the client sent it."""

    mail_from: str
    #: ``MAIL FROM`` parameters as sent (case kept): ``["RET=HDRS", "ENVID=..."]``.
    mail_options: list[str]
    rcpt_tos: list[str]
    #: ``RCPT TO`` parameters, one list per recipient, as sent.
    rcpt_options: list[list[str]]
    #: The message after de-dot-stuffing, including its final CRLF.
    data: bytes
    #: The id in our ``250 2.0.0 Ok: queued as ...`` reply.
    queue_id: str
    #: Whether the session was encrypted (STARTTLS or implicit TLS).
    tls: bool
    #: The user name the client logged in with, if any.
    auth_user: str | None
    #: The EHLO/HELO name the client gave.
    helo: str | None
    message: email.message.EmailMessage = field(repr=False, compare=False)


@dataclass
class _Script:
    at: Literal["mail", "rcpt", "data"]
    action: Literal["reply", "drop"]
    reply: str | None
    rcpt: str | None
    mail_from: str | None
    times: int | None

    def matches(self, mail_from: str | None, rcpts: list[str]) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.mail_from is not None and (mail_from or "").lower() != self.mail_from.lower():
            return False
        return self.rcpt is None or self.rcpt.lower() in (r.lower() for r in rcpts)


@dataclass(frozen=True)
class TLSFiles:
    """A test CA and a server certificate for 127.0.0.1 / localhost."""

    ca: trustme.CA
    #: The CA certificate, PEM: give it to the client as ``cafile=``.
    ca_file: Path
    #: For ``TestRelay(tls_context=...)`` or ``implicit_tls_context=...``.
    server_context: ssl.SSLContext


def make_tls(directory: Path) -> TLSFiles:
    """Make a CA and a server certificate; write the CA PEM into ``directory``."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_file = Path(directory) / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TLSFiles(ca=ca, ca_file=ca_file, server_context=context)


def _format_reply(reply: str) -> str:
    """``"550 a\\nb"`` -> ``"550-a\\r\\n550 b"``: a multi-line SMTP reply."""
    lines = reply.split("\n")
    code, texts = lines[0][:3], [lines[0][4:], *lines[1:]]
    if len(texts) == 1:
        return reply
    return "\r\n".join([*(f"{code}-{t}" for t in texts[:-1]), f"{code} {texts[-1]}"])


def _split_params(arg: str) -> tuple[str, list[str]]:
    """``"FROM:<a@b> RET=HDRS"`` -> ``("FROM:<a@b>", ["RET=HDRS"])``, case kept."""
    lt = arg.find("<")
    gt = arg.find(">", lt + 1) if lt >= 0 else -1
    if gt < 0:
        return arg, []
    return arg[: gt + 1], arg[gt + 1 :].split()


def _check_dsn(params: list[str]) -> str | None:
    """A ``501`` reply for a malformed DSN parameter, else ``None``."""
    for param in params:
        key, _, value = param.partition("=")
        key = key.upper()
        if not value:
            return f"501 5.5.4 Bad {key} parameter"
        if key == "RET" and value.upper() not in ("HDRS", "FULL"):
            return "501 5.5.4 Bad RET parameter"
        if key == "NOTIFY":
            words = set(value.upper().split(","))
            if words != {"NEVER"} and not words <= {"SUCCESS", "FAILURE", "DELAY"}:
                return "501 5.5.4 Bad NOTIFY parameter"
        if key == "ORCPT" and ";" not in value:
            return "501 5.5.4 Bad ORCPT parameter"
    return None


class _Envelope(AioEnvelope):
    def __init__(self) -> None:
        super().__init__()
        self.rcpt_params: list[list[str]] = []


class _RelaySMTP(SMTP):
    """aiosmtpd's server plus DSN parameters, scripted drops and connection tracking."""

    def __init__(self, relay: TestRelay, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.relay = relay
        self.counted = False
        self.raw_params: list[str] = []
        self.drop_now = False
        self.hung_up = False

    def _create_envelope(self) -> _Envelope:
        return _Envelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # not the STARTTLS upgrade
            self.relay._live.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.relay._live.discard(self)
        super().connection_lost(error)

    def hang_up(self) -> None:
        """Drop the connection now, without a reply, and ignore whatever the client sent."""
        self.hung_up = True
        # Anything already buffered (the rest of a message body) must not be
        # read as commands, and nothing more may be written.
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        if self.transport is not None:
            cast(asyncio.Transport, self.transport).abort()

    async def push(self, status: AnyStr) -> None:
        if self.drop_now:
            self.drop_now = False
            self.hang_up()
        if self.hung_up:
            return
        await super().push(status)
        raw: str | bytes = status
        text = raw.decode() if isinstance(raw, bytes) else raw
        if text.rsplit("\r\n", 1)[-1].startswith("421") and self.transport is not None:
            self.transport.close()  # 421 means "closing transmission channel"

    def _take_dsn(self, arg: str | None, names: frozenset[str]) -> tuple[str | None, str | None]:
        """Remember the parameters as sent; hide DSN ones from aiosmtpd (which would 555)."""
        if arg is None:
            self.raw_params = []
            return arg, None
        head, params = _split_params(arg)
        self.raw_params = params
        if not self.relay.dsn:
            return arg, None
        dsn = [p for p in params if p.partition("=")[0].upper() in names]
        kept = [p for p in params if p not in dsn]
        return " ".join([head, *kept]), _check_dsn(dsn)

    async def smtp_MAIL(self, arg: str | None) -> None:
        arg, error = self._take_dsn(arg, _MAIL_DSN)
        if error:
            await self.push(error)
            return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        arg, error = self._take_dsn(arg, _RCPT_DSN)
        if error:
            await self.push(error)
            return
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        env = self.envelope
        script = None
        ready = self.session is not None and self.session.host_name and not arg
        if ready and env is not None and env.rcpt_tos:
            script = self.relay._take("data", env.mail_from, env.rcpt_tos, action="drop")
        if script is None:
            await super().smtp_DATA(arg)
            return
        # Drop mid-DATA: accept the DATA command, read the start of the body, hang up.
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await self._reader.readuntil(b"\r\n")
        self.hang_up()


class _Handler:
    """aiosmtpd hooks: DSN in EHLO, AUTH enforcement, scripts, recording."""

    def __init__(self, relay: TestRelay) -> None:
        self.relay = relay

    async def handle_EHLO(
        self,
        server: _RelaySMTP,
        session: Session,
        envelope: _Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        self.relay._count(server, hostname)
        if self.relay.auth is None:
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        if self.relay.dsn:
            responses.insert(len(responses) - 1, "250-DSN")
        if self.relay.pipelining:
            # aiosmtpd reads commands line by line, so it serves pipelined
            # clients correctly; it just does not say so (RFC 2920).
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_HELO(
        self, server: _RelaySMTP, session: Session, envelope: _Envelope, hostname: str
    ) -> str:
        session.host_name = hostname
        self.relay._count(server, hostname)
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self,
        server: _RelaySMTP,
        session: Session,
        envelope: _Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.relay.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        script = self.relay._take("mail", address, [])
        if script is not None:
            return self._act(server, script)
        envelope.mail_from = address
        envelope.mail_options.extend(server.raw_params)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self,
        server: _RelaySMTP,
        session: Session,
        envelope: _Envelope,
        address: str,
        options: list[str],
    ) -> str:
        script = self.relay._take("rcpt", envelope.mail_from, [address])
        if script is not None:
            return self._act(server, script)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_params.append(list(server.raw_params))
        envelope.rcpt_options.extend(server.raw_params)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: _RelaySMTP, session: Session, envelope: _Envelope) -> str:
        if self.relay.delay > 0:
            await asyncio.sleep(self.relay.delay)
        script = self.relay._take("data", envelope.mail_from, envelope.rcpt_tos, action="reply")
        if script is not None:
            return self._act(server, script)
        data = envelope.original_content or b""
        queue_id = secrets.token_hex(5).upper()
        auth_data: Any = session.auth_data
        transport = server.transport
        self.relay._record(
            Received(
                mail_from=envelope.mail_from or "",
                mail_options=list(envelope.mail_options),
                rcpt_tos=list(envelope.rcpt_tos),
                rcpt_options=[list(p) for p in envelope.rcpt_params],
                data=data,
                queue_id=queue_id,
                tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
                auth_user=auth_data.login.decode()
                if isinstance(auth_data, LoginPassword)
                else None,
                helo=session.host_name,
                message=email.message_from_bytes(data, policy=email.policy.default),
            )
        )
        return f"250 2.0.0 Ok: queued as {queue_id}"

    @staticmethod
    def _act(server: _RelaySMTP, script: _Script) -> str:
        if script.action == "drop":
            server.drop_now = True
            return "421 4.4.2 dropped"  # never sent: push() closes instead
        assert script.reply is not None
        return _format_reply(script.reply)


class _Controller(Controller):
    def __init__(self, relay: TestRelay, **kwargs: Any) -> None:
        super().__init__(_Handler(relay), **kwargs)
        self.relay = relay

    def factory(self) -> _RelaySMTP:
        return _RelaySMTP(self.relay, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        if self.port == 0:  # aiosmtpd 1.4 cannot find the port it bound itself
            server = cast(asyncio.Server, self.server)
            self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class TestRelay:
    """An in-process SMTP relay on 127.0.0.1 (see the module docstring)."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        *,
        dsn: bool = True,
        pipelining: bool = True,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls_context: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        auth_require_tls: bool = False,
        delay: float = 0.0,
        port: int = 0,
        hostname: str = "relay.test",
    ) -> None:
        if tls_context is not None and implicit_tls_context is not None:
            raise ValueError("STARTTLS and implicit TLS at once")
        self.dsn = dsn
        self.pipelining = pipelining
        self.auth = auth
        self.delay = delay
        self.host = "127.0.0.1"
        self.port = port
        self.implicit_tls = implicit_tls_context is not None
        self.starttls = tls_context is not None
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._scripts: list[_Script] = []
        self._connections = 0
        self._live: set[_RelaySMTP] = set()  # touched only in the server's loop
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": port,
            "server_hostname": hostname,
            "ssl_context": implicit_tls_context,
            "tls_context": tls_context,
            "require_starttls": require_starttls,
            "auth_require_tls": auth_require_tls,
            "timeout": 60,
        }
        if auth is not None:
            kwargs["authenticator"] = self._authenticate
        self._controller = _Controller(self, **kwargs)
        self._running = False

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> TestRelay:
        """Start serving; ``.port`` is then the bound port."""
        self._controller.start()
        self.port = self._controller.port
        self._running = True
        return self

    def stop(self) -> None:
        """Close every connection and stop the server."""
        if not self._running:
            return
        self._running = False
        self.disconnect_all()
        self._controller.stop()

    def __enter__(self) -> TestRelay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- for the client side -----------------------------------------------------------

    def url(
        self,
        starttls: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        **query: str | float,
    ) -> str:
        """A relay URL pointing at this server (see the module docstring)."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        userinfo = ""
        if username is not None:
            userinfo = quote(username, safe="")
            if password is not None:
                userinfo += ":" + quote(password, safe="")
            userinfo += "@"
        params: dict[str, str | float] = {}
        if not self.implicit_tls:
            params["starttls"] = starttls or ("required" if self.starttls else "off")
        params.setdefault("timeout", 5)
        params.update(query)
        return f"{scheme}://{userinfo}{self.host}:{self.port}?{urlencode(params)}"

    # --- what was received -------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        """The accepted transactions so far (a copy)."""
        with self._lock:
            return list(self._received)

    @property
    def connections(self) -> int:
        """SMTP sessions that reached EHLO/HELO."""
        with self._lock:
            return self._connections

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Wait until at least ``count`` transactions were accepted; ``TimeoutError`` if not."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._received)} of {count} messages received")
                self._lock.wait(left)
            return list(self._received)

    def clear(self) -> None:
        """Forget what was received and the connection count; keep the scripts."""
        with self._lock:
            self._received.clear()
            self._connections = 0

    # --- behaviour ---------------------------------------------------------------------

    def script(
        self,
        *,
        at: Literal["mail", "rcpt", "data"],
        reply: str | None = None,
        action: Literal["reply", "drop"] = "reply",
        rcpt: str | None = None,
        mail_from: str | None = None,
        times: int | None = None,
    ) -> None:
        """Misbehave at ``at`` (see the module docstring)."""
        if at not in ("mail", "rcpt", "data"):
            raise ValueError(f"at must be mail, rcpt or data, not {at!r}")
        if action == "reply" and (reply is None or not _REPLY.match(reply)):
            raise ValueError("a reply script needs reply='NNN text' with a 2xx-5xx code")
        if action not in ("reply", "drop"):
            raise ValueError(f"action must be reply or drop, not {action!r}")
        if at == "mail" and rcpt is not None:
            raise ValueError("at='mail' happens before any RCPT: match on mail_from instead")
        with self._lock:
            self._scripts.append(_Script(at, action, reply, rcpt, mail_from, times))

    def clear_scripts(self) -> None:
        """Behave normally again."""
        with self._lock:
            self._scripts.clear()

    def disconnect_all(self, reply: str | None = None) -> None:
        """Close every client connection now (after ``reply``, if given), like an idle timeout."""
        if not self._running and not self._live:
            return

        async def close_all() -> None:
            for proto in list(self._live):
                transport = cast(asyncio.Transport | None, proto.transport)
                if transport is None:
                    continue
                if reply is not None:
                    transport.write(_format_reply(reply).encode() + b"\r\n")
                    await asyncio.sleep(0.05)
                transport.abort()
            for _ in range(200):
                if not self._live:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0)

        future = asyncio.run_coroutine_threadsafe(close_all(), self._controller.loop)
        future.result(timeout=10)

    # --- called from the server thread -------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: AioEnvelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.auth is not None
        user, password = self.auth
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _count(self, server: _RelaySMTP, helo: str) -> None:
        if not server.counted:
            server.counted = True
            with self._lock:
                self._connections += 1

    def _take(
        self,
        at: str,
        mail_from: str | None,
        rcpts: list[str],
        action: Literal["reply", "drop"] | None = None,
    ) -> _Script | None:
        """The first script for this point that matches, with one of its uses spent."""
        with self._lock:
            for script in self._scripts:
                if script.at != at or (action is not None and script.action != action):
                    continue
                if script.matches(mail_from, rcpts):
                    if script.times is not None:
                        script.times -= 1
                    return script
        return None

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)
            self._lock.notify_all()
