"""Reconcile tick time against ledger size: does a tick cost what is due, or the ledger?

Fills a fresh ledger (SQLite file, and PostgreSQL) with N deliveries, their
notifications, recipients and evidence, of which exactly 1,000 are due now:
500 that have reached their required level (they close), 250 still within
their deadline (they go back to waiting) and 250 past it (they open an alert,
write the structured log line and queue sink notices). Everything else is
closed (``due_at`` NULL) or due later, as in a long-running ledger. Then it
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def ids(n: int, offset: int) -> list[str]:
    # Time-ordered ids made cheaply: a fixed millisecond base plus a counter.
    base = 1_780_000_000_000 << 80
    return [encode_base32(base + offset + i, 26) for i in range(n)]


def rows(n: int) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the ledger, as tuples in column order (see ``fill``)."""
    ring = Keyring("k1", {"k1": KEY.encode()})
    created = NOW - timedelta(days=2)
    ts = created.replace(tzinfo=None).isoformat(sep=" ")
    delivery_ids = ids(n, 0)
    notifications = ids(n // PER_NOTIFICATION, 10**12)
    out: dict[str, list[tuple[object, ...]]] = {
        "topic": [(i + 1, f"INC-{i + 1}", ts) for i in range(1000)],
        "recipient": [(i + 1, f"user{i + 1}@corp.test", 0, ts) for i in range(RECIPIENTS)],
        "notification": [
            (nid, (i % 1000) + 1, "incident", "Alerts <alerts@corp.test>", f"N {i}", "body", ts)
            for i, nid in enumerate(notifications)
        ],
        "delivery": [],
        "evidence": [],
    }
    due_from = n // 2  # the due ones sit in the middle of the id range
    for i, did in enumerate(delivery_ids):
        due = due_from <= i < due_from + DUE
        k = i - due_from
        if due and k < 500:
            level, deadline, due_at = (
                "delivered",
                created + timedelta(minutes=15),
                NOW - timedelta(seconds=1),
            )
        elif due and k < 750:
            level, deadline, due_at = (
                "submitted",
                NOW + timedelta(minutes=10),
                NOW - timedelta(seconds=1),
            )
        elif due:
            level, deadline, due_at = (
                "submitted",
                NOW - timedelta(minutes=1),
                NOW - timedelta(minutes=1),
            )
        else:
            level, deadline, due_at = ("delivered" if i % 2 else "submitted"), created, None
        token = ring.sign(did)
        out["delivery"].append(
            (
                did,
                notifications[i // PER_NOTIFICATION],
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
                _ts(due_at) if due_at else None,
            )
        )
        out["evidence"].append(
            (did, "dsn" if level == "delivered" else "smtp-reply", level, ts, ts, f"k{i}", b"x")
        )
    return out


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


COLUMNS = {
    "topic": "id, key, created_at",
    "recipient": "id, address, last_seq, created_at",
    "notification": "id, topic_id, cls, sender, subject, text, created_at",
    "delivery": (
        "id, notification_id, recipient_id, seq, to_header, token, ref, message_id, level, "
        "created_at, updated_at, policy, required, deadline_at, due_at"
    ),
    "evidence": "delivery_id, source, level, observed_at, recorded_at, dedupe_key, raw",
}


def fill(db: Database, n: int) -> None:
    data = rows(n)
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if db.dialect == "sqlite":
            cur.execute("BEGIN")  # landed's engine runs pysqlite in autocommit mode
        for table in ("topic", "recipient", "notification", "delivery", "evidence"):
            cols = COLUMNS[table]
            if db.dialect == "sqlite":
                marks = ", ".join("?" for _ in cols.split(","))
                cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", data[table])
            else:
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in data[table]:
                        copy.write_row([_pg(v) for v in row])
        if db.dialect == "postgresql":
            cur.execute("SELECT setval('evidence_id_seq', (SELECT max(id) FROM evidence))")
            cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def _pg(value: object) -> object:
    if isinstance(value, str) and len(value) == 26 and value[4] == "-":
        return value
    return value


def due_rows(db: Database) -> list[dict[str, object]]:
    from sqlalchemy import select

    from landed.store import tables as t

    with db.read() as conn:
        found = conn.execute(
            select(t.delivery.c.id, t.delivery.c.due_at).where(t.delivery.c.due_at <= NOW)
        ).all()
    return [{"b_id": r.id, "due": r.due_at} for r in found]


def reset(db: Database, due: list[dict[str, object]]) -> None:
    """Put the ledger back as it was before the tick."""
    from sqlalchemy import bindparam, text, update

    from landed.store import tables as t

    with db.write() as conn:
        for table in ("dispatch", "alert_event", "alert", "suppression"):
            conn.execute(text(f"DELETE FROM {table}"))
        conn.execute(
            update(t.delivery)
            .where(t.delivery.c.id == bindparam("b_id"))
            .values(due_at=bindparam("due", type_=t.UTCDateTime())),
            due,
        )


def measure(url: str, n: int, repeat: int) -> tuple[float, int]:
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
    judged = 0
    for _ in range(repeat):
        reconciler = Reconciler(db, settings, clock=clock)
        t0 = time.perf_counter()
        result = reconciler.tick(limit=DUE)
        times.append(time.perf_counter() - t0)
        judged = result.judged
        if judged != DUE or len(result.opened) != 250:
            raise SystemExit(
                f"tick judged {judged}, opened {len(result.opened)}: expected {DUE}, 250"
            )
        reset(db, due)
    db.dispose()
    print(f"    filled {n:,} deliveries in {filled:.0f} s", flush=True)
    return statistics.median(times), judged


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
    results: dict[tuple[str, int], float] = {}
    for engine in args.engines.split(","):
        for n in sizes:
            print(f"{engine}, {n:,} deliveries, {DUE} due:", flush=True)
            with ledger(engine) as url:
                seconds, _ = measure(url, n, args.repeat)
            results[(engine, n)] = seconds
            print(f"    tick: {seconds * 1000:.1f} ms (median of {args.repeat})", flush=True)
    print()
    print(f"{'engine':<12}{'deliveries':>14}{'tick ms':>10}{'vs smallest':>13}")
    for engine in args.engines.split(","):
        base = results[(engine, sizes[0])]
        for n in sizes:
            t = results[(engine, n)]
            print(f"{engine:<12}{n:>14,}{t * 1000:>10.1f}{t / base:>13.2f}")


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
