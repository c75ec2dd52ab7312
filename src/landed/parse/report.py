"""The parser's output: one :class:`Report` per message, one
:class:`RecipientReport` per recipient the message speaks about."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Kind", "RecipientReport", "Report", "Token"]


class Kind(StrEnum):
    """What a message is, as far as delivery evidence goes."""

    #: A final failure (DSN ``Action: failed`` or a non-standard bounce).
    BOUNCE = "bounce"
    #: A warning: delivery is still being retried (DSN ``Action: delayed``).
    DELAY = "delay"
    #: A success DSN (``Action: delivered``, ``relayed`` or ``expanded``).
    DELIVERED = "delivered"
    #: An abuse or complaint report (RFC 5965 ARF).
    FEEDBACK = "feedback"
    #: An automatic reply from the mailbox (RFC 3834, vacation, out of office).
    AUTOREPLY = "autoreply"
    #: A message disposition notification (RFC 8098 read receipt).
    MDN = "mdn"
    #: None of the above: a person's mail, or something unreadable.
    NOT_BOUNCE = "not-bounce"


@dataclass(frozen=True, slots=True)
class Token:
    """A string that looks like a landed tracking token, and where it was found.

    ``where`` is one of ``verp`` (the envelope recipient of the bounce, or
    its own Delivered-To / X-Original-To / To), ``envid``
    (Original-Envelope-Id), ``message-id`` (the returned Message-ID),
    ``header`` (our X-Landed-Token header in the returned message),
    ``return-path`` (our envelope sender as the returned message or an ARF
    report's Original-Mail-From quotes it). Tokens are never verified here.
    """

    value: str
    where: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientReport:
    """What one message says about one recipient."""

    #: The recipient address (Final-Recipient), lowercased; None if unknown.
    recipient: str | None
    #: Original-Recipient (the ORCPT address), if the message gives one.
    original_recipient: str | None = None
    #: RFC 3464 action: failed, delayed, delivered, relayed, expanded; "" if none.
    action: str = ""
    #: RFC 3463 status code (D.S.N); X.0.0 when the message gives only the class.
    status: str = ""
    #: True when ``status`` was not in the message but inferred from the wording.
    status_inferred: bool = False
    #: Reason from the vocabulary in :data:`landed.parse.reasons.REASONS`.
    reason: str = "undefined"
    #: True = permanent (do not retry this address), False = temporary/other, None = not a failure.
    hard: bool | None = None
    #: The remote server's reply or the MTA's explanation, whitespace-squeezed.
    diagnostic: str = ""
    #: Diagnostic-Code type (SMTP, X-Unix, ...).
    diagnostic_type: str = ""
    #: The SMTP reply code, if one was found.
    reply_code: str = ""
    #: The SMTP command the failure answered, if known.
    smtp_command: str = ""
    remote_mta: str = ""
    reporting_mta: str = ""
    #: ARF Feedback-Type (abuse, fraud, opt-out, ...) for complaint reports.
    feedback_type: str = ""
    #: Original-Envelope-Id of the DSN (per message, repeated here for convenience).
    envid: str = ""
    tokens: tuple[Token, ...] = ()

    @property
    def final_recipient(self) -> str | None:
        """Alias of :attr:`recipient` (RFC 3464 name)."""
        return self.recipient

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "recipient": self.recipient,
            "original_recipient": self.original_recipient,
            "action": self.action,
            "status": self.status,
            "status_inferred": self.status_inferred,
            "reason": self.reason,
            "hard": self.hard,
            "diagnostic": self.diagnostic,
            "diagnostic_type": self.diagnostic_type,
            "reply_code": self.reply_code,
            "smtp_command": self.smtp_command,
            "remote_mta": self.remote_mta,
            "reporting_mta": self.reporting_mta,
            "feedback_type": self.feedback_type,
            "envid": self.envid,
            "tokens": [{"value": t.value, "where": t.where} for t in self.tokens],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Everything the parser read from one message."""

    kind: Kind
    recipients: tuple[RecipientReport, ...] = ()
    #: Which detector read the message ("rfc3464", "postfix", "arf", ...; "" if none).
    dialect: str = ""
    #: Original-Envelope-Id (RFC 3461 ENVID) of a DSN.
    envid: str = ""
    reporting_mta: str = ""
    #: Subject of the report itself.
    subject: str = ""
    #: From of the report itself (the MAILER-DAEMON, the complainant, the vacationer).
    sender: str = ""
    #: Headers of the returned original message, when the report carries them.
    original_message_id: str = ""
    original_subject: str = ""
    original_from: str = ""
    original_to: str = ""
    #: ARF Feedback-Type, for ``feedback`` reports.
    feedback_type: str = ""
    #: MDN Disposition (e.g. ``manual-action/MDN-sent-manually; displayed``).
    disposition: str = ""
    #: Every token-looking string found, with where (see :class:`Token`).
    tokens: tuple[Token, ...] = ()

    @property
    def reason(self) -> str:
        """The first recipient's reason; ``undefined`` when there is no recipient."""
        return self.recipients[0].reason if self.recipients else "undefined"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict (recipients nested)."""
        return {
            "kind": str(self.kind),
            "dialect": self.dialect,
            "envid": self.envid,
            "reporting_mta": self.reporting_mta,
            "subject": self.subject,
            "sender": self.sender,
            "original_message_id": self.original_message_id,
            "original_subject": self.original_subject,
            "original_from": self.original_from,
            "original_to": self.original_to,
            "feedback_type": self.feedback_type,
            "disposition": self.disposition,
            "tokens": [{"value": t.value, "where": t.where} for t in self.tokens],
            "recipients": [r.as_dict() for r in self.recipients],
        }
