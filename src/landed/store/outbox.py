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

import functools
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Delete,
    Integer,
    Row,
    Select,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.sql.dml import ReturningUpdate

from landed.compose.message import Outstanding
from landed.store import tables as t
from landed.store.idlists import id_list, one_of
from landed.store.ledger import NewEvidence, _chunks, append_evidence


@dataclass(frozen=True, slots=True)
class Claim:
    """An outbox row this worker now holds."""

    delivery_id: str
    attempts: int
    first_attempt_at: datetime | None
    created_at: datetime
    #: Which hop of its route the delivery is on (0: the first).
    route_index: int = 0
    #: Since when that hop has failed for this delivery, without a success.
    route_failing_since: datetime | None = None


#: An earlier delivery listed in an email as still unconfirmed: the very type the
#: composer takes, so a job's list goes into the email as it is.
OutstandingItem = Outstanding


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

    ``retry_at`` set: keep the row, try again then, on hop ``route_index``
    (failing since ``route_failing_since``). Otherwise the row is done and
    removed. ``evidence`` is appended either way; ``route`` (the transport
    that was tried) is recorded on the delivery.
    """

    delivery_id: str
    evidence: tuple[NewEvidence, ...]
    retry_at: datetime | None = None
    error: str | None = None
    attempted_at: datetime | None = None
    route: str | None = None
    route_index: int = 0
    route_failing_since: datetime | None = None


@functools.cache
def _claim_statement(postgresql: bool) -> ReturningUpdate[Any]:
    due = (
        select(t.outbox.c.delivery_id)
        .where(t.outbox.c.available_at <= bindparam("now", type_=t.UTCDateTime()))
        .order_by(t.outbox.c.available_at)
        .limit(bindparam("limit", type_=Integer()))
    )
    if postgresql:
        due = due.with_for_update(skip_locked=True)
    return (
        update(t.outbox)
        .where(t.outbox.c.delivery_id.in_(due.scalar_subquery()))
        .values(
            available_at=bindparam("until", type_=t.UTCDateTime()),
            lease_owner=bindparam("owner"),
        )
        .returning(
            t.outbox.c.delivery_id,
            t.outbox.c.attempts,
            t.outbox.c.first_attempt_at,
            t.outbox.c.created_at,
            t.outbox.c.route_index,
            t.outbox.c.route_failing_since,
        )
    )


def claim(
    conn: Connection, *, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Take up to ``limit`` due rows for ``lease``."""
    rows = conn.execute(
        _claim_statement(conn.dialect.name == "postgresql"),
        {"now": now, "until": now + lease, "owner": owner, "limit": limit},
    ).all()
    claims = [
        Claim(
            r.delivery_id,
            r.attempts,
            r.first_attempt_at,
            r.created_at,
            r.route_index,
            r.route_failing_since,
        )
        for r in rows
    ]
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


_JOBS = (
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
        t.delivery.c.listed,
    )
    .join(t.notification, t.notification.c.id == t.delivery.c.notification_id)
    .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
    .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
)
_earlier_n = t.notification.alias("earlier_n")
_earlier_t = t.topic.alias("earlier_t")
#: What a listed delivery is shown with: it never changes once recorded.
_LISTED_DETAILS = (
    select(
        t.delivery.c.id,
        t.delivery.c.seq,
        _earlier_t.c.key,
        _earlier_n.c.subject,
        _earlier_n.c.created_at,
    )
    .join(_earlier_n, _earlier_n.c.id == t.delivery.c.notification_id)
    .join(_earlier_t, _earlier_t.c.id == _earlier_n.c.topic_id)
)


@dataclass(frozen=True, slots=True)
class _JobStatements:
    """load_jobs' statements for one dialect, each id list one parameter."""

    jobs: Select[Any]
    listed_details: Select[Any]


@functools.cache
def _job_statements(dialect: str) -> _JobStatements:
    return _JobStatements(
        jobs=_JOBS.where(one_of(dialect, t.delivery.c.id, "ids")),
        listed_details=_LISTED_DETAILS.where(one_of(dialect, t.delivery.c.id, "ids")),
    )


def load_jobs(
    conn: Connection,
    delivery_ids: Sequence[str],
    *,
    listed_cache: MutableMapping[str, OutstandingItem] | None = None,
) -> list[SendJob]:
    """The stored data of each delivery, in the order given.

    ``listed_cache`` keeps the earlier deliveries that emails list as
    outstanding between calls (a worker lists the same ones again and again:
    each stays in its recipient's next ten emails). What is cached never
    changes once recorded: a delivery's sequence number, its notification's
    topic, subject and time. The caller bounds its size.
    """
    if not delivery_ids:
        return []
    cache: MutableMapping[str, OutstandingItem] = {} if listed_cache is None else listed_cache
    rows: dict[str, Row[Any]] = {}
    listed: dict[str, list[str]] = {}
    sql = _job_statements(conn.dialect.name)
    for chunk in _chunks(list(delivery_ids), 500):
        for row in conn.execute(sql.jobs, {"ids": id_list(conn.dialect.name, chunk)}):
            rows[row[0]] = row
            if row.listed:
                listed[row[0]] = row.listed.split()
    missing = sorted({i for ids in listed.values() for i in ids if i not in cache})
    for chunk in _chunks(missing, 500):
        for listed_id, seq, key, subject, created_at in conn.execute(
            sql.listed_details, {"ids": id_list(conn.dialect.name, chunk)}
        ):
            cache[listed_id] = OutstandingItem(seq, key, subject, listed_id, created_at)
    jobs = []
    for delivery_id in delivery_ids:
        found = rows.get(delivery_id)
        if found is None:
            continue
        (_, token, seq, to_header, address, key, cls, sender, subject, text, html, created, _) = (
            found
        )
        items = [cache[i] for i in listed.get(delivery_id, ()) if i in cache]
        jobs.append(
            SendJob(
                delivery_id=delivery_id,
                token=token,
                seq=seq,
                to_header=to_header,
                recipient=address,
                topic_key=key,
                cls=cls,
                sender=sender,
                subject=subject,
                text=text,
                html=html,
                created_at=created,
                outstanding=tuple(sorted(items, key=lambda o: o.seq)),
            )
        )
    return jobs


@functools.cache
def _delete_held(dialect: str) -> Delete:
    return delete(t.outbox).where(
        one_of(dialect, t.outbox.c.delivery_id, "ids"),
        t.outbox.c.lease_owner == bindparam("owner"),
    )


def settle(
    conn: Connection, *, owner: str, settlements: Sequence[Settlement], now: datetime
) -> None:
    """Record the evidence of attempts and finish or reschedule their rows.

    Evidence is appended even if the lease was lost meanwhile (the send did
    happen), and so is the route it went through; the row itself (due time,
    attempts, hop) is only touched while this worker still holds it, so a
    worker that overran its lease cannot undo the newer holder's work or move
    the delivery to another hop under it.
    """
    if not settlements:
        return
    append_evidence(
        conn,
        [e for s in settlements for e in s.evidence],
        now=now,
        routes={s.delivery_id: s.route for s in settlements if s.route},
    )
    dialect = conn.dialect.name
    done = [s.delivery_id for s in settlements if s.retry_at is None]
    for chunk in _chunks(done, 500):
        conn.execute(_delete_held(dialect), {"ids": id_list(dialect, chunk), "owner": owner})
    retries = [
        {
            "b_id": s.delivery_id,
            "b_owner": owner,
            "available_at": s.retry_at,
            "last_error": s.error,
            "first_attempt_at": s.attempted_at,
            "route_index": s.route_index,
            "route_failing_since": s.route_failing_since,
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
                route_index=bindparam("route_index"),
                route_failing_since=bindparam("route_failing_since", type_=t.UTCDateTime()),
                # Keep the first attempt's time once set.
                first_attempt_at=func.coalesce(
                    t.outbox.c.first_attempt_at, bindparam("first_attempt_at")
                ),
            ),
            retries,
        )
