"""The reconciler: each delivery's verdict under its policy, and the alerts that follow.

A tick reads only the deliveries whose ``due_at`` has come (an indexed
column), so its cost grows with what is due, not with the ledger:

- a delivery is due at its policy deadline, and again at once whenever new
  evidence changes what it proves (``landed.store.ledger.refold`` sets it);
- an open alert keeps its delivery due at the time of its next escalation step.

For each due delivery the pure ``landed.domain.policy.judge`` gives a verdict:
``failed`` opens an alert (once), puts hard-bounced or complaining addresses
on the suppression list, and runs the policy's escalation steps as they come
due; ``met`` resolves an open alert, noting the evidence that proved it;
``pending`` waits for the deadline. Running a tick twice changes nothing the
second time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from landed.alerts.sinks import ALERT_CLASS, DIGEST_CLASS, log_alert, webhook_payload
from landed.clock import Clock, SystemClock
from landed.compose.headers import parse_mailbox
from landed.compose.request import validate_request
from landed.config import Settings
from landed.domain import Level, Outcome
from landed.domain.policy import Action, Judgement, Policy, State, Step, choose, judge
from landed.store import Database
from landed.store import tables as t
from landed.store.alerts import (
    add_event,
    enqueue_dispatch,
    find_alerts,
    resolve_alert,
    suppress,
    suppressed,
)
from landed.store.record import record_notification
from landed.store.resend import add_delivery
from landed.tokens import human_ref

log = logging.getLogger("landed.reconcile")

_FAILING = {
    o.value for o in (Outcome.BOUNCED, Outcome.COMPLAINED, Outcome.SUPPRESSED, Outcome.REJECTED)
}


@dataclass
class TickResult:
    """What one tick did."""

    judged: int = 0
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    steps: int = 0


_SET_DUE = (
    update(t.delivery)
    .where(t.delivery.c.id == bindparam("b_id"))
    .values(due_at=bindparam("due_at", type_=t.UTCDateTime()))
)


@dataclass
class _Batch:
    """What one tick decided, written after the loop."""

    now: datetime
    due: dict[str, datetime | None] = field(default_factory=dict)
    to_open: list[tuple[Row[Any], Policy, str, Level, datetime]] = field(default_factory=list)


def _proven_by_resend(children: list[Row[Any]], required: Level) -> str | None:
    """A resend or fallback delivery that reached the required level, if any."""
    for child in children:
        if Level(child.level).rank >= required.rank and child.outcome not in _FAILING:
            return f"{human_ref(child.id)} to {child.to_header} is {child.level}"
    return None


class Reconciler:
    """Turns evidence into verdicts, alerts and escalation."""

    def __init__(self, db: Database, settings: Settings, *, clock: Clock | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock or SystemClock()
        self.policies = settings.policy_list()
        self.by_name = {p.name: p for p in self.policies}
        self.suppress_for = settings.suppression_period()
        self.sinks = [
            s
            for s, on in (
                ("webhook", settings.alert_webhook_url),
                ("email", settings.alert_email_to),
            )
            if on
        ]

    def tick(self, limit: int = 1000) -> TickResult:
        """Reconcile every delivery that is due now (up to ``limit``).

        The common cases cost a fixed number of statements per tick, not per
        delivery: verdicts are computed in Python from one read, alerts are
        opened with one multi-row insert, and due times are written with one
        executemany. Escalation steps, rarer, run one by one.
        """
        now = self.clock.now()
        result = TickResult()
        with self.db.write() as conn:
            rows = self._due(conn, now, limit)
            if not rows:
                return result
            ids = [r.id for r in rows]
            alerts = self._open_alerts(conn, ids)
            children = self._children(conn, ids)
            batch = _Batch(now)
            for row in rows:
                self._reconcile(
                    conn, row, alerts.get(row.id), children.get(row.id, []), batch, result
                )
                result.judged += 1
            self._open_alerts_for(conn, batch, result)
            if batch.due:
                conn.execute(_SET_DUE, [{"b_id": k, "due_at": v} for k, v in batch.due.items()])
        return result

    def run(self, stop: threading.Event, interval: float = 5.0) -> None:
        """Tick until ``stop``; back to back while a tick finds a full batch."""
        while not stop.is_set():
            try:
                result = self.tick()
            except Exception:
                log.exception("reconcile tick failed")
                stop.wait(interval)
                continue
            if result.judged < 1000:
                stop.wait(interval)

    # --- reading ---------------------------------------------------------------------

    def _due(self, conn: Connection, now: datetime, limit: int) -> list[Row[Any]]:
        # First the due ids, from the due_at index alone (and locked on
        # PostgreSQL, so that several reconcilers share the work without judging
        # one delivery twice); then what is needed about just those. One query
        # with the joins lets the planner hash-join whole tables: a cost that
        # grows with the ledger.
        due = (
            select(t.delivery.c.id)
            .where(t.delivery.c.due_at <= now)
            .order_by(t.delivery.c.due_at)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        query = (
            select(
                t.delivery.c.id,
                t.delivery.c.level,
                t.delivery.c.outcome,
                t.delivery.c.policy,
                t.delivery.c.required,
                t.delivery.c.deadline_at,
                t.delivery.c.created_at,
                t.delivery.c.due_at,
                t.delivery.c.seq,
                t.delivery.c.to_header,
                t.delivery.c.token,
                t.delivery.c.resend_of,
                t.recipient.c.address,
                t.notification.c.cls,
                t.notification.c.subject,
                t.topic.c.key.label("topic_key"),
            )
            .join(t.recipient, t.recipient.c.id == t.delivery.c.recipient_id)
            .join(t.notification, t.notification.c.id == t.delivery.c.notification_id)
            .join(t.topic, t.topic.c.id == t.notification.c.topic_id)
            .where(t.delivery.c.id.in_(ids))
        )
        return sorted(conn.execute(query), key=lambda r: (r.due_at, r.id))

    def _open_alerts(self, conn: Connection, ids: list[str]) -> dict[str, Row[Any]]:
        if not ids:
            return {}
        rows = conn.execute(
            select(t.alert).where(t.alert.c.delivery_id.in_(ids), t.alert.c.state == "open")
        )
        return {r.delivery_id: r for r in rows}

    def policy_for(self, row: Row[Any]) -> Policy:
        named = self.by_name.get(row.policy) if row.policy else None
        return named or choose(self.policies, row.cls, row.address)

    # --- deciding ----------------------------------------------------------------------

    def _reconcile(
        self,
        conn: Connection,
        row: Row[Any],
        alert: Row[Any] | None,
        children: list[Row[Any]],
        batch: _Batch,
        result: TickResult,
    ) -> None:
        now = batch.now
        if row.resend_of is not None:
            # A resend or fallback belongs to its original's alert: it raises none
            # of its own, and what it proves is judged there.
            batch.due[row.id] = None
            batch.due[row.resend_of] = now
            return
        policy = self.policy_for(row)
        required = Level(row.required) if row.required else policy.required
        deadline_at = row.deadline_at or row.created_at + policy.deadline
        verdict = judge(
            Level(row.level),
            Outcome(row.outcome) if row.outcome else None,
            required,
            deadline_at,
            now,
        )
        if verdict.state is not State.MET:
            proof = _proven_by_resend(children, required)
            if proof is not None:
                verdict = Judgement(State.MET, reason=proof)
        batch.due[row.id] = None
        if verdict.state is State.MET:
            if alert is not None:
                if verdict.reason:  # proven through a resend or fallback
                    note = f"proven by escalation: delivery {verdict.reason}"
                else:
                    proof = self._latest_evidence(conn, row.id)
                    note = f"late evidence proves {row.level} (required {required}): {proof}"
                if resolve_alert(conn, alert.id, by="evidence", note=note, now=now):
                    result.resolved.append(alert.id)
                    self._announce(conn, [alert.id], "resolved", now)
        elif verdict.state is State.FAILED:
            reason = verdict.reason or "failed"
            if alert is None:
                # Opened with the others after the loop, in one insert.
                batch.to_open.append((row, policy, reason, required, deadline_at))
                return
            self._escalate(
                conn,
                row,
                policy,
                alert.id,
                alert.opened_at,
                alert.steps_done,
                reason,
                batch,
                result,
            )
        else:
            batch.due[row.id] = verdict.recheck_at

    def _escalate(
        self,
        conn: Connection,
        row: Row[Any],
        policy: Policy,
        alert_id: int,
        opened_at: datetime,
        steps_done: int,
        reason: str,
        batch: _Batch,
        result: TickResult,
    ) -> None:
        if row.cls in (ALERT_CLASS, DIGEST_CLASS) or not policy.steps:
            return  # nothing to run; landed's own alert mail is never escalated
        done = self._run_steps(
            conn, row, policy, alert_id, opened_at, steps_done, reason, batch.now, result
        )
        if done < len(policy.steps):
            batch.due[row.id] = opened_at + policy.steps[done].after

    def _open_alerts_for(self, conn: Connection, batch: _Batch, result: TickResult) -> None:
        """Open the alerts this tick found, all at once."""
        if not batch.to_open:
            return
        now = batch.now
        latest = self._latest_evidence_of(conn, [item[0].id for item in batch.to_open])
        values = []
        for row, _policy, reason, required, deadline_at in batch.to_open:
            detail = latest.get(row.id) or f"not {required} by {deadline_at:%Y-%m-%d %H:%M} UTC"
            values.append(
                {
                    "delivery_id": row.id,
                    "reason": reason,
                    "state": "open",
                    "detail": detail,
                    "opened_at": now,
                    "steps_done": 0,
                }
            )
        opened = (
            conn.execute(
                insert(t.alert).returning(t.alert.c.id, sort_by_parameter_order=True), values
            )
            .scalars()
            .all()
        )
        conn.execute(
            t.alert_event.insert(),
            [
                {
                    "alert_id": alert_id,
                    "at": now,
                    "kind": "opened",
                    "detail": f"{v['reason']}: {v['detail']}",
                }
                for alert_id, v in zip(opened, values, strict=True)
            ],
        )
        result.opened.extend(opened)
        self._announce(conn, list(opened), "opened", now)
        for alert_id, (row, policy, reason, _required, _deadline) in zip(
            opened, batch.to_open, strict=True
        ):
            self._maybe_suppress(conn, row, reason, policy, alert_id, now)
            self._escalate(conn, row, policy, alert_id, now, 0, reason, batch, result)

    def _children(self, conn: Connection, ids: list[str]) -> dict[str, list[Row[Any]]]:
        found: dict[str, list[Row[Any]]] = {}
        for child in conn.execute(
            select(
                t.delivery.c.id,
                t.delivery.c.resend_of,
                t.delivery.c.level,
                t.delivery.c.outcome,
                t.delivery.c.to_header,
            )
            .where(t.delivery.c.resend_of.in_(ids))
            .order_by(t.delivery.c.id)
        ):
            found.setdefault(child.resend_of, []).append(child)
        return found

    def _latest_evidence_of(self, conn: Connection, ids: list[str]) -> dict[str, str]:
        latest: dict[str, tuple[datetime, int, str]] = {}
        for e in conn.execute(
            select(
                t.evidence.c.delivery_id,
                t.evidence.c.observed_at,
                t.evidence.c.id,
                t.evidence.c.source,
                t.evidence.c.detail,
            ).where(t.evidence.c.delivery_id.in_(ids))
        ):
            key = (e.observed_at, e.id, f"{e.source}: {e.detail}")
            if e.delivery_id not in latest or key[:2] > latest[e.delivery_id][:2]:
                latest[e.delivery_id] = key
        return {k: v[2] for k, v in latest.items()}

    def _latest_evidence(self, conn: Connection, delivery_id: str) -> str:
        row = conn.execute(
            select(t.evidence.c.source, t.evidence.c.detail)
            .where(t.evidence.c.delivery_id == delivery_id)
            .order_by(t.evidence.c.observed_at.desc(), t.evidence.c.id.desc())
            .limit(1)
        ).one_or_none()
        return f"{row.source}: {row.detail}" if row else ""

    def _maybe_suppress(
        self,
        conn: Connection,
        row: Row[Any],
        reason: str,
        policy: Policy,
        alert_id: int,
        now: datetime,
    ) -> None:
        if not policy.suppress or reason not in ("bounced", "complained"):
            return
        if reason == "bounced" and not self._hard_bounce(conn, row.id):
            return
        expires = now + self.suppress_for if self.suppress_for else None
        suppress(conn, row.address, reason=reason, now=now, expires_at=expires, delivery_id=row.id)
        until = f"until {expires:%Y-%m-%d}" if expires else "until removed"
        add_event(conn, alert_id, "suppressed", f"{row.address} suppressed {until}", now)

    def _hard_bounce(self, conn: Connection, delivery_id: str) -> bool:
        # The parser's hard/soft verdict when there is one; otherwise the status:
        # 5.1.x (bad mailbox or address) and 5.2.1 (disabled) do not heal by retrying.
        rows = conn.execute(
            select(t.evidence.c.hard, t.evidence.c.status).where(
                t.evidence.c.delivery_id == delivery_id,
                t.evidence.c.outcome == Outcome.BOUNCED.value,
            )
        ).all()
        for r in rows:
            if r.hard is not None:
                if r.hard:
                    return True
                continue
            if r.status and (r.status.startswith("5.1.") or r.status == "5.2.1"):
                return True
        return False

    # --- acting --------------------------------------------------------------------------

    def _announce(self, conn: Connection, alert_ids: list[int], event: str, now: datetime) -> None:
        """The structured log line for each alert, and a notice queued for each sink."""
        for view in find_alerts(conn, state=None, ids=alert_ids, limit=len(alert_ids)):
            log_alert(f"alert.{event}", view.as_dict())
            if self.sinks:
                payload = webhook_payload(view)
                for sink in self.sinks:
                    enqueue_dispatch(
                        conn, view.id, sink=sink, event=f"alert.{event}", payload=payload, now=now
                    )

    def _run_steps(
        self,
        conn: Connection,
        row: Row[Any],
        policy: Policy,
        alert_id: int,
        opened_at: datetime,
        done: int,
        reason: str,
        now: datetime,
        result: TickResult,
    ) -> int:
        while done < len(policy.steps) and opened_at + policy.steps[done].after <= now:
            step = policy.steps[done]
            try:
                outcome = self._run_step(conn, row, policy, step, done + 1, alert_id, reason, now)
            except Exception as exc:  # a step that fails is recorded, and the next one runs
                log.exception("escalation step %s failed", step.action)
                outcome = f"failed: {exc}"
            add_event(conn, alert_id, f"step {done + 1}: {step.action}", outcome, now)
            done += 1
            result.steps += 1
        conn.execute(update(t.alert).where(t.alert.c.id == alert_id).values(steps_done=done))
        return done

    def _run_step(
        self,
        conn: Connection,
        row: Row[Any],
        policy: Policy,
        step: Step,
        step_index: int,
        alert_id: int,
        reason: str,
        now: datetime,
    ) -> str:
        keyring = self.settings.keyring()
        id_domain = self.settings.id_domain()
        if step.action in (Action.RESEND, Action.FALLBACK):
            if step.action is Action.RESEND:
                to = row.to_header
            else:
                fallback = self.settings.fallbacks.get(row.address)
                if not fallback:
                    return f"no fallback address configured for {row.address}"
                to = fallback
            target = parse_mailbox(to, "to").normalized()
            blocked = suppressed(conn, [target], now)
            if blocked:
                verb = "resent" if step.action is Action.RESEND else "sent to the fallback"
                return f"not {verb}: {target} is suppressed ({blocked[target]})"
            new_id = add_delivery(
                conn,
                of=row.id,
                to=to,
                keyring=keyring,
                id_domain=id_domain,
                now=now,
                policy=policy.name,
                required=policy.required.value,
                deadline_at=now + policy.deadline,
            )
            return f"queued delivery {human_ref(new_id)} to {to}"
        if step.action is Action.NOTIFY:
            assert step.to is not None
            request = validate_request(
                topic=row.topic_key,
                cls=ALERT_CLASS,
                to=[step.to],
                subject=(
                    f"[landed] not proven: {row.topic_key} #{row.seq} to {row.address} ({reason})"
                ),
                text=(
                    f'The notification "{row.subject}" about {row.topic_key} to {row.address}\n'
                    f"is not proven: {reason}. Its level is {row.level}; the policy "
                    f'"{policy.name}" requires {policy.required}.\n\n'
                    f"Delivery {row.id} (Ref {human_ref(row.id)}), alert {alert_id}.\n"
                ),
                idempotency_key=f"alert-{alert_id}-notify-{step.to}"[:200],
            )
            created = record_notification(
                conn,
                request,
                policies=self.policies,
                sender=self.settings.require_from(),
                keyring=keyring,
                id_domain=id_domain,
                now=now,
                outstanding_limit=0,
            )
            return f"told {step.to} (delivery {created.deliveries[0].ref})"
        assert step.url is not None
        enqueue_dispatch(
            conn,
            alert_id,
            sink=f"webhook:{step.url}",
            event=f"alert.escalated.{step_index}",
            payload={
                "alert_id": alert_id,
                "delivery_id": row.id,
                "reason": reason,
                "topic": row.topic_key,
                "recipient": row.address,
            },
            now=now,
        )
        return f"webhook {step.url} queued"
