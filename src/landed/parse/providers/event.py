"""The neutral record every provider's webhook event is read into.

A provider event says something about one recipient of one message: the
provider's own event type (kept as written), where that puts the delivery on
the evidence ladder (from each provider module's literal mapping table), the
token that came back in the field we sent it in (not verified here: that is
the caller's job, with the keyring), and the event's own JSON as raw material.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from landed.domain import Level, Outcome
from landed.parse.classify import finish
from landed.parse.draft import Draft
from landed.tokens import TOKEN_PATTERN

__all__ = [
    "TOKEN_FIELD",
    "BounceReading",
    "EventFormatError",
    "ProviderEvent",
    "address_of",
    "canonical_json",
    "mapping",
    "read_bounce",
    "string",
    "text_token",
    "timestamp",
    "token_in_message_id",
]

#: The name of the field (custom arg, metadata key, tag, user variable) that
#: carries the delivery token through every provider and back.
TOKEN_FIELD = "landed_token"

_MESSAGE_ID_TOKEN = re.compile(rf"<?({TOKEN_PATTERN})@", re.I)
_ANGLE = re.compile(r"<([^<>@\s]+@[^<>\s]+)>")
_SMTP_PREFIX = re.compile(r"^\s*smtp\s*;\s*", re.I)


class EventFormatError(ValueError):
    """A (verified) webhook body that is not what the provider documents."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderEvent:
    """One provider event about one recipient."""

    provider: str
    #: The provider's id of the event (deduplication key, with the recipient).
    event_id: str
    #: The provider's event type as written (``delivered``, ``Bounce``...).
    kind: str
    #: Lowercased address, or None when the event names none.
    recipient: str | None
    #: The token from our echoed field (unverified), or None.
    token: str | None
    level: Level | None = None
    outcome: Outcome | None = None
    #: RFC 3463 status, when the provider gives one or the classifier infers it.
    status: str | None = None
    #: The DSN classifier's reason (``userunknown``...) and hard/soft, for failures.
    reason: str | None = None
    hard: bool | None = None
    detail: str = ""
    observed_at: datetime | None = None
    #: The provider's own message id, when the event carries it.
    message_id: str | None = None
    #: True for engagement (opens, clicks) that only the provider's tracking saw.
    provider_reported: bool = False
    #: The event's JSON, as the evidence's raw material.
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class BounceReading:
    """What the DSN classifier makes of a provider's bounce diagnostic."""

    status: str | None
    reason: str | None
    hard: bool | None
    diagnostic: str


def read_bounce(
    recipient: str | None,
    diagnostic: str,
    *,
    status: str = "",
    action: str = "failed",
    remote_mta: str = "",
    preset: str = "",
) -> BounceReading:
    """Classify a provider's failure text with the classifier that reads DSNs.

    ``diagnostic`` is the remote server's reply as the provider quotes it
    (often ``smtp; 550 5.1.1 ...``, the RFC 3464 Diagnostic-Code form).
    """
    text = _SMTP_PREFIX.sub("", diagnostic or "").strip()
    report = finish(
        Draft(
            recipient=recipient or "",
            action=action,
            status=status,
            diagnosis=text,
            spec="SMTP",
            remote_mta=remote_mta,
            reason=preset,
        )
    )
    reason = report.reason if report.reason not in ("", "undefined") else None
    return BounceReading(report.status or None, reason, report.hard, report.diagnostic)


def address_of(value: object) -> str | None:
    """The bare, lowercased address in ``value`` (``"Bob" <bob@x>`` or ``bob@x``)."""
    if not isinstance(value, str) or "@" not in value:
        return None
    match = _ANGLE.search(value)
    address = match.group(1) if match else value.strip()
    return address.strip().lower() or None


def token_in_message_id(value: object) -> str | None:
    """The token in a Message-ID of ours (``<TOKEN@domain>``), if it is one."""
    if not isinstance(value, str):
        return None
    match = _MESSAGE_ID_TOKEN.search(value)
    return match.group(1).lower() if match else None


def text_token(value: object) -> str | None:
    """A token given as a plain string field (stripped, lowercased), or None."""
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value or None


def timestamp(value: object) -> datetime | None:
    """A provider's event time: Unix seconds (int, float or digits) or ISO 8601."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if text.replace(".", "", 1).isdigit():
                return datetime.fromtimestamp(float(text), UTC)
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def canonical_json(value: object) -> bytes:
    """Stable JSON bytes (sorted keys): the raw material and a fallback event id."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def mapping(value: object) -> Mapping[str, object]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def string(value: object) -> str:
    """``value`` if it is a string, else ``""``; numbers are written out."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""
