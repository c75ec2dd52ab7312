"""Writing to the ledger: notify (with its outbox rows) and appending evidence.

Every function takes an open ``Connection`` inside a transaction and leaves
committing to the caller, so recording a notification and queueing its
deliveries is one transaction, as is recording a send's evidence and settling
its outbox row.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Connection,
    Integer,
    Select,
    String,
    Table,
    TextualSelect,
    bindparam,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from landed.compose.headers import Mailbox
from landed.compose.request import NotifyRequest
from landed.domain import EvidenceSource, Fact, Level, Outcome, fold
from landed.store import tables as t
from landed.tokens import Keyring, human_ref, new_id

# The upserts below are written as SQL text, which is the same on SQLite (3.35+)
# and PostgreSQL. SQLAlchemy cannot cache the compiled form of its dialect
# ``insert().on_conflict_do_update()`` constructs, and compiling one costs about
# as much as the rest of a notify put together (bench/send.py, docs/benchmarks.md);
# a text statement is compiled once.
_UPSERT_TOPIC = (
    text(
        'INSERT INTO topic ("key", created_at) VALUES (:key, :created_at) '
        'ON CONFLICT ("key") DO UPDATE SET "key" = excluded."key" RETURNING id'
    )
    .bindparams(bindparam("created_at", type_=t.UTCDateTime()))
    .columns(id=BigInteger())
)
# Statements built once: SQLAlchemy then finds their compiled form in its cache
# without rebuilding and re-hashing the expression on every call.
_INSERT_NOTIFICATION = t.notification.insert()
_INSERT_DELIVERY = t.delivery.insert()
_INSERT_OUTSTANDING = t.outstanding.insert()
_INSERT_OUTBOX = t.outbox.insert()


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
    #: How the evidence was tied to the delivery (``landed.domain.Attribution``).
    attribution: str | None = None
    #: The received message it was read from.
    inbound_id: int | None = None
    #: The parser (and its version) that read the evidence from a message.
    parser: str | None = None
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

    topic_id = conn.execute(_UPSERT_TOPIC, {"key": request.topic, "created_at": now}).scalar_one()

    notification_id = new_id()
    conn.execute(
        _INSERT_NOTIFICATION,
        {
            "id": notification_id,
            "topic_id": topic_id,
            "cls": request.cls,
            "sender": sender,
            "subject": request.subject,
            "text": request.text,
            "html": request.html,
            "idempotency_key": request.idempotency_key,
            "created_at": now,
        },
    )

    pending = [level.value for level in Level if level.rank < outstanding_below.rank]
    since = now - timedelta(days=outstanding_days)
    # A few statements per notification rather than two per recipient: each
    # statement costs far more in Python than in the database.
    counters = _next_seqs(conn, [mailbox.normalized() for mailbox in request.to], now)
    earlier: dict[int, list[str]] = {}
    if outstanding_limit:
        earlier = _earlier_pending(
            conn,
            [recipient_id for recipient_id, _ in counters.values()],
            pending=pending,
            since=since,
            limit=outstanding_limit,
        )
    created: list[CreatedDelivery] = []
    delivery_rows: list[dict[str, object]] = []
    outstanding_rows: list[dict[str, object]] = []
    outbox_rows: list[dict[str, object]] = []
    for mailbox in request.to:
        recipient_id, seq = counters[mailbox.normalized()]
        delivery_id = new_id()
        token = keyring.sign(delivery_id)
        ref = human_ref(delivery_id)
        outstanding_rows += [
            {"delivery_id": delivery_id, "listed_delivery_id": e}
            for e in earlier.get(recipient_id, ())
        ]
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
    conn.execute(_INSERT_DELIVERY, delivery_rows)
    if outstanding_rows:
        conn.execute(_INSERT_OUTSTANDING, outstanding_rows)
    conn.execute(_INSERT_OUTBOX, outbox_rows)
    return NotifyResult(notification_id, tuple(created), True)


def _to_header(mailbox: Mailbox) -> str:
    if mailbox.display_name:
        return f"{mailbox.display_name} <{mailbox.address}>"
    return mailbox.address


#: Recipients per statement in notify's batched lookups (far below SQLite's
#: limit of 32766 bound parameters).
_BATCH = 100


def _next_seqs(
    conn: Connection, addresses: Sequence[str], now: datetime
) -> dict[str, tuple[int, int]]:
    """Create each recipient or bump its counter: ``{address: (recipient id, seq)}``.

    One statement per batch creates the recipients or bumps their counters.
    On PostgreSQL the row locks it takes order concurrent notifies to the same
    recipient; taking them in address order means two notifies to overlapping
    lists of recipients cannot deadlock.
    """
    found: dict[str, tuple[int, int]] = {}
    ordered = sorted(addresses)
    for start in range(0, len(ordered), _BATCH):
        chunk = ordered[start : start + _BATCH]
        params: dict[str, object] = {f"a{i}": address for i, address in enumerate(chunk)}
        params["created_at"] = now
        for row in conn.execute(_next_seq_statement(len(chunk)), params):
            found[row.address] = (int(row.id), int(row.last_seq))
    return found


@functools.cache
def _next_seq_statement(count: int) -> TextualSelect:
    # Only numbered placeholders are put into the SQL; the addresses are bound.
    values = ", ".join(f"(:a{i}, 1, :created_at)" for i in range(count))
    return (
        text(
            f"INSERT INTO recipient (address, last_seq, created_at) VALUES {values} "  # noqa: S608
            "ON CONFLICT (address) DO UPDATE SET last_seq = recipient.last_seq + 1 "
            "RETURNING id, address, last_seq"
        )
        .bindparams(bindparam("created_at", type_=t.UTCDateTime()))
        .columns(id=BigInteger(), address=String(), last_seq=Integer())
    )


def _earlier_pending(
    conn: Connection,
    recipient_ids: Sequence[int],
    *,
    pending: Sequence[str],
    since: datetime,
    limit: int,
) -> dict[int, list[str]]:
    """Each recipient's ``limit`` most recent deliveries still pending, newest first.

    One statement per batch of recipients, each part of it using the
    ``(recipient_id, seq)`` index for one recipient, however long that
    recipient's history is.
    """
    found: dict[int, list[str]] = {}
    for start in range(0, len(recipient_ids), _BATCH):
        chunk = recipient_ids[start : start + _BATCH]
        params: dict[str, object] = {f"r{i}": rid for i, rid in enumerate(chunk)}
        params.update(pending=list(pending), since=since, limit=limit)
        rows = conn.execute(_earlier_pending_statement(len(chunk)), params).all()
        for row in sorted(rows, key=lambda r: (r.recipient_id, -r.seq)):
            found.setdefault(row.recipient_id, []).append(row.id)
    return found


@functools.cache
def _earlier_pending_statement(count: int) -> Select[Any] | CompoundSelect[Any]:
    parts = []
    for i in range(count):
        part = (
            select(t.delivery.c.recipient_id, t.delivery.c.id, t.delivery.c.seq)
            .where(
                t.delivery.c.recipient_id == bindparam(f"r{i}"),
                t.delivery.c.level.in_(bindparam("pending", expanding=True)),
                t.delivery.c.created_at >= bindparam("since", type_=t.UTCDateTime()),
            )
            .order_by(t.delivery.c.seq.desc())
            .limit(bindparam("limit", type_=Integer()))
            .subquery(f"e{i}")
        )
        parts.append(select(part.c.recipient_id, part.c.id, part.c.seq))
    return parts[0] if count == 1 else union_all(*parts)


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
            "attribution": item.attribution,
            "inbound_id": item.inbound_id,
            "parser": item.parser,
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
