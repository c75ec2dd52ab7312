"""SQLite write transactions wait for one another, and give up as SQLite's busy handler would."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from landed.store import Database
from landed.store import engine as engine_module
from landed.store import tables as t


def hold_write_lock(path: Path, seconds: float, taken: threading.Event) -> None:
    """Another writer: holds SQLite's write lock for ``seconds``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    taken.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_a_write_waits_for_the_other_writer(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    taken = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, 0.3, taken))
    holder.start()
    taken.wait(5)
    started = time.monotonic()
    with db.write() as conn:
        waited = time.monotonic() - started
        count = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
        # The busy timeout is back for the statements of the transaction.
        timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
    holder.join()
    db.dispose()
    assert count == 0
    assert 0.2 < waited < 5, "took the lock soon after the other writer let it go"
    assert timeout == 30000


def test_a_write_gives_up_with_the_usual_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "BUSY_TIMEOUT_SECONDS", 0.2)
    db = Database(sqlite_url)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    taken = threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, 1.0, taken))
    holder.start()
    taken.wait(5)
    try:
        with pytest.raises(OperationalError, match="database is locked"), db.write():
            pass
        # The connection is still good once the other writer is done.
        holder.join()
        with db.write() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 200
    finally:
        holder.join()
        db.dispose()
