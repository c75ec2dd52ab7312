"""Received messages: stored raw before ``250``, read into evidence afterwards."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from landed.store import tables as t


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A stored received message."""

    id: int
    channel: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    peer: str
    raw: bytes
    state: str
    detail: str | None
    received_at: datetime


def store_inbound(
    conn: Connection,
    *,
    channel: str,
    mail_from: str,
    rcpt_to: Sequence[str],
    peer: str,
    raw: bytes,
    now: datetime,
) -> int:
    """Keep a received message, exactly as received; return its id."""
    return int(
        conn.execute(
            t.inbound.insert()
            .values(
                channel=channel,
                mail_from=mail_from,
                rcpt_to="\n".join(rcpt_to),
                peer=peer[:255],
                sha256=hashlib.sha256(raw).hexdigest(),
                raw=raw,
                state="pending",
                received_at=now,
            )
            .returning(t.inbound.c.id)
        ).scalar_one()
    )


def load_inbound(conn: Connection, ids: Sequence[int]) -> list[InboundMessage]:
    rows = conn.execute(
        select(t.inbound).where(t.inbound.c.id.in_(list(ids))).order_by(t.inbound.c.id)
    )
    return [_message(r) for r in rows]


def pending_ids(conn: Connection, limit: int = 100) -> list[int]:
    """Messages stored but not yet read (for example after a crash)."""
    return list(
        conn.execute(
            select(t.inbound.c.id)
            .where(t.inbound.c.state == "pending")
            .order_by(t.inbound.c.id)
            .limit(limit)
        ).scalars()
    )


def mark_inbound(
    conn: Connection, inbound_id: int, *, state: str, detail: str, now: datetime
) -> None:
    conn.execute(
        update(t.inbound)
        .where(t.inbound.c.id == inbound_id)
        .values(state=state, detail=detail, ingested_at=now)
    )


def list_inbound(
    conn: Connection, *, state: str | None = None, limit: int = 100
) -> list[InboundMessage]:
    """Stored messages, newest first; ``state="quarantined"`` lists the quarantine."""
    query = select(t.inbound).order_by(t.inbound.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(t.inbound.c.state == state)
    return [_message(r) for r in conn.execute(query)]


def _message(r: Row[Any]) -> InboundMessage:
    return InboundMessage(
        id=r.id,
        channel=r.channel,
        mail_from=r.mail_from,
        rcpt_to=tuple(filter(None, r.rcpt_to.split("\n"))),
        peer=r.peer,
        raw=r.raw,
        state=r.state,
        detail=r.detail,
        received_at=r.received_at,
    )
