"""Postmark webhooks: one JSON object per request, its kind in ``RecordType``.

Formats: https://postmarkapp.com/developer/webhooks/webhooks-overview (Delivery,
Bounce, SpamComplaint, Open, Click, SubscriptionChange). Bounce types:
https://postmarkapp.com/developer/api/bounce-api#bounce-types. The
``Metadata`` we send comes back in every record.
"""

from __future__ import annotations

import hashlib
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
)

__all__ = ["BOUNCE_TYPES", "RECORDS", "read"]

PROVIDER = "postmark"

#: RecordType -> (level, outcome). Bounce records are refined by BOUNCE_TYPES.
#: "Delivery" means the receiving server accepted it, not that it reached the mailbox.
RECORDS: dict[str, tuple[Level | None, Outcome | None]] = {
    "Delivery": (Level.ACCEPTED, None),
    "Bounce": (None, Outcome.BOUNCED),
    "SpamComplaint": (Level.DELIVERED, Outcome.COMPLAINED),
    # Engagement seen by Postmark's tracking: never more than "seen".
    "Open": (Level.SEEN, None),
    "Click": (Level.SEEN, None),
    "SubscriptionChange": (None, None),
}

#: Bounce ``Type`` -> (level, outcome, hard). Types not listed are bounces of
#: unknown hardness.
BOUNCE_TYPES: dict[str, tuple[Level | None, Outcome | None, bool | None]] = {
    "HardBounce": (None, Outcome.BOUNCED, True),
    "BadEmailAddress": (None, Outcome.BOUNCED, True),
    "DnsError": (None, Outcome.BOUNCED, False),
    "SoftBounce": (None, Outcome.BOUNCED, False),
    "Blocked": (None, Outcome.BOUNCED, False),
    "SpamNotification": (None, Outcome.BOUNCED, False),
    "VirusNotification": (None, Outcome.BOUNCED, False),
    "DMARCPolicy": (None, Outcome.BOUNCED, False),
    # "Message delayed": the receiving server is still being retried.
    "Transient": (Level.SUBMITTED, Outcome.DEFERRED, False),
    # An auto-reply from the mailbox: it got there.
    "AutoResponder": (Level.DELIVERED, None, None),
    "SpamComplaint": (Level.DELIVERED, Outcome.COMPLAINED, None),
    # Postmark refused to send: the address is deactivated, or the API call failed.
    "ManuallyDeactivated": (None, Outcome.REJECTED, None),
    "SMTPApiError": (None, Outcome.REJECTED, None),
    "TemplateRenderingFailed": (None, Outcome.REJECTED, None),
    "Unsubscribe": (None, None, None),
    "Subscribe": (None, None, None),
    "ChallengeVerification": (None, None, None),
    "AddressChange": (None, None, None),
    "OpenRelayTest": (None, None, None),
    "InboundError": (None, None, None),
    "Unknown": (None, None, None),
}

_ENGAGEMENT = frozenset({"Open", "Click"})
#: The record's own time, by RecordType.
_TIME_FIELD = {
    "Delivery": "DeliveredAt",
    "Bounce": "BouncedAt",
    "SpamComplaint": "BouncedAt",
    "Open": "ReceivedAt",
    "Click": "ReceivedAt",
    "SubscriptionChange": "ChangedAt",
}


def read(payload: Mapping[str, object]) -> list[ProviderEvent]:
    """The event of one (authenticated) webhook request."""
    kind = string(payload.get("RecordType")) or "(none)"
    raw = canonical_json(payload)
    recipient = address_of(payload.get("Recipient")) or address_of(payload.get("Email"))
    message_id = string(payload.get("MessageID")) or None
    observed = timestamp(payload.get(_TIME_FIELD.get(kind, "ReceivedAt")))
    level, outcome = RECORDS.get(kind, (None, None))
    hard: bool | None = None
    status: str | None = None
    reason: str | None = None
    detail = f"postmark {kind}"
    if kind in ("Bounce", "SpamComplaint"):
        bounce_type = string(payload.get("Type"))
        level, outcome, hard = BOUNCE_TYPES.get(bounce_type, (None, Outcome.BOUNCED, None))
        if kind == "SpamComplaint":
            level, outcome, hard = BOUNCE_TYPES["SpamComplaint"]
        diagnostic = string(payload.get("Details")) or string(payload.get("Description"))
        detail += f" ({bounce_type or 'no type'})"
        if outcome in (Outcome.BOUNCED, Outcome.DEFERRED):
            reading = read_bounce(
                recipient,
                diagnostic,
                action="delayed" if outcome is Outcome.DEFERRED else "failed",
            )
            status, reason = reading.status, reading.reason
            hard = hard if hard is not None else reading.hard
        if diagnostic:
            detail += f": {diagnostic}"
    elif kind == "Delivery" and string(payload.get("Details")):
        detail += f": {string(payload.get('Details'))}"
    elif kind == "Click" and string(payload.get("OriginalLink")):
        detail += f": {string(payload.get('OriginalLink'))}"
    if kind not in RECORDS:
        detail += " (unknown record type, kept)"
    # Bounces and complaints have their own ID; other records are identified by
    # what they are about and when (Postmark sends each once per message and time).
    record_id = string(payload.get("ID"))
    if record_id:
        event_id = f"{kind}:{record_id}"
    elif message_id:
        moment = string(payload.get(_TIME_FIELD.get(kind, "ReceivedAt")))
        event_id = f"{kind}:{message_id}:{moment}:{string(payload.get('OriginalLink'))}"
    else:
        event_id = hashlib.sha256(raw).hexdigest()
    if not payload:
        raise EventFormatError("empty Postmark webhook")
    return [
        ProviderEvent(
            provider=PROVIDER,
            event_id=event_id,
            kind=kind,
            recipient=recipient,
            token=text_token(mapping(payload.get("Metadata")).get(TOKEN_FIELD)),
            level=level,
            outcome=outcome,
            status=status,
            reason=reason,
            hard=hard,
            detail=detail[:2000],
            observed_at=observed,
            message_id=message_id,
            provider_reported=kind in _ENGAGEMENT,
            raw=raw,
        )
    ]
