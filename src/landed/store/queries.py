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


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One notification in a recipient's ledger."""

    seq: int
    delivery_id: str
    topic: str
    subject: str
    notification_id: str
    created_at: datetime
    level: str
    outcome: str | None
    required: str | None
    open_alerts: int
    resends: int

    @property
    def proven(self) -> bool:
        """Reached its policy's level with no negative outcome."""
        from landed.domain import Level

        if self.outcome in ("bounced", "complained", "suppressed", "rejected"):
            return False
        return Level(self.level).rank >= Level(self.required or "accepted").rank

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "delivery_id": self.delivery_id,
            "ref": human_ref(self.delivery_id),
            "topic": self.topic,
            "subject": self.subject,
            "notification_id": self.notification_id,
            "created_at": self.created_at.isoformat(),
            "level": self.level,
            "outcome": self.outcome,
            "required": self.required,
            "proven": self.proven,
            "open_alerts": self.open_alerts,
            "resends": self.resends,
        }


def recipient_ledger(conn: Connection, address: str, *, limit: int = 10_000) -> list[LedgerEntry]:
    """Every notification for ``address``, by its sequence number."""
    from sqlalchemy import func

    address = address.strip().lower()
    alerts = (
        select(t.alert.c.delivery_id, func.count().label("n"))
        .where(t.alert.c.state == "open")
        .group_by(t.alert.c.delivery_id)
        .subquery()
    )
    resend = t.delivery.alias("resend")
    resends = (
        select(resend.c.resend_of, func.count().label("n"))
        .where(resend.c.resend_of.is_not(None))
        .group_by(resend.c.resend_of)
        .subquery()
    )
    rows = conn.execute(
        select(
            t.delivery.c.seq,
            t.delivery.c.id,
            t.delivery.c.level,
            t.delivery.c.outcome,
            t.delivery.c.required,
            t.topic.c.key,
            t.notification.c.subject,
            t.notification.c.id.label("notification_id"),
            t.notification.c.created_at,
            alerts.c.n.label("open_alerts"),
            resends.c.n.label("resends"),
        )
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .join(t.notification, t.notification.c.id == t.delivery.c.notification_id)
        .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
        .outerjoin(alerts, alerts.c.delivery_id == t.delivery.c.id)
        .outerjoin(resends, resends.c.resend_of == t.delivery.c.id)
        .where(t.recipient.c.address == address, t.delivery.c.resend_of.is_(None))
        .order_by(t.delivery.c.seq)
        .limit(limit)
    )
    return [
        LedgerEntry(
            seq=r.seq,
            delivery_id=r.id,
            topic=r.key,
            subject=r.subject,
            notification_id=r.notification_id,
            created_at=r.created_at,
            level=r.level,
            outcome=r.outcome,
            required=r.required,
            open_alerts=r.open_alerts or 0,
            resends=r.resends or 0,
        )
        for r in rows
    ]


def sequence_gaps(entries: list[LedgerEntry]) -> list[int]:
    """Sequence numbers with no notification in the ledger (there should be none)."""
    seen = {e.seq for e in entries}
    return [n for n in range(1, max(seen, default=0) + 1) if n not in seen]


@dataclass(frozen=True, slots=True)
class TopicMatrix:
    """Recipients against the notifications of one topic."""

    topic: str
    notifications: tuple[tuple[str, str, datetime], ...]  # id, subject, created_at
    recipients: tuple[str, ...]
    #: (recipient, notification id) -> (level, outcome, delivery id)
    cells: dict[tuple[str, str], tuple[str, str | None, str]]

    def as_dicts(self) -> list[dict[str, object]]:
        """One object per recipient, with a cell per notification."""
        out: list[dict[str, object]] = []
        for recipient in self.recipients:
            cells = []
            for notification_id, subject, created_at in self.notifications:
                cell = self.cells.get((recipient, notification_id))
                cells.append(
                    {
                        "notification_id": notification_id,
                        "subject": subject,
                        "created_at": created_at.isoformat(),
                        "level": cell[0] if cell else None,
                        "outcome": cell[1] if cell else None,
                        "delivery_id": cell[2] if cell else None,
                    }
                )
            out.append({"topic": self.topic, "recipient": recipient, "notifications": cells})
        return out


def topic_matrix(conn: Connection, key: str) -> TopicMatrix:
    """Who got what about topic ``key`` (originals only; resends count towards them)."""
    rows = conn.execute(
        select(
            t.notification.c.id.label("notification_id"),
            t.notification.c.subject,
            t.notification.c.created_at,
            t.recipient.c.address,
            t.delivery.c.id,
            t.delivery.c.level,
            t.delivery.c.outcome,
        )
        .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
        .join(t.delivery, t.delivery.c.notification_id == t.notification.c.id)
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .where(t.topic.c.key == key, t.delivery.c.resend_of.is_(None))
        .order_by(t.notification.c.created_at, t.recipient.c.address)
    ).all()
    notifications: dict[str, tuple[str, str, datetime]] = {}
    recipients: dict[str, None] = {}
    cells: dict[tuple[str, str], tuple[str, str | None, str]] = {}
    for r in rows:
        notifications.setdefault(r.notification_id, (r.notification_id, r.subject, r.created_at))
        recipients.setdefault(r.address, None)
        cells[(r.address, r.notification_id)] = (r.level, r.outcome, r.id)
    return TopicMatrix(key, tuple(notifications.values()), tuple(sorted(recipients)), cells)
