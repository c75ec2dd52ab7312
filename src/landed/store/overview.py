"""Read models for the dashboard: recent topics, the level funnel, evidence
latency, raw evidence, and what the tracking pages show about a delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, func, select

from landed.store import tables as t


@dataclass(frozen=True, slots=True)
class TopicSummary:
    key: str
    notifications: int
    last_at: datetime


def recent_topics(conn: Connection, *, limit: int = 30) -> list[TopicSummary]:
    """Topics with their latest notification first."""
    rows = conn.execute(
        select(
            t.topic.c.key,
            func.count(t.notification.c.id).label("n"),
            func.max(t.notification.c.created_at).label("last_at"),
        )
        .join(t.notification, t.notification.c.topic_id == t.topic.c.id)
        .group_by(t.topic.c.key)
        .order_by(func.max(t.notification.c.created_at).desc())
        .limit(limit)
    ).all()
    return [TopicSummary(r.key, int(r.n), _aware(r.last_at)) for r in rows]


def recent_recipients(conn: Connection, *, limit: int = 30) -> list[tuple[str, int]]:
    """Recipients most recently written to, with how many notifications each has had."""
    rows = conn.execute(
        select(t.recipient.c.address, t.recipient.c.last_seq)
        .order_by(t.recipient.c.id.desc())
        .limit(limit)
    ).all()
    return [(r.address, int(r.last_seq)) for r in rows]


def level_counts(conn: Connection, *, since: datetime) -> dict[tuple[str, str | None], int]:
    """How many deliveries made since ``since`` stand at each (level, outcome)."""
    rows = conn.execute(
        select(t.delivery.c.level, t.delivery.c.outcome, func.count().label("n"))
        .where(t.delivery.c.created_at >= since)
        .group_by(t.delivery.c.level, t.delivery.c.outcome)
    ).all()
    return {(r.level, r.outcome): int(r.n) for r in rows}


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    """How long one delivery took from being recorded to its first proof of a level."""

    created_at: datetime
    level: str
    seconds: float


def evidence_latencies(
    conn: Connection, *, since: datetime, limit: int = 50_000
) -> list[LatencyPoint]:
    """For deliveries made since ``since``: the first evidence of each level reached.

    The subtraction happens in Python: SQLite and PostgreSQL have no common
    interval arithmetic, and ``limit`` keeps the work bounded.
    """
    first = (
        select(
            t.evidence.c.delivery_id,
            t.evidence.c.level,
            func.min(t.evidence.c.observed_at).label("at"),
        )
        .where(t.evidence.c.level.is_not(None), t.evidence.c.delivery_id.is_not(None))
        .group_by(t.evidence.c.delivery_id, t.evidence.c.level)
        .subquery()
    )
    rows = conn.execute(
        select(t.delivery.c.created_at, first.c.level, first.c.at)
        .join(first, first.c.delivery_id == t.delivery.c.id)
        .where(t.delivery.c.created_at >= since)
        .order_by(t.delivery.c.created_at.desc())
        .limit(limit)
    ).all()
    points = []
    for r in rows:
        created = _aware(r.created_at)
        seconds = (_aware(r.at) - created).total_seconds()
        points.append(LatencyPoint(created, r.level, max(0.0, seconds)))
    return points


@dataclass(frozen=True, slots=True)
class RawEvidence:
    id: int
    raw: bytes
    inbound_id: int | None
    attribution: str | None
    reason: str | None
    parser: str | None


def raw_evidence(conn: Connection, delivery_id: str) -> dict[int, RawEvidence]:
    """The raw material kept with each piece of a delivery's evidence, by evidence id."""
    rows = conn.execute(
        select(
            t.evidence.c.id,
            t.evidence.c.raw,
            t.evidence.c.inbound_id,
            t.evidence.c.attribution,
            t.evidence.c.reason,
            t.evidence.c.parser,
        ).where(t.evidence.c.delivery_id == delivery_id)
    ).all()
    return {
        r.id: RawEvidence(r.id, bytes(r.raw), r.inbound_id, r.attribution, r.reason, r.parser)
        for r in rows
    }


def inbound_raw(conn: Connection, inbound_id: int) -> tuple[str, str, bytes] | None:
    """A received message: (channel, state, raw bytes), or None."""
    row = conn.execute(
        select(t.inbound.c.channel, t.inbound.c.state, t.inbound.c.raw).where(
            t.inbound.c.id == inbound_id
        )
    ).first()
    return None if row is None else (row.channel, row.state, bytes(row.raw))


@dataclass(frozen=True, slots=True)
class AckItem:
    """A notification as the acknowledgement page lists it."""

    delivery_id: str
    seq: int
    topic: str
    subject: str
    created_at: datetime
    level: str


@dataclass(frozen=True, slots=True)
class AckContext:
    """What the acknowledgement page shows: the delivery and what its email listed."""

    delivery: AckItem
    recipient: str
    listed: tuple[AckItem, ...]


def _ack_query(*extra: Any) -> Select[Any]:
    return (
        select(
            t.delivery.c.id,
            t.delivery.c.seq,
            t.topic.c.key,
            t.notification.c.subject,
            t.notification.c.created_at,
            t.delivery.c.level,
            *extra,
        )
        .join(t.notification, t.notification.c.id == t.delivery.c.notification_id)
        .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
    )


def _ack_item(r: Row[Any]) -> AckItem:
    return AckItem(r.id, r.seq, r.key, r.subject, _aware(r.created_at), r.level)


def ack_context(conn: Connection, delivery_id: str) -> AckContext | None:
    """The delivery and the earlier notifications its email listed as outstanding."""
    own = conn.execute(
        _ack_query(t.recipient.c.address, t.delivery.c.listed)
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .where(t.delivery.c.id == delivery_id)
    ).first()
    if own is None:
        return None
    listed = (
        conn.execute(
            _ack_query().where(t.delivery.c.id.in_(own.listed.split())).order_by(t.delivery.c.seq)
        ).all()
        if own.listed
        else []
    )
    return AckContext(_ack_item(own), own.address, tuple(_ack_item(r) for r in listed))


def delivery_exists(conn: Connection, delivery_id: str) -> bool:
    return (
        conn.execute(select(t.delivery.c.id).where(t.delivery.c.id == delivery_id)).first()
        is not None
    )


def _aware(value: datetime | str) -> datetime:
    # Aggregates (min, max) bypass the column type on SQLite and come back naive.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
