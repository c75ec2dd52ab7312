"""Reading the ledger: deliveries with their evidence, for status displays."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from landed.store import tables as t
from landed.store.ledger import _chunks
from landed.tokens import human_ref


@dataclass(frozen=True, slots=True)
class EvidenceView:
    """One piece of evidence as shown to people and programs."""

    id: int
    source: str
    level: str | None
    outcome: str | None
    status: str | None
    detail: str | None
    route: str | None
    observed_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "level": self.level,
            "outcome": self.outcome,
            "status": self.status,
            "observed_at": self.observed_at.isoformat(),
            "detail": self.detail,
            "route": self.route,
        }


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A delivery with its tracking identity, verdict and evidence."""

    delivery_id: str
    token: str
    ref: str
    message_id: str
    topic: str
    notification_id: str
    cls: str
    subject: str
    recipient: str
    seq: int
    level: str
    outcome: str | None
    created_at: datetime
    updated_at: datetime
    queued: bool
    attempts: int
    next_attempt_at: datetime | None
    evidence: tuple[EvidenceView, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "delivery_id": self.delivery_id,
            "token": self.token,
            "ref": self.ref,
            "message_id": self.message_id,
            "topic": self.topic,
            "notification_id": self.notification_id,
            "class": self.cls,
            "subject": self.subject,
            "recipient": self.recipient,
            "seq": self.seq,
            "level": self.level,
            "outcome": self.outcome,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "in_outbox": self.queued,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "evidence": [e.as_dict() for e in self.evidence],
        }


def find_deliveries(
    conn: Connection,
    *,
    delivery_ids: list[str] | None = None,
    ref: str | None = None,
    topic: str | None = None,
    recipient: str | None = None,
    limit: int = 1000,
) -> list[DeliveryView]:
    """Deliveries matching every given filter, newest first."""
    query = (
        select(
            t.delivery,
            t.topic.c.key.label("topic_key"),
            t.notification.c.cls,
            t.notification.c.subject,
            t.recipient.c.address,
            t.outbox.c.delivery_id.label("queued"),
            t.outbox.c.attempts,
            t.outbox.c.available_at,
        )
        .join(t.notification, t.notification.c.id == t.delivery.c.notification_id)
        .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .outerjoin(t.outbox, t.outbox.c.delivery_id == t.delivery.c.id)
        .order_by(t.delivery.c.id.desc())
        .limit(limit)
    )
    if delivery_ids is not None:
        query = query.where(t.delivery.c.id.in_(delivery_ids))
    if ref is not None:
        query = query.where(t.delivery.c.ref == ref)
    if topic is not None:
        query = query.where(t.topic.c.key == topic)
    if recipient is not None:
        query = query.where(t.recipient.c.address == recipient.strip().lower())
    rows = conn.execute(query).all()
    evidence: dict[str, list[EvidenceView]] = defaultdict(list)
    for chunk in _chunks([r.id for r in rows], 500):
        for e in conn.execute(
            select(t.evidence)
            .where(t.evidence.c.delivery_id.in_(chunk))
            .order_by(t.evidence.c.observed_at, t.evidence.c.id)
        ):
            evidence[e.delivery_id].append(
                EvidenceView(
                    e.id, e.source, e.level, e.outcome, e.status, e.detail, e.route, e.observed_at
                )
            )
    return [
        DeliveryView(
            delivery_id=r.id,
            token=r.token,
            ref=human_ref(r.id),
            message_id=r.message_id,
            topic=r.topic_key,
            notification_id=r.notification_id,
            cls=r.cls,
            subject=r.subject,
            recipient=r.address,
            seq=r.seq,
            level=r.level,
            outcome=r.outcome,
            created_at=r.created_at,
            updated_at=r.updated_at,
            queued=r.queued is not None,
            attempts=r.attempts or 0,
            next_attempt_at=r.available_at,
            evidence=tuple(evidence[r.id]),
        )
        for r in rows
    ]


def outbox_depth(conn: Connection) -> int:
    """How many deliveries are waiting in the outbox."""
    from sqlalchemy import func

    return int(conn.execute(select(func.count()).select_from(t.outbox)).scalar_one())
