"""notify's statements on both engines: the topic row, stored datetimes, suppression
read with the sequence numbers, and concurrent notifies to the same people."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from landed.clock import FixedClock
from landed.compose.request import validate_request
from landed.domain import Level
from landed.domain.policy import Policy
from landed.store import Database
from landed.store import tables as t
from landed.store.alerts import suppress
from landed.store.ledger import NotifyResult, notify
from landed.store.record import record_notification
from landed.tokens import Keyring

RING = Keyring("k1", {"k1": b"k" * 32})
POLICIES = (Policy(name="p", required=Level.DELIVERED, deadline=timedelta(minutes=15)),)


def record(
    db: Database, now: datetime, to: list[str], topic: str = "INC-1", **kw: object
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
        return record_notification(
            conn,
            request,
            policies=POLICIES,
            sender="Alerts <alerts@corp.test>",
            keyring=RING,
            id_domain="corp.test",
            now=now,
        )


def _forbid_topic_updates(db: Database) -> None:
    """A trigger that fails any UPDATE of a topic row (an upsert's DO UPDATE included)."""
    with db.write() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER topic_frozen BEFORE UPDATE ON topic "
                "BEGIN SELECT RAISE(ABORT, 'topic row rewritten'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION topic_frozen() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'topic row rewritten'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER topic_frozen BEFORE UPDATE ON topic "
                "FOR EACH ROW EXECUTE FUNCTION topic_frozen()"
            )


def test_a_known_topic_is_read_not_rewritten(database: Database, clock: FixedClock) -> None:
    _forbid_topic_updates(database)
    first = record(database, clock.now(), ["a@corp.test"], topic="INC-1")
    clock.advance(60)
    second = record(database, clock.now(), ["b@corp.test"], topic="INC-1")
    other = record(database, clock.now(), ["a@corp.test"], topic="INC-2")
    with database.read() as conn:
        topics = conn.execute(select(t.topic.c.id, t.topic.c.key, t.topic.c.created_at)).all()
        by_notification = dict(
            conn.execute(select(t.notification.c.id, t.notification.c.topic_id)).tuples().all()
        )
    assert sorted(key for _, key, _ in topics) == ["INC-1", "INC-2"]
    ids = {key: topic_id for topic_id, key, _ in topics}
    assert by_notification[first.notification_id] == ids["INC-1"]
    assert by_notification[second.notification_id] == ids["INC-1"]
    assert by_notification[other.notification_id] == ids["INC-2"]
    # The topic keeps the time it was first seen.
    assert {key: at for _, key, at in topics}["INC-1"] == clock.now() - timedelta(seconds=60)


def test_stored_datetimes_are_utc_and_in_sqlalchemys_form(database: Database) -> None:
    # Two hours east of UTC, on a whole second: SQLite's driver would drop the
    # ".000000" that SQLAlchemy always writes, and keep the local time.
    now = datetime(2026, 3, 1, 14, 0, 5, tzinfo=timezone(timedelta(hours=2)))
    result = record(database, now, ["a@corp.test"])
    delivery_id = result.deliveries[0].delivery_id
    with database.read() as conn:
        d = conn.execute(
            select(t.delivery.c.created_at, t.delivery.c.updated_at, t.delivery.c.deadline_at)
        ).one()
        assert tuple(d) == (now, now, now + timedelta(minutes=15))
        assert conn.execute(select(t.notification.c.created_at)).scalar_one() == now
        assert conn.execute(select(t.recipient.c.created_at)).scalar_one() == now
        assert conn.execute(select(t.topic.c.created_at)).scalar_one() == now
        outbox = conn.execute(select(t.outbox.c.available_at, t.outbox.c.created_at)).one()
        assert tuple(outbox) == (now, now)
        assert conn.execute(select(t.outbox.c.delivery_id)).scalar_one() == delivery_id
        if conn.dialect.name == "sqlite":
            raw = conn.exec_driver_sql(
                "SELECT n.created_at, d.created_at, d.deadline_at, o.available_at "
                "FROM notification n JOIN delivery d ON d.notification_id = n.id "
                "JOIN outbox o ON o.delivery_id = d.id"
            ).one()
            assert tuple(raw) == (
                "2026-03-01 12:00:05.000000",
                "2026-03-01 12:00:05.000000",
                "2026-03-01 12:15:05.000000",
                "2026-03-01 12:00:05.000000",
            )


def test_a_naive_datetime_is_refused(database: Database) -> None:
    request = validate_request(topic="T", cls="c", to=["a@corp.test"], subject="s", text="t")
    with pytest.raises(ValueError, match="naive"), database.write() as conn:
        notify(
            conn,
            request,
            sender="a@corp.test",
            keyring=RING,
            id_domain="corp.test",
            now=datetime(2026, 3, 1, 12, 0),
        )


def test_suppression_is_read_with_the_sequence_numbers(
    database: Database, clock: FixedClock
) -> None:
    now = clock.now()
    with database.write() as conn:
        suppress(conn, "Bob@corp.test", reason="bounced", now=now, expires_at=None)
        suppress(conn, "carol@corp.test", reason="manual", now=now, expires_at=now)  # expired
        suppress(
            conn, "dave@corp.test", reason="complained", now=now, expires_at=now + timedelta(1)
        )
    result = record(
        database, now, ["alice@corp.test", "bob@corp.test", "carol@corp.test", "Dave@corp.test"]
    )
    assert dict(result.suppressed) == {"bob@corp.test": "bounced", "dave@corp.test": "complained"}
    by_address = {d.recipient: d.delivery_id for d in result.deliveries}
    with database.read() as conn:
        queued = set(conn.execute(select(t.outbox.c.delivery_id)).scalars())
        outcomes = dict(conn.execute(select(t.delivery.c.id, t.delivery.c.outcome)).tuples().all())
    assert queued == {by_address["alice@corp.test"], by_address["carol@corp.test"]}
    assert outcomes[by_address["bob@corp.test"]] == "suppressed"
    assert outcomes[by_address["dave@corp.test"]] == "suppressed"
    assert outcomes[by_address["alice@corp.test"]] is None
    # A replay under the same idempotency key records nothing new.
    again = record(database, now, ["alice@corp.test"], idempotency_key="k-1")
    replay = record(database, now, ["alice@corp.test"], idempotency_key="k-1")
    assert again.created and not replay.created and not replay.suppressed


def test_concurrent_notifies_to_the_same_people(database: Database, clock: FixedClock) -> None:
    """Notifies in parallel, to overlapping recipients in different orders, some of
    them creating the same new topic at once: no deadlock and no error, each
    recipient's numbers run 1..n without a gap, and every email lists exactly
    the recipient's earlier deliveries (on PostgreSQL, the row lock on the
    recipient orders them; on SQLite, the write lock)."""
    people = [f"p{i}@corp.test" for i in range(6)]
    threads, per_thread = 6, 5
    start = threading.Barrier(threads)
    failures: list[BaseException] = []
    results: list[NotifyResult] = []
    lock = threading.Lock()

    def run(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for n in range(per_thread):
                to = rng.sample(people, rng.randint(2, len(people)))
                result = record(database, clock.now(), to, topic=f"INC-{n}")
                with lock:
                    results.append(result)
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not failures, failures
    assert len(results) == threads * per_thread

    with database.read() as conn:
        rows = conn.execute(
            select(t.delivery.c.id, t.recipient.c.address, t.delivery.c.seq).join(
                t.recipient, t.recipient.c.id == t.delivery.c.recipient_id
            )
        ).all()
        listed = {
            delivery_id: set((listing or "").split())
            for delivery_id, listing in conn.execute(select(t.delivery.c.id, t.delivery.c.listed))
        }
        topics = conn.execute(select(t.topic.c.key)).scalars().all()
        queued = set(conn.execute(select(t.outbox.c.delivery_id)).scalars())
        last_seq = dict(
            conn.execute(select(t.recipient.c.address, t.recipient.c.last_seq)).tuples().all()
        )

    assert sorted(topics) == [f"INC-{n}" for n in range(per_thread)]
    assert queued == {delivery_id for delivery_id, _, _ in rows}
    history: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for delivery_id, address, seq in rows:
        history[address].append((seq, delivery_id))
    for address, deliveries in history.items():
        deliveries.sort()
        assert [seq for seq, _ in deliveries] == list(range(1, len(deliveries) + 1)), address
        assert last_seq[address] == len(deliveries)
        for i, (_, delivery_id) in enumerate(deliveries):
            earlier = {d for _, d in deliveries[max(0, i - 10) : i]}
            assert listed[delivery_id] == earlier, (address, i)
