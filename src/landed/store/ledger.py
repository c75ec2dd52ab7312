"""Writing to the ledger: notify (with its outbox rows) and appending evidence.

Every function takes an open ``Connection`` inside a transaction and leaves
committing to the caller, so recording a notification and queueing its
deliveries is one transaction, as is recording a send's evidence and settling
its outbox row.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    Dialect,
    Executable,
    Select,
    Table,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from landed.compose.headers import Mailbox
from landed.compose.request import NotifyRequest
from landed.domain import EvidenceSource, Fact, Level, Outcome, fold
from landed.errors import IdempotencyConflict, TokenError
from landed.store import tables as t
from landed.store.idlists import id_list, one_of
from landed.tokens import Keyring, human_ref, new_id

# notify's statements are SQL text run through ``exec_driver_sql``, written once
# for both engines (SQLite 3.35+ and PostgreSQL understand the same SQL; only the
# placeholder syntax differs, see ``_driver_sql``). SQLAlchemy's compiled path
# costs more per execution than SQLite takes to run these statements (setting up
# the compiled context, building parameters, a type processor per datetime), and
# notify runs them for every notification; the few datetimes are converted once
# per call with the column type's own processor (``_datetime_binder``), so what
# is stored is exactly what the compiled path stored. Errors are still
# SQLAlchemy's (``IntegrityError``...), as the API's idempotency retry expects.
#
# The topic is looked up by the notification's own INSERT ... SELECT, so the
# usual case (the topic exists) neither writes the topic row nor runs a
# statement for it; only a new topic is inserted, and ON CONFLICT DO NOTHING
# makes two notifies creating one topic at once both succeed (on PostgreSQL the
# second waits for the first to commit, then reads its row).
_INSERT_NOTIFICATION = (
    "INSERT INTO notification "
    '(id, topic_id, cls, sender, subject, "text", html, idempotency_key, created_at) '
    "SELECT :id, topic.id, :cls, :sender, :subject, :text, :html, :idempotency_key, :created_at "
    'FROM topic WHERE topic."key" = :topic'
)
_INSERT_TOPIC = (
    'INSERT INTO topic ("key", created_at) VALUES (:topic, :created_at) '
    'ON CONFLICT ("key") DO NOTHING'
)
# The outbox rows are made from the delivery rows inside the database, in id
# order (the order they were created in), rather than sent over a second time.
_QUEUE_NOTIFICATION = (
    "INSERT INTO outbox (delivery_id, available_at, attempts, created_at) "
    "SELECT id, :now, 0, :now FROM delivery WHERE notification_id = :notification_id "
    "ORDER BY id"
)
# The reconciler first looks at a delivery at its deadline: its due time
# (``delivery_due``), likewise made from the delivery rows.
_SCHEDULE_NOTIFICATION = (
    "INSERT INTO delivery_due (delivery_id, due_at) "
    "SELECT id, deadline_at FROM delivery "
    "WHERE notification_id = :notification_id AND deadline_at IS NOT NULL ORDER BY id"
)


@functools.cache
def _driver_sql(dialect: str, sql: str) -> str:
    """``sql``, written with ``:name`` placeholders, in the driver's own syntax.

    sqlite3 takes ``:name`` as it stands; psycopg takes ``%(name)s`` (and a
    literal ``%`` doubled).
    """
    if dialect == "sqlite":
        return sql
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


@functools.lru_cache(maxsize=16)  # one per engine in use
def _datetime_binder(dialect: Dialect) -> Callable[[datetime | None], object]:
    """What the ledger's datetime columns hand the driver for a value on this engine
    (naive UTC text on SQLite, the aware datetime on PostgreSQL)."""
    # The dialect's own form of the type: the generic one leaves datetimes to
    # the driver, whose own text for them is not the one SQLAlchemy stores.
    process = t.UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    if process is None:  # pragma: no cover - both engines have one
        return lambda value: value
    return process


def _stamps(dialect: Dialect) -> Callable[[datetime], object]:
    """``_datetime_binder`` for the rows of one call: each distinct datetime is
    converted once (the rows share ``now``, and deadlines or observation times
    repeat)."""
    stamp = _datetime_binder(dialect)
    converted: dict[datetime, object] = {}

    def bind(value: datetime) -> object:
        if value not in converted:
            converted[value] = stamp(value)
        return converted[value]

    return bind


@dataclass(frozen=True, slots=True)
class _EvidenceStatements:
    """append_evidence's batch statements for one dialect, each list one parameter."""

    known_keys: Select[tuple[str]]
    facts: Select[tuple[str, str | None, str | None]]
    #: The verdict of the deliveries in ``ids`` and, unless ``route`` is NULL, the
    #: route they went out by; on PostgreSQL it also makes them due.
    set_verdict: Executable
    #: SQLite only: makes the deliveries in ``ids`` due at ``due_at``.
    set_due: Executable | None


# New evidence makes a delivery due for the reconciler at once: it may now meet
# its policy, fail it, or resolve an open alert. The due time lives in its own
# table (``delivery_due``), so the verdict's UPDATE of the delivery row changes
# no indexed column (on PostgreSQL a HOT update, if its page has room); both
# writes are one statement there, so a batch still costs one round trip per verdict.
_SET_VERDICT_AND_DUE = (
    "WITH changed AS (UPDATE delivery SET level = :level, outcome = :outcome, "
    "updated_at = :updated_at, route = COALESCE(:route, route) "
    # A semi-join with the list: see ``store.idlists.one_of``.
    "WHERE delivery.id IN (SELECT unnest(string_to_array(:ids, ','))) "
    "RETURNING delivery.id) "
    "INSERT INTO delivery_due (delivery_id, due_at) SELECT id, :updated_at FROM changed "
    "ORDER BY id ON CONFLICT (delivery_id) DO UPDATE SET due_at = excluded.due_at"
)
# SQLite (no INSERT in WITH): one more statement per batch, over the same ids.
_SET_DUE = (
    "INSERT INTO delivery_due (delivery_id, due_at) "
    "SELECT value, :due_at FROM json_each(:ids) WHERE true "
    "ON CONFLICT (delivery_id) DO UPDATE SET due_at = excluded.due_at"
)


@functools.cache
def _evidence_statements(dialect: str) -> _EvidenceStatements:
    e, d = t.evidence, t.delivery
    stamp = bindparam("updated_at", type_=t.UTCDateTime())
    set_verdict: Executable
    set_due: Executable | None = None
    if dialect == "postgresql":
        set_verdict = text(_SET_VERDICT_AND_DUE).bindparams(stamp)
    else:
        set_verdict = (
            update(d)
            .where(one_of(dialect, d.c.id, "ids"))
            .values(
                level=bindparam("level"),
                outcome=bindparam("outcome"),
                updated_at=stamp,
                route=func.coalesce(bindparam("route", type_=d.c.route.type), d.c.route),
            )
        )
        set_due = text(_SET_DUE).bindparams(bindparam("due_at", type_=t.UTCDateTime()))
    return _EvidenceStatements(
        known_keys=select(e.c.dedupe_key).where(one_of(dialect, e.c.dedupe_key, "keys")),
        facts=select(e.c.delivery_id, e.c.level, e.c.outcome).where(
            one_of(dialect, e.c.delivery_id, "ids")
        ),
        set_verdict=set_verdict,
        set_due=set_due,
    )


@functools.cache
def _insert_evidence_sql(dialect: str, columns: tuple[str, ...]) -> str:
    """``INSERT INTO evidence ... ON CONFLICT (dedupe_key) DO NOTHING`` for these
    columns, in the driver's syntax."""
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    return _driver_sql(
        dialect,
        f"INSERT INTO evidence ({names}) VALUES ({values}) "  # noqa: S608 - column names only
        "ON CONFLICT (dedupe_key) DO NOTHING",
    )


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
    #: The recipients that were on the suppression list, with the reason (a
    #: new notification only; ``store.record`` holds their deliveries back).
    suppressed: Mapping[str, str] = field(default_factory=dict)


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
    Every delivery is queued; the result's ``suppressed`` names the recipients
    on the suppression list, read in the same statement that counts their
    sequence numbers, for the caller to hold back (``store.record``).
    """
    if request.idempotency_key is not None:
        existing = _by_idempotency_key(conn, request)
        if existing is not None:
            return existing

    dialect = conn.dialect.name
    # Datetimes as the driver takes them, each converted once.
    bind = _stamps(conn.dialect)
    now_value = bind(now)
    notification_id = new_id()
    notification = {
        "id": notification_id,
        "topic": request.topic,
        "cls": request.cls,
        "sender": sender,
        "subject": request.subject,
        "text": request.text,
        "html": request.html,
        "idempotency_key": request.idempotency_key,
        "created_at": now_value,
    }
    insert_notification = _driver_sql(dialect, _INSERT_NOTIFICATION)
    if not conn.exec_driver_sql(insert_notification, notification).rowcount:
        # A new topic. A concurrent notify may be creating it too: then this
        # insert does nothing (on PostgreSQL, once the other one has committed)
        # and the topic is there all the same.
        conn.exec_driver_sql(_driver_sql(dialect, _INSERT_TOPIC), notification)
        if not conn.exec_driver_sql(insert_notification, notification).rowcount:
            raise RuntimeError(f"topic {request.topic!r} vanished while it was recorded")

    addresses = [mailbox.normalized() for mailbox in request.to]
    # A few statements per notification rather than two per recipient: each
    # statement costs far more in Python than in the database.
    counters = _next_seqs(conn, addresses, now_value, now_value)
    created: list[CreatedDelivery] = []
    delivery_rows: list[dict[str, object]] = []
    queued = Level.QUEUED.value
    for mailbox, address in zip(request.to, addresses, strict=True):
        recipient_id, seq, _ = counters[address]
        assigned = assign.get(address) if assign is not None else None
        delivery_id = new_id()
        token = keyring.sign(delivery_id)
        ref = human_ref(delivery_id)
        row: dict[str, object] = {
            "id": delivery_id,
            "notification_id": notification_id,
            "recipient_id": recipient_id,
            "seq": seq,
            "to_header": _to_header(mailbox),
            "token": token,
            "ref": ref.replace("-", "").lower(),
            "message_id": f"<{token}@{id_domain}>",
            "level": queued,
            "outcome": None,
            "created_at": now,
            "updated_at": now,
            "policy": assigned.policy if assigned else None,
            "required": assigned.required.value if assigned else None,
            "deadline_at": assigned.deadline_at if assigned else None,
        }
        # Whatever datetime columns the row has, as the driver takes them.
        for column, value in row.items():
            if isinstance(value, datetime):
                row[column] = bind(value)
        delivery_rows.append(row)
        created.append(CreatedDelivery(delivery_id, token, address, seq, ref))
    columns = tuple(delivery_rows[0])
    pending = [level.value for level in Level if level.rank < outstanding_below.rank]
    if outstanding_limit:
        since = bind(now - timedelta(days=outstanding_days))
        listing: dict[str, object] = {"since": since, "limit": outstanding_limit}
        listing.update({f"p{i}": level for i, level in enumerate(pending)})
        for row in delivery_rows:
            row.update(listing)
    insert_deliveries = _insert_delivery_statement(
        dialect, columns, len(pending) if outstanding_limit else None
    )
    conn.exec_driver_sql(insert_deliveries, delivery_rows)
    conn.exec_driver_sql(
        _driver_sql(dialect, _QUEUE_NOTIFICATION),
        {"notification_id": notification_id, "now": now_value},
    )
    if assign:
        conn.exec_driver_sql(
            _driver_sql(dialect, _SCHEDULE_NOTIFICATION), {"notification_id": notification_id}
        )
    suppressed = {
        address: reason for address, (_, _, reason) in counters.items() if reason is not None
    }
    return NotifyResult(notification_id, tuple(created), True, suppressed)


@functools.cache
def _insert_delivery_statement(dialect: str, columns: tuple[str, ...], pending: int | None) -> str:
    """``INSERT INTO delivery`` of these columns (those of notify's delivery rows),
    in the driver's syntax.

    With ``pending`` (how many levels count as unconfirmed, bound as ``:p0``...)
    the row's ``listed`` column is filled by the same statement: the ids of the
    recipient's ``:limit`` most recent earlier deliveries still below the
    outstanding level and created since ``:since``. The subquery walks the
    ``(recipient_id, seq)`` index for this one recipient, however long its
    history; the ids never travel to Python and back.
    """
    names = ", ".join(columns)
    values = ", ".join(f":{column}" for column in columns)
    if pending is not None:
        levels = ", ".join(f":p{i}" for i in range(pending)) or "NULL"
        concat = "string_agg(id, ' ')" if dialect == "postgresql" else "group_concat(id, ' ')"
        names += ", listed"
        values += (
            f", (SELECT {concat} FROM (SELECT id FROM delivery "  # noqa: S608
            f"WHERE recipient_id = :recipient_id AND seq < :seq AND level IN ({levels}) "
            "AND created_at >= :since ORDER BY seq DESC LIMIT :limit) AS earlier)"
        )
    # Column names and placeholders only; every value is bound.
    return _driver_sql(dialect, f"INSERT INTO delivery ({names}) VALUES ({values})")  # noqa: S608


def _to_header(mailbox: Mailbox) -> str:
    if mailbox.display_name:
        return f"{mailbox.display_name} <{mailbox.address}>"
    return mailbox.address


#: Recipients per statement in notify's batched lookups (far below SQLite's
#: limit of 32766 bound parameters).
_BATCH = 100


def _next_seqs(
    conn: Connection, addresses: Sequence[str], created_at: object, now: object
) -> dict[str, tuple[int, int, str | None]]:
    """Create each recipient or bump its counter: ``{address: (recipient id, seq,
    suppression reason or None)}``.

    One statement per batch creates the recipients or bumps their counters,
    and reads whether each is suppressed ``now``. On PostgreSQL the row locks
    it takes order concurrent notifies to the same recipient; taking them in
    address order means two notifies to overlapping lists of recipients cannot
    deadlock. ``created_at`` and ``now`` are as the driver takes them.
    """
    found: dict[str, tuple[int, int, str | None]] = {}
    ordered = sorted(addresses)
    dialect = conn.dialect.name
    for start in range(0, len(ordered), _BATCH):
        chunk = ordered[start : start + _BATCH]
        params: dict[str, object] = {f"a{i}": address for i, address in enumerate(chunk)}
        params["created_at"] = created_at
        params["now"] = now
        sql = _driver_sql(dialect, _next_seq_statement(len(chunk)))
        for recipient_id, address, last_seq, reason in conn.exec_driver_sql(sql, params):
            found[address] = (int(recipient_id), int(last_seq), reason)
    return found


@functools.cache
def _next_seq_statement(count: int) -> str:
    # Only numbered placeholders are put into the SQL; the addresses are bound.
    # The suppression check is the one in ``store.alerts.suppressed``, asked in
    # the same statement (a subquery in RETURNING: SQLite 3.35+ and PostgreSQL).
    values = ", ".join(f"(:a{i}, 1, :created_at)" for i in range(count))
    return (
        f"INSERT INTO recipient (address, last_seq, created_at) VALUES {values} "  # noqa: S608
        "ON CONFLICT (address) DO UPDATE SET last_seq = recipient.last_seq + 1 "
        "RETURNING id, address, last_seq, "
        "(SELECT suppression.reason FROM suppression "
        "WHERE suppression.address = recipient.address "
        "AND (suppression.expires_at IS NULL OR suppression.expires_at > :now))"
    )


# Built once, so that SQLAlchemy finds them in its cache without rebuilding them.
_EARLIER_NOTIFICATION = (
    select(
        t.notification.c.id,
        t.notification.c.cls,
        t.notification.c.subject,
        t.notification.c.text,
        t.notification.c.html,
        t.topic.c.key,
    )
    .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
    .where(t.notification.c.idempotency_key == bindparam("idempotency_key"))
)
# The originals only: escalation resends are deliveries of the same notification.
_EARLIER_DELIVERIES = (
    select(
        t.delivery.c.id,
        t.delivery.c.token,
        t.delivery.c.seq,
        t.delivery.c.to_header,
        t.recipient.c.address,
    )
    .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
    .where(
        t.delivery.c.notification_id == bindparam("notification_id"),
        t.delivery.c.resend_of.is_(None),
    )
    .order_by(t.delivery.c.id)
)


def _by_idempotency_key(conn: Connection, request: NotifyRequest) -> NotifyResult | None:
    """The notification recorded under ``request``'s idempotency key, if any.

    The same key for a different notification is ``IdempotencyConflict``, not
    a silent replay of the other one. "Same" is judged on what was recorded
    (after validation): topic, class, subject, bodies and the recipients as
    given, in any order.
    """
    earlier = conn.execute(
        _EARLIER_NOTIFICATION, {"idempotency_key": request.idempotency_key}
    ).first()
    if earlier is None:
        return None
    rows = conn.execute(_EARLIER_DELIVERIES, {"notification_id": earlier.id}).all()
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


def append_evidence(
    conn: Connection,
    items: Sequence[NewEvidence],
    *,
    now: datetime,
    routes: Mapping[str, str] | None = None,
) -> int:
    """Append evidence (duplicates ignored) and refold the deliveries it touches.

    ``routes`` records, by delivery id, the route a delivery went out by (the
    sender's settle): written by the refold's own UPDATE rather than by a second
    one of the same rows. Returns how many rows were new.
    """
    if not items and not routes:
        return 0
    dialect = conn.dialect.name
    # Rows as the driver takes them (see notify): datetimes converted by the
    # column type's own processor, once per distinct value (a batch of sends
    # shares a few), and the INSERT run through ``exec_driver_sql``. The
    # compiled path processed every parameter of every row, inside the write
    # transaction; on SQLite that is time the single write lock is held.
    bind = _stamps(conn.dialect)
    recorded_at = bind(now)
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
            "observed_at": bind(item.observed_at),
            "recorded_at": recorded_at,
            "dedupe_key": key,
            "raw": item.raw,
        }
        for item, key in zip(items, keys, strict=True)
    ]
    sql = _evidence_statements(dialect)
    known: set[str] = set()
    for chunk in _chunks(keys, 500):
        ids = id_list(dialect, chunk)
        known.update(conn.execute(sql.known_keys, {"keys": ids}).scalars().all())
    fresh = {row["dedupe_key"]: row for row in rows if row["dedupe_key"] not in known}
    if fresh:
        # ON CONFLICT still guards against a concurrent writer of the same event.
        conn.exec_driver_sql(_insert_evidence_sql(dialect, tuple(rows[0])), list(fresh.values()))
    touched = {item.delivery_id for item in items if item.delivery_id}
    refold(conn, touched.union(routes or ()), now=now, routes=routes)
    return len(fresh)


def refold(
    conn: Connection,
    delivery_ids: Iterable[str],
    *,
    now: datetime,
    routes: Mapping[str, str] | None = None,
) -> None:
    """Recompute the cached level and outcome of deliveries from all their evidence
    (and set the route of those in ``routes``)."""
    ids = sorted(set(delivery_ids))
    if not ids:
        return
    sql = _evidence_statements(conn.dialect.name)
    facts: dict[str, list[Fact]] = defaultdict(list)
    for chunk in _chunks(ids, 500):
        listed = id_list(conn.dialect.name, chunk)
        for delivery_id, level, outcome in conn.execute(sql.facts, {"ids": listed}).all():
            facts[delivery_id].append(
                Fact(Level(level) if level else None, Outcome(outcome) if outcome else None)
            )
    # One UPDATE per distinct verdict and route (a batch of sends usually has one
    # or two) rather than one per delivery.
    by_verdict: dict[tuple[str, str | None, str | None], list[str]] = defaultdict(list)
    for delivery_id in ids:
        verdict = fold(facts.get(delivery_id, ()))
        outcome = verdict.outcome.value if verdict.outcome else None
        route = routes.get(delivery_id) if routes else None
        by_verdict[(verdict.level.value, outcome, route)].append(delivery_id)
    for (level, outcome, route), same in by_verdict.items():
        for chunk in _chunks(same, 500):
            conn.execute(
                sql.set_verdict,
                {
                    "ids": id_list(conn.dialect.name, chunk),
                    "level": level,
                    "outcome": outcome,
                    "updated_at": now,
                    "route": route,
                },
            )
    if sql.set_due is not None:
        for chunk in _chunks(ids, 500):
            conn.execute(sql.set_due, {"ids": id_list(conn.dialect.name, chunk), "due_at": now})


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
