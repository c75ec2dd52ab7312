"""The reconciler with an injected clock: verdicts, alerts, escalation, suppression."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from landed.alerts.sinks import webhook_payload
from landed.client import Client
from landed.clock import FixedClock
from landed.config import Settings
from landed.domain import EvidenceSource, Level, Outcome
from landed.reconcile import Reconciler
from landed.store import Database
from landed.store import tables as t
from landed.store.alerts import find_alerts, list_suppressions, resolve_alert, unsuppress
from landed.store.ledger import NewEvidence, append_evidence


class World:
    def __init__(self, settings: Settings, clock: FixedClock) -> None:
        self.settings = settings
        self.clock = clock
        self.db = Database(settings.database_url)
        self.client = Client(settings, clock=clock, database=self.db)
        self.reconciler = Reconciler(self.db, settings, clock=clock)

    def send(self, to: str, topic: str = "INC-1") -> str:
        (delivery_id,) = self.client.notify(
            topic=topic, cls="incident", to=[to], subject=f"About {topic}", text="t"
        )
        return delivery_id

    def evidence(
        self,
        delivery_id: str,
        *,
        level: Level | None = None,
        outcome: Outcome | None = None,
        status: str | None = None,
        source: EvidenceSource = EvidenceSource.DSN,
        detail: str = "",
    ) -> None:
        with self.db.write() as conn:
            append_evidence(
                conn,
                [
                    NewEvidence(
                        delivery_id=delivery_id,
                        source=source,
                        level=level,
                        outcome=outcome,
                        status=status,
                        detail=detail or f"{level or outcome} {status or ''}",
                        observed_at=self.clock.now(),
                        raw=f"{delivery_id}{level}{outcome}{status}{self.clock.now()}".encode(),
                    )
                ],
                now=self.clock.now(),
            )

    def alerts(self, state: str | None = "open") -> list:  # type: ignore[type-arg]
        with self.db.read() as conn:
            return find_alerts(conn, state=state)

    def count(self, table: object) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def policies(**steps: object) -> list[dict[str, object]]:
    return [
        {
            "name": "internal",
            "recipients": ["*@corp.test"],
            "required": "delivered",
            "deadline": "15m",
            "steps": [
                {"after": "0s", "action": "resend"},
                {"after": "10m", "action": "fallback"},
                {"after": "20m", "action": "notify", "to": "oncall@corp.test"},
                {"after": "30m", "action": "webhook", "url": "http://127.0.0.1:9/hook"},
            ],
        },
        {"name": "external", "required": "accepted", "deadline": "30m"},
    ]


@pytest.fixture
def world(settings: Settings, clock: FixedClock) -> Iterator[World]:
    configured = settings.model_copy(
        update={
            "policies": Settings(policies=policies()).policies,
            "fallbacks": {"bob@corp.test": "bob.home@home.test"},
        }
    )
    w = World(configured, clock)
    yield w
    w.db.dispose()


def test_delivered_in_time_closes_with_no_alert(world: World) -> None:
    d = world.send("alice@corp.test")
    world.evidence(d, level=Level.SUBMITTED)
    world.clock.advance(minutes=2)
    world.evidence(d, level=Level.DELIVERED, status="2.0.0")
    world.reconciler.tick()
    world.clock.advance(hours=2)
    assert world.reconciler.tick().opened == []
    assert world.alerts(state=None) == []
    with world.db.read() as conn:
        assert (
            conn.execute(
                select(t.delivery_due.c.due_at).where(t.delivery_due.c.delivery_id == d)
            ).scalar()
            is None
        )


def test_a_bounce_opens_an_alert_at_once_and_suppresses_the_address(world: World) -> None:
    d = world.send("nosuchuser@corp.test")
    world.evidence(d, outcome=Outcome.BOUNCED, status="5.1.1", detail="550 5.1.1 User unknown")
    result = world.reconciler.tick()
    assert len(result.opened) == 1
    (alert,) = world.alerts()
    assert alert.reason == "bounced" and "User unknown" in alert.detail
    assert [kind for _, kind, _ in alert.timeline][:2] == ["opened", "suppressed"]
    step = next(detail for _, kind, detail in alert.timeline if kind == "step 1: resend")
    assert step.startswith("not resent: nosuchuser@corp.test is suppressed")
    with world.db.read() as conn:
        (entry,) = list_suppressions(conn, world.clock.now())
    assert entry.address == "nosuchuser@corp.test" and entry.expires_at is not None
    # The next notification to that address is not sent, and says so loudly.
    outbox_before = world.count(t.outbox)
    d2 = world.send("nosuchuser@corp.test", topic="INC-2")
    assert world.count(t.outbox) == outbox_before
    world.reconciler.tick()
    reasons = sorted(a.reason for a in world.alerts())
    assert reasons == ["bounced", "suppressed"]
    (view,) = world.client.status(d2)
    assert view.outcome == "suppressed" and not view.queued
    with world.db.write() as conn:
        assert unsuppress(conn, "nosuchuser@corp.test")
    d3 = world.send("nosuchuser@corp.test", topic="INC-3")
    (view,) = world.client.status(d3)
    assert view.queued and view.outcome is None


def test_soft_bounce_does_not_suppress(world: World) -> None:
    d = world.send("full@corp.test")
    world.evidence(d, outcome=Outcome.BOUNCED, status="5.2.2", detail="mailbox full")
    world.reconciler.tick()
    with world.db.read() as conn:
        assert list_suppressions(conn, world.clock.now()) == []


def test_deadline_alert_escalates_in_order_and_late_evidence_resolves_it(world: World) -> None:
    d = world.send("bob@corp.test")
    world.evidence(d, level=Level.SUBMITTED)
    world.reconciler.tick()
    assert world.alerts() == []
    world.clock.advance(minutes=14)
    assert world.reconciler.tick().opened == []
    world.clock.advance(minutes=1)
    result = world.reconciler.tick()
    assert len(result.opened) == 1 and result.steps == 1, "step 1 (after 0s) runs at once"
    (alert,) = world.alerts()
    assert alert.reason == "expired"
    with world.db.read() as conn:
        resends = conn.execute(select(t.delivery).where(t.delivery.c.resend_of == d)).all()
    assert len(resends) == 1
    assert resends[0].seq == 1 and resends[0].to_header == "bob@corp.test", "same #N, same thread"
    world.clock.advance(minutes=10)
    world.reconciler.tick()
    world.clock.advance(minutes=10)
    world.reconciler.tick()
    world.clock.advance(minutes=10)
    world.reconciler.tick()
    (alert,) = world.alerts()
    kinds = [kind for _, kind, _ in alert.timeline]
    assert kinds == [
        "opened",
        "step 1: resend",
        "step 2: fallback",
        "step 3: notify",
        "step 4: webhook",
    ]
    assert alert.steps_done == 4
    assert any("bob.home@home.test" in detail for _, _, detail in alert.timeline)
    oncall = world.client.status(recipient="oncall@corp.test")
    assert len(oncall) == 1 and oncall[0].cls == "landed-alert"
    with world.db.read() as conn:
        sinks = conn.execute(select(t.dispatch.c.sink)).scalars().all()
    assert "webhook:http://127.0.0.1:9/hook" in sinks
    # The success DSN arrives late: the alert resolves itself, saying why.
    world.clock.advance(minutes=5)
    world.evidence(d, level=Level.DELIVERED, status="2.0.0", detail="delivered to maildir")
    result = world.reconciler.tick()
    assert result.resolved == [alert.id]
    (resolved,) = world.alerts(state="resolved")
    assert resolved.resolved_by == "evidence" and "delivered" in (resolved.note or "")


def test_steps_stop_as_soon_as_the_evidence_arrives(world: World) -> None:
    d = world.send("bob@corp.test")
    world.clock.advance(minutes=15)
    world.reconciler.tick()
    world.evidence(d, level=Level.DELIVERED)
    world.reconciler.tick()
    world.clock.advance(hours=2)
    world.reconciler.tick()
    (alert,) = world.alerts(state="resolved")
    assert alert.steps_done == 1


def test_ticks_are_idempotent(world: World) -> None:
    d = world.send("x@corp.test")
    world.evidence(d, outcome=Outcome.BOUNCED, status="5.1.1")
    first = world.reconciler.tick()
    second = world.reconciler.tick()
    assert len(first.opened) == 1
    assert second.opened == [] and second.resolved == [] and second.steps == 0
    assert len(world.alerts()) == 1


def test_a_tick_reads_only_what_is_due(world: World) -> None:
    for i in range(20):
        world.send(f"user{i}@corp.test", topic=f"T-{i}")
    assert world.reconciler.tick().judged == 0, "nothing is due before the deadline"
    world.clock.advance(minutes=16)
    assert world.reconciler.tick(limit=5).judged == 5
    assert world.reconciler.tick().judged == 15, "the rest; the resends are due later"


def test_a_person_resolves_an_alert(world: World) -> None:
    d = world.send("x@corp.test")
    world.evidence(d, outcome=Outcome.BOUNCED, status="5.1.1")
    world.reconciler.tick()
    (alert,) = world.alerts()
    with world.db.write() as conn:
        assert resolve_alert(conn, alert.id, by="person", note="called Bob", now=world.clock.now())
        assert not resolve_alert(conn, alert.id, by="person", note="again", now=world.clock.now())
    (done,) = world.alerts(state="resolved")
    assert done.resolved_by == "person" and done.note == "called Bob"
    world.clock.advance(hours=1)
    assert world.reconciler.tick().opened == []


def test_external_policy_needs_accepted(world: World) -> None:
    d = world.send("someone@gmail.test")
    world.evidence(d, level=Level.SUBMITTED)
    world.clock.advance(minutes=20)
    world.reconciler.tick()
    world.evidence(d, level=Level.ACCEPTED, detail="relayed")
    world.clock.advance(minutes=20)
    world.reconciler.tick()
    assert world.alerts(state=None) == []
    assert timedelta(minutes=30)


def test_a_delivered_resend_resolves_the_original_alert(world: World) -> None:
    d = world.send("bob@corp.test")
    world.clock.advance(minutes=15)
    world.reconciler.tick()
    with world.db.read() as conn:
        resend = conn.execute(
            select(t.delivery.c.id).where(t.delivery.c.resend_of == d)
        ).scalar_one()
    world.evidence(resend, level=Level.DELIVERED, status="2.0.0")
    world.reconciler.tick()  # the resend: hands over to its original
    result = world.reconciler.tick()  # the original: proven through the resend
    assert len(result.resolved) == 1
    (alert,) = world.alerts(state="resolved")
    assert "proven by escalation" in (alert.note or "")
    assert len(world.alerts(state=None)) == 1, "the resend raised no alert of its own"


def _notices(world: World) -> list[dict[str, object]]:
    with world.db.read() as conn:
        rows = conn.execute(select(t.dispatch).order_by(t.dispatch.c.id)).all()
    return [{"sink": r.sink, **json.loads(r.payload)} for r in rows]


def test_notices_and_log_lines_carry_the_alert_as_the_ledger_reads_it(
    settings: Settings, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The tick builds the alerts it announces in memory, in batches: what it queues
    and logs must be exactly what reading the alert back gives."""
    configured = settings.model_copy(
        update={
            "policies": Settings(
                policies=[{"name": "p", "required": "delivered", "deadline": "15m"}]
            ).policies,
            "alert_webhook_url": "http://127.0.0.1:9/alerts",
            "alert_webhook_secret": "s3cret-s3cret-s3cret",
            "alert_email_to": "ops@corp.test",
        }
    )
    world = World(configured, clock)
    try:
        sent = [world.send(f"user{i}@corp.test", topic=f"INC-{i}") for i in range(30)]
        world.evidence(sent[0], outcome=Outcome.BOUNCED, status="5.1.1", detail="unknown")
        world.clock.advance(minutes=16)
        with caplog.at_level(logging.INFO, logger="landed.alerts"):
            opened = world.reconciler.tick().opened
        assert len(opened) == 30
        alerts = {a.id: a for a in world.alerts()}
        assert {a.delivery_id for a in alerts.values()} == set(sent), "one alert per delivery"
        by_delivery = {a.delivery_id: a for a in alerts.values()}
        assert by_delivery[sent[0]].reason == "bounced"
        assert {by_delivery[d].reason for d in sent[1:]} == {"expired"}
        notices = _notices(world)
        assert sorted(n["sink"] for n in notices) == sorted(["email", "webhook"] * 30)
        for notice in notices:
            alert = alerts[notice["alert"]["id"]]  # type: ignore[index]
            assert notice["event"] == "alert.opened"
            expected = webhook_payload(alert)["alert"]
            # Announced as it opened: suppression comes after, on the timeline only.
            expected["timeline"] = expected["timeline"][:1]  # type: ignore[index]
            assert notice["alert"] == expected
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "landed.alerts"]
        assert len(lines) == 30
        for line in lines:
            expected = {k: v for k, v in alerts[line["id"]].as_dict().items() if k != "timeline"}
            assert line == {"kind": "landed.alert", "event": "alert.opened", **expected}

        # Late evidence for ten of them: resolved together, each with its own note.
        for d in sent[1:11]:
            world.evidence(d, level=Level.DELIVERED, status="2.0.0", detail=f"delivered {d}")
        assert len(world.reconciler.tick().resolved) == 10
        resolved = {a.id: a for a in world.alerts(state="resolved")}
        assert {a.delivery_id for a in resolved.values()} == set(sent[1:11])
        for a in resolved.values():
            assert a.note is not None and a.note.endswith(f"delivered {a.delivery_id}")
            assert a.resolved_by == "evidence" and a.timeline[-1][1] == "resolved"
        later = [n for n in _notices(world) if n["event"] == "alert.resolved"]
        assert len(later) == 20
        for notice in later:
            alert = resolved[notice["alert"]["id"]]  # type: ignore[index]
            assert notice["alert"] == webhook_payload(alert)["alert"]
        assert world.reconciler.tick().resolved == [], "idempotent"
    finally:
        world.db.dispose()
