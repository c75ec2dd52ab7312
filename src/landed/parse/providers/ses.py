"""Amazon SES events, as SNS delivers them: the SNS ``Message`` is SES's JSON.

Two shapes: event publishing through a configuration set (``eventType``:
https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html)
and identity notifications (``notificationType``:
https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html). Both
carry ``mail`` (``messageId``, ``destination``, ``tags``, ``headers``) and
one block per type with its recipients.

The token is read from the ``landed_token`` message tag (event publishing
only), then from our ``X-Landed-Token`` header in ``mail.headers`` (when SES
includes headers), then from the Message-ID.
"""

from __future__ import annotations

import json

from landed.domain import Level, Outcome
from landed.parse.providers.event import (
    TOKEN_FIELD,
    EventFormatError,
    ProviderEvent,
    address_of,
    canonical_json,
    mapping,
    read_bounce,
    string,
    text_token,
    timestamp,
    token_in_message_id,
)

__all__ = ["EVENTS", "read"]

PROVIDER = "ses"

#: SES event type (eventType, or notificationType) -> (level, outcome).
#: "Delivery" means the receiving server accepted it, not that it reached the mailbox.
EVENTS: dict[str, tuple[Level | None, Outcome | None]] = {
    "Send": (Level.SUBMITTED, None),
    "Delivery": (Level.ACCEPTED, None),
    "Bounce": (None, Outcome.BOUNCED),
    "Complaint": (Level.DELIVERED, Outcome.COMPLAINED),
    "Reject": (None, Outcome.REJECTED),
    "Rendering Failure": (None, Outcome.REJECTED),
    "DeliveryDelay": (Level.SUBMITTED, Outcome.DEFERRED),
    # Engagement seen by SES's tracking: never more than "seen".
    "Open": (Level.SEEN, None),
    "Click": (Level.SEEN, None),
    "Subscription": (None, None),
}

#: The block of each event type, and its list of recipients (None: mail.destination).
_BLOCKS: dict[str, tuple[str, str | None]] = {
    "Bounce": ("bounce", "bouncedRecipients"),
    "Complaint": ("complaint", "complainedRecipients"),
    "Delivery": ("delivery", "recipients"),
    "DeliveryDelay": ("deliveryDelay", "delayedRecipients"),
    "Send": ("send", None),
    "Reject": ("reject", None),
    "Rendering Failure": ("failure", None),
    "Open": ("open", None),
    "Click": ("click", None),
    "Subscription": ("subscription", None),
}

#: (bounceType, bounceSubType) -> the classifier's reason, where SES says more
#: than the diagnostic does (notification-contents.html, "Bounce types").
BOUNCE_REASONS: dict[tuple[str, str], str] = {
    ("Permanent", "NoEmail"): "userunknown",
    ("Transient", "MailboxFull"): "mailboxfull",
    ("Transient", "MessageTooLarge"): "mesgtoobig",
    ("Transient", "ContentRejected"): "contenterror",
    ("Transient", "AttachmentRejected"): "contenterror",
}

_ENGAGEMENT = frozenset({"Open", "Click"})


def read(message: str, sns_message_id: str) -> list[ProviderEvent]:
    """The events in one SNS notification's ``Message`` (one per recipient)."""
    try:
        body = json.loads(message)
    except ValueError:
        raise EventFormatError("SNS Message is not SES JSON") from None
    if not isinstance(body, dict):
        raise EventFormatError("SNS Message is not a JSON object")
    kind = string(body.get("eventType")) or string(body.get("notificationType")) or "(none)"
    mail = mapping(body.get("mail"))
    token = _token(mail)
    level, outcome = EVENTS.get(kind, (None, None))
    block_name, list_name = _BLOCKS.get(kind, ("", None))
    block = mapping(body.get(block_name)) if block_name else {}
    raw = canonical_json(body)
    observed = timestamp(block.get("timestamp")) or timestamp(mail.get("timestamp"))
    base = f"ses {kind}"
    if kind == "Bounce":
        base += f" ({string(block.get('bounceType'))}/{string(block.get('bounceSubType'))})"
    elif kind == "Complaint" and string(block.get("complaintFeedbackType")):
        base += f" ({string(block.get('complaintFeedbackType'))})"
    elif kind not in EVENTS:
        base += " (unknown event type, kept)"

    entries: list[object]
    listed = block.get(list_name) if list_name is not None else None
    if isinstance(listed, list):
        entries = list(listed)
    else:
        destination = mail.get("destination")
        entries = list(destination) if isinstance(destination, list) else []
    if not entries:
        entries = [None]

    events: list[ProviderEvent] = []
    for entry in entries:
        fields = mapping(entry)
        recipient = address_of(fields.get("emailAddress")) if fields else address_of(entry)
        status: str | None = string(fields.get("status")) or None
        reason: str | None = None
        hard: bool | None = None
        detail = base
        if kind in ("Bounce", "DeliveryDelay"):
            diagnostic = string(fields.get("diagnosticCode"))
            preset = BOUNCE_REASONS.get(
                (string(block.get("bounceType")), string(block.get("bounceSubType"))), ""
            )
            reading = read_bounce(
                recipient,
                diagnostic,
                status=status or "",
                action="delayed" if kind == "DeliveryDelay" else "failed",
                remote_mta=string(block.get("reportingMTA")),
                preset=preset,
            )
            status, reason, hard = reading.status or status, reading.reason, reading.hard
            if kind == "Bounce" and string(block.get("bounceType")) == "Permanent":
                hard = True
            if diagnostic:
                detail += f": {diagnostic}"
        elif kind == "Delivery" and string(block.get("smtpResponse")):
            detail += f": {string(block.get('smtpResponse'))}"
        elif kind == "Reject" and string(block.get("reason")):
            detail += f": {string(block.get('reason'))}"
        elif kind == "Click" and string(block.get("link")):
            detail += f": {string(block.get('link'))}"
        events.append(
            ProviderEvent(
                provider=PROVIDER,
                event_id=sns_message_id,
                kind=kind,
                recipient=recipient,
                token=token,
                level=level,
                outcome=outcome,
                status=status,
                reason=reason,
                hard=hard,
                detail=detail[:2000],
                observed_at=observed,
                message_id=string(mail.get("messageId")) or None,
                provider_reported=kind in _ENGAGEMENT,
                raw=raw,
            )
        )
    return events


def _token(mail: object) -> str | None:
    fields = mapping(mail)
    tagged = text_token(mapping(fields.get("tags")).get(TOKEN_FIELD))
    if tagged:
        return tagged
    headers = fields.get("headers")
    if isinstance(headers, list):
        for header in headers:
            pair = mapping(header)
            if string(pair.get("name")).lower() == "x-landed-token":
                found = text_token(pair.get("value"))
                if found:
                    return found
    common = mapping(fields.get("commonHeaders"))
    return token_in_message_id(common.get("messageId"))
