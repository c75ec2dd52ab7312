"""``landed demo``: landed with a sandbox mail world (see ``landed.demo``)."""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
from pathlib import Path

import click

from landed.cli.base import cli, setup_logging, stop_on_signals


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the demo's ledger goes (default: a new temporary directory).",
)
@click.option(
    "--listen",
    default="127.0.0.1:8025",
    show_default=True,
    help="Where the dashboard and API listen; a free port is taken if this one is busy.",
)
@click.option(
    "--for",
    "duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop by itself after this many seconds (default: run until Ctrl-C).",
)
@click.pass_context
def demo(ctx: click.Context, directory: Path | None, listen: str, duration: float | None) -> None:
    """Run landed with an in-process sandbox mail world: no mail server needed.

    Notifications go to sandbox people whose mail is delivered, bounces
    (unknown user, full mailbox), is deferred until it expires, is answered by
    an out-of-office reply, or is acknowledged. Their DSNs and replies come
    back through landed's real inbound SMTP listener. Prints the dashboard's
    URL and a login; landed.toml and LANDED_* variables are not used.
    """
    from landed.demo.session import Demo, banner

    if not ctx.obj.get("log_level"):
        setup_logging("info")
        # aiosmtpd logs every SMTP session at INFO: the sandbox has many.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="landed-demo-"))
    session = Demo(directory, listen=listen)
    login = session.prepare()
    click.echo(banner(login, directory))
    sys.stdout.flush()
    stop = threading.Event()
    stop_on_signals(stop)
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    if not session.run(stop):
        sys.exit(1)
