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

import functools
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Executable,
    Integer,
    Row,
    String,
    Text,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

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
    AlertView,
    Notice,
    add_event,
    enqueue_dispatch,
    enqueue_dispatches,
    resolve_alerts,
    suppress,
    suppressed,
    timelines,
)
from landed.store.idlists import id_list, one_of
from landed.store.record import record_notification
from landed.store.resend import add_delivery
from landed.tokens import human_ref

log = logging.getLogger("landed.reconcile")

#: Enum members by value: a dict lookup costs a fraction of ``Level(value)``.
_LEVEL = {level.value: level for level in Level}
_OUTCOME = {outcome.value: outcome for outcome in Outcome}

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


@dataclass
class _Batch:
    """What one tick decided, written after the loop."""

    now: datetime
    due: dict[str, datetime | None] = field(default_factory=dict)
    to_open: list[tuple[Row[Any], Policy, str, Level, datetime]] = field(default_factory=list)
    #: Open alerts that evidence now proves: (row, note), resolved after the loop.
    to_resolve: list[tuple[Row[Any], Row[Any], str]] = field(default_factory=list)
    #: Resolutions still waiting for the latest evidence to be named in their note.
    need_proof: list[tuple[Row[Any], Row[Any], Level]] = field(default_factory=list)


def _proven_by_resend(children: list[Row[Any]], required: Level) -> str | None:
    """A resend or fallback delivery that reached the required level, if any."""
    for child in children:
        if Level(child.level).rank >= required.rank and child.outcome not in _FAILING:
            return f"{human_ref(child.id)} to {child.to_header} is {child.level}"
    return None


@functools.cache
def _statements(dialect: str) -> _Statements:
    """A tick's statements, built once per dialect (see ``one_of``: one parameter per list)."""
    d, a = t.delivery, t.alert
    # The due deliveries, in due_at index order, with what is needed about them
    # read by correlated subqueries: joins let PostgreSQL's planner hash-join
    # whole tables (a seq scan of every recipient and notification) for a
    # thousand rows, a cost that grows with the ledger; a subquery per row is an
    # index lookup on every engine. Locked on PostgreSQL (only the delivery
    # rows), so that several reconcilers share the work without judging one
    # delivery twice.
    n = t.notification
    rows = (
        select(
            d.c.id,
            d.c.level,
            d.c.outcome,
            d.c.policy,
            d.c.required,
            d.c.deadline_at,
            d.c.created_at,
            d.c.seq,
            d.c.to_header,
            d.c.token,
            d.c.resend_of,
            _lookup(t.recipient.c.address, t.recipient.c.id == d.c.recipient_id, "address"),
            _lookup(n.c.cls, n.c.id == d.c.notification_id, "cls"),
            _lookup(n.c.subject, n.c.id == d.c.notification_id, "subject"),
            _lookup(
                t.topic.c.key,
                and_(n.c.id == d.c.notification_id, t.topic.c.id == n.c.topic_id),
                "topic_key",
            ),
        )
        .where(d.c.due_at <= bindparam("now", type_=t.UTCDateTime()))
        # Judged in a fixed order. The index gives due_at order; ties are sorted
        # on the spot (an incremental sort on PostgreSQL, a small temp B-tree on SQLite).
        .order_by(d.c.due_at, d.c.id)
        .limit(bindparam("limit", type_=Integer()))
    )
    if dialect == "postgresql":
        rows = rows.with_for_update(skip_locked=True, of=d)
    # Every alert of these deliveries (a handful at most), the open one picked in
    # Python: with ``state = 'open'`` in the query SQLite's planner may walk the
    # state index, i.e. every open alert, instead of the delivery_id index.
    alerts = select(
        a.c.delivery_id, a.c.id, a.c.state, a.c.reason, a.c.detail, a.c.opened_at, a.c.steps_done
    ).where(one_of(dialect, a.c.delivery_id, "ids"))
    children = (
        select(d.c.id, d.c.resend_of, d.c.level, d.c.outcome, d.c.to_header)
        .where(one_of(dialect, d.c.resend_of, "ids"))
        .order_by(d.c.id)
    )
    e = t.evidence
    evidence = select(e.c.delivery_id, e.c.observed_at, e.c.id, e.c.source, e.c.detail).where(
        one_of(dialect, e.c.delivery_id, "ids")
    )
    close = update(d).where(one_of(dialect, d.c.id, "ids")).values(due_at=None)
    if dialect == "postgresql":
        # Every other due time in one statement: the pairs as two parallel arrays.
        pairs = select(
            func.unnest(func.string_to_array(bindparam("ids", type_=String()), ",")).label("id"),
            func.unnest(bindparam("dues", type_=ARRAY(t.UTCDateTime()))).label("due_at"),
        ).subquery("pairs")
        set_due: Executable = update(d).where(d.c.id == pairs.c.id).values(due_at=pairs.c.due_at)
    else:
        # SQLite runs an executemany in C, statement prepared once: cheap enough.
        set_due = (
            update(d)
            .where(d.c.id == bindparam("b_id"))
            .values(due_at=bindparam("due_at", type_=t.UTCDateTime()))
        )
    open_alerts: Executable | None = None
    opened_events: Executable | None = None
    if dialect == "postgresql":
        now = bindparam("now", type_=t.UTCDateTime())
        new = select(
            func.unnest(func.string_to_array(bindparam("delivery_ids", type_=String()), ",")).label(
                "delivery_id"
            ),
            func.unnest(bindparam("reasons", type_=ARRAY(String()))).label("reason"),
            func.unnest(bindparam("details", type_=ARRAY(Text()))).label("detail"),
        ).subquery("new")
        open_alerts = (
            insert(a)
            .from_select(
                ["delivery_id", "reason", "state", "detail", "opened_at", "steps_done"],
                select(
                    new.c.delivery_id, new.c.reason, literal("open"), new.c.detail, now, literal(0)
                ),
            )
            .returning(a.c.id, a.c.delivery_id)
        )
        event = select(
            func.unnest(bindparam("alert_ids", type_=ARRAY(BigInteger()))).label("alert_id"),
            func.unnest(bindparam("details", type_=ARRAY(Text()))).label("detail"),
        ).subquery("event")
        opened_events = insert(t.alert_event).from_select(
            ["alert_id", "at", "kind", "detail"],
            select(event.c.alert_id, now, literal("opened"), event.c.detail),
        )
    return _Statements(rows, alerts, children, evidence, close, set_due, open_alerts, opened_events)


def _lookup(column: Any, where: Any, name: str) -> Any:
    return select(column).where(where).scalar_subquery().label(name)


@dataclass(frozen=True, slots=True)
class _Statements:
    rows: Executable
    alerts: Executable
    children: Executable
    evidence: Executable
    close: Executable
    set_due: Executable
    #: PostgreSQL only: alerts and their "opened" events inserted from arrays.
    open_alerts: Executable | None
    opened_events: Executable | None


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
        delivery: three reads (the due rows with their particulars, their open
        alerts, their resends), verdicts computed in Python, alerts opened and
        resolved in batches, each list of ids bound as one parameter, and due
        times written with one statement (PostgreSQL) or one executemany
        (SQLite). Escalation steps, rarer, run one by one.
        """
        now = self.clock.now()
        result = TickResult()
        with self.db.write() as conn:
            sql = _statements(conn.dialect.name)
            rows = self._due(conn, sql, now, limit)
            if not rows:
                return result
            ids = [r.id for r in rows]
            alerts = self._open_alerts(conn, sql, ids)
            children = self._children(conn, sql, ids)
            batch = _Batch(now)
            for row in rows:
                self._reconcile(
                    conn, row, alerts.get(row.id), children.get(row.id, []), batch, result
                )
                result.judged += 1
            self._resolve(conn, sql, batch, result)
            self._open_alerts_for(conn, sql, batch, result)
            self._write_due(conn, sql, batch.due)
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

    def _due(self, conn: Connection, sql: _Statements, now: datetime, limit: int) -> list[Row[Any]]:
        return list(conn.execute(sql.rows, {"now": now, "limit": limit}).all())

    def _open_alerts(
        self, conn: Connection, sql: _Statements, ids: list[str]
    ) -> dict[str, Row[Any]]:
        found = conn.execute(sql.alerts, {"ids": id_list(conn.dialect.name, ids)}).all()
        # At most one open alert per delivery: one is opened only when none is.
        return {r.delivery_id: r for r in found if r.state == "open"}

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
        required = _LEVEL[row.required] if row.required else policy.required
        deadline_at = row.deadline_at or row.created_at + policy.deadline
        verdict = judge(
            _LEVEL[row.level],
            _OUTCOME[row.outcome] if row.outcome else None,
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
                    batch.to_resolve.append(
                        (row, alert, f"proven by escalation: delivery {verdict.reason}")
                    )
                else:  # named after the loop, with the latest evidence of all of them at once
                    batch.need_proof.append((row, alert, required))
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

    def _resolve(
        self, conn: Connection, sql: _Statements, batch: _Batch, result: TickResult
    ) -> None:
        """Resolve the open alerts this tick found proven, all at once."""
        if batch.need_proof:
            latest = self._latest_evidence_of(conn, sql, [r.id for r, _, _ in batch.need_proof])
            for row, alert, required in batch.need_proof:
                proof = latest.get(row.id, "")
                batch.to_resolve.append(
                    (row, alert, f"late evidence proves {row.level} (required {required}): {proof}")
                )
        if not batch.to_resolve:
            return
        notes = {alert.id: note for _, alert, note in batch.to_resolve}
        done = set(resolve_alerts(conn, notes, by="evidence", now=batch.now))
        resolved = [item for item in batch.to_resolve if item[1].id in done]
        result.resolved.extend(alert.id for _, alert, _ in resolved)
        if not resolved:
            return
        events = timelines(conn, [alert.id for _, alert, _ in resolved]) if self.sinks else {}
        views = [
            AlertView(
                id=alert.id,
                delivery_id=row.id,
                reason=alert.reason,
                state="resolved",
                detail=alert.detail,
                opened_at=alert.opened_at,
                resolved_at=batch.now,
                resolved_by="evidence",
                note=note,
                steps_done=alert.steps_done,
                topic=row.topic_key,
                recipient=row.address,
                seq=row.seq,
                level=row.level,
                outcome=row.outcome,
                timeline=events.get(alert.id, ()),
            )
            for row, alert, note in resolved
        ]
        self._announce(conn, views, "resolved", batch.now)

    def _open_alerts_for(
        self, conn: Connection, sql: _Statements, batch: _Batch, result: TickResult
    ) -> None:
        """Open the alerts this tick found, all at once."""
        if not batch.to_open:
            return
        now = batch.now
        latest = self._latest_evidence_of(conn, sql, [item[0].id for item in batch.to_open])
        values = []
        for row, _policy, reason, required, deadline_at in batch.to_open:
            last = latest.get(row.id)
            missed = f"{required} required by {deadline_at:%Y-%m-%d %H:%M} UTC"
            if reason == "expired" and row.outcome != "expired":
                # A missed deadline: say what was required and how far it got;
                # the last evidence alone (a "delivered" DSN, say) would read as
                # if all were well.
                detail = f"{missed}, reached {row.level}" + (f"; last: {last}" if last else "")
            else:
                detail = last or f"not {missed}"
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
        opened = self._insert_alerts(conn, sql, values, now)
        result.opened.extend(opened)
        # The alerts as find_alerts would read them back now, without reading them:
        # everything is at hand, and the timeline so far is the one "opened" event.
        views = [
            AlertView(
                id=alert_id,
                delivery_id=row.id,
                reason=str(v["reason"]),
                state="open",
                detail=str(v["detail"]),
                opened_at=now,
                resolved_at=None,
                resolved_by=None,
                note=None,
                steps_done=0,
                topic=row.topic_key,
                recipient=row.address,
                seq=row.seq,
                level=row.level,
                outcome=row.outcome,
                timeline=((now, "opened", f"{v['reason']}: {v['detail']}"),),
            )
            for alert_id, v, (row, *_rest) in zip(opened, values, batch.to_open, strict=True)
        ]
        self._announce(conn, views, "opened", now)
        for alert_id, (row, policy, reason, _required, _deadline) in zip(
            opened, batch.to_open, strict=True
        ):
            self._maybe_suppress(conn, row, reason, policy, alert_id, now)
            self._escalate(conn, row, policy, alert_id, now, 0, reason, batch, result)

    def _insert_alerts(
        self, conn: Connection, sql: _Statements, values: list[dict[str, Any]], now: datetime
    ) -> list[int]:
        """Insert the alerts and their "opened" events; the alert ids, in ``values``' order."""
        events = [f"{v['reason']}: {v['detail']}" for v in values]
        if sql.open_alerts is None or sql.opened_events is None:
            # One multi-row INSERT ... RETURNING; the ids are matched back by delivery
            # (a tick opens at most one alert per delivery), since asking SQLAlchemy
            # to keep the parameters' order makes it insert row by row on SQLite.
            by_delivery = {
                r.delivery_id: r.id
                for r in conn.execute(
                    insert(t.alert).returning(t.alert.c.id, t.alert.c.delivery_id), values
                )
            }
            opened = [by_delivery[v["delivery_id"]] for v in values]
            conn.execute(
                t.alert_event.insert(),
                [
                    {"alert_id": alert_id, "at": now, "kind": "opened", "detail": detail}
                    for alert_id, detail in zip(opened, events, strict=True)
                ],
            )
            return opened
        # PostgreSQL: each insert is one statement over arrays; the ids are matched
        # back by delivery (a tick opens at most one alert per delivery).
        by_delivery = {
            r.delivery_id: r.id
            for r in conn.execute(
                sql.open_alerts,
                {
                    "delivery_ids": id_list("postgresql", [v["delivery_id"] for v in values]),
                    "reasons": [v["reason"] for v in values],
                    "details": [v["detail"] for v in values],
                    "now": now,
                },
            )
        }
        opened = [by_delivery[v["delivery_id"]] for v in values]
        conn.execute(sql.opened_events, {"alert_ids": opened, "details": events, "now": now})
        return opened

    def _write_due(
        self, conn: Connection, sql: _Statements, due: dict[str, datetime | None]
    ) -> None:
        dialect = conn.dialect.name
        closed = [k for k, v in due.items() if v is None]
        later = [(k, v) for k, v in due.items() if v is not None]
        if closed:
            conn.execute(sql.close, {"ids": id_list(dialect, closed)})
        if not later:
            return
        if dialect == "postgresql":
            conn.execute(
                sql.set_due,
                {"ids": id_list(dialect, [k for k, _ in later]), "dues": [v for _, v in later]},
            )
        else:
            conn.execute(sql.set_due, [{"b_id": k, "due_at": v} for k, v in later])

    def _children(
        self, conn: Connection, sql: _Statements, ids: list[str]
    ) -> dict[str, list[Row[Any]]]:
        found: dict[str, list[Row[Any]]] = {}
        for child in conn.execute(sql.children, {"ids": id_list(conn.dialect.name, ids)}).all():
            found.setdefault(child.resend_of, []).append(child)
        return found

    def _latest_evidence_of(
        self, conn: Connection, sql: _Statements, ids: list[str]
    ) -> dict[str, str]:
        latest: dict[str, tuple[datetime, int, str]] = {}
        for e in conn.execute(sql.evidence, {"ids": id_list(conn.dialect.name, ids)}).all():
            key = (e.observed_at, e.id, f"{e.source}: {e.detail}")
            if e.delivery_id not in latest or key[:2] > latest[e.delivery_id][:2]:
                latest[e.delivery_id] = key
        return {k: v[2] for k, v in latest.items()}

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

    def _announce(
        self, conn: Connection, views: list[AlertView], event: str, now: datetime
    ) -> None:
        """The structured log line for each alert, and a notice queued for each sink."""
        name = f"alert.{event}"
        for view in views:
            log_alert(name, view)
        if self.sinks:
            notices = []
            for view in views:
                payload = webhook_payload(view)
                notices += [Notice(view.id, sink, name, payload) for sink in self.sinks]
            enqueue_dispatches(conn, notices, now=now)

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
