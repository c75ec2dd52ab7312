"""``/healthz`` and ``/metrics`` (Prometheus text format).

Each app has its own ``CollectorRegistry`` (``app.state.metrics``), never
prometheus-client's global one, so that several apps (tests, or one process
serving twice) never clash.

Two kinds of figures are served:

- in-process counters of this host (``Metrics.webhook_requests``,
  ``Metrics.tracking_hits``), incremented by the handlers that see the events;
- ledger-wide figures, read from the database at scrape time by
  ``LedgerCollector``, so that every host of a shared PostgreSQL ledger reports
  the whole ledger, not the part it happened to handle.

The ledger is read at most once per ``cache_seconds`` however often it is
scraped; see ``LedgerCollector`` for what one read costs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, and_, exists, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from landed.api.auth import bearer, require_token
from landed.api.deps import get_db, get_settings
from landed.clock import Clock
from landed.domain import Level
from landed.store import Database
from landed.store import tables as t

log = logging.getLogger("landed.api.metrics")
router = APIRouter()

#: Upper bounds of the latency buckets, in seconds: from a fast relay's
#: answer (1 s) to a reader who opens the mail a week later.
LATENCY_BUCKETS: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
    7200, 21600, 43200, 86400, 172800, 604800,
)  # fmt: skip
#: The levels evidence can prove (``queued`` is never evidence).
LATENCY_LEVELS = tuple(level for level in Level if level is not Level.QUEUED)


class Metrics:
    """The app's in-process counters. Ledger-wide figures are read from the database
    at scrape time (``watch_ledger``), so that every host of a shared ledger reports them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        #: Provider webhook requests by provider and result
        #: (``accepted``, ``unauthorized``, ``forbidden``, ``bad_request``).
        self.webhook_requests = Counter(
            "landed_webhook_requests",
            "Provider webhook requests, by provider and result.",
            ["provider", "result"],
            registry=self.registry,
        )
        #: Tracking endpoint hits by kind (``open``, ``ack``, ``click``) and result
        #: (``counted``, ``machine``, ``invalid``).
        self.tracking_hits = Counter(
            "landed_tracking_hits",
            "Tracking endpoint hits, by kind and result.",
            ["kind", "result"],
            registry=self.registry,
        )
        self.ledger: LedgerCollector | None = None

    def watch_ledger(self, db: Database, clock: Clock, *, cache_seconds: float = 5.0) -> None:
        """Serve the ledger-wide figures of ``db`` too."""
        self.ledger = LedgerCollector(db, clock, cache_seconds=cache_seconds)
        self.registry.register(self.ledger)

    def exposition(self) -> bytes:
        """Everything, in the Prometheus text format."""
        return generate_latest(self.registry)


@dataclass
class LatencyHistogram:
    """Send-to-level latencies, kept up to date incrementally (see ``LedgerCollector``)."""

    buckets: Sequence[float] = LATENCY_BUCKETS
    #: Per level: how many observations fell in each bucket (not cumulative), then +Inf.
    counts: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)

    def observe(self, level: str, seconds: float) -> None:
        counts = self.counts.setdefault(level, [0] * (len(self.buckets) + 1))
        index = next((i for i, b in enumerate(self.buckets) if seconds <= b), len(self.buckets))
        counts[index] += 1
        self.sums[level] = self.sums.get(level, 0.0) + seconds

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "landed_evidence_latency_seconds",
            "Time from a delivery's creation to its first evidence of each level.",
            labels=["level"],
        )
        for level in LATENCY_LEVELS:
            counts = self.counts.get(level.value, [0] * (len(self.buckets) + 1))
            cumulative, running = [], 0
            for bound, count in zip([*map(str, self.buckets), "+Inf"], counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            family.add_metric([level.value], cumulative, self.sums.get(level.value, 0.0))
        return family


class LedgerCollector(Collector):
    """Ledger-wide figures, read at scrape time and cached for ``cache_seconds``.

    Gauges (deliveries by level and outcome, open alerts by reason, outbox
    depth, inbound messages by channel and state) are ``GROUP BY`` counts: a
    handful of statements whose cost grows with the ledger (the deliveries
    count scans its table) but is paid at most once per ``cache_seconds``
    whatever the number of scrapers.

    The latency histogram is not recomputed: evidence is append-only, so the
    collector reads it incrementally, by id, from where the previous scrape
    stopped (at most ``batch * max_batches`` rows per scrape; a new process
    catches up on history over a few scrapes, and
    ``landed_evidence_latency_caught_up`` says when it has). A row counts when
    it is the first of its level for its delivery (an indexed ``NOT EXISTS``).
    The histogram is thus a true cumulative histogram over the whole ledger,
    the same on every host, at a cost proportional to new evidence only.

    On PostgreSQL, ids come from a sequence and a transaction may commit after
    one that took a later id; reading past it would skip it for good. So the
    reader stops at the first row recorded less than ``settle_seconds`` ago
    and picks up from there next time: rows show in the histogram after that
    delay, and a transaction open longer than it may be missed. SQLite has
    one writer at a time, so its ids are committed in order and need no delay.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        cache_seconds: float = 5.0,
        settle_seconds: float | None = None,
        batch: int = 10_000,
        max_batches: int = 5,
    ) -> None:
        self.db = db
        self.clock = clock
        self.cache_seconds = cache_seconds
        if settle_seconds is None:
            settle_seconds = 30.0 if db.dialect == "postgresql" else 0.0
        self.settle = timedelta(seconds=settle_seconds)
        self.batch = batch
        self.max_batches = max_batches
        self.latency = LatencyHistogram()
        self.last_evidence_id = 0
        self.caught_up = False
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at: float | None = None
        self._ok = False
        self._duration = 0.0

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            fresh = (
                self._cached_at is not None
                and time.monotonic() - self._cached_at < self.cache_seconds
            )
            if not fresh:
                self._refresh()
            families = list(self._cached)
        yield from families
        up = GaugeMetricFamily(
            "landed_ledger_up", "1 if the last read of the ledger for these metrics worked."
        )
        up.add_metric([], 1.0 if self._ok else 0.0)
        yield up
        took = GaugeMetricFamily(
            "landed_ledger_scrape_seconds", "How long the last read of the ledger took."
        )
        took.add_metric([], self._duration)
        yield took

    def _refresh(self) -> None:
        started = time.monotonic()
        try:
            now = self.clock.now()
            with self.db.read() as conn:
                families = list(self._gauges(conn, now))
                self._advance_latency(conn, now)
        except SQLAlchemyError as exc:
            # Serve the last figures (or none) and say so, rather than fail the scrape.
            log.warning("metrics: cannot read the ledger: %s", str(exc).splitlines()[0])
            self._ok = False
        else:
            latency = self.latency.family()
            caught_up = GaugeMetricFamily(
                "landed_evidence_latency_caught_up",
                "1 once the latency histogram has read all the ledger's settled evidence.",
            )
            caught_up.add_metric([], 1.0 if self.caught_up else 0.0)
            self._cached = [*families, latency, caught_up]
            self._ok = True
        self._cached_at = time.monotonic()
        self._duration = self._cached_at - started

    def _gauges(self, conn: Connection, now: datetime) -> Iterator[Metric]:
        deliveries = GaugeMetricFamily(
            "landed_deliveries",
            "Deliveries by level and outcome (outcome none: no negative fact).",
            labels=["level", "outcome"],
        )
        for level, outcome, count in conn.execute(
            select(t.delivery.c.level, t.delivery.c.outcome, func.count()).group_by(
                t.delivery.c.level, t.delivery.c.outcome
            )
        ):
            deliveries.add_metric([level, outcome or "none"], count)
        yield deliveries

        alerts = GaugeMetricFamily(
            "landed_alerts_open", "Open alerts by reason.", labels=["reason"]
        )
        for reason, count in conn.execute(
            select(t.alert.c.reason, func.count())
            .where(t.alert.c.state == "open")
            .group_by(t.alert.c.reason)
        ):
            alerts.add_metric([reason], count)
        yield alerts

        total, due, leased = conn.execute(
            select(
                func.count(),
                func.count().filter(t.outbox.c.available_at <= now),
                func.count().filter(
                    and_(t.outbox.c.lease_owner.is_not(None), t.outbox.c.available_at > now)
                ),
            ).select_from(t.outbox)
        ).one()
        for name, doc, value in (
            ("landed_outbox_rows", "Deliveries waiting in the outbox (queue depth).", total),
            ("landed_outbox_due", "Outbox rows due now (not leased, not waiting to retry).", due),
            ("landed_outbox_leased", "Outbox rows claimed by a sender worker.", leased),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge

        inbound = GaugeMetricFamily(
            "landed_inbound_messages",
            "Received messages by channel (smtp, imap) and state (pending, ingested, quarantined).",
            labels=["channel", "state"],
        )
        for channel, state, count in conn.execute(
            select(t.inbound.c.channel, t.inbound.c.state, func.count()).group_by(
                t.inbound.c.channel, t.inbound.c.state
            )
        ):
            inbound.add_metric([channel, state], count)
        yield inbound

    def _advance_latency(self, conn: Connection, now: datetime) -> None:
        earlier = t.evidence.alias("earlier")
        is_first = ~exists().where(
            earlier.c.delivery_id == t.evidence.c.delivery_id,
            earlier.c.level == t.evidence.c.level,
            earlier.c.id < t.evidence.c.id,
        )
        settled_before = now - self.settle
        for _ in range(self.max_batches):
            rows = conn.execute(
                select(
                    t.evidence.c.id,
                    t.evidence.c.level,
                    t.evidence.c.observed_at,
                    t.evidence.c.recorded_at,
                    t.delivery.c.created_at,
                    is_first.label("is_first"),
                )
                .outerjoin(t.delivery, t.delivery.c.id == t.evidence.c.delivery_id)
                .where(t.evidence.c.id > self.last_evidence_id)
                .order_by(t.evidence.c.id)
                .limit(self.batch)
            ).all()
            for row in rows:
                if row.recorded_at > settled_before:
                    self.caught_up = True
                    return
                if row.level and row.created_at is not None and row.is_first:
                    seconds = (row.observed_at - row.created_at).total_seconds()
                    # Clocks of different hosts disagree a little: never negative.
                    self.latency.observe(row.level, max(seconds, 0.0))
                self.last_evidence_id = row.id
            if len(rows) < self.batch:
                self.caught_up = True
                return
        self.caught_up = False


def get_metrics(request: Request) -> Metrics:
    return cast(Metrics, request.app.state.metrics)


def _scrape_allowed(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """A bearer API token, unless ``metrics_public`` is set."""
    if not get_settings(request).metrics_public:
        require_token(request, credentials)


@router.get(
    "/metrics",
    dependencies=[Depends(_scrape_allowed)],
    response_class=Response,
    tags=["operations"],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics; needs an API token unless `metrics_public` is set."""
    return Response(get_metrics(request).exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", tags=["operations"])
def healthz(request: Request) -> JSONResponse:
    """200 when the ledger answers, 503 when it does not. Needs no token."""
    try:
        with get_db(request).read() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("healthz: the ledger does not answer: %s", str(exc).splitlines()[0])
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


def install(app: FastAPI) -> None:
    app.state.metrics = Metrics()
    app.state.metrics.watch_ledger(app.state.db, app.state.clock)
    app.include_router(router)
