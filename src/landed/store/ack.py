"""Cumulative acknowledgement: "I have everything up to #N".

Each email lists the recipient's still-unconfirmed earlier notifications (the
``outstanding`` table records exactly which). Acknowledging ``#N`` therefore
confirms ``#N`` and every notification that ``#N``'s email showed the person,
and nothing else: a notification the person was never shown is not confirmed
by implication.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from landed.domain import EvidenceSource, Level
from landed.store import tables as t
from landed.store.ledger import NewEvidence, append_evidence
from landed.tokens import human_ref


def acknowledge(
    conn: Connection,
    delivery_id: str,
    *,
    now: datetime,
    source: EvidenceSource = EvidenceSource.ACK,
    detail: str = "acknowledged on the acknowledgement page",
    raw: bytes = b"",
    cumulative: bool = True,
) -> list[str]:
    """Record ``acknowledged`` for a delivery (and, cumulatively, for what its email
    listed as outstanding); return every delivery id confirmed."""
    seq, listing = conn.execute(
        select(t.delivery.c.seq, t.delivery.c.listed).where(t.delivery.c.id == delivery_id)
    ).one()
    listed: list[str] = listing.split() if cumulative and listing else []
    items = [
        NewEvidence(
            delivery_id=delivery_id,
            source=source,
            level=Level.ACKNOWLEDGED,
            observed_at=now,
            detail=detail,
            raw=raw or detail.encode(),
            dedupe_key=f"ack\0{delivery_id}\0{delivery_id}",
        )
    ]
    via = f"confirmed cumulatively by #{seq} (Ref {human_ref(delivery_id)}), whose email listed it"
    items += [
        NewEvidence(
            delivery_id=other,
            source=source,
            level=Level.ACKNOWLEDGED,
            observed_at=now,
            detail=via,
            raw=raw or detail.encode(),
            dedupe_key=f"ack\0{other}\0{delivery_id}",
        )
        for other in listed
    ]
    append_evidence(conn, items, now=now)
    return [delivery_id, *listed]
