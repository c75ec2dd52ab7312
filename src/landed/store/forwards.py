"""The reply-forwarding outbox: human replies waiting to be sent on to a person.

A row is inserted in the transaction that records the reply as evidence
(``landed.ingest``), so a reply is either both acknowledged and queued for
forwarding, or neither. The forwarder (``landed.forwarder``) claims due rows
with a lease exactly as the alert dispatcher claims ``dispatch`` rows:
``available_at`` is both the due time and the lease (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, one writer at a time on SQLite), a sent row is
deleted, and a failed one is pushed back, fenced by the lease it was claimed
with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from landed.store import tables as t
from landed.store.leases import claim_statement


@dataclass(frozen=True, slots=True)
class ReplyForwarding:
    """Where human replies are forwarded: one address, optionally per policy.

    ``by_policy`` maps a policy name to its own address, or to ``None`` for a
    policy whose replies are not forwarded; a policy not in it uses ``default``.
    """

    default: str | None = None
    by_policy: Mapping[str, str | None] = field(default_factory=dict)

    def address_for(self, policy: str | None) -> str | None:
        """The address replies to deliveries under ``policy`` go to, or None."""
        if policy is not None and policy in self.by_policy:
            return self.by_policy[policy]
        return self.default


@dataclass(frozen=True, slots=True)
class HeldForward:
    """A forward row this forwarder holds until ``until``, with what it needs to send it."""

    id: int
    inbound_id: int
    delivery_id: str | None
    to_address: str
    attempts: int
    created_at: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class ReplyMaterial:
    """The reply as received, and the delivery it answers (None if that is gone)."""

    raw: bytes
    received_at: datetime
    topic: str | None = None
    subject: str | None = None
    recipient: str | None = None
    seq: int | None = None
    message_id: str | None = None
    ref: str | None = None


def enqueue_forward(
    conn: Connection, *, inbound_id: int, delivery_id: str | None, to_address: str, now: datetime
) -> int:
    """Queue one reply for forwarding to ``to_address``; the row's id."""
    return int(
        conn.execute(
            insert(t.forward)
            .values(
                inbound_id=inbound_id,
                delivery_id=delivery_id,
                to_address=to_address,
                attempts=0,
                available_at=now,
                created_at=now,
            )
            .returning(t.forward.c.id)
        ).scalar_one()
    )


_CLAIMED = ("id", "inbound_id", "delivery_id", "to_address", "attempts", "created_at")


def claim_forwards(
    conn: Connection, *, now: datetime, until: datetime, limit: int
) -> list[HeldForward]:
    """Take up to ``limit`` due rows until ``until``, oldest first."""
    rows = conn.execute(
        claim_statement(t.forward, _CLAIMED, conn.dialect.name == "postgresql"),
        {"now": now, "until": until, "limit": limit},
    ).all()
    held = [
        HeldForward(
            id=r.id,
            inbound_id=r.inbound_id,
            delivery_id=r.delivery_id,
            to_address=r.to_address,
            attempts=r.attempts,
            created_at=r.created_at,
            until=until,
        )
        for r in rows
    ]
    held.sort(key=lambda h: h.id)
    return held


def reply_material(conn: Connection, held: HeldForward) -> ReplyMaterial | None:
    """The stored reply and its delivery's particulars; None if the reply is gone."""
    message = conn.execute(
        select(t.inbound.c.raw, t.inbound.c.received_at).where(t.inbound.c.id == held.inbound_id)
    ).one_or_none()
    if message is None:
        return None
    if held.delivery_id is None:
        return ReplyMaterial(raw=message.raw, received_at=message.received_at)
    d, n = t.delivery, t.notification
    about = conn.execute(
        select(
            t.topic.c.key,
            n.c.subject,
            t.recipient.c.address,
            d.c.seq,
            d.c.message_id,
            d.c.ref,
        )
        .select_from(d)
        .join(n, n.c.id == d.c.notification_id)
        .join(t.topic, t.topic.c.id == n.c.topic_id)
        .join(t.recipient, t.recipient.c.id == d.c.recipient_id)
        .where(d.c.id == held.delivery_id)
    ).one_or_none()
    if about is None:
        return ReplyMaterial(raw=message.raw, received_at=message.received_at)
    return ReplyMaterial(
        raw=message.raw,
        received_at=message.received_at,
        topic=about.key,
        subject=about.subject,
        recipient=about.address,
        seq=about.seq,
        message_id=about.message_id,
        ref=about.ref,
    )


def finish_forward(conn: Connection, forward_id: int) -> None:
    """The forward was sent: remove its row (even if its lease ran out meanwhile)."""
    conn.execute(delete(t.forward).where(t.forward.c.id == forward_id))


def retry_forward(conn: Connection, held: HeldForward, *, retry_at: datetime, error: str) -> bool:
    """Count a failed attempt and make the row due at ``retry_at``.

    Fenced by the lease: False (nothing changed) when another forwarder has
    taken the row since this one's lease ran out.
    """
    f = t.forward
    changed = conn.execute(
        update(f)
        .where(f.c.id == held.id, f.c.available_at == held.until)
        .values(attempts=f.c.attempts + 1, available_at=retry_at, last_error=error[:2000])
    ).rowcount
    return bool(changed)


def release_forwards(conn: Connection, held: Sequence[HeldForward], *, now: datetime) -> None:
    """Make held rows due again at once (shutting down), without counting an attempt."""
    f = t.forward
    for row in held:
        conn.execute(
            update(f)
            .where(f.c.id == row.id, f.c.available_at == row.until)
            .values(available_at=now)
        )


def pending_forwards(conn: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    """Rows not yet sent, oldest first (for operators and tests)."""
    f = t.forward
    rows = conn.execute(
        select(
            f.c.id,
            f.c.inbound_id,
            f.c.delivery_id,
            f.c.to_address,
            f.c.attempts,
            f.c.available_at,
            f.c.last_error,
            f.c.created_at,
        )
        .order_by(f.c.id)
        .limit(limit)
    ).all()
    return [dict(r._mapping) for r in rows]
