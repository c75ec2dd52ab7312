"""Alert sinks against a real local HTTP receiver, on both engines: signed webhooks,
retries that never drop a notice, the operations email, the digest."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from landed.alerts import Dispatcher, build_digest, log_alert, sign, verify, webhook_payload
from landed.alerts.dispatcher import CLAIM_BATCH, WEBHOOK_TIMEOUT, Held, Outcome
from landed.alerts.sinks import ALERT_CLASS, DIGEST_CLASS, DIGEST_TOPIC, period_start
from landed.client import Client
from landed.clock import FixedClock
from landed.config import Settings
from landed.store import Database
from landed.store import tables as t
from landed.store.alerts import AlertView, dispatch_key, enqueue_dispatch, find_alerts, open_alert

SECRET = "whsec-test-0123456789"

# --- a webhook receiver -------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests; can fail or be down."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        #: Answer this many requests with ``fail_status`` before answering 200.
        self.failures = 0
        self.fail_status = 500
        self._lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    failing = receiver.failures > 0
                    if failing:
                        receiver.failures -= 1
                status = receiver.fail_status if failing else 200
                reply = b"boom" if failing else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Go down: connections to the port are refused until ``start``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


# --- helpers ---------------------------------------------------------------------------

_cleanup: list[Dispatcher] = []


@pytest.fixture(autouse=True)
def _dispose() -> Iterator[None]:
    yield
    while _cleanup:
        d = _cleanup.pop()
        d.close()
        d.db.dispose()


def dispatcher(settings: Settings, clock: FixedClock, **overrides: object) -> Dispatcher:
    s = settings.model_copy(update=overrides)
    d = Dispatcher(
        Database(s.database_url),
        s,
        clock=clock,
        http=httpx.Client(timeout=WEBHOOK_TIMEOUT, trust_env=False),
        owner="test-dispatcher",
        rng=random.Random(3),
    )
    d._own_http = True  # close the test's client with it
    _cleanup.append(d)
    return d


def make_alert(
    d: Dispatcher,
    *,
    topic: str = "INC-1234",
    to: str = "bob@corp.test",
    reason: str = "bounced",
    cls: str = "incident",
) -> AlertView:
    client = Client(d.settings, clock=d.clock, database=d.db)
    result = client.notify_detailed(
        topic=topic, cls=cls, to=[to], subject="Database down", text="db-3 is not answering.\n"
    )
    with d.db.write() as conn:
        alert_id = open_alert(
            conn,
            result.deliveries[0].delivery_id,
            reason=reason,
            detail="550 5.1.1 no such user",
            now=d.clock.now(),
        )
    return alert(d, alert_id)


def alert(d: Dispatcher, alert_id: int) -> AlertView:
    with d.db.read() as conn:
        return find_alerts(conn, state=None, ids=[alert_id])[0]


def enqueue(d: Dispatcher, a: AlertView, sink: str, event: str = "alert.opened") -> None:
    with d.db.write() as conn:
        enqueue_dispatch(
            conn, a.id, sink=sink, event=event, payload=webhook_payload(a), now=d.clock.now()
        )


def queued(d: Dispatcher) -> list[dict[str, object]]:
    with d.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t.dispatch))]


def sink_events(d: Dispatcher, alert_id: int) -> list[str]:
    return [detail for _, kind, detail in alert(d, alert_id).timeline if kind == "sink"]


def due_now(d: Dispatcher, clock: FixedClock) -> None:
    """Move the clock to when the (single) queued row is due."""
    (row,) = queued(d)
    available_at = row["available_at"]
    assert isinstance(available_at, type(clock.now()))
    clock.set(max(clock.now(), available_at))


def _docs_recipe() -> Callable[..., bool]:
    """``verify_landed`` from the Python snippet in docs/alerts.md, run as it is written."""
    doc = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text("utf-8")
    snippet = re.search(r"```python\n(.*?)```", doc, re.S)
    assert snippet is not None
    namespace: dict[str, Any] = {}
    exec(snippet.group(1), namespace)
    function: Callable[..., bool] = namespace["verify_landed"]
    return function


verify_landed = _docs_recipe()


def recipe_verify(secret: str, header: str, body: bytes) -> bool:
    """The documented recipe, without its clock check (test clocks are fixed in 2026)."""
    return verify_landed(secret, header, body, tolerance=10**10)


# --- signing (pure) -----------------------------------------------------------------------


def test_sign_and_verify() -> None:
    body = b'{"a":1}'
    header = sign(b"k", "1767225600", body)
    assert header.startswith("t=1767225600,v1=")
    assert verify(b"k", header, body, now=1767225600)
    assert verify(b"k", header, body, now=1767225600 + 299)
    assert not verify(b"k", header, body, now=1767225600 + 301)  # too old: a replay
    assert verify(b"k", header, body, tolerance=None)
    assert not verify(b"other", header, body, now=1767225600)
    assert not verify(b"k", header, b'{"a":2}', now=1767225600)
    assert not verify(b"k", "t=1767225600", body, now=1767225600)
    assert not verify(b"k", "garbage", body, now=1767225600)
    # Key rotation: several v1 entries, any one may match.
    rotated = f"t=1767225600,v1={'0' * 64},{header.split(',')[1]}"
    assert verify(b"k", rotated, body, now=1767225600)
    # The receiver's recipe in docs/alerts.md, with its own clock check.
    now = str(int(time.time()))
    fresh = sign(b"k", now, body)
    assert verify_landed("k", fresh, body)
    assert not verify_landed("k", fresh, body + b" ")
    assert not verify_landed("other", fresh, body)
    assert not verify_landed("k", sign(b"k", str(int(now) - 301), body), body)
    assert verify_landed("k", f"t={now},v1={'0' * 64},{fresh.split(',')[1]}", body)
    with pytest.raises(ValueError):
        sign(b"k", "1.5", body)


# --- webhook ---------------------------------------------------------------------------


def test_webhook_is_signed_and_delivered_once(
    settings: Settings, clock: FixedClock, receiver: Receiver
) -> None:
    d = dispatcher(settings, clock, alert_webhook_url=receiver.url(), alert_webhook_secret=SECRET)
    a = make_alert(d)
    enqueue(d, a, "webhook")
    assert d.tick() == 1
    assert d.tick() == 0
    (req,) = receiver.requests
    assert req.path == "/hook"
    assert req.headers["content-type"] == "application/json"
    key = dispatch_key(a.id, "alert.opened", "webhook")
    assert req.headers["idempotency-key"] == key
    assert req.headers["x-landed-event"] == "alert.opened"
    assert recipe_verify(SECRET, req.headers["x-landed-signature"], req.body)
    assert verify(
        SECRET.encode(), req.headers["x-landed-signature"], req.body, now=clock.now().timestamp()
    )
    body = json.loads(req.body)
    assert body["type"] == "landed.alert" and body["version"] == 1
    assert body["event"] == "alert.opened" and body["idempotency_key"] == key
    assert body["alert"]["id"] == a.id
    assert body["alert"]["topic"] == "INC-1234"
    assert body["alert"]["recipient"] == "bob@corp.test"
    assert body["alert"]["reason"] == "bounced"
    assert queued(d) == []
    assert sink_events(d, a.id) == [f"webhook {receiver.url()}: delivered (HTTP 200)"]


def test_failing_webhook_is_retried_with_backoff_and_the_same_key(
    settings: Settings, clock: FixedClock, receiver: Receiver
) -> None:
    d = dispatcher(settings, clock, alert_webhook_url=receiver.url(), alert_webhook_secret=SECRET)
    a = make_alert(d)
    enqueue(d, a, "webhook")
    receiver.failures = 2
    start = clock.now()

    assert d.tick() == 1
    (row,) = queued(d)
    assert row["attempts"] == 1
    assert row["last_error"] == "HTTP 500: boom"
    first_retry = row["available_at"]
    assert isinstance(first_retry, type(start))
    assert timedelta(seconds=15) <= first_retry - start <= timedelta(seconds=30)
    assert d.tick() == 0  # not due yet: nothing sent
    assert len(receiver.requests) == 1

    due_now(d, clock)
    assert d.tick() == 1
    (row,) = queued(d)
    assert row["attempts"] == 2
    second_retry = row["available_at"]
    assert isinstance(second_retry, type(start))
    assert timedelta(seconds=30) <= second_retry - clock.now() <= timedelta(seconds=60)

    due_now(d, clock)
    assert d.tick() == 1
    assert queued(d) == []
    clock.advance(hours=2)
    assert d.tick() == 0

    assert len(receiver.requests) == 3
    keys = {r.headers["idempotency-key"] for r in receiver.requests}
    assert keys == {dispatch_key(a.id, "alert.opened", "webhook")}
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    assert [r.headers["x-landed-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    for r in receiver.requests:
        assert recipe_verify(SECRET, r.headers["x-landed-signature"], r.body)

    events = sink_events(d, a.id)
    assert len(events) == 3
    assert events[0].startswith(f"webhook {receiver.url()}: failed (HTTP 500); attempt 1, next at")
    assert events[1].startswith(f"webhook {receiver.url()}: failed (HTTP 500); attempt 2, next at")
    assert events[2] == f"webhook {receiver.url()}: delivered (HTTP 200)"


def test_a_webhook_that_is_down_loses_nothing(
    settings: Settings, clock: FixedClock, receiver: Receiver
) -> None:
    d = dispatcher(settings, clock, alert_webhook_url=receiver.url(), alert_webhook_secret=SECRET)
    a = make_alert(d)
    receiver.stop()
    enqueue(d, a, "webhook")
    assert d.tick() == 1
    (row,) = queued(d)
    assert row["attempts"] == 1
    assert "ConnectError" in str(row["last_error"])

    due_now(d, clock)
    assert d.tick() == 1  # still down
    receiver.start()  # back, on the same port
    due_now(d, clock)
    assert d.tick() == 1
    assert queued(d) == []
    assert d.tick() == 0
    assert len(receiver.requests) == 1  # delivered exactly once
    events = sink_events(d, a.id)
    assert [e.split(": ", 1)[1].split(" ")[0] for e in events] == ["failed", "failed", "delivered"]
    assert "ConnectError" in events[0]


def test_retries_are_capped_at_an_hour_and_never_give_up(
    settings: Settings, clock: FixedClock, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    d = dispatcher(settings, clock, alert_webhook_url=receiver.url(), alert_webhook_secret=SECRET)
    a = make_alert(d)
    enqueue(d, a, "webhook")
    receiver.failures = 10_000
    start = clock.now()
    delays = []
    caplog.set_level(logging.INFO, logger="landed.alerts")
    while clock.now() - start < timedelta(hours=30):
        before = clock.now()
        assert d.tick() == 1
        due_now(d, clock)
        delays.append((clock.now() - before).total_seconds())
    assert max(delays) <= 3600
    assert delays[-1] >= 1800  # at the cap (equal jitter: half to all of it)
    (row,) = queued(d)  # still there after 30 hours
    assert row["attempts"] == len(delays)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and "still undelivered after 1d" in warnings[0].getMessage()

    receiver.failures = 0
    assert d.tick() == 1
    assert queued(d) == []
    assert sink_events(d, a.id)[-1].endswith("delivered (HTTP 200)")


def test_an_unconfigured_sink_keeps_its_rows(settings: Settings, clock: FixedClock) -> None:
    d = dispatcher(settings, clock)
    a = make_alert(d)
    enqueue(d, a, "webhook")
    enqueue(d, a, "email")
    assert d.tick() == 2
    rows = sorted(queued(d), key=lambda r: str(r["sink"]))
    assert [(r["sink"], r["attempts"], r["last_error"]) for r in rows] == [
        ("email", 1, "alert_email_to is not set"),
        ("webhook", 1, "alert_webhook_url is not set"),
    ]

    d2 = dispatcher(settings, clock, alert_webhook_url="http://127.0.0.1:9/x")
    clock.advance(hours=1)
    assert d2.tick() == 2
    by_sink = {str(r["sink"]): r for r in queued(d2)}
    assert str(by_sink["webhook"]["last_error"]).startswith("alert_webhook_secret is not set")


def test_an_escalation_steps_own_webhook_url(
    settings: Settings, clock: FixedClock, receiver: Receiver
) -> None:
    d = dispatcher(settings, clock, alert_webhook_secret=SECRET)
    a = make_alert(d)
    # "webhook:" + "http://127.0.0.1:NNNNN/s" fits the 32 characters of dispatch.sink.
    enqueue(d, a, f"webhook:{receiver.url('/s')}", event="alert.escalated")
    assert d.tick() == 1
    (req,) = receiver.requests
    assert req.path == "/s"
    assert req.headers["x-landed-event"] == "alert.escalated"
    assert verify(SECRET.encode(), req.headers["x-landed-signature"], req.body, tolerance=None)
    assert queued(d) == []


def test_a_lease_keeps_other_dispatchers_off_and_fences_late_failures(
    settings: Settings, clock: FixedClock, receiver: Receiver
) -> None:
    kw = {"alert_webhook_url": receiver.url(), "alert_webhook_secret": SECRET}
    d1 = dispatcher(settings, clock, **kw)
    d2 = dispatcher(settings, clock, **kw)
    a = make_alert(d1)
    enqueue(d1, a, "webhook")
    (held,) = d1._claim(10)
    assert d2.tick() == 0  # held by d1
    clock.advance(seconds=settings.lease_seconds + CLAIM_BATCH * WEBHOOK_TIMEOUT + 1)
    assert d2.tick() == 1  # d1's lease ran out: d2 delivers
    assert queued(d1) == []
    # d1 comes back late with a failure: the row is not resurrected.
    d1._settle(held, Outcome("webhook: failed (late)", error="late"))
    assert queued(d1) == []
    assert len(receiver.requests) == 1


def test_concurrent_dispatchers_deliver_each_notice_once(
    settings: Settings, clock: FixedClock, receiver: Receiver
) -> None:
    kw = {"alert_webhook_url": receiver.url(), "alert_webhook_secret": SECRET}
    workers = [dispatcher(settings, clock, **kw) for _ in range(3)]
    alerts = [make_alert(workers[0], to=f"user{i}@corp.test") for i in range(12)]
    for a in alerts:
        enqueue(workers[0], a, "webhook")
    counts: list[int] = []
    threads = [threading.Thread(target=lambda w=w: counts.append(w.tick())) for w in workers]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert sum(counts) == 12
    assert queued(workers[0]) == []
    keys = sorted(r.headers["idempotency-key"] for r in receiver.requests)
    assert keys == sorted(dispatch_key(a.id, "alert.opened", "webhook") for a in alerts)


def test_run_loop_delivers_and_stops(
    settings: Settings, clock: FixedClock, receiver: Receiver
) -> None:
    d = dispatcher(settings, clock, alert_webhook_url=receiver.url(), alert_webhook_secret=SECRET)
    d.poll_seconds = 0.05
    a = make_alert(d)
    stop = threading.Event()
    thread = threading.Thread(target=d.run, args=(stop,))
    thread.start()
    try:
        enqueue(d, a, "webhook")
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert len(receiver.requests) == 1


def test_stopping_gives_back_the_rows_not_yet_attempted(
    settings: Settings, clock: FixedClock, receiver: Receiver
) -> None:
    d = dispatcher(settings, clock, alert_webhook_url=receiver.url(), alert_webhook_secret=SECRET)
    for i in range(3):
        enqueue(d, make_alert(d, to=f"user{i}@corp.test"), "webhook")
    stop = threading.Event()
    attempt = d._attempt

    def attempt_then_stop(row: Held) -> None:
        attempt(row)
        stop.set()

    d._attempt = attempt_then_stop  # type: ignore[method-assign]
    assert d.tick(stop=stop) == 1
    rows = queued(d)
    assert len(rows) == 2
    assert all(r["available_at"] == clock.now() and r["attempts"] == 0 for r in rows)
    assert len(receiver.requests) == 1


# --- email -----------------------------------------------------------------------------


def test_email_sink_records_a_tracked_notification(settings: Settings, clock: FixedClock) -> None:
    d = dispatcher(settings, clock, alert_email_to="Ops <ops@corp.test>")
    a = make_alert(d)
    enqueue(d, a, "email")
    assert d.tick() == 1
    assert queued(d) == []

    client = Client(d.settings, clock=clock, database=d.db)
    ops = [v for v in client.status(topic="INC-1234") if v.recipient == "ops@corp.test"]
    (mail,) = ops
    assert mail.cls == ALERT_CLASS
    assert mail.subject == "[landed] not proven: INC-1234 to bob@corp.test (bounced)"
    assert mail.queued  # in the outbox: the sender worker carries it
    (event,) = sink_events(d, a.id)
    assert event == f"email Ops <ops@corp.test>: recorded as delivery {mail.delivery_id}"
    with d.db.read() as conn:
        text = conn.execute(
            select(t.notification.c.text).where(t.notification.c.subject == mail.subject)
        ).scalar_one()
    assert "Reason:     bounced (550 5.1.1 no such user)" in text
    assert "Recipient:  bob@corp.test" in text
    assert "Evidence (oldest first)" in text
    assert "opened: bounced: 550 5.1.1 no such user" in text

    # A crash after recording but before removing the row: the retry records nothing new.
    enqueue(d, a, "email")
    assert d.tick() == 1
    assert len([v for v in client.status(topic="INC-1234") if v.recipient == "ops@corp.test"]) == 1

    # A resolution is its own notice.
    enqueue(d, a, "email", event="alert.resolved")
    assert d.tick() == 1
    subjects = sorted(v.subject for v in client.status(recipient="ops@corp.test"))
    assert subjects == [
        "[landed] not proven: INC-1234 to bob@corp.test (bounced)",
        "[landed] resolved: INC-1234 to bob@corp.test (bounced)",
    ]


def test_email_about_an_alert_email_is_not_sent_again(
    settings: Settings, clock: FixedClock
) -> None:
    d = dispatcher(settings, clock, alert_email_to="ops@corp.test")
    a = make_alert(d, to="ops@corp.test", cls=ALERT_CLASS)
    enqueue(d, a, "email")
    assert d.tick() == 1
    assert queued(d) == []
    client = Client(d.settings, clock=clock, database=d.db)
    assert len(client.status(recipient="ops@corp.test")) == 1  # only the original
    (event,) = sink_events(d, a.id)
    assert "loop guard" in event


# --- digest ----------------------------------------------------------------------------


def test_digest_is_recorded_once_per_period(settings: Settings, clock: FixedClock) -> None:
    d = dispatcher(settings, clock, alert_email_to="ops@corp.test", alert_digest_every="1d")
    assert d.digest_if_due() is None  # nothing open: no digest
    first = make_alert(d, topic="INC-1")
    clock.advance(hours=3)
    make_alert(d, topic="INC-2", to="carol@corp.test", reason="expired")
    d._digest_checked_at = None  # skip the once-a-minute throttle
    notification_id = d.digest_if_due()
    assert notification_id is not None
    assert d.digest_if_due() is None
    # Another dispatcher, or a restart, in the same period: nothing more.
    other = dispatcher(settings, clock, alert_email_to="ops@corp.test", alert_digest_every="1d")
    assert other.digest_if_due() is None

    client = Client(d.settings, clock=clock, database=d.db)
    (digest,) = client.status(topic=DIGEST_TOPIC)
    assert digest.cls == DIGEST_CLASS
    assert digest.recipient == "ops@corp.test"
    assert digest.subject == "[landed] digest: 2 open alerts, oldest 3h 0m"
    with d.db.read() as conn:
        text = conn.execute(
            select(t.notification.c.text).where(t.notification.c.id == notification_id)
        ).scalar_one()
    assert text.index("INC-1") < text.index("INC-2")  # oldest first
    assert f"#{first.id}" in text

    clock.set(period_start(clock.now(), timedelta(days=1)) + timedelta(days=1, minutes=5))
    assert other.digest_if_due() is not None
    assert d.digest_if_due() is None
    assert len(client.status(topic=DIGEST_TOPIC)) == 2


def test_build_digest_lists_oldest_first_with_age(settings: Settings, clock: FixedClock) -> None:
    d = dispatcher(settings, clock)
    old = make_alert(d, topic="INC-OLD")
    clock.advance(days=2, hours=5)
    new = make_alert(d, topic="INC-NEW", reason="expired")
    clock.advance(minutes=10)
    subject, text = build_digest([new, old], clock.now())
    assert subject == "[landed] digest: 2 open alerts, oldest 2d 5h"
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("age"))
    assert lines[header].split() == ["age", "reason", "recipient", "topic", "steps", "alert"]
    assert lines[header + 1].split()[:3] == ["2d", "5h", "bounced"]
    assert lines[header + 2].split()[:2] == ["10m", "expired"]
    assert build_digest([], clock.now())[0] == "[landed] digest: no open alerts"


# --- the log line ----------------------------------------------------------------------


def test_log_alert_writes_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="landed.alerts")
    log_alert(
        "alert.opened",
        {"id": 7, "topic": "INC-1", "recipient": "bob@corp.test", "timeline": [{"x": 1}]},
    )
    (record,) = caplog.records
    assert record.name == "landed.alerts" and record.levelno == logging.WARNING
    line = record.getMessage()
    assert "\n" not in line
    assert json.loads(line) == {
        "kind": "landed.alert",
        "event": "alert.opened",
        "id": 7,
        "topic": "INC-1",
        "recipient": "bob@corp.test",
    }
