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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Connection,
    Insert,
    Integer,
    Select,
    String,
    Table,
    TextClause,
    TextualSelect,
    bindparam,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Update

from landed.compose.headers import Mailbox
from landed.compose.request import NotifyRequest
from landed.domain import EvidenceSource, Fact, Level, Outcome, fold
from landed.errors import IdempotencyConflict, TokenError
from landed.store import tables as t
from landed.store.idlists import id_list, one_of
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
_QUEUE_NOTIFICATION = t.outbox.insert().from_select(
    ["delivery_id", "available_at", "attempts", "created_at"],
    select(
        t.delivery.c.id,
        bindparam("now", type_=t.UTCDateTime()),
        literal(0, Integer()),
        bindparam("now", type_=t.UTCDateTime()),
    )
    .where(t.delivery.c.notification_id == bindparam("notification_id"))
    .order_by(t.delivery.c.id),
)


@dataclass(frozen=True, slots=True)
class _EvidenceStatements:
    """append_evidence's batch statements for one dialect, each list one parameter."""

    known_keys: Select[tuple[str]]
    facts: Select[tuple[str, str | None, str | None]]
    set_verdict: Update


@functools.cache
def _evidence_statements(dialect: str) -> _EvidenceStatements:
    e, d = t.evidence, t.delivery
    return _EvidenceStatements(
        known_keys=select(e.c.dedupe_key).where(one_of(dialect, e.c.dedupe_key, "keys")),
        facts=select(e.c.delivery_id, e.c.level, e.c.outcome).where(
            one_of(dialect, e.c.delivery_id, "ids")
        ),
        set_verdict=(
            update(d)
            .where(one_of(dialect, d.c.id, "ids"))
            .values(
                level=bindparam("level"),
                outcome=bindparam("outcome"),
                updated_at=bindparam("updated_at", type_=t.UTCDateTime()),
                # New evidence makes the delivery due for the reconciler at
                # once: it may now meet its policy, fail it, or resolve an
                # open alert.
                due_at=bindparam("updated_at", type_=t.UTCDateTime()),
            )
        ),
    )


@functools.cache
def _insert_evidence_statement(columns: tuple[str, ...]) -> TextClause:
    """``INSERT INTO evidence ... ON CONFLICT (dedupe_key) DO NOTHING`` for these columns.

    Text, the same on SQLite and PostgreSQL, because SQLAlchemy recompiles its
    ``on_conflict_do_nothing()`` constructs on every execution.
    """
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    return text(
        f"INSERT INTO evidence ({names}) VALUES ({values}) "  # noqa: S608 - column names only
        "ON CONFLICT (dedupe_key) DO NOTHING"
    ).bindparams(*(bindparam(name, type_=t.evidence.c[name].type) for name in columns))


@dataclass(frozen=True, slots=True)
class CreatedDelivery:
    """A delivery as recorded by ``notify``."""

    delivery_id: str
    token: str
    recipient: str
    seq: int
    ref: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """The policy a new delivery is judged under: its name, required level, deadline."""

    policy: str
    required: Level
    deadline_at: datetime


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
    #: What the parser made of it: reason (``userunknown``...) and hard/soft.
    reason: str | None = None
    hard: bool | None = None
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


def delivery_for_token(
    conn: Connection, keyring: Keyring, token: str
) -> tuple[str, str, str] | None:
    """(delivery id, notification id, recipient address) if ``token`` verifies
    and its delivery exists; None otherwise. The token is checked before the
    database is asked anything."""
    try:
        delivery_id = keyring.verify(token)
    except TokenError:
        return None
    row = conn.execute(_TOKEN_TARGET, {"delivery_id": delivery_id}).one_or_none()
    return (row.id, row.notification_id, row.address) if row else None


_TOKEN_TARGET = (
    select(t.delivery.c.id, t.delivery.c.notification_id, t.recipient.c.address)
    .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
    .where(t.delivery.c.id == bindparam("delivery_id"))
)


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
    assign: Mapping[str, Assignment] | None = None,
) -> NotifyResult:
    """Record a notification and queue one delivery per recipient.

    ``assign`` gives a recipient's delivery its policy (by normalized address);
    it is written with the delivery row itself, not by a second statement.
    """
    if request.idempotency_key is not None:
        existing = _by_idempotency_key(conn, request)
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
    created: list[CreatedDelivery] = []
    delivery_rows: list[dict[str, object]] = []
    for mailbox in request.to:
        recipient_id, seq = counters[mailbox.normalized()]
        assigned = assign.get(mailbox.normalized()) if assign is not None else None
        delivery_id = new_id()
        token = keyring.sign(delivery_id)
        ref = human_ref(delivery_id)
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
                "policy": assigned.policy if assigned else None,
                "required": assigned.required.value if assigned else None,
                "deadline_at": assigned.deadline_at if assigned else None,
                # The reconciler first looks at the delivery at its deadline.
                "due_at": assigned.deadline_at if assigned else None,
            }
        )
        created.append(CreatedDelivery(delivery_id, token, mailbox.normalized(), seq, ref))
    conn.execute(_INSERT_DELIVERY, delivery_rows)
    if outstanding_limit:
        _list_outstanding(
            conn,
            [(d.delivery_id, *counters[d.recipient]) for d in created],
            pending=pending,
            since=since,
            limit=outstanding_limit,
        )
    # The outbox rows are made from the delivery rows inside the database, in id
    # order (the order they were created in), rather than sent over a second time.
    conn.execute(_QUEUE_NOTIFICATION, {"notification_id": notification_id, "now": now})
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


def _list_outstanding(
    conn: Connection,
    new: Sequence[tuple[str, int, int]],
    *,
    pending: Sequence[str],
    since: datetime,
    limit: int,
) -> None:
    """Record which earlier deliveries each new delivery's email lists as outstanding.

    ``new`` holds (delivery id, recipient id, its sequence number): each
    recipient's ``limit`` most recent earlier deliveries still below the
    outstanding level are listed. One ``INSERT ... SELECT`` per batch of
    recipients, each part of it using the ``(recipient_id, seq)`` index for one
    recipient, however long that recipient's history is; the ids never travel
    to Python and back.
    """
    for start in range(0, len(new), _BATCH):
        chunk = new[start : start + _BATCH]
        params: dict[str, object] = {"since": since, "limit": limit}
        params.update({f"p{i}": level for i, level in enumerate(pending)})
        for i, (delivery_id, recipient_id, seq) in enumerate(chunk):
            params.update({f"d{i}": delivery_id, f"r{i}": recipient_id, f"s{i}": seq})
        conn.execute(_list_outstanding_statement(len(chunk), len(pending)), params)


@functools.cache
def _list_outstanding_statement(count: int, levels: int) -> Insert:
    # The pending levels are separate parameters, not an "expanding" IN list,
    # which SQLAlchemy would render anew into the SQL text on every execution.
    pending = [bindparam(f"p{i}", type_=String()) for i in range(levels)]
    parts = []
    for i in range(count):
        earlier = (
            select(t.delivery.c.id)
            .where(
                t.delivery.c.recipient_id == bindparam(f"r{i}"),
                # Earlier than the new delivery, which is already in the table.
                t.delivery.c.seq < bindparam(f"s{i}", type_=Integer()),
                t.delivery.c.level.in_(pending),
                t.delivery.c.created_at >= bindparam("since", type_=t.UTCDateTime()),
            )
            .order_by(t.delivery.c.seq.desc())
            .limit(bindparam("limit", type_=Integer()))
            .subquery(f"e{i}")
        )
        parts.append(select(bindparam(f"d{i}", type_=String()), earlier.c.id))
    rows = parts[0] if count == 1 else union_all(*parts)
    return t.outstanding.insert().from_select(["delivery_id", "listed_delivery_id"], rows)


def _by_idempotency_key(conn: Connection, request: NotifyRequest) -> NotifyResult | None:
    """The notification recorded under ``request``'s idempotency key, if any.

    The same key for a different notification is ``IdempotencyConflict``, not
    a silent replay of the other one. "Same" is judged on what was recorded
    (after validation): topic, class, subject, bodies and the recipients as
    given, in any order.
    """
    earlier = conn.execute(
        select(
            t.notification.c.id,
            t.notification.c.cls,
            t.notification.c.subject,
            t.notification.c.text,
            t.notification.c.html,
            t.topic.c.key,
        )
        .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
        .where(t.notification.c.idempotency_key == request.idempotency_key)
    ).first()
    if earlier is None:
        return None
    # The originals only: escalation resends are deliveries of the same notification.
    rows = conn.execute(
        select(
            t.delivery.c.id,
            t.delivery.c.token,
            t.delivery.c.seq,
            t.delivery.c.to_header,
            t.recipient.c.address,
        )
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .where(t.delivery.c.notification_id == earlier.id, t.delivery.c.resend_of.is_(None))
        .order_by(t.delivery.c.id)
    ).all()
    same = (
        (earlier.key, earlier.cls, earlier.subject, earlier.text, earlier.html)
        == (request.topic, request.cls, request.subject, request.text, request.html)
    ) and sorted(r.to_header for r in rows) == sorted(_to_header(m) for m in request.to)
    if not same:
        raise IdempotencyConflict(
            f"idempotency key {request.idempotency_key!r} was already used for a different "
            f"notification ({earlier.id}); use a new key for a new notification",
            notification_id=earlier.id,
        )
    deliveries = tuple(
        CreatedDelivery(r.id, r.token, r.address, r.seq, human_ref(r.id)) for r in rows
    )
    return NotifyResult(earlier.id, deliveries, False)


def append_evidence(conn: Connection, items: Sequence[NewEvidence], *, now: datetime) -> int:
    """Append evidence (duplicates ignored) and refold the deliveries it touches.

    Returns how many rows were new.
    """
    if not items:
        return 0
    keys = [item.key() for item in items]
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
            "reason": item.reason,
            "hard": item.hard,
            "observed_at": item.observed_at,
            "recorded_at": now,
            "dedupe_key": key,
            "raw": item.raw,
        }
        for item, key in zip(items, keys, strict=True)
    ]
    sql = _evidence_statements(conn.dialect.name)
    known: set[str] = set()
    for chunk in _chunks(keys, 500):
        ids = id_list(conn.dialect.name, chunk)
        known.update(conn.execute(sql.known_keys, {"keys": ids}).scalars())
    fresh = {row["dedupe_key"]: row for row in rows if row["dedupe_key"] not in known}
    if fresh:
        # ON CONFLICT still guards against a concurrent writer of the same event.
        conn.execute(_insert_evidence_statement(tuple(rows[0])), list(fresh.values()))
    refold(conn, {item.delivery_id for item in items if item.delivery_id}, now=now)
    return len(fresh)


def refold(conn: Connection, delivery_ids: Iterable[str], *, now: datetime) -> None:
    """Recompute the cached level and outcome of deliveries from all their evidence."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return
    sql = _evidence_statements(conn.dialect.name)
    facts: dict[str, list[Fact]] = defaultdict(list)
    for chunk in _chunks(ids, 500):
        listed = id_list(conn.dialect.name, chunk)
        for delivery_id, level, outcome in conn.execute(sql.facts, {"ids": listed}):
            facts[delivery_id].append(
                Fact(Level(level) if level else None, Outcome(outcome) if outcome else None)
            )
    # One UPDATE per distinct verdict (a batch of sends usually has one or two)
    # rather than one per delivery.
    by_verdict: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for delivery_id in ids:
        verdict = fold(facts.get(delivery_id, ()))
        outcome = verdict.outcome.value if verdict.outcome else None
        by_verdict[(verdict.level.value, outcome)].append(delivery_id)
    for (level, outcome), same in by_verdict.items():
        for chunk in _chunks(same, 500):
            conn.execute(
                sql.set_verdict,
                {
                    "ids": id_list(conn.dialect.name, chunk),
                    "level": level,
                    "outcome": outcome,
                    "updated_at": now,
                },
            )


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
