"""The sandbox mail world: landed's relay, and everything that happens after it.

``Sandbox`` is an SMTP server (aiosmtpd) on loopback that landed uses as its
relay (``relay_url``). It advertises DSN (RFC 3461) and keeps each recipient's
``NOTIFY``/``ORCPT`` and the message's ``ENVID``/``RET``. What happens next
depends on the recipient (``landed.demo.world.behaviour_for``): some are
refused at ``RCPT`` with a temporary error, the others are accepted and get
*follow-ups* a few seconds later:

- a report (``landed.demo.reports``): success, failure or delay DSN, or an
  out-of-office reply, sent with ``smtplib`` to landed's inbound SMTP
  listener, addressed to the message's envelope sender (the VERP address), as
  the corporate relay would send it to the bounce domain's MX; when landed
  does not take it, it is retried, as an MTA would;
- an acknowledgement: the person opens the link in the message (GET shows a
  page) and submits its form (POST), over HTTP, like a browser.

Follow-ups are due at times read from a ``Clock``: ``pump()`` runs those that
are due. ``run()`` pumps in real time; tests drive a ``FixedClock`` instead.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import heapq
import itertools
import logging
import re
import secrets
import smtplib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any, cast
from urllib.parse import unquote, urljoin

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from landed.clock import Clock, SystemClock
from landed.demo.reports import Received, Status, delivery_status, out_of_office
from landed.demo.world import (
    EXTERNAL_MX,
    INTERNAL_MX,
    RELAY_HOST,
    RESIDENTS,
    Behaviour,
    Timing,
    behaviour_for,
    is_internal,
)

log = logging.getLogger("landed.demo.sandbox")

#: How often a report landed did not take is tried again, and how many times.
RETRY_SECONDS = 5.0
RETRY_TIMES = 20
_ACK_LINK = re.compile(r"https?://[^\s<>\"']+/t/ack/[0-9a-z]+", re.I)
_MAIL_DSN = frozenset({"RET", "ENVID"})
_RCPT_DSN = frozenset({"NOTIFY", "ORCPT"})


@dataclass(order=True)
class FollowUp:
    """Something the sandbox does later."""

    due: datetime
    seq: int
    what: str = field(compare=False)
    run: Callable[[], None] = field(compare=False, repr=False)
    tries: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Event:
    """What the sandbox did, for the log and for tests."""

    at: datetime
    kind: str  # refused, accepted, dsn:<action>, autoreply, acknowledged, gave-up
    recipient: str
    detail: str = ""


def decode_xtext(value: str) -> str:
    """RFC 3461 §4: ``+HH`` is the byte HH."""
    return re.sub(r"\+([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


class _DsnEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        #: The DSN parameters of each recipient, in ``rcpt_tos`` order.
        self.rcpt_params: list[dict[str, str]] = []
        self.mail_params: dict[str, str] = {}


class _DsnSMTP(SMTP):
    """aiosmtpd, plus the DSN extension's parameters (which it would refuse with 555).

    The parameters are taken off the command line, case kept (aiosmtpd
    upper-cases what it passes on), and kept on the session for the handler.
    """

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.dsn_params: dict[str, str] = {}

    def _take(self, arg: str | None, names: frozenset[str]) -> str | None:
        self.dsn_params = {}
        if arg is None:
            return None
        end = arg.find(">")
        if end < 0:
            return arg
        kept = []
        for param in arg[end + 1 :].split():
            key, _, value = param.partition("=")
            if key.upper() in names:
                self.dsn_params[key.upper()] = decode_xtext(value)
            else:
                kept.append(param)
        return " ".join([arg[: end + 1], *kept])

    def _create_envelope(self) -> _DsnEnvelope:
        return _DsnEnvelope()

    async def smtp_MAIL(self, arg: str | None) -> None:
        arg = self._take(arg, _MAIL_DSN)
        await super().smtp_MAIL(arg)
        if isinstance(self.envelope, _DsnEnvelope) and self.envelope.mail_from is not None:
            self.envelope.mail_params = dict(self.dsn_params)

    async def smtp_RCPT(self, arg: str | None) -> None:
        await super().smtp_RCPT(self._take(arg, _RCPT_DSN))


class _Handler:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def handle_EHLO(
        self,
        server: _DsnSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        responses.insert(len(responses) - 1, "250-DSN")
        return responses

    async def handle_RCPT(
        self,
        server: _DsnSMTP,
        session: Session,
        envelope: _DsnEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.sandbox._rcpt(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_params.append(dict(server.dsn_params))
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: _DsnSMTP, session: Session, envelope: _DsnEnvelope) -> str:
        queue_id = secrets.token_hex(5).upper()
        self.sandbox._accept(
            mail_from=envelope.mail_from or "",
            rcpts=list(zip(envelope.rcpt_tos, envelope.rcpt_params, strict=True)),
            mail_params=envelope.mail_params,
            data=bytes(envelope.original_content or b""),
            queue_id=queue_id,
        )
        return f"250 2.0.0 Ok: queued as {queue_id}"


class _Controller(Controller):
    def factory(self) -> _DsnSMTP:
        return _DsnSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        # aiosmtpd 1.4 cannot find the port it bound itself when asked for port 0.
        if self.port == 0:
            server = cast(asyncio.Server, self.server)
            self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class Sandbox:
    """The sandbox relay and its follow-ups (see the module docstring).

    ``inbound``: landed's inbound SMTP listener, where reports are sent.
    ``http``: the client people use to open acknowledgement links.
    """

    def __init__(
        self,
        inbound: tuple[str, int],
        *,
        timing: Timing | None = None,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.inbound = inbound
        self.timing = timing or Timing()
        self.clock = clock or SystemClock()
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=10.0, follow_redirects=False)
        self.controller = _Controller(
            _Handler(self),
            hostname=host,
            port=port,
            server_hostname=RELAY_HOST,
            decode_data=False,
            ready_timeout=10,
        )
        self._lock = threading.Lock()
        self._queue: list[FollowUp] = []
        self._seq = itertools.count()
        self.events: list[Event] = []
        self.accepted: list[Received] = []

    # --- running ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def relay_url(self) -> str:
        """landed's ``relay_url`` for this sandbox."""
        return f"smtp://{self.controller.hostname}:{self.port}?starttls=off&timeout=10"

    def start(self) -> None:
        self.controller.start()
        log.info("sandbox relay listening on %s:%d", self.controller.hostname, self.port)

    def stop(self) -> None:
        self.controller.stop()
        if self._own_http:
            self.http.close()

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Serve and pump follow-ups until ``stop``."""
        self.start()
        try:
            while not stop.is_set():
                self.pump()
                stop.wait(interval)
        finally:
            self.stop()

    def pump(self) -> int:
        """Run every follow-up that is due now; return how many ran."""
        done = 0
        while True:
            now = self.clock.now()
            with self._lock:
                if not self._queue or self._queue[0].due > now:
                    return done
                item = heapq.heappop(self._queue)
            try:
                item.run()
            except _TryAgain as exc:
                item.tries += 1
                if item.tries >= RETRY_TIMES:
                    log.warning("sandbox gave up on %s: %s", item.what, exc)
                    self._record("gave-up", item.what, str(exc))
                else:
                    log.info("sandbox will retry %s: %s", item.what, exc)
                    item.due = now + timedelta(seconds=RETRY_SECONDS)
                    with self._lock:
                        heapq.heappush(self._queue, item)
            done += 1

    def pending(self) -> int:
        """How many follow-ups are still to come."""
        with self._lock:
            return len(self._queue)

    def next_due(self) -> datetime | None:
        with self._lock:
            return self._queue[0].due if self._queue else None

    # --- the relay's decisions -----------------------------------------------------------

    def _rcpt(self, address: str) -> str | None:
        behaviour = behaviour_for(address)
        if behaviour is None:
            # Postfix's wording for a domain it will not relay to.
            self._record("refused", address, "not a sandbox domain")
            return f"554 5.7.1 <{address}>: Relay access denied (the sandbox only knows *.test)"
        if behaviour is Behaviour.DEFER:
            # Postfix's reject_unknown_recipient_domain on a temporary DNS failure
            # (https://www.postfix.org/postconf.5.html#unknown_address_tempfail_action).
            self._record("refused", address, "450 4.1.2 domain not found (temporary)")
            return f"450 4.1.2 <{address}>: Recipient address rejected: Domain not found"
        return None

    def _accept(
        self,
        *,
        mail_from: str,
        rcpts: list[tuple[str, dict[str, str]]],
        mail_params: dict[str, str],
        data: bytes,
        queue_id: str,
    ) -> None:
        now = self.clock.now()
        for rcpt, params in rcpts:
            notify = params.get("NOTIFY")
            received = Received(
                mail_from=mail_from,
                rcpt=rcpt,
                data=data,
                arrived=now,
                queue_id=queue_id,
                envid=mail_params.get("ENVID"),
                orcpt=params.get("ORCPT"),
                notify=frozenset(w.upper() for w in notify.split(",")) if notify else frozenset(),
                ret=mail_params.get("RET", "").upper() or None,
            )
            with self._lock:
                self.accepted.append(received)
            self._record("accepted", rcpt, queue_id)
            self._plan(received, behaviour_for(rcpt) or Behaviour.DELIVER)

    def _plan(self, received: Received, behaviour: Behaviour) -> None:
        timing = self.timing
        rcpt = received.rcpt
        remote = INTERNAL_MX if is_internal(rcpt) else EXTERNAL_MX
        if behaviour is Behaviour.UNKNOWN:
            self._dsn_later(
                timing.dsn,
                received,
                Status(
                    "failed",
                    "5.1.1",
                    f"550 5.1.1 <{rcpt}>: Recipient address rejected: "
                    "User unknown in virtual mailbox table",
                    remote,
                ),
            )
            return
        if behaviour is Behaviour.FULL:
            self._dsn_later(
                timing.dsn,
                received,
                Status("failed", "5.2.2", f"552 5.2.2 <{rcpt}>: Mailbox full, over quota", remote),
            )
            return
        if behaviour is Behaviour.LATE:
            self._dsn_later(
                timing.delay_dsn,
                received,
                Status(
                    "delayed",
                    "4.4.1",
                    f"421 4.4.1 {remote}: Connection timed out; will retry",
                    remote,
                ),
            )
            self._dsn_later(timing.late_delivery, received, _success(received))
            return
        self._dsn_later(timing.dsn, received, _success(received))
        if behaviour is Behaviour.AUTOREPLY:
            self._later(
                timing.autoreply,
                f"out-of-office from {rcpt}",
                lambda: self._send_autoreply(received),
            )
        elif behaviour is Behaviour.ACKNOWLEDGE:
            self._later(
                timing.acknowledge,
                f"{rcpt} acknowledges",
                lambda: self._acknowledge(received),
            )

    def _dsn_later(self, delay: float, received: Received, status: Status) -> None:
        # RFC 3461 §4.1: only the kinds of DSN the sender asked for.
        kind = {"failed": "FAILURE", "delayed": "DELAY"}.get(status.action, "SUCCESS")
        if not received.wants(kind):
            return
        self._later(
            delay,
            f"{status.action} DSN for {received.rcpt}",
            lambda: self._send_dsn(received, status),
        )

    def _later(self, delay: float, what: str, run: Callable[[], None]) -> None:
        due = self.clock.now() + timedelta(seconds=delay)
        with self._lock:
            heapq.heappush(self._queue, FollowUp(due, next(self._seq), what, run))

    # --- follow-ups ----------------------------------------------------------------------

    def _send_dsn(self, received: Received, status: Status) -> None:
        message = delivery_status(received, status, now=self.clock.now(), message_id=_message_id())
        self._return(received.mail_from, message)
        self._record(f"dsn:{status.action}", received.rcpt, status.status)

    def _send_autoreply(self, received: Received) -> None:
        name = next((r.name for r in RESIDENTS if r.address == received.rcpt.lower()), "")
        message = out_of_office(
            received,
            name=name or received.rcpt,
            until=f"{self.clock.now() + timedelta(days=7):%A %d %B}",
            now=self.clock.now(),
            message_id=_message_id(),
        )
        self._return(received.mail_from, message)
        self._record("autoreply", received.rcpt)

    def _return(self, to: str, message: bytes) -> None:
        """Send a report to landed's inbound listener, null envelope sender
        (RFC 5321 §4.5.5 for DSNs, RFC 3834 §3.3 for auto-replies)."""
        if not to:
            return  # the message itself had a null sender: nothing may be returned
        host, port = self.inbound
        try:
            with smtplib.SMTP(host, port, local_hostname=RELAY_HOST, timeout=10) as smtp:
                smtp.sendmail("", [to], message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            if 400 <= code < 500:
                raise _TryAgain(f"{code} {text.decode(errors='replace')}") from None
            log.warning("landed refused a report for %s: %d %s", to, code, text)
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise _TryAgain(f"{exc.smtp_code} {exc.smtp_error!r}") from None
            log.warning("landed refused a report for %s: %s", to, exc)
        except (OSError, smtplib.SMTPException) as exc:
            raise _TryAgain(str(exc) or type(exc).__name__) from None

    def _acknowledge(self, received: Received) -> None:
        """Open the acknowledgement link and press the button, as a person would."""
        link = ack_link(received.data)
        if link is None:
            self._record("gave-up", received.rcpt, "no acknowledgement link in the message")
            return
        try:
            page = self.http.get(link)
            if page.status_code != 200:
                raise _TryAgain(f"GET {link}: {page.status_code}")
            action, fields = read_form(page.text)
            posted = self.http.post(urljoin(link, action or link), data=fields)
        except httpx.HTTPError as exc:
            raise _TryAgain(f"{link}: {exc}") from None
        if posted.status_code >= 400:
            raise _TryAgain(f"POST {link}: {posted.status_code}")
        self._record("acknowledged", received.rcpt, link)

    def _record(self, kind: str, recipient: str, detail: str = "") -> None:
        event = Event(self.clock.now(), kind, recipient, detail)
        with self._lock:
            self.events.append(event)
        log.info("sandbox: %s %s %s", kind, recipient, detail)


class _TryAgain(Exception):
    """A follow-up that could not be done now (landed not reachable, a 4xx)."""


def _success(received: Received) -> Status:
    if is_internal(received.rcpt):
        # The company's own mail system put it in the mailbox (LMTP into Dovecot).
        return Status(
            "delivered",
            "2.0.0",
            f"250 2.0.0 <{received.rcpt}> Saved",
            INTERNAL_MX,
        )
    # Handed to the outside world, which offers no DSN: "relayed", and no more
    # (RFC 3464 §2.3.3; Postfix, https://www.postfix.org/DSN_README.html).
    return Status("relayed", "2.0.0", "250 2.0.0 Ok: queued", EXTERNAL_MX)


def _message_id() -> str:
    return f"<{secrets.token_hex(8)}@{RELAY_HOST}>"


def ack_link(data: bytes) -> str | None:
    """The acknowledgement link in a message's text (the part a person reads)."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain", "html"))
    text = body.get_content() if body is not None else ""
    match = _ACK_LINK.search(str(text))
    return unquote(match.group(0)) if match else None


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form" and self.action is None and (values.get("method") or "").lower() == "post":
            self._in_form = True
            self.action = values.get("action") or ""
        elif self._in_form and tag in ("input", "button") and values.get("name"):
            kind = (values.get("type") or "").lower()
            if tag == "input" and kind in ("checkbox", "radio") and "checked" not in values:
                return
            self.fields.setdefault(str(values["name"]), values.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def read_form(page: str) -> tuple[str | None, dict[str, str]]:
    """The first POST form of a page: its action and the fields a browser would send."""
    reader = _FormReader()
    reader.feed(page)
    return reader.action, reader.fields
