"""The reconciler on evidence from a real Postfix: verdicts, alerts, escalation, late proof.

The DSNs are real (``tests/e2e/conftest.py``: landed sends through a private
Postfix, whose DSNs come back to landed's inbound listener); only the
reconciler's time is moved. Deadlines are minutes long and the reconciler
(with the sender and the client) runs on a :class:`MovableClock`, the real
time plus an offset the test moves forward, so no test sleeps for a deadline:
the only waiting is for Postfix (0.1-0.3 s per DSN, about 1-2 s for a retry).

These tests share the ``world.smtp`` ledger with ``test_postfix.py``, as a
reconciler shares a ledger with other traffic. So the policies here apply to
one notification class only (the other module's deliveries fall back to the
default policy, with no steps), every assertion is about this module's own
deliveries, and the addresses are ones the other module does not use (its
ticks here may suppress ``nosuchuser@corp.test`` or ``y@slow.test``).
"""

from __future__ import annotations

import email
import email.message
import email.policy
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Row, select

from landed.client import Client
from landed.config import PolicyConfig, RelayURL
from landed.parse import parse
from landed.reconcile import Reconciler
from landed.sender import Sender
from landed.store import tables as t
from landed.store.alerts import AlertView, find_alerts, list_suppressions
from landed.store.queries import EvidenceView
from landed.transport.smtp import SMTPRelay
from tests.e2e.conftest import Ledger, World

pytestmark = pytest.mark.slow

#: The class of this module's notifications: the policies below apply to it alone.
CLS = "e2e-reconcile"
DEADLINE = timedelta(minutes=2)

POLICIES = [
    {
        # Scenario 4: the recipient's server is a relay without DSN, so the most a
        # success DSN can prove is "accepted" (Action: relayed).
        "name": "e2e-relayed",
        "classes": [CLS],
        "recipients": ["*@relay.test"],
        "required": "accepted",
        "deadline": "2m",
        "steps": [{"after": "10m", "action": "resend"}],
    },
    {
        "name": "e2e-internal",
        "classes": [CLS],
        "recipients": ["*@corp.test", "*@slow.test"],
        "required": "delivered",
        "deadline": "2m",
        "steps": [{"after": "0s", "action": "resend"}],
    },
]

#: What the relay.test sink answers the scenario-4 recipient until the test lets it through.
GREYLIST = "451 4.7.1 Greylisted, come back later"


class MovableClock:
    """The real time plus an offset that only grows: the reconciler's "now"."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance_past(self, when: datetime, by: timedelta = timedelta(seconds=1)) -> None:
        """Move on until ``now()`` is ``by`` after ``when`` (never backwards)."""
        self.offset = max(self.offset, when + by - datetime.now(UTC))


@dataclass
class Landed:
    """landed on the world.smtp ledger, with this module's policies and a movable clock."""

    world: World
    ledger: Ledger
    clock: MovableClock
    reconciler: Reconciler

    def send(self, to: str, topic: str) -> str:
        return self.ledger.send(to, topic=topic, cls=CLS)

    def alert(self, delivery_id: str) -> AlertView | None:
        with self.ledger.db.read() as conn:
            found = find_alerts(conn, state=None, delivery_ids=[delivery_id])
        assert len(found) <= 1, f"more than one alert for one delivery: {found}"
        return found[0] if found else None

    def delivery(self, delivery_id: str) -> Row[Any]:
        """The delivery row, with its due time (None when nothing is pending)."""
        with self.ledger.db.read() as conn:
            return conn.execute(
                select(t.delivery, t.delivery_due.c.due_at)
                .outerjoin(t.delivery_due, t.delivery_due.c.delivery_id == t.delivery.c.id)
                .where(t.delivery.c.id == delivery_id)
            ).one()

    def resends(self, delivery_id: str) -> list[str]:
        with self.ledger.db.read() as conn:
            return list(
                conn.execute(
                    select(t.delivery.c.id)
                    .where(t.delivery.c.resend_of == delivery_id)
                    .order_by(t.delivery.c.id)
                ).scalars()
            )

    def queued_to(self, address: str) -> list[str]:
        """Deliveries to ``address`` still waiting in the outbox."""
        with self.ledger.db.read() as conn:
            return list(
                conn.execute(
                    select(t.outbox.c.delivery_id)
                    .join(t.delivery, t.delivery.c.id == t.outbox.c.delivery_id)
                    .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
                    .where(t.recipient.c.address == address)
                ).scalars()
            )

    def evidence_row(self, evidence_id: int) -> Row[Any]:
        with self.ledger.db.read() as conn:
            return conn.execute(select(t.evidence).where(t.evidence.c.id == evidence_id)).one()


@pytest.fixture
def landed(world: World) -> Iterator[Landed]:
    base = world.smtp
    settings = base.settings.model_copy(
        update={"policies": [PolicyConfig.model_validate(p) for p in POLICIES]}
    )
    clock = MovableClock()
    client = Client(settings, clock=clock, database=base.db)
    transport = SMTPRelay(RelayURL(settings.relay_url or ""), dsn_notify=settings.dsn_notify)
    sender = Sender(
        base.db, settings, transport, clock=clock, owner="e2e-reconcile", rng=random.Random(7)
    )
    ledger = Ledger("reconcile", settings, base.db, client, sender, base.mail)
    try:
        yield Landed(world, ledger, clock, Reconciler(base.db, settings, clock=clock))
    finally:
        # Leave the shared outbox empty (a resend queued by an escalation step):
        # the next test's sends count on being the only thing in it.
        sender.run_once()
        world.relay_sink.clear_scripts()
        transport.close()
        # Not client.close(): it disposes the database, which world.smtp owns.


def _dsn(evidence: EvidenceView) -> bool:
    return evidence.source == "dsn"


def _returned_headers(raw: bytes) -> email.message.Message:
    """The original message's headers that a DSN returns (RET=HDRS: text/rfc822-headers)."""
    dsn = email.message_from_bytes(raw, policy=email.policy.default)
    for part in dsn.walk():
        if part.get_content_type() == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return email.message_from_bytes(payload, policy=email.policy.default)
    raise AssertionError("the DSN returns no headers")


def test_delivered_internal_recipient_closes_with_no_alert(landed: Landed) -> None:
    ledger = landed.ledger
    d = landed.send("alice@corp.test", topic="INC-RC-1")
    view, evidence, _ = ledger.wait_for(d, _dsn, label="reconcile: delivered (alice@corp.test)")
    assert evidence.level == "delivered" and view.level == "delivered"
    result = landed.reconciler.tick()
    assert result.judged >= 1
    assert landed.alert(d) is None
    row = landed.delivery(d)
    assert row.level == "delivered" and row.outcome is None
    assert row.policy == "e2e-internal" and row.required == "delivered"
    assert row.due_at is None, "met: nothing left to check"
    # Long past the deadline, still nothing: the delivery is not even due.
    landed.clock.advance_past(row.deadline_at, by=timedelta(hours=1))
    landed.reconciler.tick()
    assert landed.alert(d) is None
    assert landed.resends(d) == []


def test_unknown_user_raises_a_bounced_alert_at_once(landed: Landed) -> None:
    ledger = landed.ledger
    address = "nosuchuser-rc@corp.test"
    d = landed.send(address, topic="INC-RC-2")
    _, evidence, _ = ledger.wait_for(d, _dsn, label="reconcile: bounced 5.1.1 (unknown user)")
    assert evidence.outcome == "bounced" and evidence.status == "5.1.1"
    # The parser's verdict is stored with the evidence, not only in its detail.
    stored = landed.evidence_row(evidence.id)
    assert stored.reason == "userunknown" and stored.hard is True
    assert "userunknown" in (evidence.detail or "")
    _, raw = ledger.inbound_raw(d, evidence.id)
    (rcpt,) = parse(raw).recipients
    assert rcpt.reason == "userunknown" and rcpt.hard is True

    # No waiting for a deadline: the tick right after the DSN opens the alert.
    result = landed.reconciler.tick()
    alert = landed.alert(d)
    assert alert is not None and alert.id in result.opened
    assert alert.state == "open" and alert.reason == "bounced"
    assert alert.detail == f"dsn: {evidence.detail}", "the alert names the DSN"
    assert "unknown user" in (alert.detail or "")
    kinds = [kind for _, kind, _ in alert.timeline]
    assert kinds[:2] == ["opened", "suppressed"]
    with ledger.db.read() as conn:
        entries = {s.address: s for s in list_suppressions(conn, landed.clock.now())}
    assert entries[address].reason == "bounced" and entries[address].delivery_id == d
    # A second tick changes nothing.
    again = landed.reconciler.tick()
    assert alert.id not in again.opened
    after = landed.alert(d)
    assert after is not None and after.timeline == alert.timeline


def test_no_resend_to_an_address_a_hard_bounce_suppressed(landed: Landed) -> None:
    address = "nosuchuser-rc2@corp.test"
    d = landed.send(address, topic="INC-RC-2B")
    landed.ledger.wait_for(d, lambda e: _dsn(e) and e.outcome == "bounced")
    landed.reconciler.tick()
    alert = landed.alert(d)
    assert alert is not None and alert.reason == "bounced"
    assert "suppressed" in [kind for _, kind, _ in alert.timeline]
    # The policy's step 1 (resend after 0s) must not send to a suppressed address.
    assert landed.queued_to(address) == [], f"timeline: {alert.timeline}"


def test_deferred_recipient_alerts_at_its_deadline_and_is_resent(landed: Landed) -> None:
    ledger, clock = landed.ledger, landed.clock
    address = "deferred-rc@slow.test"
    d = landed.send(address, topic="INC-RC-3")
    view, evidence, _ = ledger.wait_for(d, _dsn, label="reconcile: deferred (delay DSN, slow.test)")
    assert evidence.outcome == "deferred" and view.outcome == "deferred"
    assert view.level == "submitted"

    # Deferred is not a failure: pending until the deadline.
    landed.reconciler.tick()
    row = landed.delivery(d)
    assert landed.alert(d) is None
    assert row.due_at == row.deadline_at == row.created_at + DEADLINE

    # Just before the deadline: still nothing.
    clock.advance_past(row.deadline_at, by=timedelta(seconds=-5))
    landed.reconciler.tick()
    assert landed.alert(d) is None

    # Past it: the alert opens, and step 1 (after 0s) runs in the same tick.
    clock.advance_past(row.deadline_at)
    result = landed.reconciler.tick()
    alert = landed.alert(d)
    assert alert is not None and alert.id in result.opened and result.steps >= 1
    assert alert.reason == "expired" and alert.state == "open"
    # What was required, by when, how far it got, then the last evidence: the delay DSN.
    assert alert.detail == (
        f"delivered required by {row.deadline_at:%Y-%m-%d %H:%M} UTC, reached submitted;"
        f" last: dsn: {evidence.detail}"
    )
    assert alert.steps_done == 1
    kinds = [kind for _, kind, _ in alert.timeline]
    assert kinds == ["opened", "step 1: resend"]
    (resend,) = landed.resends(d)
    resent = landed.delivery(resend)
    assert resent.resend_of == d and resent.seq == row.seq, "same #N for you"
    assert resent.to_header == row.to_header and resent.notification_id == row.notification_id
    assert resent.message_id != row.message_id, "a resend has its own tracking id"
    assert "queued delivery" in alert.timeline[1][2] and address in alert.timeline[1][2]
    assert landed.queued_to(address) == [resend]

    # Send it: it goes out through Postfix, in the same thread, and is deferred too.
    assert ledger.sender.run_once() == 1
    _, resend_evidence, _ = ledger.wait_for(
        resend, _dsn, label="reconcile: resend deferred (delay DSN, slow.test)"
    )
    assert resend_evidence.outcome == "deferred"
    first = _returned_headers(ledger.inbound_raw(d, evidence.id)[1])
    second = _returned_headers(ledger.inbound_raw(resend, resend_evidence.id)[1])
    assert first["Message-ID"] == row.message_id
    assert second["Message-ID"] == resent.message_id
    assert second["References"] == first["References"]
    assert second["In-Reply-To"] == first["In-Reply-To"]
    assert second["Subject"] == first["Subject"]

    # The resend's own evidence hands over to the original: no second alert, no new step.
    landed.reconciler.tick()
    landed.reconciler.tick()
    alert = landed.alert(d)
    assert alert is not None and alert.state == "open" and alert.steps_done == 1
    assert landed.alert(resend) is None
    assert landed.resends(d) == [resend]


def test_late_success_dsn_resolves_the_alert(landed: Landed) -> None:
    # A genuine late DSN: relay.test greylists this recipient, so Postfix defers
    # and sends a delay DSN; once the deadline alert is open the sink lets it
    # through, Postfix's next retry (1-2 s) is accepted, and its success DSN
    # ("relayed": the sink offers no DSN) proves "accepted", what the policy asks.
    ledger, clock, world = landed.ledger, landed.clock, landed.world
    address = "late-rc@relay.test"
    world.relay_sink.script(at="rcpt", reply=GREYLIST, rcpt=address)
    d = landed.send(address, topic="INC-RC-4")
    _, delayed, _ = ledger.wait_for(
        d, _dsn, label="reconcile: deferred (delay DSN, greylisted at relay.test)"
    )
    assert delayed.outcome == "deferred" and delayed.status == "4.7.1"
    landed.reconciler.tick()
    row = landed.delivery(d)
    assert row.policy == "e2e-relayed" and row.required == "accepted"
    assert landed.alert(d) is None

    clock.advance_past(row.deadline_at)
    result = landed.reconciler.tick()
    alert = landed.alert(d)
    assert alert is not None and alert.id in result.opened and alert.reason == "expired"
    assert alert.steps_done == 0, "the policy's first step is 10 minutes away"

    world.relay_sink.clear_scripts()
    _, relayed, _ = ledger.wait_for(
        d,
        lambda e: _dsn(e) and e.level == "accepted",
        label="reconcile: late success DSN (relayed after greylisting)",
    )
    assert relayed.status == "2.0.0"
    assert any(r.rcpt_tos == [address] for r in world.relay_sink.received)
    _, raw = ledger.inbound_raw(d, relayed.id)
    (rcpt,) = parse(raw).recipients
    assert rcpt.action == "relayed"

    result = landed.reconciler.tick()
    assert alert.id in result.resolved
    resolved = landed.alert(d)
    assert resolved is not None and resolved.state == "resolved"
    assert resolved.resolved_by == "evidence"
    assert resolved.note == (
        f"late evidence proves accepted (required accepted): dsn: {relayed.detail}"
    )
    assert resolved.timeline[-1][1] == "resolved"
    assert landed.delivery(d).due_at is None
    # Resolved: the step that was 10 minutes away never runs.
    clock.advance_past(resolved.opened_at, by=timedelta(minutes=30))
    landed.reconciler.tick()
    final = landed.alert(d)
    assert final is not None and final.state == "resolved" and final.steps_done == 0
    assert landed.resends(d) == []
