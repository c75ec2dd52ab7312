"""Worker processes: SIGKILL at random points loses nothing; concurrent workers never
send the same delivery twice. Real `landed worker` processes, real relay, both engines."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from landed.client import Client
from landed.config import Settings
from landed.store import Database
from landed.store.queries import outbox_depth
from tests.conftest import TEST_KEY
from tests.relay import TestRelay

pytestmark = pytest.mark.slow


@pytest.fixture
def relay() -> Iterator[TestRelay]:
    with TestRelay(dsn=True) as server:
        yield server


def worker_env(db_url: str, relay: TestRelay, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDED_")}
    env.update(
        {
            "LANDED_CONFIG": str(tmp_path / "absent.toml"),
            "LANDED_DATABASE_URL": db_url,
            "LANDED_RELAY_URL": relay.url(),
            "LANDED_FROM": "Alerts <alerts@corp.test>",
            "LANDED_BOUNCE_DOMAIN": "bounce.test",
            "LANDED_SIGNING_KEYS": f"k1:{TEST_KEY}",
            "LANDED_WORKER_POLL_SECONDS": "0.05",
            **extra,
        }
    )
    return env


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "landed", "--log-level", "warning", "worker", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for_progress(relay: TestRelay, messages: int, timeout: float = 30) -> None:
    target = len(relay.received) + messages
    deadline = time.monotonic() + timeout
    while len(relay.received) < target and time.monotonic() < deadline:
        time.sleep(0.002)


def queue(settings: Settings, count: int) -> list[str]:
    with Client(settings) as client:
        ids: list[str] = []
        for i in range(0, count, 10):
            ids += client.notify(
                topic=f"INC-{i}",
                cls="incident",
                to=[f"user{j}@corp.test" for j in range(i, min(i + 10, count))],
                subject=f"Notification {i}",
                text="Something happened.\n",
            )
        return ids


def depth(db_url: str) -> int:
    db = Database(db_url)
    try:
        with db.read() as conn:
            return outbox_depth(conn)
    finally:
        db.dispose()


def received_by_token(relay: TestRelay) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = defaultdict(list)
    for got in relay.received:
        seen[str(got.message["X-Landed-Token"])].append(str(got.message["Message-ID"]))
    return seen


def test_sigkill_at_random_points_loses_nothing(
    db_url: str, settings: Settings, relay: TestRelay, tmp_path: Path
) -> None:
    count = 80
    ids = queue(settings, count)
    relay.delay = 0.01
    env = worker_env(db_url, relay, tmp_path, LANDED_LEASE_SECONDS="1.5", LANDED_WORKER_BATCH="7")
    rng = random.Random(int(os.environ.get("LANDED_CRASH_SEED", "20261128")))
    kills = 0
    for _ in range(6):
        if depth(db_url) == 0:
            break
        proc = start_worker(env)
        # Kill mid-batch: after the worker has sent a random few messages, so some
        # are sent but not yet recorded, and others are claimed but not sent.
        wait_for_progress(relay, rng.randint(1, 12))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        kills += 1
    assert kills >= 2, "the test must kill workers while work remains"
    # Rows the killed workers held come back when their leases run out.
    time.sleep(1.6)
    finisher = start_worker(env, "--once")
    _, err = finisher.communicate(timeout=120)
    assert finisher.returncode == 0, err.decode()
    assert depth(db_url) == 0

    tokens = received_by_token(relay)
    with Client(settings) as client:
        views = {v.token: v for v in client.status(limit=10 * count)}
    assert {v.delivery_id for v in views.values()} == set(ids)
    lost = [t for t in views if t not in tokens]
    assert lost == [], "every delivery is sent at least once"
    for token, message_ids in tokens.items():
        assert set(message_ids) == {views[token].message_id}, "a resend keeps its Message-ID"
    assert all(v.level == "submitted" for v in views.values())
    duplicates = sum(len(m) - 1 for m in tokens.values())
    print(
        f"\n{kills} kills, {len(relay.received)} messages, {count} deliveries, {duplicates} resent"
    )
    assert duplicates >= 1, "some kills must fall between a send and its record"


@pytest.mark.parametrize("workers", [3])
def test_concurrent_workers_never_send_the_same_delivery_twice(
    db_url: str, settings: Settings, relay: TestRelay, tmp_path: Path, workers: int
) -> None:
    count = 300
    queue(settings, count)
    relay.delay = 0.002
    env = worker_env(db_url, relay, tmp_path, LANDED_WORKER_BATCH="10")
    procs = [start_worker(env) for _ in range(workers)]
    try:
        deadline = time.monotonic() + 120
        while depth(db_url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert depth(db_url) == 0
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=30)
    assert [p.returncode for p in procs] == [0] * workers, "SIGTERM stops workers cleanly"
    counts = Counter(str(got.message["X-Landed-Token"]) for got in relay.received)
    assert len(counts) == count
    assert max(counts.values()) == 1, "no delivery was sent twice"
    assert relay.connections >= 2, "the work was shared between workers"
