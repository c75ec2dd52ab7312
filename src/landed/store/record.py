"""Recording a notification under its policies: ``ledger.notify`` plus the rules
that depend on configuration (which policy, which deadline, suppression)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete

from landed.compose.request import NotifyRequest
from landed.domain import EvidenceSource, Level, Outcome
from landed.domain.policy import Policy, choose
from landed.store import tables as t
from landed.store.ledger import Assignment, NewEvidence, NotifyResult, append_evidence, notify
from landed.tokens import Keyring


def record_notification(
    conn: Connection,
    request: NotifyRequest,
    *,
    policies: Sequence[Policy],
    sender: str,
    keyring: Keyring,
    id_domain: str,
    now: datetime,
    outstanding_below: Level = Level.DELIVERED,
    outstanding_limit: int = 10,
    outstanding_days: int = 30,
) -> NotifyResult:
    """Record and queue a notification; give each delivery its policy and deadline.

    A delivery to a suppressed address is recorded but not queued: its
    ``suppressed`` evidence makes the reconciler raise an alert. Nothing is
    silently skipped.
    """
    assign: dict[str, Assignment] = {}
    configured = tuple(policies)
    for mailbox in request.to:
        address = mailbox.normalized()
        policy = _choose(configured, request.cls, address)
        assign[address] = Assignment(policy.name, policy.required, now + policy.deadline)
    result = notify(
        conn,
        request,
        sender=sender,
        keyring=keyring,
        id_domain=id_domain,
        now=now,
        outstanding_below=outstanding_below,
        outstanding_limit=outstanding_limit,
        outstanding_days=outstanding_days,
        assign=assign,
    )
    if not result.created:
        return result
    # notify read the suppression list in the same statement that counted the
    # recipients' sequence numbers (as ``store.alerts.suppressed`` asks it).
    blocked = result.suppressed
    if blocked:
        held = [d for d in result.deliveries if d.recipient in blocked]
        conn.execute(
            delete(t.outbox).where(t.outbox.c.delivery_id.in_([d.delivery_id for d in held]))
        )
        append_evidence(
            conn,
            [
                NewEvidence(
                    delivery_id=d.delivery_id,
                    source=EvidenceSource.WORKER,
                    outcome=Outcome.SUPPRESSED,
                    observed_at=now,
                    detail=f"not sent: {d.recipient} is suppressed ({blocked[d.recipient]})",
                    raw=f"suppressed: {blocked[d.recipient]}".encode(),
                )
                for d in held
            ],
            now=now,
        )
    return result


@functools.lru_cache(maxsize=4096)
def _remembered_choice(policies: tuple[Policy, ...], cls: str, address: str) -> Policy:
    return choose(policies, cls, address)


def _choose(policies: tuple[Policy, ...], cls: str, address: str) -> Policy:
    """``choose``, remembered: the same policies are asked about the same class and
    recipients again and again, and matching the patterns costs more than the lookup."""
    try:
        return _remembered_choice(policies, cls, address)
    except TypeError:  # a policy built with lists instead of tuples: not hashable
        return choose(policies, cls, address)
