"""Reading stored received messages into evidence.

Ingest runs after the message is safely stored (and the sender told ``250``):

1. parse it (``landed.parse``: pure);
2. attribute it: VERP token first, then ENVID, then the returned Message-ID,
   then our ``X-Landed-Token`` header, then heuristics (the recipient's
   address, within the notification or a recent time window), marked as such;
3. verify every token with the keyring — a token that does not verify is
   ignored, never trusted;
4. append one evidence row per attributed recipient;
5. when a human reply is new and ``forwarding`` names an address for its
   delivery's policy, queue it for forwarding (``landed.forwarder``) in the
   same transaction: a reply is never acknowledged without being queued.

A message nothing can be tied to is kept as ``quarantined`` (``landed inbound
quarantine`` lists them). Ingesting the same message twice adds nothing: the
evidence dedupe key is derived from the message's bytes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from landed import __version__
from landed.domain import Attribution, EvidenceSource, Level, Outcome
from landed.parse import Kind, RecipientReport, Report, Token, parse
from landed.store import Database
from landed.store import tables as t
from landed.store.forwards import ReplyForwarding, enqueue_forward
from landed.store.inbound import InboundMessage, load_inbound, mark_inbound
from landed.store.ledger import NewEvidence, append_evidence, delivery_for_token
from landed.tokens import TOKEN_PATTERN, Keyring

log = logging.getLogger("landed.ingest")

#: The local parts landed hands out: VERP bounces, and replies (``reply+TOKEN``).
_TRACKED_LOCAL = re.compile(rf"^(bounces|reply)\+({TOKEN_PATTERN})@", re.I)
#: Recorded with each piece of evidence, so it can be re-read by a later parser.
PARSER = f"landed.parse {__version__}"
#: How far back the last-resort heuristic looks for a delivery to the same address.
HEURISTIC_WINDOW = timedelta(days=7)

_ORDER = {
    "verp": Attribution.VERP,
    "envid": Attribution.ENVID,
    "message-id": Attribution.MESSAGE_ID,
    "header": Attribution.HEADER,
}


@dataclass(frozen=True, slots=True)
class Anchor:
    """A delivery a verified token points at."""

    delivery_id: str
    notification_id: str
    recipient: str
    attribution: Attribution


@dataclass(frozen=True, slots=True)
class IngestResult:
    inbound_id: int
    kind: str
    state: str
    evidence: int
    detail: str


def envelope_token(rcpt_to: tuple[str, ...]) -> tuple[str, str] | None:
    """``(local-part kind, token)`` of the first tracked envelope recipient."""
    for rcpt in rcpt_to:
        match = _TRACKED_LOCAL.match(rcpt.strip("<>"))
        if match:
            return match.group(1).lower(), match.group(2).lower()
    return None


def ingest(
    db: Database,
    keyring: Keyring,
    inbound_id: int,
    *,
    now: datetime,
    forwarding: ReplyForwarding | None = None,
) -> IngestResult:
    """Read one stored message into evidence (or quarantine it).

    ``forwarding``: where new human replies are forwarded (None: nowhere).
    """
    with db.read() as conn:
        (message,) = load_inbound(conn, [inbound_id])
    envelope = envelope_token(message.rcpt_to)
    report = parse(message.raw, envelope_rcpt=_first_tracked(message.rcpt_to))
    with db.write() as conn:
        anchor, rejected = _anchor(conn, keyring, report, envelope)
        items, unattributed = _evidence(conn, keyring, message, report, anchor, envelope, now)
        added = append_evidence(conn, items, now=now)
        if forwarding is not None and added:
            # ``added`` is 0 when this message was read before: forwarded once only.
            _queue_forwards(conn, forwarding, message.id, items, now)
        state = "ingested" if items else "quarantined"
        detail = _summary(report, anchor, items, unattributed, rejected)
        mark_inbound(conn, inbound_id, state=state, detail=detail, now=now)
    log.info("inbound %d: %s: %s", inbound_id, state, detail)
    return IngestResult(inbound_id, str(report.kind), state, added, detail)


def _queue_forwards(
    conn: Connection,
    forwarding: ReplyForwarding,
    inbound_id: int,
    items: list[NewEvidence],
    now: datetime,
) -> None:
    # Only a person's reply: an auto-reply is ``autoreply`` evidence (delivered,
    # not acknowledged) and is never forwarded.
    replied = sorted(
        {i.delivery_id for i in items if i.source is EvidenceSource.REPLY and i.delivery_id}
    )
    if not replied:
        return
    policies = {
        row.id: row.policy
        for row in conn.execute(
            select(t.delivery.c.id, t.delivery.c.policy).where(t.delivery.c.id.in_(replied))
        )
    }
    for delivery_id in replied:
        to = forwarding.address_for(policies.get(delivery_id))
        if to:
            enqueue_forward(
                conn, inbound_id=inbound_id, delivery_id=delivery_id, to_address=to, now=now
            )
            log.info("inbound %d: reply queued for forwarding to %s", inbound_id, to)


def _first_tracked(rcpt_to: tuple[str, ...]) -> str | None:
    for rcpt in rcpt_to:
        if _TRACKED_LOCAL.match(rcpt.strip("<>")):
            return rcpt
    return rcpt_to[0] if rcpt_to else None


def _anchor(
    conn: Connection, keyring: Keyring, report: Report, envelope: tuple[str, str] | None
) -> tuple[Anchor | None, list[str]]:
    candidates: list[tuple[Attribution, str]] = []
    if envelope is not None:
        candidates.append((Attribution.VERP, envelope[1]))
    for token in report.tokens:
        attribution = _ORDER.get(token.where)
        if attribution is not None:
            candidates.append((attribution, token.value))
    candidates.sort(key=lambda c: list(Attribution).index(c[0]))
    rejected: list[str] = []
    for attribution, value in candidates:
        found = delivery_for_token(conn, keyring, value)
        if found is None:
            rejected.append(f"{attribution}:{value[:12]}…")
            continue
        delivery_id, notification_id, recipient = found
        return Anchor(delivery_id, notification_id, recipient, attribution), rejected
    return None, rejected


def _evidence(
    conn: Connection,
    keyring: Keyring,
    message: InboundMessage,
    report: Report,
    anchor: Anchor | None,
    envelope: tuple[str, str] | None,
    now: datetime,
) -> tuple[list[NewEvidence], list[str]]:
    recipients = report.recipients or (RecipientReport(recipient=None),)
    envelope_tokens = (Token(envelope[1], "verp"),) if envelope else ()
    digest = hashlib.sha256(message.raw).hexdigest()
    # The top-level Content-Type says whether this is a standard DSN.
    standard = bool(_DSN_REPORT.search(message.raw[:65536]))
    items: list[NewEvidence] = []
    unattributed: list[str] = []
    for index, rcpt in enumerate(recipients):
        target = _attribute(
            conn,
            keyring,
            rcpt,
            anchor,
            single=len(recipients) == 1,
            now=now,
            message_tokens=(*report.tokens, *envelope_tokens),
        )
        if target is None:
            unattributed.append(rcpt.recipient or "(no recipient)")
            continue
        delivery_id, attribution = target
        source, level, outcome = classify(
            report,
            rcpt,
            replied=envelope is not None and envelope[0] == "reply",
            standard=standard,
        )
        items.append(
            NewEvidence(
                delivery_id=delivery_id,
                source=source,
                level=level,
                outcome=outcome,
                status=rcpt.status or None,
                detail=_detail(report, rcpt),
                route=message.channel,
                attribution=attribution.value,
                inbound_id=message.id,
                parser=PARSER,
                reason=rcpt.reason if rcpt.reason != "undefined" else None,
                hard=rcpt.hard,
                observed_at=message.received_at,
                raw=message.raw,
                dedupe_key=f"inbound\0{digest}\0{delivery_id}\0{index}",
            )
        )
    return items, unattributed


def _attribute(
    conn: Connection,
    keyring: Keyring,
    rcpt: RecipientReport,
    anchor: Anchor | None,
    *,
    single: bool,
    now: datetime,
    message_tokens: tuple[Token, ...],
) -> tuple[str, Attribution] | None:
    # A token reported for this very recipient (not the message-level ones every
    # recipient inherits) beats the anchor.
    shared = {token.value for token in message_tokens}
    for token in rcpt.tokens:
        if token.value in shared:
            continue
        found = delivery_for_token(conn, keyring, token.value)
        if found is not None:
            return found[0], _ORDER.get(token.where, Attribution.HEADER)
    addresses = {a.lower() for a in (rcpt.recipient, rcpt.original_recipient) if a}
    if anchor is not None:
        # Each delivery has its own envelope, so a report with one recipient is
        # about the anchor's delivery even when forwarding or alias expansion
        # changed the address it names.
        if single or not addresses or anchor.recipient in addresses:
            return anchor.delivery_id, anchor.attribution
        sibling = conn.execute(
            select(t.delivery.c.id)
            .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
            .where(
                t.delivery.c.notification_id == anchor.notification_id,
                t.recipient.c.address.in_(sorted(addresses)),
            )
        ).scalar()
        if sibling is not None:
            return sibling, Attribution.HEURISTIC
    if not addresses:
        return None
    # Last resort: the newest delivery to this address in the recent past.
    recent = conn.execute(
        select(t.delivery.c.id)
        .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
        .where(
            t.recipient.c.address.in_(sorted(addresses)),
            t.delivery.c.created_at >= now - HEURISTIC_WINDOW,
            t.delivery.c.created_at <= now,
        )
        .order_by(t.delivery.c.created_at.desc())
        .limit(1)
    ).scalar()
    return (recent, Attribution.HEURISTIC) if recent is not None else None


_DSN_REPORT = re.compile(rb"report-type\s*=\s*\"?delivery-status", re.I)


def classify(
    report: Report, rcpt: RecipientReport, *, replied: bool = False, standard: bool = False
) -> tuple[EvidenceSource, Level | None, Outcome | None]:
    """What a report proves about one recipient's delivery, on the evidence ladder.

    ``standard``: the message is an RFC 3464 ``multipart/report`` (source
    ``dsn``); otherwise a failure is a non-standard ``bounce``.
    """
    dsn_source = EvidenceSource.DSN if standard else EvidenceSource.BOUNCE
    action = rcpt.action.lower()
    if report.kind is Kind.FEEDBACK:
        # A complaint means the message reached the mailbox, and the person objected.
        return EvidenceSource.ARF, Level.DELIVERED, Outcome.COMPLAINED
    if report.kind is Kind.AUTOREPLY:
        # Out-of-office replies come from the mailbox: delivered, not acknowledged.
        return EvidenceSource.AUTOREPLY, Level.DELIVERED, None
    if report.kind is Kind.MDN:
        disposition = report.disposition.lower()
        if "displayed" in disposition:
            return EvidenceSource.MDN, Level.SEEN, None
        if any(word in disposition for word in ("deleted", "dispatched", "processed")):
            return EvidenceSource.MDN, Level.DELIVERED, None
        return EvidenceSource.MDN, None, None
    if action == "delivered":
        return dsn_source, Level.DELIVERED, None
    if action in ("relayed", "expanded"):
        # Relayed to a system that sends no DSNs (RFC 3464 §2.3.3): accepted, no more.
        return dsn_source, Level.ACCEPTED, None
    if action == "delayed" or report.kind is Kind.DELAY:
        # Someone after our relay holds it and is retrying: it was submitted.
        return dsn_source, Level.SUBMITTED, Outcome.DEFERRED
    if action == "failed" or report.kind is Kind.BOUNCE:
        # Decided by the action, not the status class: Postfix reports a final
        # failure after the queue lifetime with the last 4.x.x status.
        return dsn_source, None, Outcome.BOUNCED
    if report.kind is Kind.DELIVERED:
        return dsn_source, Level.DELIVERED, None
    if replied:
        return EvidenceSource.REPLY, Level.ACKNOWLEDGED, None
    return EvidenceSource.BOUNCE, None, None


def _detail(report: Report, rcpt: RecipientReport) -> str:
    parts = [f"{report.kind}"]
    if report.dialect:
        parts[0] += f" ({report.dialect})"
    for value in (rcpt.action, rcpt.status, rcpt.reason if rcpt.reason != "undefined" else ""):
        if value:
            parts.append(value)
    text = " ".join(parts)
    if rcpt.remote_mta:
        text += f" from {rcpt.remote_mta}"
    if rcpt.diagnostic:
        text += f": {rcpt.diagnostic}"
    return text[:2000]


def _summary(
    report: Report,
    anchor: Anchor | None,
    items: list[NewEvidence],
    unattributed: list[str],
    rejected: list[str],
) -> str:
    text = f"{report.kind}"
    if report.dialect:
        text += f" ({report.dialect})"
    text += f", {len(items)} evidence"
    if anchor is not None:
        text += f", by {anchor.attribution}"
    if unattributed:
        text += f"; unattributed: {', '.join(unattributed[:10])}"
    if rejected:
        text += f"; tokens that did not verify: {', '.join(rejected[:5])}"
    if not items:
        text += "; quarantined: no verified token and no matching delivery"
    return text
