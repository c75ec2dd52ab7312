"""Opening the ledger: engines, transactions, migrations.

SQLite is opened in WAL mode with a busy timeout, and every write transaction
starts with ``BEGIN IMMEDIATE``: SQLite has one writer at a time, and taking
the write lock at the start (rather than on the first write, as pysqlite's
default deferred ``BEGIN`` does) means two writers queue instead of one of
them failing with "database is locked" half-way through.

While another process holds the write lock, ``BEGIN IMMEDIATE`` is retried
every fraction of a millisecond (see ``_begin_immediate``) rather than left to
SQLite's busy handler, whose sleeps grow to 100 ms: with a notifier and a
sender both writing, that handler let one of them sleep for hundreds of
milliseconds while the other took the lock again and again (measured with
bench/send.py; docs/benchmarks.md).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from landed.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"

#: How long a SQLite statement waits for a lock held by another process.
BUSY_TIMEOUT_SECONDS = 30.0
#: The longest pause between two tries of ``BEGIN IMMEDIATE``.
_BEGIN_MAX_PAUSE = 0.001
#: The newest migration; bump it with each new migration (tests check it is Alembic's head).
SCHEMA_REVISION = "0007"


def _is_missing_table(exc: Exception) -> bool:
    message = str(getattr(exc, "orig", exc)).lower()
    return "no such table" in message or "does not exist" in message


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with landed's connection settings."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url!r}", setting="database_url") from None
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ConfigError(
                "an in-memory SQLite ledger would lose everything", setting="database_url"
            )
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir():
            raise ConfigError(f"directory {parent} does not exist", setting="database_url")
        options["poolclass"] = NullPool if parsed.query.get("pool") == "null" else None
        options = {k: v for k, v in options.items() if v is not None}
    elif parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() in ("", "psycopg2"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        options["pool_pre_ping"] = True
    else:
        raise ConfigError("the ledger runs on sqlite:// or postgresql://", setting="database_url")
    try:
        engine = create_engine(parsed, **options)
    except NoSuchModuleError as exc:
        raise ConfigError(str(exc), setting="database_url") from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL (the default) makes each commit survive power loss, not only a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.info.get("landed_write"):
            _begin_immediate(conn)
        else:
            conn.exec_driver_sql("BEGIN")


def _begin_immediate(conn: Connection) -> None:
    """``BEGIN IMMEDIATE``: take SQLite's write lock, trying again while another process has it.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... up to 100 ms between tries,
    so a writer that keeps coming back (a notifier recording one notification
    after another) can take the lock in the gaps while the other waits on. This
    loop tries again after at most ``_BEGIN_MAX_PAUSE`` (with jitter, so that
    several waiting processes do not try in step), and gives up, as the busy
    handler would, after ``BUSY_TIMEOUT_SECONDS``: then the last try raises the
    usual "database is locked" error.
    """
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    cursor = raw.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        pause = 0.00005
        while time.monotonic() < deadline:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, _BEGIN_MAX_PAUSE)
        # Out of time: fail through SQLAlchemy, with the error it has always raised.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.close()


class Database:
    """The ledger's engine and its transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that will write; committed on success, rolled back on error."""
        with self.engine.connect() as conn:
            conn.info["landed_write"] = True
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info.pop("landed_write", None)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    # --- schema --------------------------------------------------------------------

    # Alembic is imported only when the schema is touched: it costs ~0.5 s of
    # start-up that commands like `landed status` should not pay.

    def alembic_config(self) -> Config:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        """Create or upgrade the schema to ``revision``."""
        from alembic import command

        cfg = self.alembic_config()
        with self.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def check_current(self) -> None:
        """``ConfigError`` unless the schema is at the latest revision.

        Reads ``alembic_version`` directly and compares it with
        ``SCHEMA_REVISION`` (a test pins that to Alembic's head), so that
        every command need not import Alembic.
        """
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError

        try:
            with self.engine.connect() as conn:
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError as exc:
            if _is_missing_table(exc):
                current = None
            else:
                raise ConfigError(
                    f"cannot open the ledger: {str(exc.orig).strip().splitlines()[0]}",
                    setting="database_url",
                ) from None
        head = SCHEMA_REVISION
        if current != head:
            what = "has no schema" if current is None else f"is at revision {current}, not {head}"
            raise ConfigError(
                f"the ledger {what}: run `landed db upgrade` (or `landed init`)",
                setting="database_url",
            )
