"""Receiving evidence: inbound smtp, inbound imap, inbound quarantine, parse."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

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

# --- inbound and parse --------------------------------------------------------------------


@cli.group()
def inbound() -> None:
    """Receive the mail that comes back: bounces, DSNs, replies."""


@inbound.command("smtp")
@click.option("--listen", default=None, help="HOST:PORT (default: inbound_listen, 127.0.0.1:2525).")
@click.pass_context
def inbound_smtp(ctx: click.Context, listen: str | None) -> None:
    """Listen for mail to the bounce domain; store it, then read it into evidence."""
    from landed.config import parse_hostport
    from landed.forwarder import reply_forwarding
    from landed.inbound.smtpd import BounceHandler, InboundServer

    if not ctx.obj.get("log_level"):
        setup_logging("info")
    settings = load()
    try:
        host, port = parse_hostport(listen or settings.inbound_listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    with open_ledger(settings) as (_, database):
        handler = BounceHandler(
            database,
            settings.keyring(),
            {settings.require_bounce_domain()},
            forwarding=reply_forwarding(settings),
        )
        server = InboundServer(
            handler,
            host,
            port,
            max_size=settings.inbound_max_bytes,
            tls_context=settings.inbound_tls(),
        )
        stop = threading.Event()
        stop_on_signals(stop)
        server.serve_until(stop)


@inbound.command("imap")
@click.option("--once", is_flag=True, help="Read what is in the mailbox now, then exit.")
@click.pass_context
def inbound_imap(ctx: click.Context, once: bool) -> None:
    """Poll the IMAP bounce mailbox (imap_url); IDLE where the server offers it."""
    from landed.forwarder import reply_forwarding
    from landed.inbound.imap import ImapPoller

    if not ctx.obj.get("log_level"):
        setup_logging("info")
    with open_ledger() as (settings, database):
        poller = ImapPoller(
            database, settings.keyring(), settings.imap(), forwarding=reply_forwarding(settings)
        )
        if once:
            try:
                count = poller.poll_once()
            finally:
                poller.close()
            logging.getLogger("landed.imap").info("read %d new messages", count)
            return
        stop = threading.Event()
        stop_on_signals(stop)
        poller.run(stop)


@inbound.command("quarantine")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def inbound_quarantine(limit: int, as_json: bool) -> None:
    """List received mail that could not be tied to any delivery."""
    from landed.store.inbound import list_inbound

    with open_ledger() as (_, database), database.read() as conn:
        found = list_inbound(conn, state="quarantined", limit=limit)
    if as_json:
        for m in found:
            emit_json(
                {
                    "id": m.id,
                    "received_at": m.received_at.isoformat(),
                    "channel": m.channel,
                    "mail_from": m.mail_from,
                    "rcpt_to": list(m.rcpt_to),
                    "peer": m.peer,
                    "size": len(m.raw),
                    "detail": m.detail,
                }
            )
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "received", "from", "to", "detail"):
        table.add_column(column, overflow="fold")
    for m in found:
        table.add_row(
            str(m.id),
            f"{m.received_at:%Y-%m-%d %H:%M:%S}",
            m.mail_from or "<>",
            ", ".join(m.rcpt_to),
            m.detail or "",
        )
    out.print(table)


@cli.command("parse")
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per recipient.")
def parse_command(files: Sequence[str], as_json: bool) -> None:
    """Read bounces, DSNs, MDNs, complaints or auto-replies (FILE... or - for stdin)."""
    from landed.parse import parse

    rows: list[dict[str, object]] = []
    for name in files:
        try:
            raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {name}: {exc.strerror}") from None
        report = parse(raw)
        if not report.recipients:
            rows.append(
                {
                    "file": name,
                    "kind": str(report.kind),
                    "recipient": None,
                    "action": None,
                    "status": None,
                    "reason": report.reason,
                    "hard": None,
                    "diagnostic": None,
                    "remote_mta": None,
                    "tokens": [t.value for t in report.tokens],
                    "dialect": report.dialect,
                }
            )
        for r in report.recipients:
            rows.append(
                {
                    "file": name,
                    "kind": str(report.kind),
                    "recipient": r.recipient,
                    "action": r.action or None,
                    "status": r.status or None,
                    "reason": r.reason,
                    "hard": r.hard,
                    "diagnostic": r.diagnostic or None,
                    "remote_mta": r.remote_mta or None,
                    "tokens": sorted({t.value for t in (*report.tokens, *r.tokens)}),
                    "dialect": report.dialect,
                }
            )
    if as_json:
        for row in rows:
            emit_json(row)
        return
    table = Table(box=None, header_style="bold")
    for column in ("file", "kind", "recipient", "action", "status", "reason", "hard", "diagnostic"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            *(
                "" if row[c] is None else str(row[c])[:100]
                for c in (
                    "file",
                    "kind",
                    "recipient",
                    "action",
                    "status",
                    "reason",
                    "hard",
                    "diagnostic",
                )
            )
        )
    out.print(table)
