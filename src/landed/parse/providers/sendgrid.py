"""SendGrid Event Webhook: a JSON array of events, one recipient each.

Format: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
(``event``, ``email``, ``timestamp``, ``sg_event_id``, ``sg_message_id``;
``reason``/``status``/``type`` on bounces, ``response`` on deliveries,
``sg_machine_open`` on opens). The ``custom_args`` we send come back as
top-level keys of every event, so the token is ``event["landed_token"]``.
"""

from __future__ import annotations

import hashlib
import json

from landed.domain import Level, Outcome
from landed.parse.providers.event import (
    TOKEN_FIELD,
    EventFormatError,
    ProviderEvent,
    address_of,
    canonical_json,
    read_bounce,
    string,
    text_token,
    timestamp,
)

__all__ = ["EVENTS", "read"]

PROVIDER = "sendgrid"

#: SendGrid event type -> (level, outcome). "delivered" means the receiving
#: server accepted the message (250), not that it reached the mailbox.
EVENTS: dict[str, tuple[Level | None, Outcome | None]] = {
    "processed": (Level.SUBMITTED, None),
    "deferred": (Level.SUBMITTED, Outcome.DEFERRED),
    "delivered": (Level.ACCEPTED, None),
    "bounce": (None, Outcome.BOUNCED),
    # Not sent at all: the address is on SendGrid's suppression list, or invalid.
    "dropped": (None, Outcome.REJECTED),
    "spamreport": (Level.DELIVERED, Outcome.COMPLAINED),
    # Engagement seen by SendGrid's tracking: never more than "seen".
    "open": (Level.SEEN, None),
    "click": (Level.SEEN, None),
    "unsubscribe": (None, None),
    "group_unsubscribe": (None, None),
    "group_resubscribe": (None, None),
}

_ENGAGEMENT = frozenset({"open", "click"})


def read(body: bytes) -> list[ProviderEvent]:
    """The events of one webhook request body."""
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise EventFormatError("SendGrid webhook body is not JSON") from None
    if not isinstance(items, list):
        raise EventFormatError("SendGrid webhook body is not a JSON array")
    return [_event(item) for item in items]


def _event(item: object) -> ProviderEvent:
    if not isinstance(item, dict):
        raise EventFormatError("SendGrid event is not a JSON object")
    raw = canonical_json(item)
    kind = string(item.get("event")) or "(none)"
    recipient = address_of(item.get("email"))
    # sg_event_id is unique per event; an event without one (older accounts)
    # is identified by its content.
    event_id = string(item.get("sg_event_id")) or hashlib.sha256(raw).hexdigest()
    level, outcome = EVENTS.get(kind, (None, None))
    status: str | None = string(item.get("status")) or None
    reason: str | None = None
    hard: bool | None = None
    detail = f"sendgrid {kind}"
    machine = kind == "open" and item.get("sg_machine_open") is True
    if machine:
        # Apple Mail Privacy Protection and similar proxies fetch every image.
        level = None
        detail += " (machine open: not counted)"
    if kind in ("bounce", "deferred", "dropped"):
        diagnostic = string(item.get("reason")) or string(item.get("response"))
        reading = read_bounce(
            recipient,
            diagnostic,
            status=status or "",
            action="delayed" if kind == "deferred" else "failed",
        )
        status, reason, hard = reading.status or status, reading.reason, reading.hard
        bounce_type = string(item.get("type"))
        if bounce_type:
            detail += f" ({bounce_type})"
        if diagnostic:
            detail += f": {diagnostic}"
    elif kind == "delivered" and string(item.get("response")):
        detail += f": {string(item.get('response'))}"
    elif kind == "click" and string(item.get("url")):
        detail += f": {string(item.get('url'))}"
    if kind not in EVENTS:
        detail += " (unknown event type, kept)"
    return ProviderEvent(
        provider=PROVIDER,
        event_id=event_id,
        kind=kind,
        recipient=recipient,
        token=text_token(item.get(TOKEN_FIELD)),
        level=level,
        outcome=outcome,
        status=status,
        reason=reason,
        hard=hard,
        detail=detail[:2000],
        observed_at=timestamp(item.get("timestamp")),
        message_id=string(item.get("sg_message_id")) or None,
        provider_reported=kind in _ENGAGEMENT,
        raw=raw,
    )
