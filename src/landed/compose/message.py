"""Building one delivery's email: headers, text/HTML body and the footer.

The output must be byte-identical every time it is built from the same stored
data, so that a resend after a crash is recognisably the same message (same
Message-ID, same Date, same body). Nothing here reads the clock.
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

from landed.compose.headers import Mailbox, check_header_value
from landed.compose.links import TrackingLinks, rewrite_links
from landed.compose.mime import CRLF, encode_header, mailbox_header, text_part
from landed.tokens import human_ref

#: Each email lists up to ten earlier deliveries by reference, and the same
#: deliveries are listed again in the recipient's next emails: remember them.
_ref = lru_cache(maxsize=8192)(human_ref)
#: The deliveries of one notification share its time, and so their Date header.
_date = lru_cache(maxsize=1024)(format_datetime)

#: Our own header, so a returned message can be attributed even when the
#: Message-ID was rewritten (Exchange, some ESPs) and the envelope was lost.
TOKEN_HEADER = "X-Landed-Token"


@dataclass(frozen=True, slots=True)
class Outstanding:
    """An earlier notification to the same recipient not yet confirmed."""

    seq: int
    topic_key: str
    subject: str
    delivery_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingMessage:
    """Everything needed to build one delivery's email."""

    sender: Mailbox
    recipient: Mailbox
    subject: str
    text: str
    html: str | None = None
    topic_key: str
    topic_root: str
    delivery_id: str
    token: str
    message_id_domain: str
    seq: int
    date: datetime
    reply_to: str | None = None
    #: RFC 8098: where read receipts go (landed's VERP address), when the policy asks.
    disposition_notification_to: str | None = None
    outstanding: tuple[Outstanding, ...] = field(default_factory=tuple)
    #: The acknowledgement link (always), pixel and click-through (when enabled);
    #: None: a message without tracked URLs.
    links: TrackingLinks | None = None

    @property
    def message_id(self) -> str:
        """``<TOKEN@domain>``."""
        return f"<{self.token}@{self.message_id_domain}>"


def subject_line(topic_key: str, subject: str) -> str:
    """The subject carries the topic key (never the tracking id), once."""
    if topic_key in subject:
        return subject
    return f"[{topic_key}] {subject}"


def _footer_lines(msg: OutgoingMessage) -> tuple[str, list[str]]:
    head = f"Ref {_ref(msg.delivery_id)} · #{msg.seq} for you · {msg.topic_key}"
    return head, [_outstanding_row(item) for item in msg.outstanding]


@lru_cache(maxsize=8192)
def _outstanding_row(item: Outstanding) -> str:
    # An earlier notification is listed in the recipient's next several emails,
    # always the same way (formatting its time is the slow part).
    return (
        f"  #{item.seq}  {item.topic_key}  {item.subject}  "
        f"(Ref {_ref(item.delivery_id)}, {item.created_at:%Y-%m-%d %H:%M} UTC)"
    )


def _ack_prompt(msg: OutgoingMessage) -> str:
    # Acknowledging #N also confirms what this email lists as outstanding
    # (landed.store.ack), so the prompt says so when there is a list.
    if msg.outstanding:
        return f"Got it? Confirm #{msg.seq} and the earlier ones listed below"
    return f"Got it? Confirm #{msg.seq}"


def text_body(msg: OutgoingMessage) -> str:
    """The plain-text body with the footer, the acknowledgement link and the
    outstanding block."""
    head, rows = _footer_lines(msg)
    parts = [msg.text.rstrip("\n"), "", "-- ", head]
    if msg.links is not None and msg.links.ack:
        parts.append(f"{_ack_prompt(msg)}: {msg.links.ack_url}")
    if rows:
        parts += ["", "Still unconfirmed for you (earlier notifications):", *rows]
    return "\n".join(parts) + "\n"


def html_body(msg: OutgoingMessage) -> str:
    """The HTML body with the same footer, inserted before ``</body>`` if present.

    With tracking links: the acknowledgement link in the footer, the caller's
    links rewritten to signed click-through (when enabled) and the open pixel
    last (when enabled). The pixel is only ever in the HTML part: a text part
    cannot load an image.
    """
    assert msg.html is not None
    head, _ = _footer_lines(msg)
    links = msg.links
    footer = [
        '<hr><p style="color:#666;font-size:12px">' + html_lib.escape(head) + "</p>",
    ]
    if links is not None and links.ack:
        footer.append(
            '<p style="font-size:12px"><a href="'
            + html_lib.escape(links.ack_url, quote=True)
            + '">'
            + html_lib.escape(_ack_prompt(msg))
            + "</a></p>"
        )
    if msg.outstanding:
        footer.append('<p style="color:#666;font-size:12px">Still unconfirmed for you:</p><ul>')
        for item in msg.outstanding:
            footer.append(
                f'<li style="color:#666;font-size:12px">#{item.seq} '
                f"{html_lib.escape(item.topic_key)} {html_lib.escape(item.subject)} "
                f"(Ref {_ref(item.delivery_id)}, {item.created_at:%Y-%m-%d %H:%M} UTC)</li>"
            )
        footer.append("</ul>")
    if links is not None and links.pixel:
        footer.append(
            '<img src="'
            + html_lib.escape(links.pixel_url, quote=True)
            + '" width="1" height="1" alt="" style="border:0">'
        )
    block = "\n".join(footer)
    body = msg.html
    if links is not None and links.clicks:
        body = rewrite_links(body, links)
    at = body.lower().rfind("</body>")
    if at >= 0:
        return body[:at] + block + "\n" + body[at:]
    return body + "\n" + block + "\n"


def compose(msg: OutgoingMessage) -> bytes:
    """The complete RFC 5322 message, CRLF line endings, ready for DATA."""
    subject = subject_line(
        check_header_value(msg.topic_key, "topic"), check_header_value(msg.subject, "subject")
    )
    root = f"<{msg.topic_root}>"
    headers = [
        mailbox_header("From", msg.sender.display_name, msg.sender.address),
        mailbox_header("To", msg.recipient.display_name, msg.recipient.address),
    ]
    if msg.reply_to:
        headers.append(encode_header("Reply-To", check_header_value(msg.reply_to, "reply_to")))
    if msg.disposition_notification_to:
        headers.append(
            encode_header(
                "Disposition-Notification-To",
                check_header_value(msg.disposition_notification_to, "mdn_to"),
            )
        )
    headers += [
        encode_header("Subject", subject),
        f"Date: {_date(msg.date)}",
        f"Message-ID: {msg.message_id}",
        f"In-Reply-To: {root}",
        f"References: {root}",
        f"{TOKEN_HEADER}: {msg.token}",
        "MIME-Version: 1.0",
    ]
    # Deliberately no "Auto-Submitted: auto-generated" and no
    # "X-Auto-Response-Suppress": out-of-office replies are evidence of delivery
    # (DESIGN.md, "The evidence ladder"), and both headers suppress them
    # (RFC 3834 §2; Exchange honours X-Auto-Response-Suppress).
    text_headers, text_payload = text_part(text_body(msg), "plain")
    if msg.html is None:
        lines = [*headers, *text_headers, "", text_payload]
    else:
        html_headers, html_payload = text_part(html_body(msg), "html")
        # The boundary is derived from the token so a rebuilt message is byte-identical.
        boundary = f"=_landed_{msg.token[:26]}"
        while boundary in text_payload or boundary in html_payload:
            boundary += "_"
        lines = [
            *headers,
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            *text_headers,
            "",
            text_payload,
            f"--{boundary}",
            *html_headers,
            "",
            html_payload,
            f"--{boundary}--",
        ]
    return (CRLF.join(lines) + CRLF).encode("utf-8")
