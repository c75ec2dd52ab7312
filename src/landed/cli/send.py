"""Setting up, sending and inspecting: init, db, notify, status, worker."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from landed.config import Settings, config_path
from landed.tokens import new_secret

if TYPE_CHECKING:
    from landed.store import Database

# --- init and db ------------------------------------------------------------------------

CONFIG_TEMPLATE = """\
# landed configuration. Every setting can also come from the environment as
# LANDED_<NAME> (for example LANDED_DATABASE_URL), which wins over this file.
# Reference: docs/configuration.md

# The ledger. SQLite (the default) suits one host; use PostgreSQL
# (postgresql://user:pass@host/db) when several hosts share the work.
database_url = "{database_url}"

# The first-hop SMTP relay: smtp://[user:pass@]host:port[?starttls=required|opportunistic|off]
# or smtps://host:465 for implicit TLS.
{relay_line}

# The From address of notifications, and the domain of the VERP envelope
# sender (bounces+TOKEN@bounce_domain), whose MX must point at landed's
# inbound SMTP listener.
{from_line}
{bounce_line}

# Which DSNs to ask the relay for when it offers them (RFC 3461).
# dsn_notify = "SUCCESS,FAILURE,DELAY"

# Retries after a temporary failure: exponential backoff with jitter, from
# retry_base_seconds up to retry_max_seconds, until retry_lifetime_seconds
# after the first attempt; then the delivery is "expired".
# retry_base_seconds = 60
# retry_max_seconds = 3600
# retry_lifetime_seconds = 86400

# How long a sender worker's claim on a delivery lasts before another worker may take it.
# lease_seconds = 30

# Tokens are signed with signing_key_id. To rotate: add a new key, make it
# current, and keep the old one until mail signed with it can no longer come back.
signing_key_id = "{key_id}"

[signing_keys]
{key_id} = "{secret}"
"""


@cli.command()
@click.option("--database-url", default=None, help="Ledger URL (default sqlite:///landed.db).")
@click.option("--relay-url", default=None, help="First-hop SMTP relay URL.")
@click.option("--from", "from_", default=None, help="From address of notifications.")
@click.option("--bounce-domain", default=None, help="Domain of the VERP envelope sender.")
@click.option("--force", is_flag=True, help="Overwrite an existing configuration file.")
def init(
    database_url: str | None,
    relay_url: str | None,
    from_: str | None,
    bounce_domain: str | None,
    force: bool,
) -> None:
    """Write a commented config file with a new signing key, and create or upgrade the ledger."""
    from landed.store import Database

    path = config_path()
    if path.exists() and not force:
        out.print(f"{path} exists; keeping it (use --force to replace it)")
    else:
        text = CONFIG_TEMPLATE.format(
            database_url=database_url or "sqlite:///landed.db",
            relay_line=f'relay_url = "{relay_url}"'
            if relay_url
            else '# relay_url = "smtp://127.0.0.1:25"',
            from_line=f'from = "{from_}"' if from_ else '# from = "Alerts <alerts@example.com>"',
            bounce_line=(
                f'bounce_domain = "{bounce_domain}"'
                if bounce_domain
                else '# bounce_domain = "bounce.example.com"'
            ),
            key_id="k1",
            secret=new_secret(),
        )
        # The file holds the signing key: readable by its owner only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        out.print(f"wrote {path} (mode 600: it holds the signing key)")
    settings = load()
    db = Database(settings.database_url)
    db.upgrade()
    out.print(f"ledger ready: {_redact(settings.database_url)} at revision {db.current_revision()}")


@cli.group()
def db() -> None:
    """Manage the ledger's schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Create or upgrade the ledger's schema (to REVISION, default the latest)."""
    from landed.store import Database

    database = Database(load().database_url)
    database.upgrade(revision)
    out.print(f"ledger at revision {database.current_revision()}")


@db.command("current")
@click.option("--json", "as_json", is_flag=True)
def db_current(as_json: bool) -> None:
    """Show the ledger's schema revision and the latest one."""
    from landed.store import Database

    database = Database(load().database_url)
    current, head = database.current_revision(), database.head_revision()
    if as_json:
        emit_json({"current": current, "head": head, "up_to_date": current == head})
    else:
        out.print(f"current {current or '(none)'}; latest {head}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- notify and status ------------------------------------------------------------------


def _read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{source} is not UTF-8 text") from None


@cli.command()
@click.option("--topic", required=True, help="What the notification is about (e.g. INC-1234).")
@click.option("--class", "cls", required=True, help="Notification class; selects the policy.")
@click.option("--to", "to", multiple=True, required=True, help="Recipient (repeat for more).")
@click.option("--subject", required=True)
@click.option("--text-file", required=True, help="Plain-text body file, or - for stdin.")
@click.option("--html-file", default=None, help="Optional HTML body file.")
@click.option("--idempotency-key", default=None, help="Repeat-safe key: same key, same deliveries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per delivery.")
def notify(
    topic: str,
    cls: str,
    to: Sequence[str],
    subject: str,
    text_file: str,
    html_file: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Record a notification and queue one delivery per recipient; print the delivery ids."""
    from landed.client import Client

    text = _read_text(text_file)
    html = _read_text(html_file) if html_file else None
    with Client(load()) as client:
        result = client.notify_detailed(
            topic=topic,
            cls=cls,
            to=list(to),
            subject=subject,
            text=text,
            html=html,
            idempotency_key=idempotency_key,
        )
    for d in result.deliveries:
        if as_json:
            emit_json(
                {
                    "delivery_id": d.delivery_id,
                    "token": d.token,
                    "notification_id": result.notification_id,
                    "recipient": d.recipient,
                    "seq": d.seq,
                    "ref": d.ref,
                    "created": result.created,
                }
            )
        else:
            click.echo(d.delivery_id)


@cli.command()
@click.argument("key", required=False)
@click.option("--topic", default=None)
@click.option("--recipient", default=None)
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per delivery.")
def status(
    key: str | None, topic: str | None, recipient: str | None, limit: int, as_json: bool
) -> None:
    """Show deliveries: by delivery id, token or reference, or by topic or recipient."""
    from landed.client import Client

    with Client(load()) as client:
        found = client.status(key, topic=topic, recipient=recipient, limit=limit)
    if as_json:
        for view in found:
            emit_json(view.as_dict())
        return
    if key is not None:
        for view in found:
            _print_delivery(view)
        return
    table = Table(box=None, header_style="bold")
    for column in ("ref", "topic", "recipient", "#", "level", "outcome", "last evidence"):
        table.add_column(column, overflow="fold")
    for view in found:
        last = view.evidence[-1].detail if view.evidence else ""
        table.add_row(
            view.ref,
            view.topic,
            view.recipient,
            str(view.seq),
            view.level,
            view.outcome or "",
            (last or "")[:80],
        )
    out.print(table)


def _print_delivery(view: Any) -> None:
    out.print(f"[bold]{view.ref}[/bold]  {view.topic}  #{view.seq} for {view.recipient}")
    out.print(f"  delivery  {view.delivery_id}")
    out.print(f"  token     {view.token}")
    out.print(f"  message   {view.message_id}")
    state = view.level + (f", {view.outcome}" if view.outcome else "")
    out.print(f"  verdict   {state}")
    if view.queued:
        out.print(
            f"  outbox    attempts {view.attempts}, next {view.next_attempt_at:%Y-%m-%d %H:%M:%S}"
        )
    for e in view.evidence:
        what = e.level or e.outcome or "-"
        out.print(
            f"  {e.observed_at:%Y-%m-%d %H:%M:%S}  {e.source:<11} {what:<10} {e.detail or ''}"
        )


# --- worker -----------------------------------------------------------------------------


@cli.command()
@click.option("--once", is_flag=True, help="Send everything due now, then exit.")
@click.pass_context
def worker(ctx: click.Context, once: bool) -> None:
    """Send queued deliveries through their routes (by default, the relay)."""
    if not ctx.obj.get("log_level"):
        setup_logging("info")
    with open_ledger() as (settings, database):
        _run_worker(settings, database, once=once)


def _run_worker(settings: Settings, database: Database, *, once: bool) -> None:
    from landed.sender import Sender
    from landed.transport.routes import build_router

    transport = build_router(settings)
    sender = Sender(database, settings, transport)
    stop = threading.Event()
    stop_on_signals(stop)
    if once:
        try:
            count = sender.run_once(stop)
        finally:
            transport.close()
        logging.getLogger("landed.sender").info("made %d attempts", count)
        return
    sender.run(stop)
