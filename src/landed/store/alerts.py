"""Alerts, their timelines, suppression, and the sink outbox (``dispatch``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    bindparam,
    delete,
    or_,
    select,
    update,
)

from landed.store import tables as t
from landed.store.idlists import id_list, one_of
from landed.store.ledger import dialect_insert


@dataclass(frozen=True, slots=True)
class AlertView:
    """An alert with what people need to act on it."""

    id: int
    delivery_id: str
    reason: str
    state: str
    detail: str | None
    opened_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    note: str | None
    steps_done: int
    topic: str
    recipient: str
    seq: int
    level: str
    outcome: str | None
    timeline: tuple[tuple[datetime, str, str], ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "delivery_id": self.delivery_id,
            "reason": self.reason,
            "state": self.state,
            "detail": self.detail,
            "opened_at": self.opened_at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolved_by": self.resolved_by,
            "note": self.note,
            "steps_done": self.steps_done,
            "topic": self.topic,
            "recipient": self.recipient,
            "seq": self.seq,
            "level": self.level,
            "outcome": self.outcome,
            "timeline": [
                {"at": at.isoformat(), "kind": kind, "detail": detail}
                for at, kind, detail in self.timeline
            ],
        }


def add_event(conn: Connection, alert_id: int, kind: str, detail: str, now: datetime) -> None:
    """Append to an alert's timeline."""
    conn.execute(t.alert_event.insert().values(alert_id=alert_id, at=now, kind=kind, detail=detail))


def open_alert(
    conn: Connection, delivery_id: str, *, reason: str, detail: str, now: datetime
) -> int:
    alert_id = int(
        conn.execute(
            t.alert.insert()
            .values(
                delivery_id=delivery_id,
                reason=reason,
                state="open",
                detail=detail,
                opened_at=now,
                steps_done=0,
            )
            .returning(t.alert.c.id)
        ).scalar_one()
    )
    add_event(conn, alert_id, "opened", f"{reason}: {detail}", now)
    return alert_id


def resolve_alert(conn: Connection, alert_id: int, *, by: str, note: str, now: datetime) -> bool:
    """Resolve an open alert; False if it was not open."""
    done = conn.execute(
        update(t.alert)
        .where(t.alert.c.id == alert_id, t.alert.c.state == "open")
        .values(state="resolved", resolved_at=now, resolved_by=by, note=note)
    ).rowcount
    if done:
        add_event(conn, alert_id, "resolved", f"by {by}: {note}", now)
        # Nothing left to check: no escalation step runs for a resolved alert.
        conn.execute(
            delete(t.delivery_due).where(
                t.delivery_due.c.delivery_id
                == select(t.alert.c.delivery_id).where(t.alert.c.id == alert_id).scalar_subquery()
            )
        )
    return bool(done)


def resolve_alerts(
    conn: Connection, notes: Mapping[int, str], *, by: str, now: datetime
) -> list[int]:
    """Resolve those of ``notes``' alerts that are open, each with its note, in a fixed
    number of statements; the ids resolved (as ``resolve_alert`` does one by one)."""
    if not notes:
        return []
    dialect = conn.dialect.name
    a = t.alert
    still_open = (
        select(a.c.id, a.c.delivery_id)
        .where(one_of(dialect, a.c.id, "ids", integers=True), a.c.state == "open")
        .order_by(a.c.id)
    )
    if dialect == "postgresql":
        still_open = still_open.with_for_update()  # a person resolving it meanwhile waits
    rows = conn.execute(still_open, {"ids": id_list(dialect, notes)}).all()
    if not rows:
        return []
    conn.execute(
        update(a)
        .where(a.c.id == bindparam("b_id"))
        .values(state="resolved", resolved_at=now, resolved_by=by, note=bindparam("b_note")),
        [{"b_id": r.id, "b_note": notes[r.id]} for r in rows],
    )
    conn.execute(
        t.alert_event.insert(),
        [
            {"alert_id": r.id, "at": now, "kind": "resolved", "detail": f"by {by}: {notes[r.id]}"}
            for r in rows
        ],
    )
    conn.execute(
        delete(t.delivery_due).where(one_of(dialect, t.delivery_due.c.delivery_id, "ids")),
        {"ids": id_list(dialect, sorted({r.delivery_id for r in rows}))},
    )
    return [r.id for r in rows]


def timelines(
    conn: Connection, alert_ids: Sequence[int]
) -> dict[int, tuple[tuple[datetime, str, str], ...]]:
    """Each alert's timeline, oldest event first."""
    if not alert_ids:
        return {}
    dialect = conn.dialect.name
    events: dict[int, list[tuple[datetime, str, str]]] = {}
    for e in conn.execute(
        select(
            t.alert_event.c.alert_id,
            t.alert_event.c.at,
            t.alert_event.c.kind,
            t.alert_event.c.detail,
        )
        .where(one_of(dialect, t.alert_event.c.alert_id, "ids", integers=True))
        .order_by(t.alert_event.c.at, t.alert_event.c.id),
        {"ids": id_list(dialect, alert_ids)},
    ):
        events.setdefault(e.alert_id, []).append((e.at, e.kind, e.detail))
    return {k: tuple(v) for k, v in events.items()}


def find_alerts(
    conn: Connection,
    *,
    state: str | None = "open",
    ids: Sequence[int] | None = None,
    delivery_ids: Sequence[str] | None = None,
    limit: int = 500,
    timeline: bool = True,
) -> list[AlertView]:
    """Alerts, oldest open first."""
    query = (
        select(
            t.alert,
            t.topic.c.key.label("topic_key"),
            t.recipient.c.address,
            t.delivery.c.seq,
            t.delivery.c.level,
            t.delivery.c.outcome,
        )
        .join(t.delivery, t.delivery.c.id == t.alert.c.delivery_id)
        .join(t.notification, t.notification.c.id == t.delivery.c.notification_id)
        .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .order_by(t.alert.c.opened_at, t.alert.c.id)
        .limit(limit)
    )
    if state is not None:
        query = query.where(t.alert.c.state == state)
    if ids is not None:
        query = query.where(t.alert.c.id.in_(list(ids)))
    if delivery_ids is not None:
        query = query.where(t.alert.c.delivery_id.in_(list(delivery_ids)))
    rows = conn.execute(query).all()
    events = timelines(conn, [r.id for r in rows]) if timeline else {}
    return [_alert_view(r, events.get(r.id, ())) for r in rows]


def _alert_view(r: Row[Any], timeline: tuple[tuple[datetime, str, str], ...]) -> AlertView:
    return AlertView(
        id=r.id,
        delivery_id=r.delivery_id,
        reason=r.reason,
        state=r.state,
        detail=r.detail,
        opened_at=r.opened_at,
        resolved_at=r.resolved_at,
        resolved_by=r.resolved_by,
        note=r.note,
        steps_done=r.steps_done,
        topic=r.topic_key,
        recipient=r.address,
        seq=r.seq,
        level=r.level,
        outcome=r.outcome,
        timeline=timeline,
    )


# --- suppression ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SuppressionView:
    address: str
    reason: str
    delivery_id: str | None
    note: str | None
    created_at: datetime
    expires_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "reason": self.reason,
            "delivery_id": self.delivery_id,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def suppress(
    conn: Connection,
    address: str,
    *,
    reason: str,
    now: datetime,
    expires_at: datetime | None,
    delivery_id: str | None = None,
    note: str | None = None,
) -> None:
    """Put an address on the suppression list (or renew its entry)."""
    values = {
        "address": address.lower(),
        "reason": reason,
        "delivery_id": delivery_id,
        "note": note,
        "created_at": now,
        "expires_at": expires_at,
    }
    ins = dialect_insert(conn, t.suppression)
    conn.execute(
        ins.values(**values).on_conflict_do_update(
            index_elements=["address"], set_={k: v for k, v in values.items() if k != "address"}
        )
    )


def unsuppress(conn: Connection, address: str) -> bool:
    return bool(
        conn.execute(
            delete(t.suppression).where(t.suppression.c.address == address.lower())
        ).rowcount
    )


# Built once: every notify asks it, and building the statement anew cost more
# than running it (bench/send.py profiles).
_SUPPRESSED = select(t.suppression.c.address, t.suppression.c.reason).where(
    t.suppression.c.address.in_(bindparam("addresses", expanding=True)),
    or_(
        t.suppression.c.expires_at.is_(None),
        t.suppression.c.expires_at > bindparam("now", type_=t.UTCDateTime()),
    ),
)


def suppressed(conn: Connection, addresses: Sequence[str], now: datetime) -> dict[str, str]:
    """Which of ``addresses`` are suppressed now, with the reason."""
    if not addresses:
        return {}
    rows = conn.execute(_SUPPRESSED, {"addresses": [a.lower() for a in addresses], "now": now})
    return {r.address: r.reason for r in rows}


def list_suppressions(conn: Connection, now: datetime, limit: int = 1000) -> list[SuppressionView]:
    rows = conn.execute(
        select(t.suppression)
        .where(or_(t.suppression.c.expires_at.is_(None), t.suppression.c.expires_at > now))
        .order_by(t.suppression.c.created_at.desc())
        .limit(limit)
    )
    return [
        SuppressionView(r.address, r.reason, r.delivery_id, r.note, r.created_at, r.expires_at)
        for r in rows
    ]


# --- the sink outbox ------------------------------------------------------------------


def dispatch_key(alert_id: int, event: str, sink: str) -> str:
    """The idempotency key of one notice: stable across retries, unique per sink."""
    digest = hashlib.sha256(f"{event}\0{sink}".encode()).hexdigest()[:24]
    return f"landed-alert-{alert_id}-{digest}"


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice for one sink: ``payload`` plus ``event`` and ``idempotency_key``."""

    alert_id: int
    sink: str
    event: str
    payload: Mapping[str, object]


def enqueue_dispatch(
    conn: Connection,
    alert_id: int,
    *,
    sink: str,
    event: str,
    payload: dict[str, object],
    now: datetime,
) -> None:
    """Queue a notice for a sink; the same (alert, sink, event) is queued once.

    The key hashes the sink, so long URLs sharing a prefix stay distinct; a
    caller that sends the same event twice on purpose (two escalation steps to
    one URL) puts the step number in ``event``.
    """
    enqueue_dispatches(conn, [Notice(alert_id, sink, event, payload)], now=now)


def enqueue_dispatches(conn: Connection, notices: Sequence[Notice], *, now: datetime) -> None:
    """``enqueue_dispatch`` for many notices, in one statement."""
    if not notices:
        return
    rows = []
    for n in notices:
        key = dispatch_key(n.alert_id, n.event, n.sink)
        body = json.dumps({**n.payload, "event": n.event, "idempotency_key": key}, default=str)
        rows.append(
            {
                "alert_id": n.alert_id,
                "sink": n.sink,
                "idempotency_key": key,
                "payload": body,
                "attempts": 0,
                "available_at": now,
                "created_at": now,
            }
        )
    ins = dialect_insert(conn, t.dispatch).on_conflict_do_nothing(
        index_elements=["idempotency_key"]
    )
    conn.execute(ins, rows)
