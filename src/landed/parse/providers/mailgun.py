"""Mailgun webhooks: one JSON object per request, ``{"signature": ..., "event-data": ...}``.

Format: https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/
(``event``, ``id``, ``timestamp``, ``recipient``, ``severity`` and ``reason`` on
failures, ``delivery-status`` with the remote server's reply). The ``v:``
user variables we send come back in ``user-variables``.
"""

from __future__ import annotations

from collections.abc import Mapping

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

PROVIDER = "mailgun"

#: (event, severity) -> (level, outcome); severity is "" for events that have none.
#: "delivered" means the receiving server accepted it, not that it reached the mailbox.
EVENTS: dict[tuple[str, str], tuple[Level | None, Outcome | None]] = {
    ("accepted", ""): (Level.SUBMITTED, None),
    ("rejected", ""): (None, Outcome.REJECTED),
    ("delivered", ""): (Level.ACCEPTED, None),
    ("failed", "permanent"): (None, Outcome.BOUNCED),
    ("failed", "temporary"): (Level.SUBMITTED, Outcome.DEFERRED),
    ("complained", ""): (Level.DELIVERED, Outcome.COMPLAINED),
    # Engagement seen by Mailgun's tracking: never more than "seen".
    ("opened", ""): (Level.SEEN, None),
    ("clicked", ""): (Level.SEEN, None),
    ("unsubscribed", ""): (None, None),
    ("stored", ""): (None, None),
}

#: Failure reasons meaning Mailgun never tried: the address is on its
#: suppression lists (bounces, complaints, unsubscribes).
SUPPRESSED_REASONS = frozenset({"suppress-bounce", "suppress-complaint", "suppress-unsubscribe"})

_ENGAGEMENT = frozenset({"opened", "clicked"})


def read(payload: Mapping[str, object]) -> list[ProviderEvent]:
    """The event of one (signature-checked) webhook request."""
    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise EventFormatError("Mailgun webhook has no event-data object")
    raw = canonical_json(data)
    kind = string(data.get("event")) or "(none)"
    severity = string(data.get("severity")).lower() if kind == "failed" else ""
    event_id = string(data.get("id"))
    if not event_id:
        raise EventFormatError("Mailgun event has no id")
    recipient = address_of(data.get("recipient"))
    level, outcome = EVENTS.get((kind, severity), (None, None))
    failure_reason = string(data.get("reason"))
    if kind == "failed" and failure_reason in SUPPRESSED_REASONS:
        level, outcome = None, Outcome.REJECTED
    status_block = mapping(data.get("delivery-status"))
    code = string(status_block.get("code"))
    message = string(status_block.get("message")) or string(status_block.get("description"))
    detail = f"mailgun {kind}"
    if severity:
        detail += f" ({severity}, {failure_reason or 'no reason'})"
    status: str | None = string(status_block.get("enhanced-code")) or None
    reason: str | None = None
    hard: bool | None = None
    if kind in ("failed", "rejected"):
        diagnostic = " ".join(part for part in (code, message) if part)
        if not diagnostic and kind == "rejected":
            diagnostic = string(mapping(data.get("reject")).get("reason"))
        reading = read_bounce(
            recipient,
            diagnostic,
            status=status or "",
            action="delayed" if severity == "temporary" else "failed",
            remote_mta=string(status_block.get("mx-host")),
        )
        status, reason, hard = reading.status or status, reading.reason, reading.hard
        if diagnostic:
            detail += f": {diagnostic}"
    elif kind == "delivered" and (code or message):
        detail += f": {code} {message}".rstrip()
    elif kind == "clicked" and string(data.get("url")):
        detail += f": {string(data.get('url'))}"
    if (kind, severity) not in EVENTS:
        detail += " (unknown event type, kept)"
    headers = mapping(mapping(data.get("message")).get("headers"))
    variables = mapping(data.get("user-variables"))
    return [
        ProviderEvent(
            provider=PROVIDER,
            event_id=event_id,
            kind=kind,
            recipient=recipient,
            token=text_token(variables.get(TOKEN_FIELD))
            or token_in_message_id(headers.get("message-id")),
            level=level,
            outcome=outcome,
            status=status,
            reason=reason,
            hard=hard,
            detail=detail[:2000],
            observed_at=timestamp(data.get("timestamp")),
            message_id=string(headers.get("message-id")) or None,
            provider_reported=kind in _ENGAGEMENT,
            raw=raw,
        )
    ]
