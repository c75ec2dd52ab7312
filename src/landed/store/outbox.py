"""The outbox: claiming due deliveries with a lease, and settling them.

A claim moves a row's ``available_at`` to ``now + lease`` and stamps the
worker's name on it. If the worker dies, the row becomes available again when
the lease runs out and another worker sends it: at-least-once, and since the
message is rebuilt from the ledger, the resend carries the same Message-ID.

On PostgreSQL the claim is ``FOR UPDATE SKIP LOCKED``, so any number of
workers on any hosts take disjoint rows without waiting on each other. SQLite
has a single writer; its claim runs inside ``BEGIN IMMEDIATE`` (see
``engine.py``), which serializes claims across processes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, select, update

from landed.store import tables as t
from landed.store.ledger import NewEvidence, _chunks, append_evidence


@dataclass(frozen=True, slots=True)
class Claim:
    """An outbox row this worker now holds."""

    delivery_id: str
    attempts: int
    first_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutstandingItem:
    seq: int
    topic_key: str
    subject: str
    delivery_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SendJob:
    """Everything stored about one delivery that its email is built from."""

    delivery_id: str
    token: str
    seq: int
    to_header: str
    recipient: str
    topic_key: str
    cls: str
    sender: str
    subject: str
    text: str
    html: str | None
    created_at: datetime
    outstanding: tuple[OutstandingItem, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Settlement:
    """What to do with a claimed row after an attempt.

    ``retry_at`` set: keep the row, try again then. Otherwise the row is done
    and removed. ``evidence`` is appended either way.
    """

    delivery_id: str
    evidence: tuple[NewEvidence, ...]
    retry_at: datetime | None = None
    error: str | None = None
    attempted_at: datetime | None = None


def claim(
    conn: Connection, *, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Take up to ``limit`` due rows for ``lease``."""
    due = (
        select(t.outbox.c.delivery_id)
        .where(t.outbox.c.available_at <= now)
        .order_by(t.outbox.c.available_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = conn.execute(
        update(t.outbox)
        .where(t.outbox.c.delivery_id.in_(due.scalar_subquery()))
        .values(available_at=now + lease, lease_owner=owner)
        .returning(
            t.outbox.c.delivery_id,
            t.outbox.c.attempts,
            t.outbox.c.first_attempt_at,
            t.outbox.c.created_at,
        )
    ).all()
    claims = [Claim(r.delivery_id, r.attempts, r.first_attempt_at, r.created_at) for r in rows]
    claims.sort(key=lambda c: c.delivery_id)
    return claims


def renew(conn: Connection, *, owner: str, delivery_ids: Sequence[str], until: datetime) -> int:
    """Extend this worker's lease on rows it still holds; returns how many it holds."""
    held = 0
    for chunk in _chunks(list(delivery_ids), 500):
        held += conn.execute(
            update(t.outbox)
            .where(t.outbox.c.delivery_id.in_(chunk), t.outbox.c.lease_owner == owner)
            .values(available_at=until)
        ).rowcount
    return held


def release(conn: Connection, *, owner: str, delivery_ids: Sequence[str], now: datetime) -> None:
    """Give rows back at once (graceful shutdown), without counting an attempt."""
    for chunk in _chunks(list(delivery_ids), 500):
        conn.execute(
            update(t.outbox)
            .where(t.outbox.c.delivery_id.in_(chunk), t.outbox.c.lease_owner == owner)
            .values(available_at=now, lease_owner=None)
        )


def load_jobs(conn: Connection, delivery_ids: Sequence[str]) -> list[SendJob]:
    """The stored data of each delivery, in the order given."""
    if not delivery_ids:
        return []
    rows: dict[str, Row[Any]] = {}
    listed: dict[str, list[OutstandingItem]] = defaultdict(list)
    for chunk in _chunks(list(delivery_ids), 500):
        query = (
            select(
                t.delivery.c.id,
                t.delivery.c.token,
                t.delivery.c.seq,
                t.delivery.c.to_header,
                t.recipient.c.address,
                t.topic.c.key,
                t.notification.c.cls,
                t.notification.c.sender,
                t.notification.c.subject,
                t.notification.c.text,
                t.notification.c.html,
                t.notification.c.created_at,
            )
            .join(t.notification, t.notification.c.id == t.delivery.c.notification_id)
            .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
            .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
            .where(t.delivery.c.id.in_(chunk))
        )
        rows.update({row.id: row for row in conn.execute(query)})
        earlier = t.delivery.alias("earlier")
        earlier_n = t.notification.alias("earlier_n")
        earlier_t = t.topic.alias("earlier_t")
        for row in conn.execute(
            select(
                t.outstanding.c.delivery_id,
                earlier.c.id,
                earlier.c.seq,
                earlier_t.c.key,
                earlier_n.c.subject,
                earlier_n.c.created_at,
            )
            .join(earlier, earlier.c.id == t.outstanding.c.listed_delivery_id)
            .join(earlier_n, earlier_n.c.id == earlier.c.notification_id)
            .join(earlier_t, earlier_t.c.id == earlier_n.c.topic_id)
            .where(t.outstanding.c.delivery_id.in_(chunk))
        ):
            listed[row.delivery_id].append(
                OutstandingItem(row.seq, row.key, row.subject, row.id, row.created_at)
            )
    jobs = []
    for delivery_id in delivery_ids:
        found = rows.get(delivery_id)
        if found is None:
            continue
        row = found
        jobs.append(
            SendJob(
                delivery_id=row.id,
                token=row.token,
                seq=row.seq,
                to_header=row.to_header,
                recipient=row.address,
                topic_key=row.key,
                cls=row.cls,
                sender=row.sender,
                subject=row.subject,
                text=row.text,
                html=row.html,
                created_at=row.created_at,
                outstanding=tuple(sorted(listed[delivery_id], key=lambda o: o.seq)),
            )
        )
    return jobs


def settle(
    conn: Connection, *, owner: str, settlements: Sequence[Settlement], now: datetime
) -> None:
    """Record the evidence of attempts and finish or reschedule their rows.

    Evidence is appended even if the lease was lost meanwhile (the send did
    happen); the row itself is only touched while this worker still holds it,
    so a worker that overran its lease cannot undo the newer holder's work.
    """
    if not settlements:
        return
    append_evidence(conn, [e for s in settlements for e in s.evidence], now=now)
    done = [s.delivery_id for s in settlements if s.retry_at is None]
    for chunk in _chunks(done, 500):
        conn.execute(
            delete(t.outbox).where(
                t.outbox.c.delivery_id.in_(chunk), t.outbox.c.lease_owner == owner
            )
        )
    retries = [
        {
            "b_id": s.delivery_id,
            "b_owner": owner,
            "available_at": s.retry_at,
            "last_error": s.error,
            "first_attempt_at": s.attempted_at,
        }
        for s in settlements
        if s.retry_at is not None
    ]
    if retries:
        conn.execute(
            update(t.outbox)
            .where(
                t.outbox.c.delivery_id == bindparam("b_id"),
                t.outbox.c.lease_owner == bindparam("b_owner"),
            )
            .values(
                available_at=bindparam("available_at"),
                attempts=t.outbox.c.attempts + 1,
                last_error=bindparam("last_error"),
                lease_owner=None,
                # Keep the first attempt's time once set.
                first_attempt_at=func.coalesce(
                    t.outbox.c.first_attempt_at, bindparam("first_attempt_at")
                ),
            ),
            retries,
        )
