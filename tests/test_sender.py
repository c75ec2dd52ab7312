"""The sender worker end to end: ledger (both engines) -> SMTPRelay -> a real aiosmtpd relay."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

import landed.sender
from landed.client import Client
from landed.clock import FixedClock
from landed.config import RelayURL, Settings
from landed.domain import Level, Outcome
from landed.sender import Backoff, Sender
from landed.store import Database
from landed.store import tables as t
from landed.transport.smtp import SMTPRelay
from tests.relay import TestRelay


@pytest.fixture
def relay() -> Iterator[TestRelay]:
    with TestRelay(dsn=True) as server:
        yield server


_open: list[Sender] = []


@pytest.fixture(autouse=True)
def _close_transports() -> Iterator[None]:
    yield
    while _open:
        sender = _open.pop()
        sender.transport.close()
        sender.db.dispose()


def make(
    settings: Settings, relay: TestRelay, clock: FixedClock, **overrides: object
) -> tuple[Client, Sender]:
    s = settings.model_copy(update={"relay_url": relay.url(), **overrides})
    db = Database(s.database_url)
    client = Client(s, clock=clock, database=db)
    transport = SMTPRelay(RelayURL(s.relay_url or ""), dsn_notify=s.dsn_notify)
    sender = Sender(db, s, transport, clock=clock, owner="test-worker", rng=random.Random(7))
    _open.append(sender)
    return client, sender


def test_notify_then_send_records_submitted_with_the_relays_reply(
    settings: Settings, relay: TestRelay, clock: FixedClock
) -> None:
    client, sender = make(settings, relay, clock)
    ids = client.notify(
        topic="INC-1234",
        cls="incident",
        to=["alice@corp.test", "Bob <bob@corp.test>"],
        subject="Database down",
        text="db-3 is not answering.\n",
    )
    assert sender.run_once() == 2
    sender.transport.close()
    got = {r.rcpt_tos[0]: r for r in relay.received}
    assert set(got) == {"alice@corp.test", "bob@corp.test"}
    for view in client.status(topic="INC-1234"):
        assert view.delivery_id in ids
        assert view.level == "submitted" and view.outcome is None
        assert not view.queued
        (evidence,) = view.evidence
        assert evidence.source == "smtp-reply" and evidence.level == "submitted"
        assert evidence.status == "2.0.0"
        assert "queued as" in (evidence.detail or "")
        received = got[view.recipient]
        assert received.mail_from == f"bounces+{view.token}@bounce.test"
        assert received.message["Message-ID"] == view.message_id
        assert received.message["X-Landed-Token"] == view.token
        assert f"ENVID={view.token}" in received.mail_options
        assert "RET=HDRS" in received.mail_options
        assert "NOTIFY=SUCCESS,FAILURE,DELAY" in received.rcpt_options[0]
        assert f"ORCPT=rfc822;{view.recipient}" in received.rcpt_options[0]
        assert b"db-3 is not answering." in received.data
        assert b"#1 for you" in received.data


def test_second_email_lists_the_first_as_outstanding(
    settings: Settings, relay: TestRelay, clock: FixedClock
) -> None:
    client, sender = make(settings, relay, clock)
    client.notify(topic="INC-1", cls="incident", to=["bob@corp.test"], subject="First", text="1")
    client.notify(topic="INC-2", cls="incident", to=["bob@corp.test"], subject="Second", text="2")
    sender.run_once()
    second = next(r for r in relay.received if b"Second" in r.data)
    text = second.message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "#2 for you" in text
    assert "Still unconfirmed for you" in text and "#1  INC-1  First" in text


def test_5xx_at_rcpt_is_bounced_with_the_full_reply(
    settings: Settings, relay: TestRelay, clock: FixedClock
) -> None:
    relay.script(
        at="rcpt",
        rcpt="nobody@corp.test",
        reply="550 5.1.1 <nobody@corp.test>: Recipient address rejected: User unknown",
    )
    client, sender = make(settings, relay, clock)
    client.notify(
        topic="INC-1",
        cls="incident",
        to=["nobody@corp.test", "alice@corp.test"],
        subject="s",
        text="t",
    )
    sender.run_once()
    views = {v.recipient: v for v in client.status(topic="INC-1")}
    bounced = views["nobody@corp.test"]
    assert bounced.outcome == "bounced" and bounced.level == "queued" and not bounced.queued
    (evidence,) = bounced.evidence
    assert evidence.status == "5.1.1"
    assert "User unknown" in (evidence.detail or "") and "550" in (evidence.detail or "")
    assert views["alice@corp.test"].level == "submitted", "the connection is reused after a refusal"
    assert [r.rcpt_tos for r in relay.received] == [["alice@corp.test"]]


@pytest.mark.parametrize(
    "script",
    [
        {"at": "rcpt", "reply": "451 4.7.1 Greylisted, try again later"},
        {"at": "mail", "reply": "421 4.3.2 Service shutting down"},
        {"at": "data", "action": "drop"},
    ],
    ids=["451", "421", "dropped-mid-data"],
)
def test_temporary_failures_retry_with_backoff_then_succeed_same_message_id(
    settings: Settings, relay: TestRelay, clock: FixedClock, script: dict[str, str]
) -> None:
    relay.script(times=1, **script)  # type: ignore[arg-type]
    client, sender = make(settings, relay, clock)
    (delivery_id,) = client.notify(
        topic="INC-1", cls="incident", to=["carol@corp.test"], subject="s", text="t"
    )
    assert sender.run_once() == 1
    (view,) = client.status(delivery_id)
    assert view.outcome == "deferred" and view.queued and view.attempts == 1
    assert view.next_attempt_at is not None
    wait = (view.next_attempt_at - clock.now()).total_seconds()
    assert 30 <= wait <= 60, "first retry after base/2..base seconds"
    assert sender.run_once() == 0, "not due yet"
    clock.advance(wait)
    assert sender.run_once() == 1
    (view,) = client.status(delivery_id)
    assert view.level == "submitted" and view.outcome is None and not view.queued
    assert [e.outcome or e.level for e in view.evidence] == ["deferred", "submitted"]
    ids = {r.message["Message-ID"] for r in relay.received}
    assert ids == {view.message_id}


def test_temporary_failures_expire_after_the_lifetime(
    settings: Settings, relay: TestRelay, clock: FixedClock
) -> None:
    relay.script(at="rcpt", reply="452 4.2.2 Mailbox full")
    client, sender = make(settings, relay, clock, retry_lifetime_seconds=3600)
    (delivery_id,) = client.notify(
        topic="INC-1", cls="incident", to=["full@corp.test"], subject="s", text="t"
    )
    attempts = 0
    for _ in range(50):
        attempts += sender.run_once()
        (view,) = client.status(delivery_id)
        if not view.queued:
            break
        assert view.next_attempt_at is not None
        clock.set(view.next_attempt_at)
    assert view.outcome == "expired" and not view.queued
    assert 3 <= attempts <= 10
    assert view.evidence[-1].source == "worker" and "gave up" in (view.evidence[-1].detail or "")
    assert view.evidence[-2].status == "4.2.2"


def test_connection_refused_is_deferred(
    settings: Settings, clock: FixedClock, relay: TestRelay
) -> None:
    client, sender = make(settings, relay, clock)
    relay.stop()
    (delivery_id,) = client.notify(topic="T", cls="c", to=["a@corp.test"], subject="s", text="t")
    sender.run_once()
    (view,) = client.status(delivery_id)
    assert view.outcome == "deferred" and view.queued


def test_relay_without_dsn_gets_no_dsn_parameters(settings: Settings, clock: FixedClock) -> None:
    with TestRelay(dsn=False) as relay:
        client, sender = make(settings, relay, clock)
        (delivery_id,) = client.notify(
            topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
        )
        sender.run_once()
        (got,) = relay.received
    assert got.mail_options == [] and got.rcpt_options == [[]]
    (view,) = client.status(delivery_id)
    assert view.level == "submitted"
    assert "no DSN" in (view.evidence[0].detail or "")


def test_a_resend_is_byte_identical(
    settings: Settings, relay: TestRelay, clock: FixedClock
) -> None:
    client, sender = make(settings, relay, clock)
    (delivery_id,) = client.notify(
        topic="INC-9",
        cls="c",
        to=["Zoë <zoe@corp.test>"],
        subject="Ünïcode",
        text="t",
        html="<p>h</p>",
    )
    with sender.db.read() as conn:
        from landed.store.outbox import load_jobs

        (job,) = load_jobs(conn, [delivery_id])
    first, envelope = sender.build(job)
    clock.advance(3600)
    second, _ = sender.build(job)
    assert first == second
    assert envelope.envid == job.token


def _outbox(sender: Sender) -> list[tuple[str, str | None]]:
    with sender.db.read() as conn:
        rows = conn.execute(select(t.outbox.c.delivery_id, t.outbox.c.lease_owner)).all()
    return [(r.delivery_id, r.lease_owner) for r in rows]


def _addresses(sender: Sender, rows: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """(recipient address, lease owner) of outbox rows."""
    with sender.db.read() as conn:
        address = dict(
            conn.execute(
                select(t.delivery.c.id, t.recipient.c.address).join(
                    t.recipient, t.recipient.c.id == t.delivery.c.recipient_id
                )
            )
            .tuples()
            .all()
        )
    return [(address[delivery_id], owner) for delivery_id, owner in rows]


def test_run_sends_batch_after_batch_with_the_ledger_work_beside_it(
    settings: Settings, relay: TestRelay, clock: FixedClock
) -> None:
    # Batches of 3: the ledger thread claims the next batch while one is sent,
    # and commits each batch's evidence while the next goes out.
    client, sender = make(settings, relay, clock, worker_batch=3, worker_poll_seconds=0.01)
    to = [f"user{i}@corp.test" for i in range(10)]
    client.notify(topic="INC-9", cls="incident", to=to, subject="s", text="t")
    stop = threading.Event()
    worker = threading.Thread(target=sender.run, args=(stop,))
    worker.start()
    deadline = time.monotonic() + 20
    while _outbox(sender) and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    worker.join(10)
    assert not worker.is_alive()
    assert _outbox(sender) == [], "every row settled"
    assert sorted(r.rcpt_tos[0] for r in relay.received) == sorted(to), "each sent once"
    views = client.status(topic="INC-9")
    assert {v.level for v in views} == {"submitted"}
    assert all(len(v.evidence) == 1 for v in views)


def test_stopping_run_gives_back_the_batch_claimed_ahead(
    settings: Settings, relay: TestRelay, clock: FixedClock
) -> None:
    client, sender = make(settings, relay, clock, worker_batch=2, worker_poll_seconds=0.01)
    to = [f"user{i}@corp.test" for i in range(6)]
    client.notify(topic="INC-9", cls="incident", to=to, subject="s", text="t")
    stop = threading.Event()
    sender.on_result = lambda _id, _result: stop.set()  # stop after the first send
    sender.run(stop)
    assert len(relay.received) == 1
    rows = _outbox(sender)
    assert len(rows) == 5, "the one sent is settled"
    # The other row of the batch being sent, and the batch claimed ahead of it,
    # are given back at once (no waiting for their leases to run out).
    assert all(owner is None for _, owner in rows)
    sender.on_result = None
    assert sender.run_once() == 5
    assert sorted(r.rcpt_tos[0] for r in relay.received) == sorted(to), "none twice"


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(base=60, cap=3600)
    rng = random.Random(1)
    delays = [backoff.delay(n, rng) for n in range(1, 12)]
    assert 30 <= delays[0] <= 60
    assert 60 <= delays[1] <= 120
    assert all(1800 <= d <= 3600 for d in delays[7:])


def test_evidence_levels_are_the_ladder() -> None:
    assert [lvl.value for lvl in Level] == [
        "queued",
        "submitted",
        "accepted",
        "delivered",
        "seen",
        "acknowledged",
    ]
    assert [o.value for o in Outcome] == [
        "deferred",
        "bounced",
        "complained",
        "suppressed",
        "rejected",
        "expired",
    ]


def test_a_delivery_that_cannot_be_built_is_rejected_and_the_rest_are_sent(
    settings: Settings, relay: TestRelay, clock: FixedClock
) -> None:
    """Stored data that no longer builds (here: a To header damaged in the ledger)
    is settled ``rejected`` with the reason; the deliveries before and after it in
    the same run are sent as usual."""
    client, sender = make(settings, relay, clock)
    ids = client.notify(
        topic="INC-9",
        cls="incident",
        to=["a@corp.test", "b@corp.test", "c@corp.test"],
        subject="Disk full",
        text="db-3\n",
    )
    with sender.db.write() as conn:
        conn.execute(
            t.delivery.update().where(t.delivery.c.id == ids[1]).values(to_header="not an address")
        )
    assert sender.run_once() == 3
    sender.transport.close()
    assert sorted(r.rcpt_tos[0] for r in relay.received) == ["a@corp.test", "c@corp.test"]
    views = {v.delivery_id: v for v in client.status(topic="INC-9")}
    assert [views[i].level for i in ids] == ["submitted", "queued", "submitted"]
    rejected = views[ids[1]]
    assert rejected.outcome == "rejected" and not rejected.queued
    (evidence,) = rejected.evidence
    assert evidence.source == "worker"
    assert (evidence.detail or "").startswith("cannot send: ")


def test_a_failed_commit_stops_run_and_gives_back_what_was_claimed_ahead(
    settings: Settings, relay: TestRelay, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch's commit fails while the second is sent. run() raises
    the failure once the second is sent, and gives back the third batch, which
    it had claimed ahead; the two sent batches stay leased."""
    client, sender = make(settings, relay, clock, worker_batch=2, worker_poll_seconds=0.01)
    to = [f"user{i}@corp.test" for i in range(6)]
    client.notify(topic="INC-9", cls="incident", to=to, subject="s", text="t")
    real_settle = landed.sender.settle
    calls = 0

    def first_fails(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        real_settle(*args, **kwargs)

    monkeypatch.setattr("landed.sender.settle", first_fails)
    with pytest.raises(RuntimeError, match="disk full"):
        sender.run(threading.Event())
    sent = {r.rcpt_tos[0] for r in relay.received}
    assert len(sent) == 4, "two batches sent"
    rows = _addresses(sender, _outbox(sender))
    # Sent but not recorded: leased, and sent again when the lease runs out (with
    # the same Message-ID). Claimed ahead but not sent: free at once.
    assert len(rows) == 6
    assert {address for address, owner in rows if owner is not None} == sent
