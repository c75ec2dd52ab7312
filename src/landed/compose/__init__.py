"""Pure building of outbound mail: headers, body, footer, envelope. No I/O."""

from __future__ import annotations

from landed.compose.envelope import Envelope, dsn_mail_options, dsn_rcpt_options, verp_sender, xtext
from landed.compose.headers import Mailbox, check_header_value, parse_mailbox
from landed.compose.message import OutgoingMessage, Outstanding, compose

__all__ = [
    "Envelope",
    "Mailbox",
    "OutgoingMessage",
    "Outstanding",
    "check_header_value",
    "compose",
    "dsn_mail_options",
    "dsn_rcpt_options",
    "parse_mailbox",
    "verp_sender",
    "xtext",
]
