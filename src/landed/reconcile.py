"""The reconciler: each delivery's verdict under its policy, and the alerts that follow.

A tick reads only the deliveries whose due time has come (``delivery_due``,
indexed by time; a delivery with nothing pending has no row there), so its
cost grows with what is due, not with the ledger:

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
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    Connection,
    Executable,
    Integer,
    Row,
    String,
    bindparam,
    case,
    delete,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import sqlite

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


class _Due(NamedTuple):
    """A due delivery with what the tick needs about it (``_statements``' ``rows``).

    Read into a named tuple: a SQLAlchemy ``Row`` takes about 0.6 µs to give an
    attribute by name, a named tuple a tenth of that, and the tick reads a
    dozen of them for each of a thousand rows.
    """

    id: str
    level: str
    outcome: str | None
    policy: str | None
    required: str | None
    deadline_at: datetime | None
    #: Only when ``deadline_at`` is NULL (the deadline is then the policy's).
    created_at: datetime | None
    seq: int
    to_header: str
    resend_of: str | None
    address: str
    cls: str
    topic_key: str


@dataclass
class _Batch:
    """What one tick decided, written after the loop."""

    now: datetime
    due: dict[str, datetime | None] = field(default_factory=dict)
    to_open: list[tuple[_Due, Policy, str, Level, datetime]] = field(default_factory=list)
    #: Open alerts that evidence now proves: (row, note), resolved after the loop.
    to_resolve: list[tuple[_Due, Row[Any], str]] = field(default_factory=list)
    #: Resolutions still waiting for the latest evidence to be named in their note.
    need_proof: list[tuple[_Due, Row[Any], Level]] = field(default_factory=list)


def _proven_by_resend(children: list[Row[Any]], required: Level) -> str | None:
    """A resend or fallback delivery that reached the required level, if any."""
    for child in children:
        if Level(child.level).rank >= required.rank and child.outcome not in _FAILING:
            return f"{human_ref(child.id)} to {child.to_header} is {child.level}"
    return None


@functools.cache
def _statements(dialect: str) -> _Statements:
    """A tick's statements, built once per dialect (see ``one_of``: one parameter per list)."""
    d, a, n = t.delivery, t.alert, t.notification
    columns = (
        d.c.id,
        d.c.level,
        d.c.outcome,
        d.c.policy,
        d.c.required,
        d.c.deadline_at,
        # Only needed (for the policy's deadline) when the delivery has none of its own.
        case((d.c.deadline_at.is_(None), d.c.created_at)).label("created_at"),
        d.c.seq,
        d.c.to_header,
        d.c.resend_of,
    )
    u = t.delivery_due
    due = u.c.due_at <= bindparam("now", type_=t.UTCDateTime())
    particulars = (
        select(*columns, t.recipient.c.address, n.c.cls, t.topic.c.key.label("topic_key"))
        .select_from(d)
        .join(t.recipient, t.recipient.c.id == d.c.recipient_id)
        .join(n, n.c.id == d.c.notification_id)
        .join(t.topic, t.topic.c.id == n.c.topic_id)
    )
    if dialect == "postgresql":
        # The due rows in due_at index order, and for each its delivery with what is
        # needed about it, in a LATERAL subquery: a few index lookups per due row.
        # As one flat join, PostgreSQL's planner may hash-join a sequential scan of
        # every delivery (it did at 100,000: 80 ms), a cost that grows with the
        # ledger; OFFSET 0 keeps it from flattening the subquery into such a join.
        # The due rows are locked, so that several reconcilers share the work
        # without judging one delivery twice.
        one = particulars.where(d.c.id == u.c.delivery_id).offset(literal_column("0")).lateral("d")
        rows = select(*one.c).select_from(u.join(one, true())).where(due)
    else:
        # SQLite joins in nested loops, driven here by the due_at index: an index
        # lookup per row into each table.
        rows = particulars.join(u, u.c.delivery_id == d.c.id).where(due)
    # Judged in a fixed order. The index gives due_at order; ties are sorted on
    # the spot (an incremental sort on PostgreSQL, a small temp B-tree on SQLite).
    rows = rows.order_by(u.c.due_at, u.c.delivery_id).limit(bindparam("limit", type_=Integer()))
    if dialect == "postgresql":
        rows = rows.with_for_update(skip_locked=True, of=u)
    assert tuple(c.key for c in rows.selected_columns) == _Due._fields
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
    # In the order that makes the last row of each delivery its latest evidence.
    evidence = (
        select(e.c.delivery_id, e.c.source, e.c.detail)
        .where(one_of(dialect, e.c.delivery_id, "ids"))
        .order_by(e.c.delivery_id, e.c.observed_at, e.c.id)
    )
    subject = select(n.c.subject).where(
        n.c.id == select(d.c.notification_id).where(d.c.id == bindparam("id")).scalar_subquery()
    )
    # The rest are SQL text over one JSON parameter each (rows as arrays), the same
    # shape on both engines: a thousand rows cost one parameter, not a thousand.
    # A delivery that closes loses its due row; any other gets its new due time
    # (an upsert: a resend makes its original due, which may have had none).
    close: Executable | None = None
    if dialect == "postgresql":
        set_due = text(
            "WITH p AS (SELECT v ->> 0 AS id, CAST(v ->> 1 AS timestamptz) AS due_at "
            "FROM json_array_elements(CAST(:pairs AS json)) AS e(v)), "
            "closed AS (DELETE FROM delivery_due USING p "
            "WHERE p.due_at IS NULL AND delivery_due.delivery_id = p.id) "
            "INSERT INTO delivery_due (delivery_id, due_at) "
            "SELECT id, due_at FROM p WHERE due_at IS NOT NULL ORDER BY id "
            "ON CONFLICT (delivery_id) DO UPDATE SET due_at = excluded.due_at"
        )
        # Alerts and their "opened" events in one statement; the ids come back
        # with their delivery (a tick opens at most one alert per delivery).
        open_alerts = text(
            "WITH new AS ("
            "INSERT INTO alert (delivery_id, reason, state, detail, opened_at, steps_done) "
            "SELECT r.v ->> 0, r.v ->> 1, 'open', r.v ->> 2, :now, 0 "
            "FROM json_array_elements(CAST(:rows AS json)) WITH ORDINALITY AS r(v, n) "
            "ORDER BY r.n RETURNING id, delivery_id, reason, detail, opened_at), "
            "events AS (INSERT INTO alert_event (alert_id, at, kind, detail) "
            "SELECT id, opened_at, 'opened', reason || ': ' || detail FROM new ORDER BY id) "
            "SELECT id, delivery_id FROM new"
        )
        opened_events = None
    else:
        # SQLite has no INSERT or DELETE in WITH: two statements.
        # (The closed ones as a plain list: json_extract on every row costs.)
        close = delete(t.delivery_due).where(one_of(dialect, t.delivery_due.c.delivery_id, "ids"))
        set_due = text(
            "INSERT INTO delivery_due (delivery_id, due_at) "
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') "
            "FROM json_each(:pairs) WHERE true "
            "ON CONFLICT (delivery_id) DO UPDATE SET due_at = excluded.due_at"
        )
        open_alerts = text(
            "INSERT INTO alert (delivery_id, reason, state, detail, opened_at, steps_done) "
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), 'open', "
            "json_extract(value, '$[2]'), :now, 0 FROM json_each(:rows) ORDER BY key "
            "RETURNING id, delivery_id"
        )
        # The events are made from the alert rows just inserted.
        opened_events = text(
            "INSERT INTO alert_event (alert_id, at, kind, detail) "
            "SELECT id, opened_at, 'opened', reason || ': ' || detail FROM alert "
            "WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id"
        )
    now = bindparam("now", type_=t.UTCDateTime())
    return _Statements(
        rows,
        alerts,
        children,
        evidence,
        subject,
        close,
        set_due,
        open_alerts.bindparams(now).columns(id=BigInteger(), delivery_id=String()),
        opened_events,
    )


@functools.cache
def _due_text(dialect: str) -> Callable[[datetime], str]:
    """A due time as the JSON of ``set_due`` carries it: on SQLite the very text the
    column stores (naive UTC, as ``UTCDateTime`` writes it), on PostgreSQL ISO 8601."""
    if dialect == "postgresql":
        return lambda value: value.astimezone(UTC).isoformat()
    process = t.UTCDateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())
    assert process is not None
    return cast(Callable[[datetime], str], process)


@dataclass(frozen=True, slots=True)
class _Statements:
    rows: Executable
    alerts: Executable
    children: Executable
    evidence: Executable
    subject: Executable
    #: SQLite only: deletes the due rows of the deliveries the tick closes (``ids``).
    close: Executable | None
    #: Every due time the tick decided (NULL: it closes; on PostgreSQL the same
    #: statement deletes those due rows).
    set_due: Executable
    #: Alerts (with their "opened" events on PostgreSQL), ids and delivery ids back.
    open_alerts: Executable
    #: SQLite only: the "opened" events of the alerts just inserted.
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
        resolved in batches, each list bound as one parameter, and every due
        time written by one statement. Escalation steps, rarer, run one by one.
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
            none: list[Row[Any]] = []
            for row in rows:
                self._reconcile(
                    conn, row, alerts.get(row.id), children.get(row.id, none), batch, result
                )
            result.judged = len(rows)
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

    def _due(self, conn: Connection, sql: _Statements, now: datetime, limit: int) -> list[_Due]:
        # (``all()``: one fetch of every row; iterating fetches them one by one.)
        return list(map(_Due._make, conn.execute(sql.rows, {"now": now, "limit": limit}).all()))

    def _open_alerts(
        self, conn: Connection, sql: _Statements, ids: list[str]
    ) -> dict[str, Row[Any]]:
        found = conn.execute(sql.alerts, {"ids": id_list(conn.dialect.name, ids)}).all()
        # At most one open alert per delivery: one is opened only when none is.
        return {r.delivery_id: r for r in found if r.state == "open"}

    def policy_for(self, row: _Due) -> Policy:
        named = self.by_name.get(row.policy) if row.policy else None
        return named or choose(self.policies, row.cls, row.address)

    # --- deciding ----------------------------------------------------------------------

    def _reconcile(
        self,
        conn: Connection,
        row: _Due,
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
        deadline_at = row.deadline_at
        if deadline_at is None:  # a delivery recorded without a policy of its own
            assert row.created_at is not None  # read exactly then
            deadline_at = row.created_at + policy.deadline
        verdict = judge(
            _LEVEL[row.level],
            _OUTCOME[row.outcome] if row.outcome else None,
            required,
            deadline_at,
            now,
        )
        if children and verdict.state is not State.MET:
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
        row: _Due,
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
        values: list[tuple[str, str, str]] = []
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
            values.append((row.id, reason, detail))
        opened = self._insert_alerts(conn, sql, values, now)
        result.opened.extend(opened)
        # The alerts as find_alerts would read them back now, without reading them:
        # everything is at hand, and the timeline so far is the one "opened" event.
        views = [
            AlertView(
                id=alert_id,
                delivery_id=row.id,
                reason=reason,
                state="open",
                detail=detail,
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
                timeline=((now, "opened", f"{reason}: {detail}"),),
            )
            for alert_id, (_, reason, detail), (row, *_rest) in zip(
                opened, values, batch.to_open, strict=True
            )
        ]
        self._announce(conn, views, "opened", now)
        for alert_id, (row, policy, reason, _required, _deadline) in zip(
            opened, batch.to_open, strict=True
        ):
            self._maybe_suppress(conn, row, reason, policy, alert_id, now)
            self._escalate(conn, row, policy, alert_id, now, 0, reason, batch, result)

    def _insert_alerts(
        self,
        conn: Connection,
        sql: _Statements,
        values: list[tuple[str, str, str]],
        now: datetime,
    ) -> list[int]:
        """Insert the alerts, (delivery id, reason, detail) each, and their "opened"
        events; the alert ids, in ``values``' order."""
        # Matched back by delivery: a tick opens at most one alert per delivery.
        by_delivery = {
            delivery_id: alert_id
            for alert_id, delivery_id in conn.execute(
                sql.open_alerts, {"rows": json.dumps(values), "now": now}
            ).all()
        }
        opened = [by_delivery[delivery_id] for delivery_id, _, _ in values]
        if sql.opened_events is not None:
            conn.execute(sql.opened_events, {"ids": json.dumps(opened)})
        return opened

    def _write_due(
        self, conn: Connection, sql: _Statements, due: dict[str, datetime | None]
    ) -> None:
        """Every due time decided in the tick, in one statement (two on SQLite)."""
        if not due:
            return
        dialect = conn.dialect.name
        stamp = _due_text(dialect)
        if sql.close is None:
            pairs = [(k, None if v is None else stamp(v)) for k, v in due.items()]
            conn.execute(sql.set_due, {"pairs": json.dumps(pairs)})
            return
        closed = [k for k, v in due.items() if v is None]
        later = [(k, stamp(v)) for k, v in due.items() if v is not None]
        if closed:
            conn.execute(sql.close, {"ids": id_list(dialect, closed)})
        if later:
            conn.execute(sql.set_due, {"pairs": json.dumps(later)})

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
        """Each delivery's latest evidence, as ``source: detail``."""
        rows = conn.execute(sql.evidence, {"ids": id_list(conn.dialect.name, ids)}).all()
        # In (observed_at, id) order: the last row of each delivery is its latest.
        return {delivery_id: f"{source}: {detail}" for delivery_id, source, detail in rows}

    def _maybe_suppress(
        self,
        conn: Connection,
        row: _Due,
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
        row: _Due,
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
        row: _Due,
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
            # Read here, not with every due row: few deliveries ever get this far.
            sql = _statements(conn.dialect.name)
            subject = conn.execute(sql.subject, {"id": row.id}).scalar_one()
            request = validate_request(
                topic=row.topic_key,
                cls=ALERT_CLASS,
                to=[step.to],
                subject=(
                    f"[landed] not proven: {row.topic_key} #{row.seq} to {row.address} ({reason})"
                ),
                text=(
                    f'The notification "{subject}" about {row.topic_key} to {row.address}\n'
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
