"""The ledger on both engines: notify, sequence numbers, outstanding, evidence, outbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from landed.clock import FixedClock
from landed.compose.request import validate_request
from landed.domain import EvidenceSource, Level, Outcome
from landed.errors import IdempotencyConflict
from landed.store import Database
from landed.store import tables as t
from landed.store.ledger import NewEvidence, NotifyResult, append_evidence, notify
from landed.store.outbox import Settlement, claim, load_jobs, release, renew, settle
from landed.store.queries import find_deliveries, outbox_depth
from landed.tokens import Keyring

RING = Keyring("k1", {"k1": b"k" * 32})


def record(
    db: Database, clock: FixedClock, to: list[str], topic: str = "INC-1", **kw: object
) -> NotifyResult:
    request = validate_request(
        topic=topic,
        cls="incident",
        to=to,
        subject=f"about {topic}",
        text="body",
        **kw,  # type: ignore[arg-type]
    )
    with db.write() as conn:
        return notify(
            conn,
            request,
            sender="Alerts <alerts@corp.test>",
            keyring=RING,
            id_domain="corp.test",
            now=clock.now(),
        )


def test_notify_records_deliveries_and_outbox_in_one_go(
    database: Database, clock: FixedClock
) -> None:
    result = record(database, clock, ["alice@corp.test", "Bob <Bob@corp.test>"])
    assert result.created and len(result.deliveries) == 2
    assert [d.recipient for d in result.deliveries] == ["alice@corp.test", "bob@corp.test"]
    with database.read() as conn:
        assert outbox_depth(conn) == 2
        views = find_deliveries(conn, topic="INC-1")
    assert {v.level for v in views} == {"queued"}
    for view in views:
        assert RING.verify(view.token) == view.delivery_id
        assert view.message_id == f"<{view.token}@corp.test>"


def test_failed_notify_leaves_nothing(database: Database, clock: FixedClock) -> None:
    request = validate_request(topic="INC-1", cls="c", to=["a@corp.test"], subject="s", text="t")

    def crash() -> None:
        with database.write() as conn:
            notify(
                conn,
                request,
                sender="a@corp.test",
                keyring=RING,
                id_domain="corp.test",
                now=clock.now(),
            )
            raise RuntimeError("crash after notify, before commit")

    with pytest.raises(RuntimeError):
        crash()
    with database.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.delivery)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(t.notification)).scalar_one() == 0
        assert outbox_depth(conn) == 0


def test_per_recipient_sequence_counts_each_recipients_notifications(
    database: Database, clock: FixedClock
) -> None:
    record(database, clock, ["alice@corp.test", "bob@corp.test"], topic="INC-1")
    record(database, clock, ["alice@corp.test"], topic="INC-2")
    third = record(database, clock, ["bob@corp.test", "alice@corp.test"], topic="INC-3")
    seqs = {d.recipient: d.seq for d in third.deliveries}
    assert seqs == {"alice@corp.test": 3, "bob@corp.test": 2}


def test_outstanding_lists_unconfirmed_earlier_deliveries(
    database: Database, clock: FixedClock
) -> None:
    first = record(database, clock, ["alice@corp.test"], topic="INC-1").deliveries[0]
    second = record(database, clock, ["alice@corp.test"], topic="INC-2").deliveries[0]
    # The first is then proven delivered: it drops out of later outstanding blocks.
    with database.write() as conn:
        append_evidence(
            conn,
            [
                NewEvidence(
                    delivery_id=first.delivery_id,
                    source=EvidenceSource.DSN,
                    level=Level.DELIVERED,
                    observed_at=clock.now(),
                    raw=b"dsn",
                )
            ],
            now=clock.now(),
        )
    third = record(database, clock, ["alice@corp.test"], topic="INC-3").deliveries[0]
    with database.read() as conn:
        jobs = {j.delivery_id: j for j in load_jobs(conn, [second.delivery_id, third.delivery_id])}
    assert [o.delivery_id for o in jobs[second.delivery_id].outstanding] == [first.delivery_id]
    assert [o.seq for o in jobs[third.delivery_id].outstanding] == [2]
    assert jobs[third.delivery_id].outstanding[0].topic_key == "INC-2"


def test_idempotency_key_returns_the_same_deliveries(database: Database, clock: FixedClock) -> None:
    one = record(database, clock, ["a@corp.test", "b@corp.test"], idempotency_key="req-1")
    two = record(database, clock, ["a@corp.test", "b@corp.test"], idempotency_key="req-1")
    assert not two.created
    assert two.notification_id == one.notification_id
    assert {d.delivery_id for d in two.deliveries} == {d.delivery_id for d in one.deliveries}
    with database.read() as conn:
        assert outbox_depth(conn) == 2


def test_idempotency_key_for_another_notification_is_a_conflict(
    database: Database, clock: FixedClock
) -> None:
    one = record(database, clock, ["a@corp.test", "b@corp.test"], idempotency_key="req-1")
    # Recipients in another order are the same notification...
    two = record(database, clock, ["b@corp.test", "a@corp.test"], idempotency_key="req-1")
    assert not two.created and two.notification_id == one.notification_id
    # ...another recipient list or another topic is not: refused, never replayed.
    with pytest.raises(IdempotencyConflict, match="already used") as raised:
        record(database, clock, ["a@corp.test"], idempotency_key="req-1")
    assert raised.value.notification_id == one.notification_id
    with pytest.raises(IdempotencyConflict):
        record(database, clock, ["a@corp.test", "b@corp.test"], "INC-2", idempotency_key="req-1")
    with database.read() as conn:
        assert outbox_depth(conn) == 2


def test_evidence_is_stored_once_and_folded(database: Database, clock: FixedClock) -> None:
    d = record(database, clock, ["a@corp.test"]).deliveries[0]
    item = NewEvidence(
        delivery_id=d.delivery_id,
        source=EvidenceSource.DSN,
        level=Level.DELIVERED,
        observed_at=clock.now(),
        raw=b"Action: delivered",
        status="2.0.0",
    )
    with database.write() as conn:
        assert append_evidence(conn, [item], now=clock.now()) == 1
    with database.write() as conn:
        assert append_evidence(conn, [item, item], now=clock.now()) == 0
    with database.read() as conn:
        (view,) = find_deliveries(conn, delivery_ids=[d.delivery_id])
    assert len(view.evidence) == 1
    assert view.level == "delivered"
    assert view.evidence[0].observed_at == clock.now()


def test_the_route_is_set_with_the_verdict_and_kept_by_later_evidence(
    database: Database, clock: FixedClock
) -> None:
    """A settle's route goes in with the refold's UPDATE (with or without evidence
    of its own), and evidence refolded later without a route leaves it as it is."""
    a, b = record(database, clock, ["a@corp.test", "b@corp.test"]).deliveries
    sent = NewEvidence(
        delivery_id=a.delivery_id,
        source=EvidenceSource.SMTP_REPLY,
        level=Level.SUBMITTED,
        observed_at=clock.now(),
        raw=b"250 ok",
    )
    with database.write() as conn:
        append_evidence(
            conn, [sent], now=clock.now(), routes={a.delivery_id: "relay", b.delivery_id: "mx"}
        )
        append_evidence(conn, [], now=clock.now(), routes={})  # nothing to do

    def routes() -> dict[str, tuple[str | None, str]]:
        with database.read() as conn:
            rows = conn.execute(select(t.delivery.c.id, t.delivery.c.route, t.delivery.c.level))
            return {r.id: (r.route, r.level) for r in rows}

    assert routes() == {a.delivery_id: ("relay", "submitted"), b.delivery_id: ("mx", "queued")}
    with database.write() as conn:
        append_evidence(
            conn,
            [
                NewEvidence(
                    delivery_id=a.delivery_id,
                    source=EvidenceSource.DSN,
                    level=Level.DELIVERED,
                    observed_at=clock.now(),
                    raw=b"Action: delivered",
                )
            ],
            now=clock.now(),
        )
    assert routes()[a.delivery_id] == ("relay", "delivered")


def test_raw_bytes_are_kept_exactly(database: Database, clock: FixedClock) -> None:
    d = record(database, clock, ["a@corp.test"]).deliveries[0]
    raw = bytes(range(256)) * 4
    with database.write() as conn:
        append_evidence(
            conn,
            [
                NewEvidence(
                    delivery_id=d.delivery_id,
                    source=EvidenceSource.BOUNCE,
                    observed_at=clock.now(),
                    raw=raw,
                )
            ],
            now=clock.now(),
        )
    with database.read() as conn:
        stored = conn.execute(select(t.evidence.c.raw)).scalar_one()
    assert stored == raw


def test_claim_takes_due_rows_once_until_the_lease_runs_out(
    database: Database, clock: FixedClock
) -> None:
    record(database, clock, [f"r{i}@corp.test" for i in range(5)])
    lease = timedelta(seconds=30)
    with database.write() as conn:
        first = claim(conn, owner="w1", now=clock.now(), lease=lease, limit=3)
    with database.write() as conn:
        second = claim(conn, owner="w2", now=clock.now(), lease=lease, limit=10)
    assert len(first) == 3 and len(second) == 2
    assert not {c.delivery_id for c in first} & {c.delivery_id for c in second}
    with database.write() as conn:
        assert claim(conn, owner="w3", now=clock.now(), lease=lease, limit=10) == []
    clock.advance(31)
    with database.write() as conn:
        again = claim(conn, owner="w3", now=clock.now(), lease=lease, limit=10)
    assert len(again) == 5, "expired leases come back"


def test_settle_by_a_worker_that_lost_its_lease_keeps_evidence_not_the_row(
    database: Database, clock: FixedClock
) -> None:
    d = record(database, clock, ["a@corp.test"]).deliveries[0]
    lease = timedelta(seconds=30)
    with database.write() as conn:
        claim(conn, owner="slow", now=clock.now(), lease=lease, limit=1)
    clock.advance(40)
    with database.write() as conn:
        claim(conn, owner="fast", now=clock.now(), lease=lease, limit=1)
    sent = NewEvidence(
        delivery_id=d.delivery_id,
        source=EvidenceSource.SMTP_REPLY,
        level=Level.SUBMITTED,
        observed_at=clock.now(),
        raw=b"250 ok",
    )
    with database.write() as conn:
        settle(
            conn, owner="slow", settlements=[Settlement(d.delivery_id, (sent,))], now=clock.now()
        )
    with database.read() as conn:
        assert outbox_depth(conn) == 1, "the row belongs to the newer holder"
        (view,) = find_deliveries(conn, delivery_ids=[d.delivery_id])
    assert view.level == "submitted"
    with database.write() as conn:
        settle(conn, owner="fast", settlements=[Settlement(d.delivery_id, ())], now=clock.now())
        assert outbox_depth(conn) == 0


def test_retry_reschedules_and_counts_attempts(database: Database, clock: FixedClock) -> None:
    d = record(database, clock, ["a@corp.test"]).deliveries[0]
    lease = timedelta(seconds=30)
    with database.write() as conn:
        claim(conn, owner="w", now=clock.now(), lease=lease, limit=1)
    deferred = NewEvidence(
        delivery_id=d.delivery_id,
        source=EvidenceSource.SMTP_REPLY,
        outcome=Outcome.DEFERRED,
        observed_at=clock.now(),
        raw=b"451 later",
    )
    retry_at = clock.now() + timedelta(minutes=5)
    with database.write() as conn:
        settle(
            conn,
            owner="w",
            settlements=[
                Settlement(
                    d.delivery_id,
                    (deferred,),
                    retry_at=retry_at,
                    error="451",
                    attempted_at=clock.now(),
                )
            ],
            now=clock.now(),
        )
    with database.write() as conn:
        assert (
            claim(conn, owner="w", now=clock.now() + timedelta(minutes=4), lease=lease, limit=5)
            == []
        )
        (again,) = claim(conn, owner="w", now=retry_at, lease=lease, limit=5)
    assert again.attempts == 1 and again.first_attempt_at == clock.now()
    with database.read() as conn:
        (view,) = find_deliveries(conn, delivery_ids=[d.delivery_id])
    assert view.outcome == "deferred"


def test_renew_and_release(database: Database, clock: FixedClock) -> None:
    record(database, clock, ["a@corp.test", "b@corp.test"])
    lease = timedelta(seconds=30)
    with database.write() as conn:
        held = claim(conn, owner="w", now=clock.now(), lease=lease, limit=5)
        ids = [c.delivery_id for c in held]
        assert renew(conn, owner="w", delivery_ids=ids, until=clock.now() + timedelta(hours=1)) == 2
        assert renew(conn, owner="other", delivery_ids=ids, until=clock.now()) == 0
    clock.advance(60)
    with database.write() as conn:
        assert claim(conn, owner="x", now=clock.now(), lease=lease, limit=5) == []
        release(conn, owner="w", delivery_ids=ids, now=clock.now())
        assert len(claim(conn, owner="x", now=clock.now(), lease=lease, limit=5)) == 2


def test_status_lookups(database: Database, clock: FixedClock) -> None:
    result = record(database, clock, ["alice@corp.test", "bob@corp.test"], topic="INC-7")
    record(database, clock, ["alice@corp.test"], topic="INC-8")
    with database.read() as conn:
        assert len(find_deliveries(conn, recipient="ALICE@corp.test")) == 2
        assert len(find_deliveries(conn, topic="INC-7")) == 2
        ref = result.deliveries[0].ref.replace("-", "").lower()
        (by_ref,) = find_deliveries(conn, ref=ref)
    assert by_ref.delivery_id == result.deliveries[0].delivery_id
