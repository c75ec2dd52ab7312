"""Reconcile tick time against ledger size: does a tick cost what is due, or the ledger?

Fills a fresh ledger (SQLite file, and PostgreSQL) with N deliveries, their
notifications, recipients and evidence, of which exactly 1,000 are due now:
500 that have reached their required level (they close), 250 still within
their deadline (they go back to waiting) and 250 past it (they open an alert,
write the structured log line and queue sink notices). Everything else is
closed (no ``delivery_due`` row) or, one in ten, due a day later, as in a
long-running ledger. Then it
times ``Reconciler.tick(limit=1000)``, resets the 1,000 and repeats, and
reports the median. The same at 10× the size gives the ratio that must stay
≤ 1.5 (and the tick under 100 ms).

    .venv/bin/python bench/reconcile.py                               # 1M SQLite + PG, 10M PG
    .venv/bin/python bench/reconcile.py --sizes 100000,1000000 --engines sqlite
    .venv/bin/python bench/reconcile.py --quick                       # 100k and 1M, both engines

Only ever talks to 127.0.0.1. Each PostgreSQL ledger is a new database,
dropped afterwards; each SQLite ledger a new file, deleted afterwards.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from landed.clock import FixedClock  # noqa: E402
from landed.config import Settings  # noqa: E402
from landed.reconcile import Reconciler  # noqa: E402
from landed.store import Database  # noqa: E402
from landed.tokens import Keyring, encode_base32, human_ref  # noqa: E402

PG_ADMIN_URL = os.environ.get("LANDED_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
KEY = "benchbenchbenchbenchbenchbench0123"
DUE = 1000
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RECIPIENTS = 100_000
PER_NOTIFICATION = 10


def ids(n: int, offset: int) -> Iterator[str]:
    # Time-ordered ids made cheaply: a fixed millisecond base plus a counter.
    base = 1_780_000_000_000 << 80
    return (encode_base32(base + offset + i, 26) for i in range(n))


TABLES = ("topic", "recipient", "notification", "delivery", "delivery_due", "evidence")


def rows(table: str, n: int) -> Iterator[tuple[object, ...]]:
    """The rows of one table of an ``n``-delivery ledger, in column order (``COLUMNS``),
    made as they are written: a 10,000,000-row ledger never sits in memory."""
    created = NOW - timedelta(days=2)
    ts = created.replace(tzinfo=None).isoformat(sep=" ")
    if table == "topic":
        yield from ((i + 1, f"INC-{i + 1}", ts) for i in range(1000))
    elif table == "recipient":
        yield from ((i + 1, f"user{i + 1}@corp.test", 0, ts) for i in range(RECIPIENTS))
    elif table == "notification":
        for i, nid in enumerate(ids(_notifications(n), 10**12)):
            yield (nid, (i % 1000) + 1, "incident", "Alerts <alerts@corp.test>", f"N {i}", "b", ts)
    elif table == "delivery":
        ring = Keyring("k1", {"k1": KEY.encode()})
        notifications = ids(_notifications(n), 10**12)
        notification = ""
        for i, did in enumerate(ids(n, 0)):
            if i % PER_NOTIFICATION == 0:
                notification = next(notifications)
            level, deadline, _ = _state(i, n, created)
            token = ring.sign(did)
            yield (
                did,
                notification,
                (i % RECIPIENTS) + 1,
                i // RECIPIENTS + 1,
                f"user{(i % RECIPIENTS) + 1}@corp.test",
                token,
                human_ref(did).replace("-", "").lower(),
                f"<{token}@corp.test>",
                level,
                ts,
                ts,
                "internal",
                "delivered",
                _ts(deadline),
            )
    elif table == "delivery_due":
        for i, did in enumerate(ids(n, 0)):
            due_at = _state(i, n, created)[2]
            if due_at is not None:
                yield (did, _ts(due_at))
    elif table == "evidence":
        for i, did in enumerate(ids(n, 0)):
            level = _state(i, n, created)[0]
            yield (
                did,
                "dsn" if level == "delivered" else "smtp-reply",
                level,
                ts,
                ts,
                f"k{i}",
                b"x",
            )


def _notifications(n: int) -> int:
    return -(-n // PER_NOTIFICATION)


def _state(i: int, n: int, created: datetime) -> tuple[str, datetime, datetime | None]:
    """Level, deadline and due time of the ``i``-th delivery: 1,000 in the middle are due."""
    k = i - n // 2
    if 0 <= k < 500:  # proven: they close
        return "delivered", created + timedelta(minutes=15), NOW - timedelta(seconds=1)
    if 500 <= k < 750:  # inside their deadline: back to waiting
        return "submitted", NOW + timedelta(minutes=10), NOW - timedelta(seconds=1)
    if 750 <= k < DUE:  # past it: each opens an alert
        return "submitted", NOW - timedelta(minutes=1), NOW - timedelta(minutes=1)
    if i % 10 == 0:  # pending: due at a deadline still a day away
        return "submitted", NOW + timedelta(days=1), NOW + timedelta(days=1)
    return ("delivered" if i % 2 else "submitted"), created, None


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


COLUMNS = {
    "topic": "id, key, created_at",
    "recipient": "id, address, last_seq, created_at",
    "notification": "id, topic_id, cls, sender, subject, text, created_at",
    "delivery": (
        "id, notification_id, recipient_id, seq, to_header, token, ref, message_id, level, "
        "created_at, updated_at, policy, required, deadline_at"
    ),
    "delivery_due": "delivery_id, due_at",
    "evidence": "delivery_id, source, level, observed_at, recorded_at, dedupe_key, raw",
}


def fill(db: Database, n: int) -> None:
    if db.dialect == "postgresql":
        _fill_postgresql(db, n)
        return
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN")  # landed's engine runs pysqlite in autocommit mode
        for table in TABLES:
            cols = COLUMNS[table]
            marks = ", ".join("?" for _ in cols.split(","))
            # pysqlite takes any iterable: the rows stream.
            cast(Any, cur).executemany(
                f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows(table, n)
            )
        raw.commit()
        # The fill's WAL goes into the database file now, not during the ticks.
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()


def _fill_postgresql(db: Database, n: int) -> None:
    """COPY every table with its secondary indexes and unique constraints dropped and
    built again afterwards (one sort each instead of 10M random B-tree inserts), and
    with foreign-key triggers off (``session_replication_role``; the rows are made
    consistent): a 10,000,000-delivery ledger fills in minutes, not hours."""
    import psycopg

    raw = db.engine.raw_connection()
    pg = cast(psycopg.Connection[Any], raw.dbapi_connection)
    try:
        cur = pg.cursor()
        cur.execute("SET session_replication_role = replica")
        cur.execute("SET maintenance_work_mem = '256MB'")
        rebuild: list[str] = []
        for table in TABLES:
            cur.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = %s::regclass AND contype = 'u'",
                (table,),
            )
            for name, definition in cur.fetchall():
                cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            cur.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
                " FROM pg_index i WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
                (table,),
            )
            for name, definition in cur.fetchall():
                cur.execute(f"DROP INDEX {name}")
                rebuild.append(definition)
        for table in TABLES:
            with cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
                for row in rows(table, n):
                    copy.write_row(row)
            print(f"    copied {table}", flush=True)
        for statement in rebuild:
            cur.execute(statement)
        cur.execute("SELECT setval('evidence_id_seq', (SELECT max(id) FROM evidence))")
        cur.execute("SET session_replication_role = origin")
        pg.commit()
        pg.autocommit = True
        cur.execute("VACUUM ANALYZE")
        # The fill's dirty pages are written now, not by a checkpoint during the ticks.
        cur.execute("CHECKPOINT")
        (size,) = cur.execute("SELECT pg_database_size(current_database())").fetchall()[0]
        pg.autocommit = False
        print(f"    database size {size / 2**30:.2f} GiB", flush=True)
    finally:
        raw.close()


def due_rows(db: Database) -> list[dict[str, object]]:
    from sqlalchemy import select

    from landed.store import tables as t

    with db.read() as conn:
        found = conn.execute(
            select(t.delivery_due.c.delivery_id, t.delivery_due.c.due_at).where(
                t.delivery_due.c.due_at <= NOW
            )
        ).all()
    return [{"delivery_id": r.delivery_id, "due_at": r.due_at} for r in found]


def reset(db: Database, due: list[dict[str, object]]) -> None:
    """Put the ledger back as it was before the tick."""
    from sqlalchemy import text

    from landed.store import tables as t
    from landed.store.ledger import dialect_insert

    with db.write() as conn:
        for table in ("dispatch", "alert_event", "alert", "suppression"):
            conn.execute(text(f"DELETE FROM {table}"))
        # The tick closed some (their rows are gone) and put others off: all back.
        upsert = dialect_insert(conn, t.delivery_due)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["delivery_id"], set_={"due_at": upsert.excluded.due_at}
            ),
            due,
        )


def measure(
    url: str, n: int, repeat: int, profile: str | None = None
) -> tuple[float, float, float, float]:
    """Median wall, median CPU, least wall and least CPU (this process) seconds of
    one tick.

    CPU time is what the machine being shared disturbs least; with PostgreSQL
    the server's own CPU is not in it (it is in the wall time). The least
    times are the ticks that ran while nothing else did.
    """
    db = Database(url)
    db.upgrade()
    started = time.perf_counter()
    fill(db, n)
    filled = time.perf_counter() - started
    settings = Settings(
        database_url=url,
        from_="Alerts <alerts@corp.test>",
        signing_keys={"k1": KEY},
        internal_domains=["corp.test"],
    )
    clock = FixedClock(NOW)
    due = due_rows(db)
    assert len(due) == DUE, len(due)
    times = []
    cpu = []
    judged = 0
    for i in range(repeat):
        reconciler = Reconciler(db, settings, clock=clock)
        profiler = cProfile.Profile() if profile and i == repeat - 1 else None
        c0, t0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = reconciler.tick(limit=DUE)
        if profiler is not None:
            profiler.disable()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if profiler is not None and profile is not None:
            profiler.dump_stats(profile)
        judged = result.judged
        if judged != DUE or len(result.opened) != 250:
            raise SystemExit(
                f"tick judged {judged}, opened {len(result.opened)}: expected {DUE}, 250"
            )
        reset(db, due)
    db.dispose()
    print(f"    filled {n:,} deliveries in {filled:.0f} s", flush=True)
    return statistics.median(times), statistics.median(cpu), min(times), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default=None, help="comma-separated ledger sizes (default 1M, 10M)"
    )
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100k and 1M")
    parser.add_argument(
        "--profile", default=None, help="write cProfile stats of the last tick to PREFIX.*.prof"
    )
    args = parser.parse_args()
    sizes = [
        int(s)
        for s in (args.sizes or ("100000,1000000" if args.quick else "1000000,10000000")).split(",")
    ]
    # The alert log lines are part of a tick's work: format them, then drop them.
    logging.basicConfig(level=logging.WARNING, stream=io.StringIO())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    results: dict[tuple[str, int], tuple[float, float, float, float]] = {}
    for engine in args.engines.split(","):
        for n in sizes:
            print(f"{engine}, {n:,} deliveries, {DUE} due:", flush=True)
            profile = f"{args.profile}.{engine}.{n}.prof" if args.profile else None
            with ledger(engine) as url:
                wall, cpu, least_wall, least = measure(url, n, args.repeat, profile)
            results[(engine, n)] = (wall, cpu, least_wall, least)
            print(
                f"    tick: {wall * 1000:.1f} ms wall, {cpu * 1000:.1f} ms CPU in this process"
                f" (median of {args.repeat}; least {least_wall * 1000:.1f} ms wall,"
                f" {least * 1000:.1f} ms CPU)",
                flush=True,
            )
    print()
    print(
        f"{'engine':<12}{'deliveries':>14}{'wall ms':>10}{'CPU ms':>10}{'least wall':>12}"
        f"{'least CPU':>11}{'wall vs smallest':>18}{'CPU vs smallest':>17}"
    )
    for engine in args.engines.split(","):
        base_wall, base_cpu, _, _ = results[(engine, sizes[0])]
        for n in sizes:
            wall, cpu, least_wall, least = results[(engine, n)]
            print(
                f"{engine:<12}{n:>14,}{wall * 1000:>10.1f}{cpu * 1000:>10.1f}"
                f"{least_wall * 1000:>12.1f}{least * 1000:>11.1f}"
                f"{wall / base_wall:>18.2f}{cpu / base_cpu:>17.2f}"
            )


class ledger:
    """A fresh ledger for one measurement, removed afterwards."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.cleanup: list[object] = []

    def __enter__(self) -> str:
        if self.engine == "sqlite":
            self.dir = tempfile.TemporaryDirectory(prefix="landed-bench-")
            return f"sqlite:///{self.dir.name}/ledger.db"
        import psycopg
        from sqlalchemy.engine import make_url

        self.name = f"landed_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        return (
            make_url(PG_ADMIN_URL)
            .set(drivername="postgresql+psycopg", database=self.name)
            .render_as_string(hide_password=False)
        )

    def __exit__(self, *exc: object) -> None:
        if self.engine == "sqlite":
            self.dir.cleanup()
            return
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
