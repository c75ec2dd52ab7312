"""The messages the sandbox sends back about the mail it was given. Pure: bytes out.

- Delivery status notifications (RFC 3464): ``multipart/report;
  report-type=delivery-status`` with a human-readable part, a
  ``message/delivery-status`` part, and the returned message (its headers for
  ``RET=HDRS``, the whole message for ``RET=FULL`` on failure; RFC 3461 §4.3).
  Shaped like Postfix's (https://www.postfix.org/DSN_README.html): the fields
  in RFC 3464 §2.2/§2.3 order, ``Original-Envelope-Id`` echoing ``ENVID`` and
  ``Original-Recipient`` echoing ``ORCPT``.
- Out-of-office replies (RFC 3834): ``Auto-Submitted: auto-replied``, an
  ``Auto:`` subject, ``In-Reply-To`` the original Message-ID.

Both are sent to the original message's envelope sender (landed's VERP
address) with a null envelope sender; ``landed.demo.sandbox`` does that.
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime

from landed.demo.world import INTERNAL_MX, RELAY_HOST

CRLF = "\r\n"


@dataclass(frozen=True, slots=True)
class Received:
    """One recipient of a message the sandbox relay accepted, with its envelope."""

    mail_from: str
    rcpt: str
    data: bytes
    arrived: datetime
    queue_id: str
    #: RFC 3461 ``ENVID`` (xtext decoded), ``ORCPT`` (``rfc822;addr``),
    #: ``NOTIFY`` words and ``RET``, as the client gave them (None/empty: not given).
    envid: str | None = None
    orcpt: str | None = None
    notify: frozenset[str] = frozenset()
    ret: str | None = None

    def wants(self, kind: str) -> bool:
        """Whether a DSN of ``kind`` (SUCCESS, FAILURE, DELAY) was asked for.

        Without ``NOTIFY``, RFC 3461 §4.1 lets the MTA send failures (and
        delays) but not successes.
        """
        if not self.notify:
            return kind != "SUCCESS"
        return "NEVER" not in self.notify and kind in self.notify

    @property
    def headers(self) -> bytes:
        """The returned message's header section."""
        end = self.data.find(b"\r\n\r\n")
        if end < 0:
            end = self.data.find(b"\n\n")
        return self.data if end < 0 else self.data[:end]

    def header(self, name: str) -> str:
        """One header of the returned message, unfolded ("" when absent)."""
        parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            self.headers + b"\r\n\r\n"
        )
        value = parsed.get(name)
        return " ".join(str(value).split()) if value is not None else ""


@dataclass(frozen=True, slots=True)
class Status:
    """What a DSN says about its recipient."""

    #: RFC 3464 §2.3.3: delivered, relayed, delayed, failed.
    action: str
    #: RFC 3463 enhanced status code.
    status: str
    #: The SMTP reply behind it, for ``Diagnostic-Code: smtp; ...``.
    diagnostic: str | None = None
    #: The server that gave that reply.
    remote_mta: str | None = None


# Postfix's wording for each kind of report (bounce(8) templates).
_SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Successful Mail Delivery Report",
}
_EXPLANATIONS = {
    "failed": (
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below."
    ),
    "delayed": (
        "Your message could not be delivered for more than 0 hour(s).\n"
        "It will be retried until it is 1 day(s) old.\n\n"
        "This is a warning only; you do not need to resend your message."
    ),
    "delivered": "Your message was successfully delivered to the destination(s) listed below.",
    "relayed": (
        "Your message was successfully delivered to the destination(s) listed\n"
        "below. If the message was delivered to mailbox you will receive no\n"
        "further notifications. Otherwise you may still receive notifications\n"
        "of mail delivery errors from other systems."
    ),
}


def delivery_status(received: Received, status: Status, *, now: datetime, message_id: str) -> bytes:
    """An RFC 3464 DSN about ``received``, addressed to its envelope sender."""
    boundary = f"{received.queue_id}.{int(now.timestamp())}/{RELAY_HOST}"
    per_message = [f"Reporting-MTA: dns; {RELAY_HOST}"]
    if received.envid:
        per_message.insert(0, f"Original-Envelope-Id: {received.envid}")
    per_message.append(f"X-Postfix-Queue-ID: {received.queue_id}")
    per_message.append(f"Arrival-Date: {format_datetime(received.arrived)}")
    per_recipient = []
    if received.orcpt:
        per_recipient.append(f"Original-Recipient: {received.orcpt}")
    per_recipient += [
        f"Final-Recipient: rfc822; {received.rcpt}",
        f"Action: {status.action}",
        f"Status: {status.status}",
    ]
    if status.remote_mta:
        per_recipient.append(f"Remote-MTA: dns; {status.remote_mta}")
    if status.diagnostic:
        per_recipient.append(f"Diagnostic-Code: smtp; {status.diagnostic}")
    if status.action == "delayed":
        per_recipient.append(
            f"Will-Retry-Until: {format_datetime(received.arrived + timedelta(days=1))}"
        )
    failed = status.action == "failed"
    if failed and received.ret == "FULL":
        returned_type, returned = "message/rfc822", received.data.decode("utf-8", "replace")
        description = "Undelivered Message"
    else:
        returned_type = "text/rfc822-headers"
        returned = received.headers.decode("utf-8", "replace")
        description = "Undelivered Message Headers" if failed else "Message Headers"
    human = (
        f"This is the mail system at host {RELAY_HOST}.\n\n"
        f"{_EXPLANATIONS[status.action]}\n\n"
        "                   The mail system\n\n"
        f"<{received.rcpt}>: {_human_reason(status)}"
    )
    lines = [
        f"From: MAILER-DAEMON@{RELAY_HOST} (Mail Delivery System)",
        f"To: {received.mail_from}",
        f"Subject: {_SUBJECTS[status.action]}",
        f"Date: {format_datetime(now)}",
        f"Message-Id: {message_id}",
        # Postfix marks every report so (RFC 3834 §5): nobody auto-answers it.
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
        "Content-Transfer-Encoding: 8bit",
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        human,
        "",
        f"--{boundary}",
        "Content-Description: Delivery report",
        "Content-Type: message/delivery-status",
        "",
        *per_message,
        "",
        *per_recipient,
        "",
        f"--{boundary}",
        f"Content-Description: {description}",
        f"Content-Type: {returned_type}",
        "",
        returned.rstrip("\r\n"),
        "",
        f"--{boundary}--",
        "",
    ]
    return _crlf(lines)


def _human_reason(status: Status) -> str:
    if status.action == "failed":
        host = status.remote_mta or INTERNAL_MX
        return f"host {host} said: {status.diagnostic or status.status}"
    if status.action == "delayed":
        return f"delivery temporarily suspended: {status.diagnostic or status.status}"
    if status.action == "relayed":
        return f"delivery via {status.remote_mta}: {status.diagnostic or status.status}"
    return f"delivered to mailbox ({status.diagnostic or status.status})"


def out_of_office(
    received: Received, *, name: str, until: str, now: datetime, message_id: str
) -> bytes:
    """An RFC 3834 out-of-office reply from ``received.rcpt``.

    Sent to the envelope sender (RFC 3834 §4: responses go to the Return-Path),
    with ``Auto-Submitted: auto-replied`` (§5), an ``Auto:`` subject (§3.1.5)
    and ``In-Reply-To``/``References`` naming the original message (§3.1.3/§3.1.4).
    """
    original_id = received.header("Message-ID")
    subject = received.header("Subject") or "your message"
    lines = [
        f"From: {name} <{received.rcpt}>",
        f"To: {received.mail_from}",
        f"Subject: Auto: {subject}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {message_id}",
    ]
    if original_id:
        lines += [f"In-Reply-To: {original_id}", f"References: {original_id}"]
    lines += [
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        f"I am out of the office until {until}, with no access to email.",
        "For anything urgent, please contact the on-call team.",
        "",
        f"-- {name}",
        "",
    ]
    return _crlf(lines)


def _crlf(lines: list[str]) -> bytes:
    text = CRLF.join(lines).replace("\r\n", "\n").replace("\n", CRLF)
    return text.encode("utf-8")
