"""Forwarding human replies to a person: the ``forward`` outbox, sent with retries.

A policy with ``request_reply`` sets ``Reply-To: reply+TOKEN@<bounce domain>``,
so replies reach landed's inbound listener, where a person's reply records
``acknowledged`` and is kept raw (``inbound``). When ``reply_forward_to`` is set
(globally or for the delivery's policy), ``landed.ingest`` queues the reply in
the ``forward`` table in the same transaction. The :class:`Forwarder` sends each
queued reply on as a new message, retrying with backoff until the relay takes
it; only then is the row deleted. A relay that is down delays forwards and
loses none. Auto-replies are ``delivered`` evidence and are never queued.

The forward is a new message from landed's own From address with the reply
attached whole as ``message/rfc822`` (RFC 2046 §5.2.1), not a resend of the
reply with ``Resent-*`` fields (RFC 5322 §3.6.6):

- a resend keeps the replier's ``From``. Sent through our relay, it fails
  DMARC alignment for the replier's domain (RFC 7489 §3.1), and receivers
  reject or junk it; many relays refuse to send a foreign ``From`` at all. Our
  own ``From`` is aligned like every notification landed sends;
- nothing from the reply becomes a header of ours except a cleaned-up subject
  and a validated address: the reply travels as the attachment's bytes, so
  header injection through a reply is impossible, and the attachment is the
  exact evidence that was recorded;
- every mail client shows an attached message, while many hide ``Resent-*``.

``Reply-To`` is the replier's address, so answering the forward answers the
person. ``Auto-Submitted: auto-generated`` (RFC 3834 §5) keeps the forward
target's auto-responder from answering it. The envelope sender is landed's
From address and only failure DSNs are asked for (RFC 3461 ``NOTIFY=FAILURE``):
a forward that cannot be delivered is reported to the people behind landed's
From, and a forward is not a tracked delivery whose bounce the inbound
listener would know what to do with.
"""

from __future__ import annotations

import base64
import logging
import random
import re
import threading
from dataclasses import dataclass
from datetime import timedelta
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, parseaddr

from landed.clock import Clock, SystemClock
from landed.compose.envelope import Envelope
from landed.compose.headers import Mailbox, parse_mailbox
from landed.compose.mime import CRLF, encode_header, mailbox_header, text_part
from landed.config import Settings
from landed.errors import ConfigError, LandedError
from landed.sender import Backoff, worker_name
from landed.store import Database
from landed.store.forwards import (
    HeldForward,
    ReplyForwarding,
    ReplyMaterial,
    claim_forwards,
    finish_forward,
    release_forwards,
    reply_material,
    retry_forward,
)
from landed.tokens import human_ref, topic_root_id
from landed.transport.base import Kind, Transport

log = logging.getLogger("landed.forwarder")

#: First retry delay and the cap it doubles up to, in seconds (as for alert sinks).
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 3600.0
#: Rows claimed per transaction; the lease covers one SMTP transaction for each.
CLAIM_BATCH = 10
#: What one send may take at most, for the lease: the relay URL's default timeout.
SEND_TIMEOUT = 30.0
#: After this long unsent a row keeps being retried, with a warning each time.
WARN_AFTER = timedelta(hours=24)
#: Longest subject taken from a reply (characters, before "Fwd: ").
MAX_SUBJECT = 200
#: RFC 5322 §2.1.1: a line is at most 998 characters; longer ones cannot go as 7bit/8bit.
_LONG_LINE = re.compile(rb"[^\r\n]{999}")
#: The ``<addr-spec>`` that ends a From field.
_ANGLE_ADDR = re.compile(r"<([^<>\s]+@[^<>\s]+)>\s*$")
#: Controls, DEL and Unicode line separators: nothing that could break or fold a header.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def reply_forwarding(settings: Settings) -> ReplyForwarding | None:
    """Where replies are forwarded under ``settings``; None when nowhere.

    Every address is checked here, so a bad one stops ``landed up`` at start
    (``ConfigError``) rather than failing each forward later.
    """
    default = _checked(settings.reply_forward_to, "reply_forward_to")
    by_policy: dict[str, str | None] = {}
    for policy in settings.policies:
        if policy.reply_forward_to is not None:
            by_policy[policy.name] = _checked(
                policy.reply_forward_to, f"policies.{policy.name}.reply_forward_to"
            )
    if default is None and not any(by_policy.values()):
        return None
    return ReplyForwarding(default=default, by_policy=by_policy)


def _checked(address: str | None, setting: str) -> str | None:
    if address is None or not address.strip():
        return None
    try:
        return parse_mailbox(address, setting).address
    except LandedError as exc:
        raise ConfigError(str(exc), setting=setting) from None


def forward_transport(settings: Settings) -> Transport:
    """The relay forwards go through, asking only for failure DSNs (see the module doc)."""
    from landed.transport.smtp import SMTPRelay

    return SMTPRelay(settings.relay(), dsn_notify="FAILURE", dsn_ret="HDRS", name="relay")


# --- the message -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ReplyHeaders:
    subject: str
    sender: str | None


def _read_reply(raw: bytes) -> _ReplyHeaders:
    """The reply's subject (decoded, made safe) and its sender's address, if valid.

    Read with the lenient ``compat32`` policy: the modern one refuses (raises on)
    a display name whose encoded words decode to CR or LF, and mail from anyone
    may hold one.
    """
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    try:
        subject = str(make_header(decode_header(str(headers.get("Subject", "")))))
    except (LookupError, UnicodeError, ValueError):  # unknown charset, bad encoded word
        subject = str(headers.get("Subject", ""))
    subject = " ".join(_UNSAFE.sub(" ", subject).split())[:MAX_SUBJECT]
    sender: str | None = None
    from_value = str(headers.get("From", ""))
    # ``Name <addr>``: the angle address, whatever the name holds; else the parser.
    angle = _ANGLE_ADDR.search(from_value)
    address = angle.group(1) if angle else parseaddr(from_value)[1]
    if address:
        try:
            sender = parse_mailbox(address, "reply From").address
        except LandedError:
            sender = None
    return _ReplyHeaders(subject, sender)


def forward_message(
    held: HeldForward,
    material: ReplyMaterial,
    *,
    sender: Mailbox,
    id_domain: str,
) -> bytes:
    """The forward of one reply, CRLF line endings; the same bytes on every attempt."""
    reply = _read_reply(material.raw)
    subject = reply.subject or (f"[{material.topic}] reply" if material.topic else "reply")
    if not subject.lower().startswith(("fwd:", "fw:")):
        subject = f"Fwd: {subject}"
    to = parse_mailbox(held.to_address, "reply_forward_to")
    headers = [
        mailbox_header("From", sender.display_name, sender.address),
        mailbox_header("To", to.display_name, to.address),
    ]
    if reply.sender:
        headers.append(f"Reply-To: {reply.sender}")
    headers += [
        encode_header("Subject", subject),
        f"Date: {format_datetime(held.created_at)}",
        f"Message-ID: <fwd.{held.id}.{held.inbound_id}@{id_domain}>",
    ]
    # Threaded under the topic, as landed's notifications are (DESIGN.md).
    if material.topic is not None:
        refs = [f"<{topic_root_id(material.topic, id_domain)}>"]
        if material.message_id:
            headers.append(f"In-Reply-To: {material.message_id}")
            refs.append(material.message_id)
        headers.append(f"References: {' '.join(refs)}")
    headers += ["Auto-Submitted: auto-generated", "MIME-Version: 1.0"]

    text_headers, text_payload = text_part(_summary(material, reply), "plain")
    raw = material.raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if b"\x00" in raw or _LONG_LINE.search(raw):
        # Not representable as message/rfc822 (7bit/8bit only, RFC 2046 §5.2.1):
        # attach the bytes as they are, base64-encoded.
        attached = [
            'Content-Type: application/octet-stream; name="reply.eml"',
            'Content-Disposition: attachment; filename="reply.eml"',
            "Content-Transfer-Encoding: base64",
        ]
        body = CRLF.join(base64.encodebytes(raw).decode("ascii").splitlines())
    else:
        attached = [
            "Content-Type: message/rfc822",
            'Content-Disposition: inline; filename="reply.eml"',
            f"Content-Transfer-Encoding: {'7bit' if raw.isascii() else '8bit'}",
        ]
        # The CRLF before the closing delimiter belongs to it (RFC 2046 §5.1.1),
        # so the attachment is the reply's bytes exactly.
        body = raw.decode("latin-1")
    boundary = f"=_landed_fwd_{held.id}"
    while boundary in text_payload or boundary in body:
        boundary += "_"
    lines = [
        *headers,
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        *text_headers,
        "",
        text_payload,
        f"--{boundary}",
        *attached,
        "",
        body,
        f"--{boundary}--",
    ]
    # The reply's own bytes go through untouched (latin-1 maps byte to byte).
    return (CRLF.join(lines) + CRLF).encode("latin-1")


def _summary(material: ReplyMaterial, reply: _ReplyHeaders) -> str:
    lines = ["A reply to a notification reached landed. It is attached as received.", ""]
    if reply.sender:
        lines.append(f"From:          {reply.sender}")
    if material.topic is not None:
        lines.append(f"Topic:         {_UNSAFE.sub(' ', material.topic)}")
        lines.append(f"Notification:  {_UNSAFE.sub(' ', material.subject or '')}")
        ref = human_ref(material.ref) if material.ref else ""
        lines.append(f"Delivery:      #{material.seq} for {material.recipient} (Ref {ref})")
    lines.append(f"Received:      {material.received_at:%Y-%m-%d %H:%M:%S} UTC")
    lines += ["", "Replying to this message answers the sender of the reply."]
    return "\n".join(lines) + "\n"


# --- the worker --------------------------------------------------------------------------


class Forwarder:
    """Sends queued replies (``forward`` rows) on, through one transport."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        transport: Transport,
        *,
        clock: Clock | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        self.db = db
        self.transport = transport
        self.clock = clock or SystemClock()
        self.owner = owner or worker_name()
        self.rng = rng or random.Random()
        self.poll_seconds = poll_seconds or max(settings.worker_poll_seconds, 1.0)
        self.sender = parse_mailbox(settings.require_from(), "from")
        self.id_domain = settings.id_domain()
        self.backoff = Backoff(RETRY_BASE_SECONDS, RETRY_MAX_SECONDS)
        self.lease = timedelta(seconds=settings.lease_seconds + CLAIM_BATCH * SEND_TIMEOUT)

    def run(self, stop: threading.Event) -> None:
        """Forward until ``stop`` is set; poll every ``poll_seconds`` when idle."""
        log.info("reply forwarder %s started", self.owner)
        try:
            while not stop.is_set():
                busy = 0
                try:
                    busy = self.tick(stop=stop)
                except Exception:
                    # The ledger may be briefly unreachable: the rows stay queued.
                    log.exception("reply forwarder %s: tick failed", self.owner)
                if busy == 0:
                    stop.wait(self.poll_seconds)
        finally:
            self.close()
            log.info("reply forwarder %s stopped", self.owner)

    def close(self) -> None:
        self.transport.close()

    def tick(self, limit: int = 100, *, stop: threading.Event | None = None) -> int:
        """Attempt up to ``limit`` due forwards; return how many were attempted.

        When ``stop`` is set meanwhile, the rows not yet attempted are given back.
        """
        done = 0
        while done < limit and not (stop is not None and stop.is_set()):
            now = self.clock.now()
            with self.db.write() as conn:
                held = claim_forwards(
                    conn, now=now, until=now + self.lease, limit=min(CLAIM_BATCH, limit - done)
                )
            if not held:
                break
            for i, row in enumerate(held):
                if stop is not None and stop.is_set():
                    with self.db.write() as conn:
                        release_forwards(conn, held[i:], now=self.clock.now())
                    break
                self._attempt(row)
                done += 1
        return done

    def _attempt(self, held: HeldForward) -> None:
        with self.db.read() as conn:
            material = reply_material(conn, held)
        if material is None:
            # The stored reply was deleted (retention): nothing left to forward.
            with self.db.write() as conn:
                finish_forward(conn, held.id)
            log.warning("forward %d: inbound %d is gone; dropped", held.id, held.inbound_id)
            return
        try:
            message = forward_message(held, material, sender=self.sender, id_domain=self.id_domain)
            envelope = Envelope(
                mail_from=self.sender.address,
                rcpt_to=held.to_address,
                envid=f"fwd.{held.id}",
            )
            result = self.transport.send(envelope, message)
        except Exception as exc:  # a bug, or a bad address in an old row: keep it, say why
            log.exception("forward %d: failed", held.id)
            self._failed(held, f"{type(exc).__name__}: {exc}", permanent=True)
            return
        if result.kind is Kind.SENT:
            with self.db.write() as conn:
                finish_forward(conn, held.id)
            log.info(
                "forward %d: inbound %d forwarded to %s (%s)",
                held.id,
                held.inbound_id,
                held.to_address,
                result.reply,
            )
            return
        self._failed(held, str(result.reply), permanent=result.kind is Kind.PERMANENT)

    def _failed(self, held: HeldForward, error: str, *, permanent: bool) -> None:
        # A permanent refusal (a wrong reply_forward_to) is retried too: the reply
        # is kept until someone fixes the address, never dropped.
        now = self.clock.now()
        attempt = held.attempts + 1
        retry_at = now + timedelta(seconds=self.backoff.delay(attempt, self.rng))
        with self.db.write() as conn:
            kept = retry_forward(conn, held, retry_at=retry_at, error=error)
        if not kept:
            log.info("forward %d: %s (lease lost, not rescheduled)", held.id, error)
            return
        late = now - held.created_at >= WARN_AFTER
        level = logging.WARNING if permanent or late else logging.INFO
        log.log(
            level,
            "forward %d to %s: attempt %d failed (%s); next at %s",
            held.id,
            held.to_address,
            attempt,
            error,
            f"{retry_at:%Y-%m-%d %H:%M:%SZ}",
        )
