"""The alert dispatcher: delivers queued alert notices to their sinks, losing none.

The reconciler queues one ``dispatch`` row per (alert, event, sink)
(``landed.store.alerts.enqueue_dispatch``). The dispatcher claims due rows
with a lease, exactly as the sender claims the outbox: ``available_at`` is
both the due time and the lease, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, one
writer at a time on SQLite. A row is removed only once its sink has taken the
notice; until then it is retried with exponential backoff and jitter (30 s
doubling to 1 h, then hourly for ever), and each failure is written on the
alert's timeline. A sink that is down therefore delays alerts, never drops them.

Sinks (``dispatch.sink``):

``webhook``
    ``settings.alert_webhook_url``: the stored JSON body, POSTed as it is, signed
    (``X-Landed-Signature``) with ``settings.alert_webhook_secret``, with an
    ``Idempotency-Key`` that is the same on every retry. 2xx is delivered.
``webhook:<url>``
    An escalation step's own URL, signed with the same secret.
``email`` / ``email:<address>``
    A notification of class ``landed-alert`` to ``settings.alert_email_to`` (or
    the address given), recorded through ``Client.notify`` with the row's
    idempotency key: the email is itself a tracked delivery that the sender
    worker carries through the configured transport.

The claim is fenced by the lease value: a failure is recorded only while
``available_at`` still holds this claim's lease, so a dispatcher that overran
its lease cannot push back a row another one has taken meanwhile.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from landed.alerts.sinks import (
    ALERT_CLASS,
    DIGEST_CLASS,
    DIGEST_TOPIC,
    age,
    alert_subject,
    alert_text,
    build_digest,
    period_start,
    redact_url,
    webhook_headers,
)
from landed.client import Client
from landed.clock import Clock, SystemClock
from landed.config import Settings
from landed.domain.policy import parse_duration
from landed.errors import LandedError
from landed.sender import Backoff, worker_name
from landed.store import Database
from landed.store import tables as t
from landed.store.alerts import AlertView, add_event, find_alerts
from landed.store.leases import claim_statement
from landed.store.queries import find_deliveries

log = logging.getLogger("landed.alerts")

#: Webhook request timeout, in seconds (connect, read, write, pool).
WEBHOOK_TIMEOUT = 10.0
#: First retry delay and the cap it doubles up to, in seconds.
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 3600.0
#: After this long undelivered a row keeps being retried, with a warning each time.
WARN_AFTER = timedelta(hours=24)
#: Rows claimed per transaction; the lease covers a webhook timeout for each.
CLAIM_BATCH = 10
#: How often the digest is looked at, at most.
DIGEST_CHECK_EVERY = timedelta(seconds=60)
#: At most this many open alerts are listed in one digest.
DIGEST_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Held:
    """A dispatch row this dispatcher holds until ``until``."""

    id: int
    alert_id: int
    sink: str
    idempotency_key: str
    payload: str
    attempts: int
    created_at: datetime
    until: datetime

    @property
    def event(self) -> str:
        try:
            value = json.loads(self.payload).get("event")
        except (ValueError, AttributeError):
            return "alert"
        return str(value) if value else "alert"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: ``error`` None means the sink took it."""

    detail: str
    error: str | None = None


class SinkError(Exception):
    """A sink could not take a notice now; the row is kept and retried."""


_CLAIMED = ("id", "alert_id", "sink", "idempotency_key", "payload", "attempts", "created_at")


class Dispatcher:
    """Delivers queued alert notices (``dispatch`` rows) and the periodic digest."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock or SystemClock()
        self.owner = owner or worker_name()
        self.rng = rng or random.Random()
        self.poll_seconds = poll_seconds or max(settings.worker_poll_seconds, 1.0)
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=WEBHOOK_TIMEOUT, follow_redirects=False)
        self.backoff = Backoff(RETRY_BASE_SECONDS, RETRY_MAX_SECONDS)
        self.lease = timedelta(seconds=settings.lease_seconds + CLAIM_BATCH * WEBHOOK_TIMEOUT)
        self.digest_every = (
            parse_duration(settings.alert_digest_every) if settings.alert_digest_every else None
        )
        self._client: Client | None = None
        self._digest_checked_at: datetime | None = None
        self._digest_done_for: datetime | None = None

    # --- loops ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; poll every ``poll_seconds`` when idle."""
        log.info("alert dispatcher %s started", self.owner)
        try:
            while not stop.is_set():
                busy = 0
                try:
                    busy = self.tick(stop=stop)
                    self.digest_if_due()
                except Exception:
                    # The ledger may be briefly unreachable: nothing is lost, the
                    # rows stay queued; try again after a pause.
                    log.exception("alert dispatcher %s: tick failed", self.owner)
                if busy == 0:
                    stop.wait(self.poll_seconds)
        finally:
            self.close()
            log.info("alert dispatcher %s stopped", self.owner)

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def tick(self, limit: int = 100, *, stop: threading.Event | None = None) -> int:
        """Attempt up to ``limit`` due notices; return how many were attempted.

        When ``stop`` is set meanwhile, the rows not yet attempted are given back.
        """
        done = 0
        while done < limit and not (stop is not None and stop.is_set()):
            held = self._claim(min(CLAIM_BATCH, limit - done))
            if not held:
                break
            for i, row in enumerate(held):
                if stop is not None and stop.is_set():
                    self._release(held[i:])
                    break
                self._attempt(row)
                done += 1
        return done

    # --- one row -------------------------------------------------------------------

    def _claim(self, limit: int) -> list[Held]:
        now = self.clock.now()
        until = now + self.lease
        with self.db.write() as conn:
            rows = conn.execute(
                claim_statement(t.dispatch, _CLAIMED, conn.dialect.name == "postgresql"),
                {"now": now, "until": until, "limit": limit},
            ).all()
        held = [
            Held(
                id=r.id,
                alert_id=r.alert_id,
                sink=r.sink,
                idempotency_key=r.idempotency_key,
                payload=r.payload,
                attempts=r.attempts,
                created_at=r.created_at,
                until=until,
            )
            for r in rows
        ]
        held.sort(key=lambda h: h.id)
        return held

    def _release(self, rows: list[Held]) -> None:
        """Make held rows due again at once (shutting down), without counting an attempt."""
        d = t.dispatch
        now = self.clock.now()
        with self.db.write() as conn:
            for row in rows:
                conn.execute(
                    update(d)
                    .where(d.c.id == row.id, d.c.available_at == row.until)
                    .values(available_at=now)
                )

    def _attempt(self, row: Held) -> None:
        try:
            if row.sink == "webhook" or row.sink.startswith("webhook:"):
                outcome = self._webhook(row)
            elif row.sink == "email" or row.sink.startswith("email:"):
                outcome = self._email(row)
            else:
                outcome = Outcome(f"{row.sink}: unknown sink", error="unknown sink")
        except Exception as exc:  # a bug or the ledger: keep the row, say why
            log.exception("alert %d: %s failed", row.alert_id, row.sink)
            outcome = Outcome(f"{row.sink}: failed ({exc})", error=f"{type(exc).__name__}: {exc}")
        self._settle(row, outcome)

    def _settle(self, row: Held, outcome: Outcome) -> None:
        now = self.clock.now()
        d = t.dispatch
        with self.db.write() as conn:
            if outcome.error is None:
                # Done is done, even if the lease ran out meanwhile: the sink has it.
                conn.execute(delete(d).where(d.c.id == row.id))
                add_event(conn, row.alert_id, "sink", outcome.detail, now)
                log.info("alert %d: %s", row.alert_id, outcome.detail)
                return
            attempt = row.attempts + 1
            retry_at = now + timedelta(seconds=self.backoff.delay(attempt, self.rng))
            held = conn.execute(
                update(d)
                .where(d.c.id == row.id, d.c.available_at == row.until)
                .values(attempts=d.c.attempts + 1, available_at=retry_at, last_error=outcome.error)
            ).rowcount
            if not held:
                log.info("alert %d: %s (lease lost, not rescheduled)", row.alert_id, outcome.detail)
                return
            add_event(
                conn,
                row.alert_id,
                "sink",
                f"{outcome.detail}; attempt {attempt}, next at {retry_at:%Y-%m-%d %H:%M:%SZ}",
                now,
            )
        pending = now - row.created_at
        if pending >= WARN_AFTER:
            log.warning(
                "alert %d: %s still undelivered after %s (%d attempts): %s",
                row.alert_id,
                row.sink,
                age(pending),
                attempt,
                outcome.error,
            )
        else:
            log.info("alert %d: %s (attempt %d)", row.alert_id, outcome.detail, attempt)

    # --- webhook -------------------------------------------------------------------

    def _webhook(self, row: Held) -> Outcome:
        if row.sink == "webhook":
            url = self.settings.alert_webhook_url
            if not url:
                return Outcome("webhook: not sent", error="alert_webhook_url is not set")
        else:
            url = row.sink.removeprefix("webhook:")
        label = f"webhook {redact_url(url)}"
        secret = self.settings.alert_webhook_secret
        if not secret:
            return Outcome(
                f"{label}: not sent",
                error="alert_webhook_secret is not set: refusing to send an unsigned webhook",
            )
        body = row.payload.encode("utf-8")
        headers = webhook_headers(
            secret.encode("utf-8"),
            body,
            idempotency_key=row.idempotency_key,
            now=self.clock.now(),
            event=row.event,
            attempt=row.attempts + 1,
        )
        try:
            response = self.http.post(url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Outcome(f"{label}: failed ({reason})", error=reason)
        status = f"HTTP {response.status_code}"
        if 200 <= response.status_code < 300:
            return Outcome(f"{label}: delivered ({status})")
        snippet = response.text[:200].strip()
        error = f"{status}: {snippet}" if snippet else status
        return Outcome(f"{label}: failed ({status})", error=error)

    # --- email ---------------------------------------------------------------------

    def client(self) -> Client:
        """The ``landed.Client`` alert emails are recorded through (made on first use)."""
        if self._client is None:
            self._client = Client(self.settings, clock=self.clock, database=self.db)
        return self._client

    def _email(self, row: Held) -> Outcome:
        to = self.settings.alert_email_to if row.sink == "email" else row.sink[len("email:") :]
        if not to:
            return Outcome("email: not sent", error="alert_email_to is not set")
        with self.db.read() as conn:
            found = find_alerts(conn, state=None, ids=[row.alert_id])
            if not found:
                raise SinkError(f"alert {row.alert_id} not found")
            alert = found[0]
            deliveries = find_deliveries(conn, delivery_ids=[alert.delivery_id], limit=1)
        delivery = deliveries[0] if deliveries else None
        if delivery is not None and delivery.cls in (ALERT_CLASS, DIGEST_CLASS):
            # The alert is about an alert email itself: mailing the same address
            # about it again would loop. The log line and webhooks still carry it.
            return Outcome(
                f"email {to}: not sent (the alert is about a {delivery.cls} email: loop guard)"
            )
        try:
            ids = self.client().notify(
                topic=alert.topic,
                cls=ALERT_CLASS,
                to=[to],
                subject=alert_subject(alert, row.event),
                text=alert_text(alert, row.event, delivery, now=self.clock.now()),
                idempotency_key=row.idempotency_key,
            )
        except LandedError as exc:  # no `from`, a bad address: fixed by configuration
            return Outcome(f"email {to}: not recorded ({exc})", error=str(exc))
        return Outcome(f"email {to}: recorded as delivery {', '.join(ids)}")

    # --- digest --------------------------------------------------------------------

    def digest_if_due(self) -> str | None:
        """Record this period's digest of open alerts if not yet done; its notification id.

        Periods are ``alert_digest_every`` long, counted from the Unix epoch in
        UTC. The digest's idempotency key is the period start, so any number of
        dispatchers, and restarts, record it once. No open alerts, no digest.
        """
        if self.digest_every is None or not self.settings.alert_email_to:
            return None
        now = self.clock.now()
        start = period_start(now, self.digest_every)
        if self._digest_done_for == start:
            return None
        if self._digest_checked_at is not None and now < self._digest_checked_at + (
            DIGEST_CHECK_EVERY
        ):
            return None
        self._digest_checked_at = now
        key = f"landed-digest-{start:%Y%m%dT%H%M%SZ}"
        with self.db.read() as conn:
            if _notification_exists(conn, key):
                self._digest_done_for = start
                return None
            alerts = find_alerts(conn, state="open", limit=DIGEST_LIMIT, timeline=False)
        if not alerts:
            return None
        return self.send_digest(alerts, key=key, now=now, start=start)

    def send_digest(
        self, alerts: list[AlertView], *, key: str, now: datetime, start: datetime | None = None
    ) -> str | None:
        """Record a digest of ``alerts`` under idempotency key ``key``; its notification
        id, or None if it was recorded before (by this or another dispatcher)."""
        to = self.settings.alert_email_to
        if not to:
            return None
        subject, text = build_digest(alerts, now)
        try:
            result = self.client().notify_detailed(
                topic=DIGEST_TOPIC,
                cls=DIGEST_CLASS,
                to=[to],
                subject=subject,
                text=text,
                idempotency_key=key,
            )
        except IntegrityError:
            # Another dispatcher recorded it at the same moment.
            log.info("digest %s recorded by another dispatcher", key)
            result = None
        if start is not None:
            self._digest_done_for = start
        if result is None or not result.created:
            return None
        log.info("digest %s recorded: %d open alerts", key, len(alerts))
        return str(result.notification_id)


def _notification_exists(conn: Connection, key: str) -> bool:
    found = conn.execute(
        select(t.notification.c.id).where(t.notification.c.idempotency_key == key)
    ).first()
    return found is not None
