"""Writing to the ledger: notify (with its outbox rows) and appending evidence.

Every function takes an open ``Connection`` inside a transaction and leaves
committing to the caller, so recording a notification and queueing its
deliveries is one transaction, as is recording a send's evidence and settling
its outbox row.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from landed.compose.headers import Mailbox
from landed.compose.request import NotifyRequest
from landed.domain import EvidenceSource, Fact, Level, Outcome, fold
from landed.store import tables as t
from landed.tokens import Keyring, human_ref, new_id


@dataclass(frozen=True, slots=True)
class CreatedDelivery:
    """A delivery as recorded by ``notify``."""

    delivery_id: str
    token: str
    recipient: str
    seq: int
    ref: str


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What ``notify`` recorded; ``created`` is False for an idempotent replay."""

    notification_id: str
    deliveries: tuple[CreatedDelivery, ...]
    created: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEvidence:
    """One piece of evidence to append."""

    delivery_id: str | None
    source: EvidenceSource
    observed_at: datetime
    raw: bytes
    level: Level | None = None
    outcome: Outcome | None = None
    status: str | None = None
    detail: str | None = None
    route: str | None = None
    #: Identifies the event, so ingesting it twice stores it once. Defaults to a
    #: hash of delivery, source and raw bytes.
    dedupe_key: str | None = None

    def key(self) -> str:
        if self.dedupe_key is not None:
            material = self.dedupe_key.encode()
        else:
            material = b"\0".join(
                [(self.delivery_id or "").encode(), self.source.value.encode(), self.raw]
            )
        return hashlib.sha256(material).hexdigest()


def dialect_insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ``ON CONFLICT`` on this connection's engine."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def notify(
    conn: Connection,
    request: NotifyRequest,
    *,
    sender: str,
    keyring: Keyring,
    id_domain: str,
    now: datetime,
    outstanding_below: Level = Level.DELIVERED,
    outstanding_limit: int = 10,
    outstanding_days: int = 30,
) -> NotifyResult:
    """Record a notification and queue one delivery per recipient."""
    if request.idempotency_key is not None:
        existing = _by_idempotency_key(conn, request.idempotency_key)
        if existing is not None:
            return existing

    ins = dialect_insert(conn, t.topic)
    topic_id = conn.execute(
        ins.values(key=request.topic, created_at=now)
        .on_conflict_do_update(index_elements=["key"], set_={"key": ins.excluded.key})
        .returning(t.topic.c.id)
    ).scalar_one()

    notification_id = new_id()
    conn.execute(
        t.notification.insert().values(
            id=notification_id,
            topic_id=topic_id,
            cls=request.cls,
            sender=sender,
            subject=request.subject,
            text=request.text,
            html=request.html,
            idempotency_key=request.idempotency_key,
            created_at=now,
        )
    )

    pending = [level.value for level in Level if level.rank < outstanding_below.rank]
    since = now - timedelta(days=outstanding_days)
    created: list[CreatedDelivery] = []
    delivery_rows: list[dict[str, object]] = []
    outstanding_rows: list[dict[str, object]] = []
    outbox_rows: list[dict[str, object]] = []
    for mailbox in request.to:
        recipient_id, seq = _next_seq(conn, mailbox, now)
        if outstanding_limit:
            earlier = list(
                conn.execute(
                    select(t.delivery.c.id)
                    .where(
                        t.delivery.c.recipient_id == recipient_id,
                        t.delivery.c.level.in_(pending),
                        t.delivery.c.created_at >= since,
                    )
                    .order_by(t.delivery.c.seq.desc())
                    .limit(outstanding_limit)
                ).scalars()
            )
        else:
            earlier = []
        delivery_id = new_id()
        token = keyring.sign(delivery_id)
        ref = human_ref(delivery_id)
        outstanding_rows += [{"delivery_id": delivery_id, "listed_delivery_id": e} for e in earlier]
        delivery_rows.append(
            {
                "id": delivery_id,
                "notification_id": notification_id,
                "recipient_id": recipient_id,
                "seq": seq,
                "to_header": _to_header(mailbox),
                "token": token,
                "ref": ref.replace("-", "").lower(),
                "message_id": f"<{token}@{id_domain}>",
                "level": Level.QUEUED.value,
                "outcome": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        outbox_rows.append(
            {"delivery_id": delivery_id, "available_at": now, "attempts": 0, "created_at": now}
        )
        created.append(CreatedDelivery(delivery_id, token, mailbox.normalized(), seq, ref))
    conn.execute(t.delivery.insert(), delivery_rows)
    if outstanding_rows:
        conn.execute(t.outstanding.insert(), outstanding_rows)
    conn.execute(t.outbox.insert(), outbox_rows)
    return NotifyResult(notification_id, tuple(created), True)


def _to_header(mailbox: Mailbox) -> str:
    if mailbox.display_name:
        return f"{mailbox.display_name} <{mailbox.address}>"
    return mailbox.address


def _next_seq(conn: Connection, mailbox: Mailbox, now: datetime) -> tuple[int, int]:
    # One statement creates the recipient or bumps its counter; on PostgreSQL the
    # row lock it takes orders concurrent notifies to the same recipient.
    ins = dialect_insert(conn, t.recipient)
    row = conn.execute(
        ins.values(address=mailbox.normalized(), last_seq=1, created_at=now)
        .on_conflict_do_update(
            index_elements=["address"], set_={"last_seq": t.recipient.c.last_seq + 1}
        )
        .returning(t.recipient.c.id, t.recipient.c.last_seq)
    ).one()
    return int(row.id), int(row.last_seq)


def _by_idempotency_key(conn: Connection, key: str) -> NotifyResult | None:
    notification_id = conn.execute(
        select(t.notification.c.id).where(t.notification.c.idempotency_key == key)
    ).scalar_one_or_none()
    if notification_id is None:
        return None
    rows = conn.execute(
        select(t.delivery.c.id, t.delivery.c.token, t.recipient.c.address, t.delivery.c.seq)
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .where(t.delivery.c.notification_id == notification_id)
        .order_by(t.delivery.c.id)
    ).all()
    deliveries = tuple(
        CreatedDelivery(r.id, r.token, r.address, r.seq, human_ref(r.id)) for r in rows
    )
    return NotifyResult(notification_id, deliveries, False)


def append_evidence(conn: Connection, items: Sequence[NewEvidence], *, now: datetime) -> int:
    """Append evidence (duplicates ignored) and refold the deliveries it touches.

    Returns how many rows were new.
    """
    if not items:
        return 0
    rows = [
        {
            "delivery_id": item.delivery_id,
            "source": item.source.value,
            "level": item.level.value if item.level else None,
            "outcome": item.outcome.value if item.outcome else None,
            "status": item.status,
            "detail": item.detail,
            "route": item.route,
            "observed_at": item.observed_at,
            "recorded_at": now,
            "dedupe_key": item.key(),
            "raw": item.raw,
        }
        for item in items
    ]
    keys = [item.key() for item in items]
    known: set[str] = set()
    for chunk in _chunks(keys, 500):
        known.update(
            conn.execute(
                select(t.evidence.c.dedupe_key).where(t.evidence.c.dedupe_key.in_(chunk))
            ).scalars()
        )
    fresh = {row["dedupe_key"]: row for row in rows if row["dedupe_key"] not in known}
    if fresh:
        # ON CONFLICT still guards against a concurrent writer of the same event.
        ins = dialect_insert(conn, t.evidence).on_conflict_do_nothing(index_elements=["dedupe_key"])
        conn.execute(ins, list(fresh.values()))
    refold(conn, {item.delivery_id for item in items if item.delivery_id}, now=now)
    return len(fresh)


def refold(conn: Connection, delivery_ids: Iterable[str], *, now: datetime) -> None:
    """Recompute the cached level and outcome of deliveries from all their evidence."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return
    facts: dict[str, list[Fact]] = defaultdict(list)
    for chunk in _chunks(ids, 500):
        for row in conn.execute(
            select(t.evidence.c.delivery_id, t.evidence.c.level, t.evidence.c.outcome).where(
                t.evidence.c.delivery_id.in_(chunk)
            )
        ):
            facts[row.delivery_id].append(
                Fact(
                    Level(row.level) if row.level else None,
                    Outcome(row.outcome) if row.outcome else None,
                )
            )
    updates = []
    for delivery_id in ids:
        verdict = fold(facts.get(delivery_id, ()))
        updates.append(
            {
                "b_id": delivery_id,
                "level": verdict.level.value,
                "outcome": verdict.outcome.value if verdict.outcome else None,
                "updated_at": now,
            }
        )
    conn.execute(
        update(t.delivery)
        .where(t.delivery.c.id == bindparam("b_id"))
        .values(
            level=bindparam("level"),
            outcome=bindparam("outcome"),
            updated_at=bindparam("updated_at"),
        ),
        updates,
    )


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
