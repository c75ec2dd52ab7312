"""What alert sinks send: the signed webhook, the log line, the alert email, the digest.

Everything here is pure (no database, no network), so it can be tested and
reused alone; ``landed.alerts.dispatcher`` does the delivering.

Webhook signature (Stripe-style; docs/alerts.md)::

    X-Landed-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

The receiver recomputes the HMAC over the timestamp, a dot and the raw body
bytes, compares in constant time, and rejects timestamps too far from its own
clock (replays). Several ``v1=`` entries may appear (key rotation): any one
that matches is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from landed.store.alerts import AlertView
    from landed.store.queries import DeliveryView

log = logging.getLogger("landed.alerts")

SIGNATURE_HEADER = "X-Landed-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Landed-Event"
ATTEMPT_HEADER = "X-Landed-Attempt"
#: Signatures older (or newer) than this are refused by ``verify`` by default.
DEFAULT_TOLERANCE_SECONDS = 300.0
#: The ``type`` of a webhook body, and its version.
PAYLOAD_TYPE = "landed.alert"
PAYLOAD_VERSION = 1
#: Notification classes of the emails the alert sinks themselves send.
ALERT_CLASS = "landed-alert"
DIGEST_CLASS = "landed-digest"
DIGEST_TOPIC = "landed-alert-digest"


# --- signing --------------------------------------------------------------------------


def _mac(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Landed-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    if not timestamp.isdigit():
        raise ValueError("timestamp must be unix seconds, digits only")
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: bytes,
    header: str,
    body: bytes,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (an ``X-Landed-Signature`` value) signs ``body`` with ``secret``.

    ``tolerance``: largest accepted distance, in seconds, between the signed
    timestamp and ``now`` (default the system clock); ``None`` skips the check.
    """
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = value
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not timestamp.isdigit() or not candidates:
        return False
    if tolerance is not None:
        current = time.time() if now is None else now
        if abs(current - int(timestamp)) > tolerance:
            return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c.lower()) for c in candidates)


def webhook_headers(
    secret: bytes, body: bytes, *, idempotency_key: str, now: datetime, event: str, attempt: int
) -> dict[str, str]:
    """Every header of one webhook request."""
    timestamp = str(int(now.timestamp()))
    return {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: idempotency_key,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        EVENT_HEADER: event,
        ATTEMPT_HEADER: str(attempt),
        "User-Agent": "landed-alerts/1",
    }


def webhook_payload(alert: AlertView) -> dict[str, object]:
    """The body the reconciler queues for webhook sinks (``enqueue_dispatch`` adds
    ``event`` and ``idempotency_key``). It is stored once and sent as it is on
    every retry, so its bytes, and the receiver's view of it, never change."""
    return {"type": PAYLOAD_TYPE, "version": PAYLOAD_VERSION, "alert": alert.as_dict()}


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path``: no credentials or query (they often carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


# --- the structured log line ----------------------------------------------------------


def log_alert(event: str, alert: AlertView | Mapping[str, object]) -> None:
    """One JSON line on logger ``landed.alerts`` (warning when an alert opens).

    ``alert`` is an ``AlertView`` or its ``as_dict()``; its timeline is left
    out, the line stays one line. Nothing is formatted when the level is off.
    """
    level = logging.WARNING if event.removeprefix("alert.") == "opened" else logging.INFO
    if not log.isEnabledFor(level):
        return
    record: dict[str, object]
    if isinstance(alert, Mapping):
        record = {"kind": PAYLOAD_TYPE, "event": event}
        record.update((k, v) for k, v in alert.items() if k != "timeline")
    else:
        # What ``as_dict`` gives, without the timeline that is left out anyway:
        # the reconciler logs hundreds of these in one tick.
        record = {
            "kind": PAYLOAD_TYPE,
            "event": event,
            "id": alert.id,
            "delivery_id": alert.delivery_id,
            "reason": alert.reason,
            "state": alert.state,
            "detail": alert.detail,
            "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
            "resolved_by": alert.resolved_by,
            "note": alert.note,
            "steps_done": alert.steps_done,
            "topic": alert.topic,
            "recipient": alert.recipient,
            "seq": alert.seq,
            "level": alert.level,
            "outcome": alert.outcome,
        }
    # The record ``log.log`` would make, without its search of the stack for the
    # caller (a third of the cost of a line): the caller is this function.
    here = sys._getframe()
    log.handle(
        log.makeRecord(
            log.name,
            level,
            os.path.normcase(here.f_code.co_filename),
            here.f_lineno,
            "%s",
            (_LINE.encode(record),),
            None,
            "log_alert",
        )
    )


#: Made once: ``json.dumps`` with options builds a new encoder at every call.
_LINE = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


# --- the alert email -------------------------------------------------------------------

_EVENT_WORDS = {"opened": "not proven", "resolved": "resolved", "escalated": "escalated"}


def event_words(event: str) -> str:
    """``alert.opened`` (or ``opened``) as people read it: ``not proven``."""
    bare = event.removeprefix("alert.")
    return _EVENT_WORDS.get(bare, bare)


def alert_subject(alert: AlertView, event: str) -> str:
    """``[landed] not proven: INC-1234 to bob@corp.test (bounced)``."""
    return f"[landed] {event_words(event)}: {alert.topic} to {alert.recipient} ({alert.reason})"


def _at(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def age(delta: timedelta) -> str:
    """``45s``, ``12m``, ``5h 20m``, ``3d 4h``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _indent(lines: Iterable[str]) -> list[str]:
    return [f"  {line}" for line in lines]


def alert_text(
    alert: AlertView,
    event: str,
    delivery: DeliveryView | None,
    *,
    now: datetime,
    evidence_limit: int = 20,
) -> str:
    """The plain-text body of an alert email: reason, delivery, evidence, timeline."""
    lines = [
        f"Alert #{alert.id}: {event_words(event)}",
        "",
        f"Topic:      {alert.topic}",
        f"Recipient:  {alert.recipient} (#{alert.seq} for them)",
        f"Reason:     {alert.reason}" + (f" ({alert.detail})" if alert.detail else ""),
        f"State:      {alert.state}, opened {_at(alert.opened_at)}"
        f" ({age(now - alert.opened_at)} ago)",
    ]
    if alert.resolved_at is not None:
        lines.append(
            f"Resolved:   {_at(alert.resolved_at)} by {alert.resolved_by or '?'}"
            + (f": {alert.note}" if alert.note else "")
        )
    lines.append(f"Escalation: {alert.steps_done} step(s) done")
    lines += ["", "Delivery"]
    if delivery is None:
        lines.append(f"  {alert.delivery_id} (no longer found)")
    else:
        lines += _indent(
            [
                f"id {delivery.delivery_id}, ref {delivery.ref}",
                f"subject: {delivery.subject}",
                f"class: {delivery.cls}",
                f"sent: {_at(delivery.created_at)}",
                f"level: {delivery.level}"
                + (f", outcome: {delivery.outcome}" if delivery.outcome else ""),
                f"Message-ID: {delivery.message_id}",
            ]
        )
        lines += ["", "Evidence (oldest first)"]
        shown = delivery.evidence[-evidence_limit:]
        if len(delivery.evidence) > len(shown):
            lines.append(f"  ... {len(delivery.evidence) - len(shown)} earlier item(s) left out")
        for e in shown:
            what = e.level or e.outcome or "-"
            status = f" {e.status}" if e.status else ""
            detail = f": {e.detail}" if e.detail else ""
            lines.append(f"  {_at(e.observed_at)}  {e.source}  {what}{status}{detail}")
        if not delivery.evidence:
            lines.append("  (none)")
    lines += ["", "Timeline"]
    for at, kind, detail in alert.timeline:
        lines.append(f"  {_at(at)}  {kind}: {detail}")
    if not alert.timeline:
        lines.append("  (empty)")
    lines += ["", f"Alert id {alert.id}: list, show and resolve alerts with `landed alerts`."]
    return "\n".join(lines) + "\n"


# --- the digest ------------------------------------------------------------------------


def period_start(now: datetime, every: timedelta) -> datetime:
    """The start of the digest period ``now`` falls in (periods counted from the
    Unix epoch in UTC, so ``1d`` starts at midnight UTC)."""
    step = int(every.total_seconds())
    if step <= 0:
        raise ValueError("a digest period must be at least one second")
    seconds = int(now.timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


def build_digest(alerts: Sequence[AlertView], now: datetime) -> tuple[str, str]:
    """Subject and text of a digest of open alerts, oldest first."""
    ordered = sorted(alerts, key=lambda a: (a.opened_at, a.id))
    count = len(ordered)
    if not ordered:
        return "[landed] digest: no open alerts", f"No open alerts at {_at(now)}.\n"
    oldest = age(now - ordered[0].opened_at)
    noun = "alert" if count == 1 else "alerts"
    subject = f"[landed] digest: {count} open {noun}, oldest {oldest}"
    lines = [f"{count} open {noun} at {_at(now)}, oldest first.", ""]
    header = ("age", "reason", "recipient", "topic", "steps", "alert")
    rows = [
        (
            age(now - a.opened_at),
            a.reason,
            a.recipient,
            a.topic,
            str(a.steps_done),
            f"#{a.id}",
        )
        for a in ordered
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    lines.append("")
    for a in ordered:
        detail = f": {a.detail}" if a.detail else ""
        lines.append(f"#{a.id} opened {_at(a.opened_at)}, {a.reason}{detail}")
    lines += ["", "List, show and resolve alerts with `landed alerts`."]
    return subject, "\n".join(lines) + "\n"
