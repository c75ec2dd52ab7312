"""Recording provider webhooks: the raw request, then one evidence row per event.

Called only for requests whose authentication passed. In one transaction:
the request is stored whole (``webhook_request``), each event's token is
verified with the keyring and resolved to a delivery, and the events are
appended as evidence, deduplicated by provider, event id and recipient, so a
provider's retry or a replayed request adds nothing. ``append_evidence``
refolds the deliveries touched and makes them due for the reconciler, as for
any other evidence.

An event whose token is missing or does not verify is still kept, with no
delivery (``delivery_id`` NULL): evidence is never dropped, and nothing from
outside changes a delivery without a verified token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from landed import __version__
from landed.domain import Attribution, EvidenceSource
from landed.parse.providers import ProviderEvent
from landed.store import tables as t
from landed.store.ledger import NewEvidence, append_evidence, delivery_for_token, dialect_insert
from landed.tokens import Keyring

__all__ = ["ATTRIBUTION", "PARSER", "WebhookOutcome", "record_events", "store_request"]

#: Recorded with each event's evidence: which reader made it.
PARSER = f"landed.esp {__version__}"[:32]
#: How an event was tied to its delivery: the token in the provider's echoed
#: field (custom args, metadata, tags, user variables).
ATTRIBUTION = Attribution.PROVIDER_FIELD.value
#: Same, for one of several recipients matched by address within the notification.
SIBLING = Attribution.HEURISTIC.value


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    request_id: int
    events: int
    new_events: int
    attributed: int


def store_request(
    conn: Connection,
    *,
    provider: str,
    received_at: datetime,
    peer: str,
    headers: Mapping[str, str],
    body: bytes,
) -> int:
    """Store an authenticated request as received; return its id."""
    result = conn.execute(
        insert(t.webhook_request)
        .values(
            provider=provider,
            received_at=received_at,
            peer=peer[:255],
            headers=json.dumps(dict(headers), sort_keys=True),
            body=body,
            events=0,
            new_events=0,
        )
        .returning(t.webhook_request.c.id)
    )
    return int(result.scalar_one())


def first_use(
    conn: Connection, provider: str, nonce: str, *, expires_at: datetime, now: datetime
) -> bool:
    """Record a signature nonce; False if it was used before and has not expired.

    The primary key makes this exact across every host sharing the ledger. Run
    it in the transaction that records the request: should recording fail, the
    nonce is not spent, and the provider's retry of the same request succeeds.
    """
    conn.execute(
        delete(t.webhook_nonce).where(
            t.webhook_nonce.c.provider == provider, t.webhook_nonce.c.expires_at <= now
        )
    )
    # RETURNING rather than rowcount, which is -1 for this statement on psycopg 3.
    inserted = conn.execute(
        dialect_insert(conn, t.webhook_nonce)
        .values(provider=provider, nonce=nonce[:128], expires_at=expires_at)
        .on_conflict_do_nothing()
        .returning(t.webhook_nonce.c.nonce)
    )
    return inserted.first() is not None


def record_events(
    conn: Connection,
    keyring: Keyring,
    request_id: int,
    events: Sequence[ProviderEvent],
    *,
    now: datetime,
) -> WebhookOutcome:
    """Append the request's events as evidence and count them on the request row."""
    resolved: dict[str, tuple[str, str, str] | None] = {}
    items: list[NewEvidence] = []
    attributed = 0
    # How many recipients each token's events name: an event about one
    # recipient belongs to the token's delivery even if the address differs
    # (an alias, a forward), as with a DSN that names one recipient.
    per_token: dict[str | None, set[str | None]] = {}
    for event in events:
        per_token.setdefault(event.token, set()).add(event.recipient)
    for event in events:
        delivery_id, attribution = _attribute(
            conn, keyring, event, resolved, single=len(per_token[event.token]) == 1
        )
        if delivery_id is not None:
            attributed += 1
        items.append(
            NewEvidence(
                delivery_id=delivery_id,
                source=EvidenceSource.ESP_WEBHOOK,
                level=event.level,
                outcome=event.outcome,
                status=event.status[:16] if event.status else None,
                detail=_detail(event),
                route=event.provider,
                attribution=attribution,
                parser=PARSER,
                reason=event.reason[:32] if event.reason else None,
                hard=event.hard,
                observed_at=event.observed_at or now,
                raw=event.raw,
                dedupe_key=f"esp\0{event.provider}\0{event.event_id}\0{event.recipient or ''}",
            )
        )
    new = append_evidence(conn, items, now=now)
    conn.execute(
        update(t.webhook_request)
        .where(t.webhook_request.c.id == request_id)
        .values(events=len(items), new_events=new)
    )
    return WebhookOutcome(request_id, len(items), new, attributed)


def _detail(event: ProviderEvent) -> str:
    text = event.detail
    if event.provider_reported:
        # Opens and clicks seen by the provider's tracking: proxies and link
        # scanners trigger them too, so they never count as acknowledged.
        text = f"provider-reported: {text}"
    if event.message_id:
        text += f" [provider message id {event.message_id}]"
    return text[:2000]


def _attribute(
    conn: Connection,
    keyring: Keyring,
    event: ProviderEvent,
    resolved: dict[str, tuple[str, str, str] | None],
    *,
    single: bool,
) -> tuple[str | None, str | None]:
    if not event.token:
        return None, None
    if event.token not in resolved:
        resolved[event.token] = delivery_for_token(conn, keyring, event.token)
    found = resolved[event.token]
    if found is None:
        return None, None
    delivery_id, notification_id, address = found
    if single or event.recipient is None or event.recipient == address:
        return delivery_id, ATTRIBUTION
    # One event naming several recipients (SES lists them together): the
    # token is one delivery's; the others are its siblings in the notification.
    sibling = conn.execute(
        select(t.delivery.c.id)
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .where(
            t.delivery.c.notification_id == notification_id,
            t.recipient.c.address == event.recipient,
        )
        .order_by(t.delivery.c.id.desc())
        .limit(1)
    ).scalar()
    return (str(sibling), SIBLING) if sibling is not None else (None, None)
