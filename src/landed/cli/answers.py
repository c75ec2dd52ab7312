"""Verdicts and answers: reconcile, alerts, ledger, topic, suppression."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import click
from rich.table import Table

from landed.cli.base import (
    cli,
    emit_json,
    load,
    open_ledger,
    out,
    setup_logging,
    stop_on_signals,
)
from landed.tokens import human_ref

# --- reconciliation and answers ------------------------------------------------------------


@cli.command()
@click.option("--once", is_flag=True, help="One tick: judge what is due now, then exit.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between ticks.")
@click.pass_context
def reconcile(ctx: click.Context, once: bool, interval: float) -> None:
    """Judge deliveries under their policies; open, escalate and resolve alerts,
    deliver alert notices to the configured sinks (webhook, email, digest), and
    forward human replies (reply_forward_to)."""
    from landed.alerts.dispatcher import Dispatcher
    from landed.forwarder import Forwarder, forward_transport, reply_forwarding
    from landed.reconcile import Reconciler

    if not ctx.obj.get("log_level"):
        setup_logging("info")
    with open_ledger() as (settings, database):
        reconciler = Reconciler(database, settings)
        dispatcher = Dispatcher(database, settings)
        forwarder: Forwarder | None = None
        if reply_forwarding(settings) is not None:
            if settings.relay_url:
                forwarder = Forwarder(database, settings, forward_transport(settings))
            else:
                logging.getLogger("landed.forwarder").warning(
                    "replies are queued, not forwarded: set relay_url (LANDED_RELAY_URL)"
                )
        if once:
            try:
                result = reconciler.tick()
                sent = dispatcher.tick()
                forwarded = forwarder.tick() if forwarder is not None else 0
            finally:
                dispatcher.close()
                if forwarder is not None:
                    forwarder.close()
            logging.getLogger("landed.reconcile").info(
                "judged %d, opened %d, resolved %d, ran %d steps; "
                "%d alert notices sent, %d replies forwarded",
                result.judged,
                len(result.opened),
                len(result.resolved),
                result.steps,
                sent,
                forwarded,
            )
            return
        stop = threading.Event()
        stop_on_signals(stop)
        # Sinks and forwards on their own threads: a slow webhook or relay never
        # delays a verdict.
        helpers = [threading.Thread(target=dispatcher.run, args=(stop,), name="landed-sinks")]
        if forwarder is not None:
            helpers.append(
                threading.Thread(target=forwarder.run, args=(stop,), name="landed-forwarder")
            )
        for thread in helpers:
            thread.start()
        try:
            reconciler.run(stop, interval=interval)
        finally:
            stop.set()
            for thread in helpers:
                thread.join()


@cli.group(invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Resolved alerts too.")
@click.option("--limit", default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def alerts(ctx: click.Context, show_all: bool, limit: int, as_json: bool) -> None:
    """Open alerts, oldest first (``alerts resolve ID --note TEXT`` to close one)."""
    if ctx.invoked_subcommand is not None:
        return
    from landed.clock import SystemClock
    from landed.store.alerts import find_alerts

    with open_ledger() as (_, db), db.read() as conn:
        found = find_alerts(conn, state=None if show_all else "open", limit=limit)
    if as_json:
        for alert in found:
            emit_json(alert.as_dict())
        return
    now = SystemClock().now()
    table = Table(box=None, header_style="bold")
    for column in (
        "id",
        "age",
        "state",
        "reason",
        "topic",
        "recipient",
        "#",
        "level",
        "steps",
        "detail",
    ):
        table.add_column(column, overflow="fold")
    for a in found:
        table.add_row(
            str(a.id),
            _age(now - a.opened_at),
            a.state,
            a.reason,
            a.topic,
            a.recipient,
            str(a.seq),
            a.level,
            str(a.steps_done),
            (a.detail or "")[:70],
        )
    out.print(table)


@alerts.command("resolve")
@click.argument("alert_id", type=int)
@click.option("--note", required=True, help="Why it is resolved (kept on the timeline).")
def alerts_resolve(alert_id: int, note: str) -> None:
    """Resolve an open alert by hand."""
    from landed.clock import SystemClock
    from landed.errors import NotFoundError
    from landed.store.alerts import resolve_alert

    with open_ledger() as (_, db), db.write() as conn:
        if not resolve_alert(conn, alert_id, by="person", note=note, now=SystemClock().now()):
            raise NotFoundError(f"no open alert {alert_id}")
    out.print(f"alert {alert_id} resolved")


def _age(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


@cli.command("ledger")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True)
def ledger_command(address: str, as_json: bool) -> None:
    """Did ADDRESS get all of its notifications? Every one, by its #N, with gaps marked."""
    from landed.store.queries import recipient_ledger, sequence_gaps

    with open_ledger() as (_, db), db.read() as conn:
        entries = recipient_ledger(conn, address)
    gaps = sequence_gaps(entries)
    if as_json:
        for e in entries:
            emit_json({"recipient": address.lower(), **e.as_dict()})
        for n in gaps:
            emit_json({"recipient": address.lower(), "seq": n, "missing": True})
        return
    table = Table(box=None, header_style="bold")
    for column in ("#", "", "topic", "subject", "level", "outcome", "alerts", "ref"):
        table.add_column(column, overflow="fold")
    for e in entries:
        mark = "[green]✓[/green]" if e.proven else "[red]✗[/red]"
        table.add_row(
            str(e.seq),
            mark,
            e.topic,
            e.subject[:50],
            e.level,
            e.outcome or "",
            str(e.open_alerts or ""),
            human_ref(e.delivery_id),
        )
    for n in gaps:
        table.add_row(
            str(n), "[red]?[/red]", "[red]missing from the ledger[/red]", "", "", "", "", ""
        )
    out.print(table)
    unproven = sum(1 for e in entries if not e.proven)
    out.print(f"{len(entries)} notifications, {unproven} not proven, {len(gaps)} gaps")


@cli.command("topic")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True)
def topic_command(key: str, as_json: bool) -> None:
    """Who did and did not get KEY: recipients against the topic's notifications."""
    from landed.store.queries import topic_matrix

    with open_ledger() as (_, db), db.read() as conn:
        matrix = topic_matrix(conn, key)
    if as_json:
        for row in matrix.as_dicts():
            emit_json(row)
        return
    table = Table(box=None, header_style="bold")
    table.add_column("recipient")
    for i, (_, subject, _) in enumerate(matrix.notifications, 1):
        table.add_column(f"{i}. {subject[:20]}", overflow="fold")
    for recipient in matrix.recipients:
        cells = []
        for notification_id, _, _ in matrix.notifications:
            cell = matrix.cells.get((recipient, notification_id))
            cells.append("" if cell is None else (cell[1] or cell[0]))
        table.add_row(recipient, *cells)
    out.print(table)


@cli.group()
def suppression() -> None:
    """The addresses landed will not send to (hard bounces, complaints, by hand)."""


@suppression.command("list")
@click.option("--json", "as_json", is_flag=True)
def suppression_list(as_json: bool) -> None:
    """Addresses suppressed now."""
    from landed.clock import SystemClock
    from landed.store.alerts import list_suppressions

    with open_ledger() as (_, db), db.read() as conn:
        found = list_suppressions(conn, SystemClock().now())
    if as_json:
        for entry in found:
            emit_json(entry.as_dict())
        return
    table = Table(box=None, header_style="bold")
    for column in ("address", "reason", "since", "until"):
        table.add_column(column)
    for e in found:
        until = f"{e.expires_at:%Y-%m-%d}" if e.expires_at else "removed by hand"
        table.add_row(e.address, e.reason, f"{e.created_at:%Y-%m-%d}", until)
    out.print(table)


@suppression.command("add")
@click.argument("address")
@click.option("--note", default=None)
def suppression_add(address: str, note: str | None) -> None:
    """Suppress ADDRESS until removed."""
    from landed.clock import SystemClock
    from landed.compose.headers import parse_mailbox
    from landed.store.alerts import suppress

    mailbox = parse_mailbox(address, "address")
    with open_ledger() as (_, db), db.write() as conn:
        suppress(
            conn,
            mailbox.normalized(),
            reason="manual",
            now=SystemClock().now(),
            expires_at=None,
            note=note,
        )
    out.print(f"{mailbox.normalized()} suppressed")


@suppression.command("remove")
@click.argument("address")
def suppression_remove(address: str) -> None:
    """Send to ADDRESS again."""
    from landed.errors import NotFoundError
    from landed.store.alerts import unsuppress

    with open_ledger() as (_, db), db.write() as conn:
        if not unsuppress(conn, address):
            raise NotFoundError(f"{address} is not suppressed")
    out.print(f"{address.lower()} removed from the suppression list")


@cli.command()
@click.pass_context
def up(ctx: click.Context) -> None:
    """Run everything configured: the HTTP service (API, tracking endpoints,
    dashboard), sender, inbound SMTP and IMAP, reconciler, alert sinks."""
    from landed.service import Service

    if not ctx.obj.get("log_level"):
        setup_logging("info")
    service = Service(load())
    stop = threading.Event()
    stop_on_signals(stop)
    if not service.run(stop):
        sys.exit(1)
