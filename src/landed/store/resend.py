"""New deliveries of an existing notification: escalation's resend and fallback."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from landed.compose.headers import parse_mailbox
from landed.domain import Level
from landed.store import tables as t
from landed.store.ledger import dialect_insert
from landed.tokens import Keyring, human_ref, new_id


def add_delivery(
    conn: Connection,
    *,
    of: str,
    to: str,
    keyring: Keyring,
    id_domain: str,
    now: datetime,
    policy: str | None,
    required: str | None,
    deadline_at: datetime | None,
) -> str:
    """Queue a new delivery of the notification of delivery ``of``, linked to it.

    To the same recipient (a resend) it keeps the same ``#N for you`` and, with
    the topic, the same thread; to another address (a fallback) it takes that
    recipient's next number.
    """
    original = conn.execute(
        select(t.delivery.c.notification_id, t.delivery.c.seq, t.recipient.c.address)
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .where(t.delivery.c.id == of)
    ).one()
    mailbox = parse_mailbox(to, "to")
    address = mailbox.normalized()
    if address == original.address:
        recipient_id = conn.execute(
            select(t.recipient.c.id).where(t.recipient.c.address == address)
        ).scalar_one()
        seq = original.seq
    else:
        ins = dialect_insert(conn, t.recipient)
        row = conn.execute(
            ins.values(address=address, last_seq=1, created_at=now)
            .on_conflict_do_update(
                index_elements=["address"], set_={"last_seq": t.recipient.c.last_seq + 1}
            )
            .returning(t.recipient.c.id, t.recipient.c.last_seq)
        ).one()
        recipient_id, seq = int(row.id), int(row.last_seq)
    delivery_id = new_id()
    token = keyring.sign(delivery_id)
    conn.execute(
        t.delivery.insert().values(
            id=delivery_id,
            notification_id=original.notification_id,
            recipient_id=recipient_id,
            seq=seq,
            to_header=to,
            token=token,
            ref=human_ref(delivery_id).replace("-", "").lower(),
            message_id=f"<{token}@{id_domain}>",
            level=Level.QUEUED.value,
            outcome=None,
            created_at=now,
            updated_at=now,
            policy=policy,
            required=required,
            deadline_at=deadline_at,
            resend_of=of,
        )
    )
    if deadline_at is not None:
        # The reconciler first looks at it at its deadline.
        conn.execute(t.delivery_due.insert().values(delivery_id=delivery_id, due_at=deadline_at))
    conn.execute(
        t.outbox.insert().values(
            delivery_id=delivery_id, available_at=now, attempts=0, created_at=now
        )
    )
    return delivery_id
