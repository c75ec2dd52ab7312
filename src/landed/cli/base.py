"""The ``landed`` command group and what its commands share."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from landed.config import Settings, load_settings
from landed.errors import ConfigError, LandedError

if TYPE_CHECKING:
    from landed.store import Database

F = TypeVar("F", bound=Callable[..., Any])
out = Console(highlight=False, soft_wrap=True)


def load() -> Settings:
    return load_settings()


@contextmanager
def open_ledger(settings: Settings | None = None) -> Iterator[tuple[Settings, Database]]:
    """The settings and the ledger, checked to be at the latest schema; closed on exit.

    ``settings`` defaults to the configuration file and environment. The
    store is imported here, not at module level, so that commands which never
    touch the ledger (``parse``, ``--help``) do not pay for SQLAlchemy.
    """
    from landed.store import Database

    settings = settings if settings is not None else load()
    database = Database(settings.database_url)
    try:
        database.check_current()
        yield settings, database
    finally:
        database.dispose()


def emit_json(obj: object) -> None:
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
        setup_logging(log_level)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
        force=True,
    )


def stop_on_signals(stop: threading.Event) -> None:
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
