"""Send throughput: notify -> ledger -> worker -> relay's 250 -> evidence committed.

Measures deliveries per second through landed into Postfix's ``smtp-sink`` (and a
minimal aiosmtpd sink) on loopback, with the ledger on SQLite and on PostgreSQL,
for 1, 2 and 4 worker processes; and, in the same run and into a sink started
with the same flags, Postfix's ``smtp-source`` pushing the same number of 1 KB
messages at the same concurrency, and Python's bare ``smtplib`` over one
connection. See ``docs/benchmarks.md`` for the method and the figures.

    .venv/bin/python bench/send.py                      # everything (20-40 minutes)
    .venv/bin/python bench/send.py --quick              # SQLite, smtp-sink, 1 worker
    .venv/bin/python bench/send.py --engines sqlite --workers 1 --messages 5000

What one landed measurement is:

1. Start the sink on a free loopback port and create a fresh ledger (a new SQLite
   file, or a new PostgreSQL database that is dropped afterwards), migrated.
2. Start K ``python -m landed worker`` processes and wait until each has logged
   "started"; send a small warm-up notification and wait until it is settled.
   Process start-up is *not* in the figures.
3. End to end: start the clock; record N deliveries through ``Client.notify``
   (N/10 notifications of 10 recipients each, one transaction per notification,
   recipients drawn round-robin from a pool, so that each email lists that
   recipient's earlier still-unconfirmed notifications, as in production);
   stop the clock when the outbox is empty, i.e. when every delivery's 250
   from the sink has been committed to the ledger as ``submitted`` evidence.
   The workers run while notify runs: the figure is the whole path.
4. Drain: record N more deliveries in one transaction (not timed), then time
   the workers emptying the outbox: the sending side alone.
5. Check the ledger: exactly 2N + warm-up deliveries, all ``submitted``, one
   ``smtp-reply`` evidence row each and nothing else (no retries, no
   duplicates); for the aiosmtpd sink also the sink's own count. Any failure
   exits non-zero.

Alongside: CPU time per delivery of each part (and of other processes on the
machine, which on a shared machine say how far to trust a figure).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import shutil
import signal
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SIGNING_KEY = "benchbenchbenchbenchbenchbench0123"
PG_ADMIN_URL = os.environ.get("LANDED_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
WARMUP = 10
#: How a worker process is started (after ``python`` and any profiler options).
WORKER_ARGS = ["-m", "landed", "--log-level", "info", "worker"]
PER_NOTIFICATION = 10
INSTALL_HINT = """\
Postfix's smtp-sink and smtp-source are needed (Debian/Ubuntu: package "postfix").
Install them without configuring or starting a system mail server:

    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get install -y postfix

(or run with --sinks aiosmtpd --no-smtp-source to skip them)."""


class BenchError(Exception):
    """A run that did not do what it should: the benchmark fails."""


# --- the machine -----------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "?"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    info = {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _pg_version(),
        "postfix": _postfix_version(),
    }
    with suppress(ImportError):
        import sqlalchemy

        info["sqlalchemy"] = sqlalchemy.__version__
    with suppress(ImportError):
        import psycopg

        info["psycopg"] = psycopg.__version__
    return info


def _pg_version() -> str:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "?"
    except Exception as exc:
        return f"unavailable ({str(exc).strip().splitlines()[0]})"


def _postfix_version() -> str:
    postconf = shutil.which("postconf") or "/usr/sbin/postconf"
    try:
        out = subprocess.run(
            [postconf, "-d", "mail_version"], capture_output=True, text=True, check=True
        ).stdout
        return out.split("=", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


def postfix_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


# --- sinks -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"sink exited at start-up with status {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise BenchError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Sink:
    """A sink process on a free loopback port; ``stop()`` returns its message count if known."""

    kind: str
    port: int = 0
    proc: subprocess.Popen[str] | None = None

    def start(self) -> Sink:
        self.port = free_port()
        if self.kind == "smtp-sink":
            tool = postfix_tool("smtp-sink")
            assert tool is not None
            # smtp-sink refuses to run as root without -u. No -c: its per-message
            # counter output costs the sink a write per message (measured: up to 40%).
            user = ["-u", "nobody"] if os.geteuid() == 0 else []
            cmd = [tool, *user, f"127.0.0.1:{self.port}", "1000"]
        else:
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-aiosmtpd",
                str(self.port),
            ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        wait_listening(self.port, self.proc)
        return self

    def stop(self) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        for line in out.splitlines():
            if line.startswith("received "):
                return int(line.split()[1])
        return None

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_aiosmtpd(port: int) -> None:
    """A minimal aiosmtpd sink: accept everything, count, say how many on SIGTERM."""
    from aiosmtpd.smtp import SMTP

    class Counter:
        def __init__(self) -> None:
            self.count = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.count += 1
            return f"250 2.0.0 Ok: queued as {self.count:08X}"

    handler = Counter()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="aiosmtpd-sink.test"), "127.0.0.1", port
        )
        await stopped.wait()
        server.close()

    asyncio.run(main())
    print(f"received {handler.count}", flush=True)


# --- ledgers ---------------------------------------------------------------------------


@contextmanager
def fresh_ledger(engine: str, workdir: Path) -> Iterator[str]:
    """A migrated, empty ledger; a PostgreSQL database is dropped afterwards."""
    from landed.store import Database

    if engine == "sqlite":
        path = workdir / f"ledger-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        db = Database(url)
        db.upgrade()
        db.dispose()
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                with suppress(FileNotFoundError):
                    Path(f"{path}{suffix}").unlink()
        return
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"landed_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = (
        make_url(PG_ADMIN_URL)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )
    try:
        db = Database(url)
        db.upgrade()
        db.dispose()
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- landed ----------------------------------------------------------------------------


@dataclass
class LandedRun:
    #: From the first notify until the outbox is empty.
    seconds: float
    #: How long the notify calls took (while the workers were sending).
    notify_seconds: float
    #: Emptying an outbox of N deliveries queued beforehand.
    drain_seconds: float
    message_bytes: int
    #: CPU seconds used during the measured interval: notify (this process), workers, sink.
    cpu: dict[str, float]
    #: CPU seconds of the workers and the sink while draining.
    drain_cpu: dict[str, float]


def body_text() -> str:
    """About 1 KB of plain text, as smtp-source's ``-l 1024``."""
    line = "db-3 stopped answering on 5432; failover to db-4 is in progress, ETA 5 min."
    lines = [f"{i:02d} {line}" for i in range(13)]
    return "\n".join(lines)[:1023] + "\n"


def worker_env(db_url: str, sink_port: int, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDED_")}
    env.update(
        {
            "LANDED_CONFIG": "/nonexistent/landed.toml",
            "LANDED_DATABASE_URL": db_url,
            "LANDED_RELAY_URL": f"smtp://127.0.0.1:{sink_port}?starttls=off&timeout=30",
            "LANDED_FROM": "Alerts <alerts@corp.test>",
            "LANDED_BOUNCE_DOMAIN": "bounce.test",
            "LANDED_SIGNING_KEYS": f"k1:{SIGNING_KEY}",
            "LANDED_WORKER_BATCH": str(args.batch),
            "LANDED_WORKER_POLL_SECONDS": str(args.poll),
        }
    )
    return env


def queue_plan(messages: int, pool: int, first: int = 0) -> list[tuple[str, str, list[str]]]:
    """(topic, subject, recipients) of each notification, decided before the clock starts."""
    plan = []
    for n in range(first, first + messages // PER_NOTIFICATION):
        first = n * PER_NOTIFICATION
        to = [f"user{(first + j) % pool:04d}@corp.test" for j in range(PER_NOTIFICATION)]
        plan.append((f"INC-{1000 + n // 5}", f"db-{n % 50} is not answering", to))
    return plan


def outbox_depth(client: Any) -> int:
    from landed.store.queries import outbox_depth as depth

    with client.db.read() as conn:
        return int(depth(conn))


def wait_empty(client: Any, procs: Sequence[subprocess.Popen[Any]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while outbox_depth(client):
        if time.monotonic() > deadline:
            raise BenchError(f"outbox not empty after {timeout:.0f}s")
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise BenchError(f"a worker exited with status {dead[0].returncode}")
        time.sleep(0.005)


def run_landed(sink_kind: str, engine: str, workers: int, args: argparse.Namespace) -> LandedRun:
    from landed.client import Client
    from landed.config import Settings

    n = args.messages
    with (
        tempfile.TemporaryDirectory(prefix="landed-bench-", dir=args.workdir) as tmp,
        Sink(sink_kind) as sink,
        fresh_ledger(engine, Path(tmp)) as db_url,
    ):
        env = worker_env(db_url, sink.port, args)
        logs = [Path(tmp) / f"worker{i}.log" for i in range(workers)]
        procs = []
        for i, log in enumerate(logs):
            profile = []
            if args.profile:
                out = Path(args.profile) / f"{sink_kind}-{engine}-{workers}w-worker{i}.prof"
                profile = ["-m", "cProfile", "-o", str(out)]
            with log.open("wb") as stderr:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            *profile,
                            *WORKER_ARGS,
                        ],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                        cwd=tmp,
                    )
                )
        try:
            deadline = time.monotonic() + 60
            while not all("started" in log.read_text() for log in logs):
                if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                    raise BenchError("workers did not start:\n" + logs[0].read_text()[-2000:])
                time.sleep(0.02)
            settings = Settings(
                database_url=db_url,
                from_="Alerts <alerts@corp.test>",
                bounce_domain="bounce.test",
                signing_keys={"k1": SIGNING_KEY},
            )
            text = body_text()
            plan = queue_plan(n, args.recipients)
            with Client(settings) as client:
                client.notify(
                    topic="WARM-UP",
                    cls="incident",
                    to=[f"warm{i}@warm.test" for i in range(WARMUP)],
                    subject="warm-up",
                    text=text,
                )
                wait_empty(client, procs, timeout=60)

                pids = [p.pid for p in procs]
                sink_pid = sink.proc.pid if sink.proc is not None else None
                cpu_before = cpu_snapshot()
                profiler = cProfile.Profile() if args.profile else None
                start = time.perf_counter()
                own = time.process_time()
                if profiler is not None:
                    profiler.enable()
                for topic, subject, to in plan:
                    client.notify(topic=topic, cls="incident", to=to, subject=subject, text=text)
                if profiler is not None:
                    profiler.disable()
                    Path(args.profile).mkdir(parents=True, exist_ok=True)
                    profiler.dump_stats(
                        Path(args.profile) / f"{sink_kind}-{engine}-{workers}w-notify.prof"
                    )
                notified = time.perf_counter()
                own = time.process_time() - own
                wait_empty(client, procs, timeout=args.timeout)
                done = time.perf_counter()
                cpu_after = cpu_snapshot()

                # Drain: N more deliveries recorded in one transaction (not timed),
                # then the clock runs from its commit until the outbox is empty.
                queue_at_once(client, queue_plan(n, args.recipients, first=len(plan)), text)
                drain_start = time.perf_counter()
                wait_empty(client, procs, timeout=args.timeout)
                drained = time.perf_counter() - drain_start
                cpu_drained = cpu_snapshot()
                size = verify(client, 2 * n + WARMUP)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        received = sink.stop()
        codes = [p.returncode for p in procs]
        if codes != [0] * workers:
            raise BenchError(f"workers exited with {codes}: {logs[0].read_text()[-2000:]}")
        if received is not None and received != 2 * n + WARMUP:
            raise BenchError(f"the sink received {received} messages, not {2 * n + WARMUP}")
    cpu = cpu_used(cpu_before, cpu_after, pids, sink_pid)
    cpu["notify"] = own
    drain_cpu = cpu_used(cpu_after, cpu_drained, pids, sink_pid)
    return LandedRun(done - start, notified - start, drained, size, cpu, drain_cpu)


def queue_at_once(client: Any, plan: list[tuple[str, str, list[str]]], text: str) -> None:
    """``client.notify`` every notification of ``plan``, all in one transaction.

    The client's ``db.write()`` is pointed at one open transaction for the
    while, so the notifications go through exactly the code ``notify`` runs,
    and the workers see them all at once, when it commits.
    """
    db = client.db
    with db.write() as conn:

        @contextmanager
        def same_transaction() -> Iterator[Any]:
            yield conn

        db.write = same_transaction
        try:
            for topic, subject, to in plan:
                client.notify(topic=topic, cls="incident", to=to, subject=subject, text=text)
        finally:
            del db.write


@dataclass
class CpuSnapshot:
    """CPU seconds used so far by every process, and the machine's CPU jiffies."""

    procs: dict[int, tuple[str, int, float]]  # pid: (command, parent pid, seconds)
    busy: float
    total: float


def cpu_snapshot() -> CpuSnapshot:
    tick = os.sysconf("SC_CLK_TCK")
    procs = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            procs[int(stat.parent.name)] = (
                comm,
                int(fields[1]),
                (int(fields[11]) + int(fields[12])) / tick,
            )
    jiffies = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = jiffies[3] + jiffies[4]  # idle + iowait
    total = sum(jiffies[:8])
    return CpuSnapshot(procs, (total - idle) / tick, total / tick)


def cpu_used(
    before: CpuSnapshot, after: CpuSnapshot, workers: Sequence[int], sink: int | None
) -> dict[str, float]:
    """CPU seconds between two snapshots: of the workers, the sink, the PostgreSQL
    server (every postgres process), this process, kernel threads (loopback
    networking, disk flushes) and everything else; and of the whole machine."""
    used = dict.fromkeys(("workers", "sink", "postgres", "bench", "kernel", "others"), 0.0)
    for pid, (comm, ppid, seconds) in after.procs.items():
        delta = seconds - before.procs.get(pid, (comm, ppid, 0.0))[2]
        if pid in workers:
            used["workers"] += delta
        elif pid == sink:
            used["sink"] += delta
        elif comm == "postgres":
            used["postgres"] += delta
        elif pid == os.getpid():
            used["bench"] += delta
        elif ppid == 2 or pid == 2:
            used["kernel"] += delta
        else:
            used["others"] += delta
    used["busy"] = after.busy - before.busy
    used["total"] = after.total - before.total
    return used


def verify(client: Any, expected: int) -> int:
    """Every delivery submitted, with exactly one smtp-reply 250 each; returns a message size."""
    from sqlalchemy import func, select

    from landed.store import tables as t

    with client.db.read() as conn:
        deliveries = dict(
            conn.execute(
                select(t.delivery.c.level, func.count()).group_by(t.delivery.c.level)
            ).all()
        )
        evidence = conn.execute(
            select(t.evidence.c.source, t.evidence.c.level, func.count()).group_by(
                t.evidence.c.source, t.evidence.c.level
            )
        ).all()
        replies = conn.execute(
            select(func.count()).where(t.evidence.c.detail.like("attempt 1: 250 %"))
        ).scalar_one()
        outbox = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
    if deliveries != {"submitted": expected}:
        raise BenchError(f"deliveries by level: {deliveries}, expected {expected} submitted")
    if [tuple(row) for row in evidence] != [("smtp-reply", "submitted", expected)]:
        raise BenchError(f"evidence: {evidence}, expected {expected} smtp-reply/submitted")
    if replies != expected or outbox != 0:
        raise BenchError(f"{replies} 250 replies and {outbox} outbox rows, expected {expected}/0")
    return composed_size(client)


def composed_size(client: Any) -> int:
    """The size of the last delivery's email as sent (it lists earlier notifications)."""
    from sqlalchemy import func, select

    from landed.sender import Sender
    from landed.store import tables as t
    from landed.store.outbox import load_jobs

    with client.db.read() as conn:
        last = conn.execute(select(func.max(t.delivery.c.id))).scalar_one()
        [job] = load_jobs(conn, [last])
    message, _ = Sender(client.db, client.settings, _NoTransport()).build(job)
    return len(message)


class _NoTransport:
    name = "none"

    def send(self, envelope: Any, message: bytes) -> Any:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


# --- references ------------------------------------------------------------------------


def wait_idle(limit: float, busy: float = 0.2) -> None:
    """Wait up to ``limit`` seconds for a second in which the CPUs are less than
    ``busy`` busy (on a shared machine, so as not to start in someone's build)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_snapshot()
        time.sleep(1)
        after = cpu_snapshot()
        if (
            after.total > before.total
            and (after.busy - before.busy) / (after.total - before.total) < busy
        ):
            return


def run_smtp_source(sink_kind: str, messages: int, sessions: int, *, keep_open: bool) -> float:
    tool = postfix_tool("smtp-source")
    assert tool is not None
    with Sink(sink_kind) as sink:
        cmd = [
            tool,
            *(["-d"] if keep_open else []),
            "-s",
            str(sessions),
            "-l",
            "1024",
            "-m",
            str(messages),
            "-f",
            "bench@source.test",
            "-t",
            "sink@sink.test",
            f"127.0.0.1:{sink.port}",
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        received = sink.stop()
    if proc.returncode != 0:
        raise BenchError(f"smtp-source failed ({proc.returncode}): {proc.stderr.strip()}")
    if received is not None and received != messages:
        raise BenchError(f"smtp-source: the sink received {received}, not {messages}")
    return elapsed


def run_smtplib(sink_kind: str, messages: int) -> float:
    """Bare smtplib: one connection, ``sendmail`` per message, 1 KB body."""
    body = ("x" * 78 + "\r\n") * 12 + "x" * 64 + "\r\n"
    message = (
        "From: bench@source.test\r\nTo: sink@sink.test\r\nSubject: bench\r\n\r\n" + body
    ).encode()
    with Sink(sink_kind) as sink:
        start = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
            for _ in range(messages):
                smtp.sendmail("bench@source.test", ["sink@sink.test"], message)
        elapsed = time.perf_counter() - start
        received = sink.stop()
    if received is not None and received != messages:
        raise BenchError(f"smtplib: the sink received {received}, not {messages}")
    return elapsed


# --- the run ---------------------------------------------------------------------------


@dataclass
class Row:
    sink: str
    engine: str
    workers: int
    landed: list[float] = field(default_factory=list)
    notify: list[float] = field(default_factory=list)
    drain: list[float] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)
    drain_cpu: list[dict[str, float]] = field(default_factory=list)
    message_bytes: int = 0


def cpu_text(cpu: list[dict[str, float]], messages: int) -> str:
    """Median CPU microseconds per delivery of notify, the workers, the sink, the
    PostgreSQL server, kernel threads and other processes; how busy the CPUs were."""
    if not cpu:
        return "-"
    parts = []
    for key in ("notify", "workers", "sink", "postgres", "kernel", "others"):
        if key in cpu[0]:
            value = statistics.median(c[key] for c in cpu) / messages * 1e6
            parts.append(f"{key} {value:.0f}")
    busy = statistics.median(c["busy"] / c["total"] for c in cpu if c["total"])
    return ", ".join(parts) + f"; CPUs {busy:.0%} busy"


def others_share(cpu: list[dict[str, float]]) -> str:
    """Median share of the machine's CPU time that processes outside the benchmark
    (not its workers, sink, PostgreSQL, kernel threads or this process) used."""
    shares = [c["others"] / c["total"] for c in cpu if c.get("total")]
    return f"{statistics.median(shares):.0%}" if shares else "-"


def percent(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if part == part and whole == whole and whole else "-"


def median_rate(messages: int, seconds: Sequence[float]) -> float:
    return messages / statistics.median(seconds) if seconds else float("nan")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--messages", type=int, default=None, help="deliveries per run, N (default 2000)"
    )
    parser.add_argument("--workers", default="1,2,4", help="worker counts, e.g. 1,2,4")
    parser.add_argument("--engines", default="sqlite,postgresql", help="sqlite,postgresql")
    parser.add_argument("--sinks", default="smtp-sink,aiosmtpd", help="smtp-sink,aiosmtpd")
    parser.add_argument(
        "--repeat", type=int, default=None, help="runs per figure, median reported (default 3)"
    )
    parser.add_argument("--recipients", type=int, default=200, help="recipient pool size")
    parser.add_argument("--batch", type=int, default=100, help="LANDED_WORKER_BATCH")
    parser.add_argument("--poll", type=float, default=0.05, help="LANDED_WORKER_POLL_SECONDS")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per landed run")
    parser.add_argument("--workdir", default=None, help="where SQLite ledgers go (a disk!)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write results here")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="write cProfile files of notify and of each worker here (slows everything)",
    )
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for the CPUs to be nearly idle",
    )
    parser.add_argument("--no-smtp-source", action="store_true", help="skip the Postfix baseline")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="SQLite, smtp-sink, 1 worker; 500 messages, once (unless given)",
    )
    parser.add_argument("--serve-aiosmtpd", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.engines, args.sinks = "1", "sqlite", "smtp-sink"
    args.messages = args.messages or (500 if args.quick else 2000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.worker_counts = [int(w) for w in args.workers.split(",")]
    args.engine_list = [e.strip() for e in args.engines.split(",") if e.strip()]
    args.sink_list = [s.strip() for s in args.sinks.split(",") if s.strip()]
    if args.messages % PER_NOTIFICATION:
        parser.error(f"--messages must be a multiple of {PER_NOTIFICATION}")
    if args.recipients < PER_NOTIFICATION:
        parser.error(f"--recipients must be at least {PER_NOTIFICATION}")
    if not set(args.engine_list) <= {"sqlite", "postgresql"}:
        parser.error("--engines: sqlite and/or postgresql")
    if not set(args.sink_list) <= {"smtp-sink", "aiosmtpd"}:
        parser.error("--sinks: smtp-sink and/or aiosmtpd")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Stop on SIGTERM as on Ctrl-C: through the finally blocks that stop the
    # workers and sinks and drop the PostgreSQL databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.serve_aiosmtpd:
        serve_aiosmtpd(args.serve_aiosmtpd)
        return 0
    need = set()
    if "smtp-sink" in args.sink_list:
        need.add("smtp-sink")
    if not args.no_smtp_source:
        need |= {"smtp-sink", "smtp-source"}
    missing = sorted(tool for tool in need if postfix_tool(tool) is None)
    if missing:
        print(f"missing: {', '.join(missing)}\n\n{INSTALL_HINT}", file=sys.stderr)
        return 2

    info = machine()
    n = args.messages
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print("command: " + " ".join([Path(sys.executable).name, "bench/send.py", *sys.argv[1:]]))
    print(
        f"{n} deliveries per run ({n // PER_NOTIFICATION} notifications x {PER_NOTIFICATION}"
        f" recipients, pool of {args.recipients}), worker batch {args.batch},"
        f" poll {args.poll}s, median of {args.repeat}\n"
    )

    rows: list[Row] = []
    source: dict[tuple[str, int, bool], list[float]] = {}
    bare: dict[str, list[float]] = {}
    failed = False
    for sink in args.sink_list:
        for engine in args.engine_list:
            for workers in args.worker_counts:
                row = Row(sink, engine, workers)
                rows.append(row)
                for _ in range(args.repeat):
                    try:
                        wait_idle(args.idle_wait)
                        got = run_landed(sink, engine, workers, args)
                    except BenchError as exc:
                        print(f"FAILED {sink} {engine} {workers}w: {exc}", file=sys.stderr)
                        failed = True
                        break
                    row.landed.append(got.seconds)
                    row.notify.append(got.notify_seconds)
                    row.drain.append(got.drain_seconds)
                    row.cpu.append(got.cpu)
                    row.drain_cpu.append(got.drain_cpu)
                    row.message_bytes = got.message_bytes
                print(
                    f"  {sink:9} {engine:10} {workers}w  landed {median_rate(n, row.landed):5.0f}"
                    f" msg/s ({', '.join(f'{s:.2f}s' for s in row.landed)};"
                    f" CPU us/delivery {cpu_text(row.cpu, n)})"
                    f"  drain {median_rate(n, row.drain):5.0f} msg/s"
                    f" ({', '.join(f'{s:.2f}s' for s in row.drain)};"
                    f" CPU us/delivery {cpu_text(row.drain_cpu, n)})",
                    flush=True,
                )
        if args.no_smtp_source:
            continue
        for workers in args.worker_counts:
            for keep_open in (True, False):
                times = source.setdefault((sink, workers, keep_open), [])
                for _ in range(args.repeat):
                    try:
                        wait_idle(args.idle_wait)
                        times.append(run_smtp_source(sink, n, workers, keep_open=keep_open))
                    except BenchError as exc:
                        print(f"FAILED smtp-source {sink}: {exc}", file=sys.stderr)
                        failed = True
                        break
        for _ in range(args.repeat):
            try:
                wait_idle(args.idle_wait)
                bare.setdefault(sink, []).append(run_smtplib(sink, n))
            except (BenchError, OSError, smtplib.SMTPException) as exc:
                print(f"FAILED smtplib {sink}: {exc}", file=sys.stderr)
                failed = True
                break

    print()
    header = (
        "| sink | ledger | workers | landed msg/s | its notify calls msg/s | drain msg/s "
        "| smtp-source -d msg/s | landed / smtp-source | drain / smtp-source "
        "| smtp-source, conn per msg | CPU used by others |"
    )
    print(header)
    print("|" + " --- |" * 11)
    for row in rows:
        landed = median_rate(n, row.landed)
        notify = median_rate(n, row.notify)
        drain = median_rate(n, row.drain)
        kept = median_rate(n, source.get((row.sink, row.workers, True), []))
        fresh = median_rate(n, source.get((row.sink, row.workers, False), []))
        print(
            f"| {row.sink} | {row.engine} | {row.workers} | {landed:,.0f} | {notify:,.0f}"
            f" | {drain:,.0f} | {kept:,.0f} | {percent(landed, kept)} | {percent(drain, kept)}"
            f" | {fresh:,.0f} | {others_share(row.cpu + row.drain_cpu)} |"
        )
    for sink, times in bare.items():
        print(f"\nbare smtplib, one connection, into {sink}: {median_rate(n, times):,.0f} msg/s")
    sizes = {row.message_bytes for row in rows if row.message_bytes}
    if sizes:
        print(f"landed message size (last delivery, with its outstanding list): {max(sizes)} bytes")

    goal = next(
        (r for r in rows if (r.sink, r.engine, r.workers) == ("smtp-sink", "sqlite", 1)), None
    )
    if goal is not None and (key := ("smtp-sink", 1, True)) in source:
        ratio = median_rate(n, goal.landed) / median_rate(n, source[key])
        verdict = "met" if ratio >= 0.25 else "NOT met"
        print(f"goal (SQLite, 1 worker, >= 25% of smtp-source -d): {ratio:.0%}, {verdict}")
    for sink in args.sink_list:
        pg = [r for r in rows if r.sink == sink and r.engine == "postgresql" and r.landed]
        if len(pg) > 1:
            rates = ", ".join(f"{r.workers}w {median_rate(n, r.landed):,.0f}" for r in pg)
            drains = ", ".join(f"{r.workers}w {median_rate(n, r.drain):,.0f}" for r in pg)
            print(f"PostgreSQL into {sink}: end to end {rates} msg/s; drain {drains} msg/s")

    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps(
                {
                    "machine": info,
                    "argv": sys.argv[1:],
                    "messages": n,
                    "rows": [asdict(r) for r in rows],
                    "smtp_source": [
                        {"sink": s, "sessions": w, "keep_open": k, "seconds": v}
                        for (s, w, k), v in source.items()
                    ],
                    "smtplib": bare,
                },
                indent=2,
            )
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
