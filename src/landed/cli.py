"""The ``landed`` command line.

Every command that shows data takes ``--json`` (one JSON object per line);
long-running commands stop cleanly on SIGTERM and SIGINT. Errors are one line
on stderr, never a traceback: exit status 2 for bad configuration or usage,
1 for anything else that failed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from landed.config import Settings, config_path, load_settings
from landed.errors import ConfigError, LandedError
from landed.tokens import new_secret

F = TypeVar("F", bound=Callable[..., Any])
out = Console(highlight=False, soft_wrap=True)


def _settings() -> Settings:
    return load_settings()


def _emit_json(obj: object) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Logging verbosity (default: info for services, warning otherwise).",
)
@click.version_option(package_name="landed")
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """landed: accountable notification email."""
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = log_level
    if log_level:
        _setup_logging(log_level)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
        force=True,
    )


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
    settings = _settings()
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

    database = Database(_settings().database_url)
    database.upgrade(revision)
    out.print(f"ledger at revision {database.current_revision()}")


@db.command("current")
@click.option("--json", "as_json", is_flag=True)
def db_current(as_json: bool) -> None:
    """Show the ledger's schema revision and the latest one."""
    from landed.store import Database

    database = Database(_settings().database_url)
    current, head = database.current_revision(), database.head_revision()
    if as_json:
        _emit_json({"current": current, "head": head, "up_to_date": current == head})
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
    with Client(_settings()) as client:
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
            _emit_json(
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

    with Client(_settings()) as client:
        found = client.status(key, topic=topic, recipient=recipient, limit=limit)
    if as_json:
        for view in found:
            _emit_json(view.as_dict())
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
    """Send queued deliveries through the relay."""
    from landed.sender import Sender
    from landed.store import Database
    from landed.transport.smtp import SMTPRelay

    if not ctx.obj.get("log_level"):
        _setup_logging("info")
    settings = _settings()
    database = Database(settings.database_url)
    database.check_current()
    transport = SMTPRelay(
        settings.relay(), dsn_notify=settings.dsn_notify, dsn_ret=settings.dsn_ret
    )
    sender = Sender(database, settings, transport)
    stop = threading.Event()
    _stop_on_signals(stop)
    if once:
        try:
            count = sender.run_once(stop)
        finally:
            transport.close()
        logging.getLogger("landed.sender").info("made %d attempts", count)
        return
    sender.run(stop)


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
    from landed.inbound.smtpd import BounceHandler, InboundServer
    from landed.store import Database

    if not ctx.obj.get("log_level"):
        _setup_logging("info")
    settings = _settings()
    try:
        host, port = parse_hostport(listen or settings.inbound_listen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    database = Database(settings.database_url)
    database.check_current()
    handler = BounceHandler(database, settings.keyring(), {settings.require_bounce_domain()})
    server = InboundServer(
        handler,
        host,
        port,
        max_size=settings.inbound_max_bytes,
        tls_context=settings.inbound_tls(),
    )
    stop = threading.Event()
    _stop_on_signals(stop)
    server.serve_until(stop)


@inbound.command("imap")
@click.option("--once", is_flag=True, help="Read what is in the mailbox now, then exit.")
@click.pass_context
def inbound_imap(ctx: click.Context, once: bool) -> None:
    """Poll the IMAP bounce mailbox (imap_url); IDLE where the server offers it."""
    from landed.inbound.imap import ImapPoller
    from landed.store import Database

    if not ctx.obj.get("log_level"):
        _setup_logging("info")
    settings = _settings()
    database = Database(settings.database_url)
    database.check_current()
    poller = ImapPoller(database, settings.keyring(), settings.imap())
    if once:
        try:
            count = poller.poll_once()
        finally:
            poller.close()
        logging.getLogger("landed.imap").info("read %d new messages", count)
        return
    stop = threading.Event()
    _stop_on_signals(stop)
    poller.run(stop)


@inbound.command("quarantine")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def inbound_quarantine(limit: int, as_json: bool) -> None:
    """List received mail that could not be tied to any delivery."""
    from landed.store import Database
    from landed.store.inbound import list_inbound

    database = Database(_settings().database_url)
    database.check_current()
    with database.read() as conn:
        found = list_inbound(conn, state="quarantined", limit=limit)
    if as_json:
        for m in found:
            _emit_json(
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
            _emit_json(row)
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


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("landed").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI, turning landed's errors into one line on stderr."""
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"landed: configuration error: {exc}", err=True)
        sys.exit(2)
    except LandedError as exc:
        click.echo(f"landed: error: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(1)
