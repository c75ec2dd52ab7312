"""``/metrics``: ledger-wide figures read at scrape time, and who may scrape."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from landed.api import create_app
from landed.api.metrics import LedgerCollector, Metrics
from landed.clock import FixedClock
from landed.config import Settings
from landed.domain import EvidenceSource, Level
from landed.store import Database
from landed.store import tables as t
from landed.store.alerts import open_alert
from landed.store.ledger import NewEvidence, append_evidence
from tests.api.conftest import SQLITE_ONLY, Api, error_of, notification

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Api) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def no_cache(app: FastAPI) -> LedgerCollector:
    metrics: Metrics = app.state.metrics
    assert metrics.ledger is not None
    metrics.ledger.cache_seconds = 0
    return metrics.ledger


def evidence(delivery_id: str, level: Level, at: object, raw: bytes) -> NewEvidence:
    return NewEvidence(
        delivery_id=delivery_id,
        source=EvidenceSource.DSN,
        level=level,
        observed_at=at,  # type: ignore[arg-type]
        raw=raw,
    )


@SQLITE_ONLY
def test_metrics_need_a_token_unless_public(
    settings: Settings, database: Database, clock: FixedClock, api_token: str
) -> None:
    with Api(create_app(settings, database, clock=clock)) as http:
        refused = http.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert error_of(refused)["code"] == "unauthorized"
        allowed = http.get("/metrics", headers={"Authorization": f"Bearer {api_token}"})
        assert allowed.status_code == 200 and "landed_deliveries" in allowed.text
    public = create_app(settings.model_copy(update={"metrics_public": True}), database, clock=clock)
    with Api(public) as http:
        assert http.get("/metrics").status_code == 200


def test_ledger_figures_levels_alerts_queue_inbound_and_counters(
    app: FastAPI, client: Api, database: Database, clock: FixedClock
) -> None:
    no_cache(app)
    first = client.post("/v1/notifications", json=notification()).json()["deliveries"]
    client.post("/v1/notifications", json=notification(to=["carol@corp.test"]))
    alice, bob = (d["delivery_id"] for d in first)
    start = clock.now()
    with database.write() as conn:
        append_evidence(conn, [evidence(alice, Level.DELIVERED, start, b"a")], now=start)
        open_alert(conn, bob, reason="expired", detail="no DSN", now=start)
        # One row claimed by a worker (leased into the future), one waiting to retry.
        conn.execute(
            update(t.outbox)
            .where(t.outbox.c.delivery_id == alice)
            .values(lease_owner="w1", available_at=start + timedelta(seconds=30))
        )
        conn.execute(
            update(t.outbox)
            .where(t.outbox.c.delivery_id == bob)
            .values(available_at=start + timedelta(minutes=5))
        )
        for state in ("quarantined", "ingested", "ingested"):
            conn.execute(
                t.inbound.insert().values(
                    channel="smtp",
                    mail_from="",
                    rcpt_to="x",
                    peer="127.0.0.1",
                    sha256="0" * 64,
                    raw=b"x",
                    state=state,
                    received_at=start,
                )
            )
    metrics: Metrics = app.state.metrics
    metrics.webhook_requests.labels("ses", "accepted").inc()

    got = scrape(client)
    assert got[("landed_deliveries", (("level", "delivered"), ("outcome", "none")))] == 1
    assert got[("landed_deliveries", (("level", "queued"), ("outcome", "none")))] == 2
    assert got[("landed_alerts_open", (("reason", "expired"),))] == 1
    assert got[("landed_outbox_rows", ())] == 3
    assert got[("landed_outbox_due", ())] == 1
    assert got[("landed_outbox_leased", ())] == 1
    assert got[("landed_inbound_messages", (("channel", "smtp"), ("state", "ingested")))] == 2
    assert got[("landed_inbound_messages", (("channel", "smtp"), ("state", "quarantined")))] == 1
    assert (
        got[("landed_webhook_requests_total", (("provider", "ses"), ("result", "accepted")))] == 1
    )
    assert got[("landed_ledger_up", ())] == 1


def test_latency_histograms_count_the_first_evidence_of_each_level_incrementally(
    app: FastAPI, client: Api, database: Database, clock: FixedClock
) -> None:
    collector = no_cache(app)
    collector.settle = timedelta(0)
    (d,) = client.post("/v1/notifications", json=notification(to=["a@corp.test"])).json()[
        "deliveries"
    ]
    created = clock.now()
    with database.write() as conn:
        append_evidence(
            conn,
            [
                evidence(d["delivery_id"], Level.SUBMITTED, created + timedelta(seconds=2), b"1"),
                evidence(d["delivery_id"], Level.DELIVERED, created + timedelta(seconds=100), b"2"),
                # A second DSN for the same level: not a new "first".
                evidence(d["delivery_id"], Level.DELIVERED, created + timedelta(seconds=900), b"3"),
            ],
            now=clock.now(),
        )
    got = scrape(client)

    def bucket(level: str, le: str) -> float:
        return got[("landed_evidence_latency_seconds_bucket", (("le", le), ("level", level)))]

    assert bucket("submitted", "1") == 0 and bucket("submitted", "5") == 1
    assert bucket("delivered", "60") == 0 and bucket("delivered", "120") == 1
    assert bucket("delivered", "+Inf") == 1
    assert got[("landed_evidence_latency_seconds_sum", (("level", "delivered"),))] == 100
    assert got[("landed_evidence_latency_seconds_count", (("level", "seen"),))] == 0
    assert got[("landed_evidence_latency_caught_up", ())] == 1
    read_up_to = collector.last_evidence_id

    with database.write() as conn:
        append_evidence(
            conn,
            [evidence(d["delivery_id"], Level.SEEN, created + timedelta(hours=3), b"4")],
            now=clock.now(),
        )
    again = scrape(client)
    assert collector.last_evidence_id > read_up_to, "only the new row was read"
    assert again[("landed_evidence_latency_seconds_count", (("level", "seen"),))] == 1
    assert again[("landed_evidence_latency_seconds_count", (("level", "delivered"),))] == 1


def test_evidence_is_counted_once_settled_and_history_is_read_in_batches(
    app: FastAPI, client: Api, database: Database, clock: FixedClock
) -> None:
    collector = no_cache(app)
    collector.settle = timedelta(seconds=30)
    collector.batch, collector.max_batches = 2, 1
    deliveries = client.post(
        "/v1/notifications", json=notification(to=[f"r{i}@corp.test" for i in range(5)])
    ).json()["deliveries"]
    with database.write() as conn:
        append_evidence(
            conn,
            [
                evidence(d["delivery_id"], Level.ACCEPTED, clock.now(), d["delivery_id"].encode())
                for d in deliveries
            ],
            now=clock.now(),
        )

    def accepted() -> float:
        return scrape(client)[("landed_evidence_latency_seconds_count", (("level", "accepted"),))]

    # Recorded just now: a transaction that took an earlier id may not have committed.
    assert accepted() == 0
    clock.advance(31)
    assert accepted() == 2  # two per scrape in this test
    assert scrape(client)[("landed_evidence_latency_caught_up", ())] == 0
    assert accepted() == 5


@SQLITE_ONLY
def test_scrapes_are_cached(app: FastAPI, client: Api) -> None:
    collector = no_cache(app)
    collector.cache_seconds = 3600
    before = scrape(client)
    client.post("/v1/notifications", json=notification())
    assert scrape(client) == before, "the ledger is read at most once per cache period"
    collector.cache_seconds = 0
    assert scrape(client)[("landed_deliveries", (("level", "queued"), ("outcome", "none")))] == 2


@SQLITE_ONLY
def test_a_ledger_that_does_not_answer_is_reported_not_raised(
    settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    db = Database(f"sqlite:///{gone / 'ledger.db'}")
    gone.rmdir()
    app = create_app(settings.model_copy(update={"metrics_public": True}), db, clock=clock)
    with Api(app) as http:
        response = http.get("/metrics")
    assert response.status_code == 200
    assert "landed_ledger_up 0.0" in response.text
    db.dispose()
