"""Alert sinks: the structured log line, signed webhooks, operations email, the digest.

See docs/alerts.md. ``sinks`` holds the pure parts (signing, payloads, texts);
``dispatcher`` delivers the ``dispatch`` outbox and never drops a notice.
"""

from __future__ import annotations

from landed.alerts.dispatcher import Dispatcher
from landed.alerts.sinks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    build_digest,
    log_alert,
    sign,
    verify,
    webhook_payload,
)

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "Dispatcher",
    "build_digest",
    "log_alert",
    "sign",
    "verify",
    "webhook_payload",
]
