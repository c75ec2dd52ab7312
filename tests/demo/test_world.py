"""The demo's sandbox world, in process, on a FixedClock: every kind of recipient
reaches the right level and outcome and the right alerts open, with every report
going through landed's real inbound SMTP listener and every acknowledgement
through the real HTTP endpoint.

Runs on SQLite and PostgreSQL (``db_url``). Simulated time moves one second a
step; nothing sleeps for a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from landed.client import Client
from landed.clock import FixedClock
from landed.config import Settings
from landed.demo import world
from landed.demo.sandbox import Sandbox
from landed.demo.session import demo_settings
from landed.demo.world import Timing
from landed.inbound.smtpd import BounceHandler, InboundServer
from landed.reconcile import Reconciler
from landed.sender import Sender
from landed.service import HttpServer
from landed.store import Database
from landed.store import tables as t
from landed.store.alerts import AlertView, find_alerts
from landed.store.queries import DeliveryView
from landed.transport.smtp import SMTPRelay
from tests.dovecot import free_port


@dataclass
class World:
    clock: FixedClock
    settings: Settings
    db: Database
    sandbox: Sandbox
    handler: BounceHandler
    sender: Sender
    reconciler: Reconciler
    client: Client
    http_port: int

    def step(self, seconds: int = 1) -> None:
        """Move time on and let every part do what is due."""
        for _ in range(seconds):
            self.clock.advance(1)
            self.sandbox.pump()
            # The listener reads what it stored on its one ingest thread: wait
            # until everything queued there so far has been read.
            self.handler.executor.submit(lambda: None).result(timeout=30)
            self.sender.run_once()
            self.reconciler.tick()

    def notify(self, send: world.Send) -> None:
        self.client.notify(
            topic=send.topic, cls=send.cls, to=send.to, subject=send.subject, text=send.text
        )

    def deliveries(self, address: str) -> list[DeliveryView]:
        return sorted(self.client.status(recipient=address), key=lambda d: d.seq)

    def alerts(self) -> list[AlertView]:
        with self.db.read() as conn:
            return find_alerts(conn, state=None)


@pytest.fixture
def demo_world(db_url: str, tmp_path: Path) -> Iterator[World]:
    clock = FixedClock()
    inbound_port, http_port = free_port(), free_port()
    sandbox = Sandbox(("127.0.0.1", inbound_port), clock=clock, timing=Timing())
    sandbox.start()
    settings = demo_settings(
        tmp_path,
        relay_url=sandbox.relay_url(),
        inbound_listen=f"127.0.0.1:{inbound_port}",
        api_listen=f"127.0.0.1:{http_port}",
        database_url=db_url,
    )
    db = Database(settings.database_url)
    handler = BounceHandler(db, settings.keyring(), {world.BOUNCE_DOMAIN}, clock=clock)
    inbound = InboundServer(handler, "127.0.0.1", inbound_port)
    inbound.start()
    http = HttpServer(settings, db, clock=clock, access_log=False)
    stop = threading.Event()
    serving = threading.Thread(target=http.run, args=(stop,))
    serving.start()
    deadline = time.monotonic() + 20
    while not http.server.started:
        assert time.monotonic() < deadline and serving.is_alive(), "HTTP service did not start"
        time.sleep(0.05)
    transport = SMTPRelay(settings.relay(), dsn_notify=settings.dsn_notify)
    yield World(
        clock=clock,
        settings=settings,
        db=db,
        sandbox=sandbox,
        handler=handler,
        sender=Sender(db, settings, transport, clock=clock),
        reconciler=Reconciler(db, settings, clock=clock),
        client=Client(settings, database=db, clock=clock),
        http_port=http_port,
    )
    transport.close()
    stop.set()
    serving.join(timeout=30)
    inbound.stop()
    sandbox.stop()
    db.dispose()


def test_every_kind_of_recipient_ends_where_it_should(demo_world: World) -> None:
    w = demo_world
    first = [s for s in world.SCRIPT if s.at == 0]
    later = [s for s in world.SCRIPT if s.at > 0]
    for send in first:
        w.notify(send)
    w.sender.run_once()
    elapsed = 0
    for send in later:
        w.step(int(send.at) - elapsed)
        elapsed = int(send.at)
        w.notify(send)
    w.step(90 - elapsed)

    def levels(address: str) -> list[tuple[str, str, str | None]]:
        return [(d.topic, d.level, d.outcome) for d in w.deliveries(address)]

    # Alice reads and acknowledges each email (POSTing the page's form).
    assert levels("alice@corp.test") == [
        ("INC-1042", "acknowledged", None),
        ("CHG-207", "acknowledged", None),
        ("INC-1042", "acknowledged", None),
    ]
    # Bob's mail is delivered (success DSNs), but he never acknowledges.
    assert levels("bob@corp.test") == [
        ("INC-1042", "delivered", None),
        ("TCK-5521", "delivered", None),
        ("INC-1042", "delivered", None),
    ]
    # Carol is outside: the relay says "relayed", her out-of-office says delivered.
    (carol,) = w.deliveries("carol@example.test")
    assert (carol.level, carol.outcome) == ("delivered", None)
    assert [e.source for e in carol.evidence] == ["smtp-reply", "dsn", "autoreply"]
    # Dave left: 5.1.1, then suppressed for the follow-up.
    assert levels("dave@corp.test") == [
        ("INC-1042", "submitted", "bounced"),
        ("INC-1042", "queued", "suppressed"),
    ]
    assert w.deliveries("dave@corp.test")[0].evidence[-1].status == "5.1.1"
    (erin,) = w.deliveries("erin@example.test")
    assert (erin.level, erin.outcome, erin.evidence[-1].status) == ("submitted", "bounced", "5.2.2")
    # Frank's domain defers every attempt until the retry lifetime runs out.
    (frank,) = w.deliveries("frank@example.test")
    assert (frank.level, frank.outcome) == ("queued", "expired")
    assert sum(e.outcome == "deferred" for e in frank.evidence) >= 3
    # Grace: a delayed DSN, then success after the deadline.
    (grace,) = w.deliveries("grace@example.test")
    assert (grace.level, grace.outcome) == ("accepted", None)
    assert [e.outcome or e.level for e in grace.evidence] == ["submitted", "deferred", "accepted"]

    alerts = {(a.recipient, a.topic, a.seq): a for a in w.alerts()}
    states = {key: (a.reason, a.state) for key, a in alerts.items()}
    assert states == {
        ("bob@corp.test", "INC-1042", 1): ("expired", "open"),
        ("bob@corp.test", "INC-1042", 3): ("expired", "open"),
        ("dave@corp.test", "INC-1042", 1): ("bounced", "open"),
        ("dave@corp.test", "INC-1042", 2): ("suppressed", "open"),
        ("erin@example.test", "CHG-207", 1): ("bounced", "open"),
        ("frank@example.test", "CHG-207", 1): ("expired", "open"),
        # Opened at the 30 s deadline, resolved by the late success DSN.
        ("grace@example.test", "CHG-207", 1): ("expired", "resolved"),
    }
    assert alerts[("grace@example.test", "CHG-207", 1)].resolved_by == "evidence"
    # Unacknowledged incidents were escalated to on-call, whose mail was delivered.
    told = w.deliveries(world.ONCALL)
    assert told
    assert {d.level for d in told} == {"delivered"}

    # Every report came in through the SMTP listener, and every one was read.
    with w.db.read() as conn:
        stored = conn.execute(
            select(t.inbound.c.channel, t.inbound.c.state, func.count()).group_by(
                t.inbound.c.channel, t.inbound.c.state
            )
        ).all()
    reports = [e for e in w.sandbox.events if e.kind.startswith("dsn:") or e.kind == "autoreply"]
    assert [tuple(row) for row in stored] == [("smtp", "ingested", len(reports))]
    assert not [e for e in w.sandbox.events if e.kind == "gave-up"]


def test_a_report_landed_cannot_take_now_is_retried(demo_world: World) -> None:
    w = demo_world
    w.notify(world.Send(0, "INC-1", "incident", ("x+full@corp.test",), "Down", "down"))
    w.sender.run_once()
    inbound = w.sandbox.inbound
    w.sandbox.inbound = ("127.0.0.1", free_port())  # nothing listens there
    w.step(3)
    assert w.sandbox.pending() == 1
    assert w.deliveries("x+full@corp.test")[0].outcome is None
    w.sandbox.inbound = inbound
    w.step(6)
    assert w.sandbox.pending() == 0
    assert w.deliveries("x+full@corp.test")[0].outcome == "bounced"


def test_the_sandbox_refuses_domains_outside_it(demo_world: World) -> None:
    w = demo_world
    w.notify(world.Send(0, "INC-2", "incident", ("someone@gmail.com",), "Down", "down"))
    w.sender.run_once()
    (delivery,) = w.deliveries("someone@gmail.com")
    assert delivery.outcome == "bounced"
    assert "Relay access denied" in (delivery.evidence[-1].detail or "")
    assert w.sandbox.accepted == []
