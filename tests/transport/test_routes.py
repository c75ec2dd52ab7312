"""Routes and failover end to end: ledger (SQLite and PostgreSQL) -> sender -> router ->
a real SMTP relay (aiosmtpd) and direct MX to stub mail hosts found through a stub DNS."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from landed.client import Client
from landed.clock import FixedClock
from landed.compose.envelope import Envelope
from landed.config import RouteConfig, Settings, load_settings
from landed.errors import ConfigError
from landed.sender import Sender
from landed.store import Database
from landed.store import tables as t
from landed.store.outbox import Settlement, claim, settle
from landed.transport.base import Kind, Reply, SendResult, Stage
from landed.transport.routes import Hop, Route, Router, build_router, unreachable
from landed.transport.smtp import SMTPRelay
from tests.conftest import TEST_KEY
from tests.dnsstub import MailHostStub, StubDNS, shared_port
from tests.relay import TestRelay

pytestmark = pytest.mark.timeout(60)

MX1 = "127.0.0.2"
#: Nothing listens on port 1 of the loopback interface: connection refused.
REFUSING_RELAY = "smtp://127.0.0.1:1?starttls=off&timeout=3"


@pytest.fixture
def dns() -> Iterator[StubDNS]:
    with StubDNS() as server:
        server.mx("ext.test", (10, "mx1.ext.test"))
        server.address("mx1.ext.test", MX1)
        yield server


@pytest.fixture
def mailhost() -> Iterator[MailHostStub]:
    with MailHostStub(MX1, shared_port(MX1)) as host:
        yield host


@pytest.fixture
def relay() -> Iterator[TestRelay]:
    with TestRelay(dsn=True) as server:
        yield server


_open: list[Sender] = []


@pytest.fixture(autouse=True)
def _close_senders() -> Iterator[None]:
    yield
    while _open:
        sender = _open.pop()
        sender.transport.close()
        sender.db.dispose()


def routed(
    settings: Settings,
    dns: StubDNS,
    mailhost: MailHostStub,
    clock: FixedClock,
    *routes: RouteConfig,
    owner: str = "worker-a",
    **overrides: Any,
) -> tuple[Client, Sender]:
    s = settings.model_copy(
        update={
            "routes": list(routes),
            "mx_nameservers": [dns.nameserver],
            "mx_port": mailhost.port,
            "mx_timeout": 5.0,
            "mx_helo": "landed.test",
            **overrides,
        }
    )
    db = Database(s.database_url)
    client = Client(s, clock=clock, database=db)
    sender = Sender(db, s, build_router(s), clock=clock, owner=owner, rng=random.Random(7))
    _open.append(sender)
    return client, sender


def route_of(db: Database, delivery_id: str) -> str | None:
    with db.read() as conn:
        route: str | None = conn.execute(
            select(t.delivery.c.route).where(t.delivery.c.id == delivery_id)
        ).scalar_one()
    return route


def outbox_row(db: Database, delivery_id: str) -> Any:
    with db.read() as conn:
        return conn.execute(
            select(t.outbox).where(t.outbox.c.delivery_id == delivery_id)
        ).one_or_none()


RELAY_THEN_MX = RouteConfig(name="all", via=["relay", "mx"])


@pytest.fixture
def plain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings without a ledger, for what needs no database (runs once, not per engine)."""
    monkeypatch.setenv("LANDED_CONFIG", str(tmp_path / "absent.toml"))
    for name in list(os.environ):
        if name.startswith("LANDED_") and name != "LANDED_CONFIG":
            monkeypatch.delenv(name)
    return Settings(
        from_="Alerts <alerts@corp.test>",
        bounce_domain="bounce.test",
        signing_keys={"k1": TEST_KEY},
        relay_url=REFUSING_RELAY,
    )


def test_refusing_relay_fails_over_to_mx_at_once(
    settings: Settings, dns: StubDNS, mailhost: MailHostStub, clock: FixedClock
) -> None:
    client, sender = routed(settings, dns, mailhost, clock, RELAY_THEN_MX, relay_url=REFUSING_RELAY)
    (delivery_id,) = client.notify(
        topic="INC-1", cls="incident", to=["bob@ext.test"], subject="Disk full", text="t"
    )
    assert sender.run_once() == 2, "one attempt on each hop, in the same run"
    (view,) = client.status(delivery_id)
    assert view.level == "accepted" and view.outcome is None and not view.queued
    deferred, accepted = view.evidence
    assert (deferred.outcome, deferred.route) == ("deferred", "relay")
    assert "moving from relay to mx, hop 2 of 2" in (deferred.detail or "")
    assert (accepted.level, accepted.route) == ("accepted", "mx")
    assert f"via mx1.ext.test [{MX1}]" in (accepted.detail or "")
    assert "no TLS" in (accepted.detail or "")
    assert route_of(sender.db, delivery_id) == "mx"
    (got,) = mailhost.received
    assert got.message["Message-ID"] == view.message_id


def test_4xx_fails_over_only_after_route_failover_after(
    settings: Settings,
    dns: StubDNS,
    mailhost: MailHostStub,
    relay: TestRelay,
    clock: FixedClock,
) -> None:
    relay.script(at="rcpt", reply="451 4.3.0 Temporary local problem")
    client, sender = routed(
        settings,
        dns,
        mailhost,
        clock,
        RELAY_THEN_MX,
        relay_url=relay.url(),
        route_failover_after="10m",
    )
    (delivery_id,) = client.notify(
        topic="INC-1", cls="incident", to=["bob@ext.test"], subject="s", text="t"
    )
    start = clock.now()
    for _ in range(20):
        sender.run_once()
        row = outbox_row(sender.db, delivery_id)
        if row is None:
            break
        if row.route_index == 0:
            assert row.route_failing_since == start, "the hop's failure clock starts once"
        clock.set(row.available_at)
    (view,) = client.status(delivery_id)
    assert view.level == "accepted"
    relay_tries = [e for e in view.evidence if e.route == "relay"]
    assert len(relay_tries) >= 3 and all(e.outcome == "deferred" for e in relay_tries)
    *before, last = relay_tries
    assert all(e.observed_at - start < timedelta(minutes=10) for e in before)
    assert last.observed_at - start >= timedelta(minutes=10)
    assert "moving from relay to mx" in (last.detail or "")
    assert not any("moving" in (e.detail or "") for e in before)
    assert view.evidence[-1].route == "mx" and relay.received == []
    assert len(mailhost.received) == 1


def test_a_5xx_from_a_hop_is_a_bounce_not_a_failover(
    settings: Settings,
    dns: StubDNS,
    mailhost: MailHostStub,
    relay: TestRelay,
    clock: FixedClock,
) -> None:
    relay.script(at="rcpt", reply="550 5.1.1 <bob@ext.test>: Recipient address rejected")
    client, sender = routed(settings, dns, mailhost, clock, RELAY_THEN_MX, relay_url=relay.url())
    (delivery_id,) = client.notify(
        topic="INC-1", cls="incident", to=["bob@ext.test"], subject="s", text="t"
    )
    assert sender.run_once() == 1
    (view,) = client.status(delivery_id)
    assert view.outcome == "bounced" and not view.queued
    assert mailhost.sessions == 0


def test_mx_5xx_is_bounced_with_the_classifiers_reason_and_250_is_accepted(
    settings: Settings, dns: StubDNS, mailhost: MailHostStub, clock: FixedClock
) -> None:
    mailhost.rcpt_reply = "550 5.1.1 <nobody@ext.test>: Recipient address rejected: User unknown"
    client, sender = routed(settings, dns, mailhost, clock, RouteConfig(name="direct", via=["mx"]))
    (nobody,) = client.notify(topic="T", cls="c", to=["nobody@ext.test"], subject="s", text="t")
    sender.run_once()
    with sender.db.read() as conn:
        row = conn.execute(
            select(
                t.evidence.c.outcome, t.evidence.c.reason, t.evidence.c.hard, t.evidence.c.status
            ).where(t.evidence.c.delivery_id == nobody)
        ).one()
    assert (row.outcome, row.reason, row.hard, row.status) == (
        "bounced",
        "userunknown",
        True,
        "5.1.1",
    )
    mailhost.rcpt_reply = None
    (bob,) = client.notify(topic="T", cls="c", to=["bob@ext.test"], subject="s", text="t")
    sender.run_once()
    (view,) = client.status(bob)
    assert view.level == "accepted" and view.evidence[0].route == "mx"


def test_null_mx_through_the_sender_is_a_hard_bounce(
    settings: Settings, dns: StubDNS, mailhost: MailHostStub, clock: FixedClock
) -> None:
    dns.null_mx("nomail.test")
    client, sender = routed(settings, dns, mailhost, clock, RouteConfig(name="direct", via=["mx"]))
    (delivery_id,) = client.notify(topic="T", cls="c", to=["x@nomail.test"], subject="s", text="t")
    sender.run_once()
    with sender.db.read() as conn:
        row = conn.execute(
            select(
                t.evidence.c.outcome, t.evidence.c.status, t.evidence.c.reason, t.evidence.c.hard
            ).where(t.evidence.c.delivery_id == delivery_id)
        ).one()
    assert (row.outcome, row.status, row.hard) == ("bounced", "5.1.10", True)
    assert row.reason == "notaccept"


def test_routes_are_chosen_by_recipient_and_class(
    settings: Settings,
    dns: StubDNS,
    mailhost: MailHostStub,
    relay: TestRelay,
    clock: FixedClock,
) -> None:
    client, sender = routed(
        settings,
        dns,
        mailhost,
        clock,
        RouteConfig(name="internal", recipients=["*@corp.test"], via=["relay"]),
        RouteConfig(name="external", classes=["incident"], via=["mx"]),
        relay_url=relay.url(),
    )
    (inside,) = client.notify(topic="T", cls="incident", to=["al@corp.test"], subject="s", text="t")
    (outside,) = client.notify(topic="T", cls="incident", to=["bo@ext.test"], subject="s", text="t")
    (unrouted,) = client.notify(topic="T", cls="digest", to=["cy@ext.test"], subject="s", text="t")
    sender.run_once()
    views = {v.delivery_id: v for v in client.status(topic="T")}
    assert (views[inside].level, views[inside].evidence[0].route) == ("submitted", "relay")
    assert (views[outside].level, views[outside].evidence[0].route) == ("accepted", "mx")
    assert views[unrouted].outcome == "rejected"
    detail = views[unrouted].evidence[0].detail or ""
    assert "cannot send: no route matches class 'digest'" in detail
    assert [r.rcpt_tos for r in relay.received] == [["al@corp.test"]]
    assert [g.rcpt_tos for g in mailhost.received] == [["bo@ext.test"]]


class _Crash(BaseException):
    """A worker killed between its send and its settle (not an Exception: nothing catches it)."""


def test_a_crash_between_send_and_settle_retries_on_the_same_hop(
    settings: Settings,
    dns: StubDNS,
    mailhost: MailHostStub,
    relay: TestRelay,
    clock: FixedClock,
) -> None:
    client, first = routed(settings, dns, mailhost, clock, RELAY_THEN_MX, relay_url=relay.url())
    (delivery_id,) = client.notify(
        topic="INC-1", cls="incident", to=["bob@ext.test"], subject="s", text="t"
    )

    def crash(_delivery_id: str, _result: SendResult) -> None:
        raise _Crash

    first.on_result = crash
    with pytest.raises(_Crash):
        first.run_once()
    assert len(relay.received) == 1, "the relay took it; the worker died before recording it"
    row = outbox_row(first.db, delivery_id)
    assert (row.route_index, row.lease_owner, row.attempts) == (0, "worker-a", 0)

    _, second = routed(
        settings, dns, mailhost, clock, RELAY_THEN_MX, relay_url=relay.url(), owner="worker-b"
    )
    assert second.run_once() == 0, "the lease still holds"
    clock.advance(settings.lease_seconds + 1)
    assert second.run_once() == 1
    (view,) = client.status(delivery_id)
    assert view.level == "submitted" and view.evidence[0].route == "relay"
    assert mailhost.sessions == 0, "never through a second route"
    ids = {r.message["Message-ID"] for r in relay.received}
    assert len(relay.received) == 2 and ids == {view.message_id}


def test_a_worker_that_lost_its_lease_cannot_move_the_hop(
    settings: Settings, database: Database, clock: FixedClock
) -> None:
    client = Client(settings, clock=clock, database=database)
    (delivery_id,) = client.notify(topic="T", cls="c", to=["a@ext.test"], subject="s", text="t")
    lease = timedelta(seconds=30)
    with database.write() as conn:
        (held_a,) = claim(conn, owner="a", now=clock.now(), lease=lease, limit=10)
    clock.advance(31)
    with database.write() as conn:
        (held_b,) = claim(conn, owner="b", now=clock.now(), lease=lease, limit=10)
    assert held_a.route_index == held_b.route_index == 0
    # Worker a comes back and settles a failover to hop 1: the row is b's now.
    with database.write() as conn:
        settle(
            conn,
            owner="a",
            settlements=[
                Settlement(
                    delivery_id,
                    (),
                    retry_at=clock.now(),
                    route="relay",
                    route_index=1,
                )
            ],
            now=clock.now(),
        )
    row = outbox_row(database, delivery_id)
    assert (row.route_index, row.lease_owner, row.attempts) == (0, "b", 0)
    # b's own settlement does move it, and keeps when the hop began failing.
    since = clock.now()
    with database.write() as conn:
        settle(
            conn,
            owner="b",
            settlements=[
                Settlement(
                    delivery_id,
                    (),
                    retry_at=clock.now() + lease,
                    route="relay",
                    route_index=1,
                    route_failing_since=since,
                )
            ],
            now=clock.now(),
        )
    row = outbox_row(database, delivery_id)
    assert (row.route_index, row.route_failing_since, row.lease_owner) == (1, since, None)
    with database.write() as conn:
        (again,) = claim(conn, owner="c", now=clock.now() + lease, lease=lease, limit=10)
    assert (again.route_index, again.route_failing_since) == (1, since)


def test_build_router_defaults_to_the_relay_and_refuses_nothing_to_send_through(
    plain: Settings,
) -> None:
    router = build_router(plain)
    try:
        assert [(r.name, r.via) for r in router.routes] == [("default", ("relay",))]
        assert isinstance(router.hops["relay"].transport, SMTPRelay)
    finally:
        router.close()
    with pytest.raises(ConfigError, match="nothing to send through"):
        build_router(plain.model_copy(update={"relay_url": None}))
    with pytest.raises(ConfigError, match="relay_url"):
        build_router(
            plain.model_copy(
                update={"relay_url": None, "routes": [RouteConfig(name="r", via=["relay"])]}
            )
        )


def test_route_config_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown transport 'pigeon'"):
        RouteConfig(name="r", via=["relay", "pigeon"])
    with pytest.raises(ValueError, match="twice"):
        RouteConfig(name="r", via=["mx", "MX"])
    with pytest.raises(ValueError):
        RouteConfig(name="r", via=[])
    assert RouteConfig(name="r", via=[" Relay ", "ses"]).via == ["relay", "ses"]


def test_an_esp_hop_is_built_by_the_esp_factory(plain: Settings) -> None:
    s = plain.model_copy(
        update={
            "routes": [RouteConfig(name="out", via=["relay", "mailgun"])],
            "mailgun_api_key": "key-test",
            "mailgun_domain": "mg.corp.test",
            "mailgun_base_url": "http://127.0.0.1:9",
        }
    )
    router = build_router(s)
    try:
        hop = router.hops["mailgun"]
        assert hop.name == "mailgun" and hop.sign, "Mailgun takes raw MIME: signed"
        assert not router.hops["relay"].sign
    finally:
        router.close()
    with pytest.raises(ConfigError, match="sendgrid_api_key"):
        build_router(s.model_copy(update={"routes": [RouteConfig(name="o", via=["sendgrid"])]}))


def test_a_bare_transport_is_one_route_of_one_hop(plain: Settings) -> None:
    relay = SMTPRelay(plain.relay())
    router = Router.single(relay)
    assert router.choose("any", "x@y.test").via == ("relay",)
    assert router.hop(router.routes[0], 5)[0] == 0, "an index past the end is clamped"


def test_routes_and_mx_settings_from_the_file_and_the_environment(
    plain: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "landed.toml"
    config.write_text(
        'relay_url = "smtp://127.0.0.1:2525"\n'
        'route_failover_after = "90s"\n'
        "[[routes]]\n"
        'name = "internal"\n'
        'recipients = ["*@corp.test"]\n'
        'via = ["relay"]\n'
        "[[routes]]\n"
        'name = "external"\n'
        'via = ["relay", "mx"]\n'
    )
    monkeypatch.setenv("LANDED_CONFIG", str(config))
    monkeypatch.setenv("LANDED_MX_NAMESERVERS", "127.0.0.1:5353, ::1")
    loaded = load_settings(signing_keys={"k1": TEST_KEY})
    assert [(r.name, r.via) for r in loaded.routes] == [
        ("internal", ["relay"]),
        ("external", ["relay", "mx"]),
    ]
    assert loaded.failover_after() == timedelta(seconds=90)
    assert loaded.mx_nameserver_list() == [("127.0.0.1", 5353), ("::1", 53)]
    monkeypatch.setenv("LANDED_MX_NAMESERVERS", "dns.corp.test")
    with pytest.raises(ConfigError, match="mx_nameservers"):
        load_settings(signing_keys={"k1": TEST_KEY})
    config.write_text(
        '[[routes]]\nname = "a"\nvia = ["mx"]\n[[routes]]\nname = "a"\nvia = ["mx"]\n'
    )
    monkeypatch.delenv("LANDED_MX_NAMESERVERS")
    with pytest.raises(ConfigError, match="same name"):
        load_settings(signing_keys={"k1": TEST_KEY})


def test_what_counts_as_an_unreachable_hop() -> None:
    def result(kind: Kind, code: int, stage: Stage) -> SendResult:
        return SendResult(kind=kind, reply=Reply(code, "x", stage), route="r")

    assert unreachable(result(Kind.TEMPORARY, 0, Stage.CONNECT))
    assert unreachable(result(Kind.TEMPORARY, 0, Stage.STARTTLS))
    assert unreachable(result(Kind.TEMPORARY, 0, Stage.API)), "an ESP API with no answer"
    assert not unreachable(result(Kind.TEMPORARY, 421, Stage.CONNECT)), "it answered"
    assert not unreachable(result(Kind.TEMPORARY, 503, Stage.API))
    assert not unreachable(result(Kind.TEMPORARY, 0, Stage.MESSAGE)), "lost mid-transaction"
    assert not unreachable(result(Kind.PERMANENT, 0, Stage.CONNECT)), "null MX: a bounce"


class _Idle:
    """A transport that is never used: failover decisions do not send."""

    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, envelope: Envelope, message: bytes) -> SendResult:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


def test_failover_decisions() -> None:
    route = Route("r", ("relay", "mx", "ses"))
    hops = {name: Hop(_Idle(name)) for name in route.via}
    router = Router([route], hops, failover_after=timedelta(minutes=10))
    since = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    refused = SendResult(Kind.TEMPORARY, Reply(0, "refused", Stage.CONNECT), "relay")
    greylisted = SendResult(Kind.TEMPORARY, Reply(451, "4.7.1 later", Stage.RCPT), "relay")
    bounced = SendResult(Kind.PERMANENT, Reply(550, "5.1.1 no", Stage.RCPT), "relay")

    def decide(result: SendResult, index: int, minutes: float) -> int | None:
        return router.failover(
            route, index, result, failing_since=since, now=since + timedelta(minutes=minutes)
        )

    assert decide(refused, 0, 0) == 1, "unreachable: at once"
    assert decide(greylisted, 0, 9.9) is None
    assert decide(greylisted, 1, 10) == 2, "4xx for route_failover_after"
    assert decide(refused, 2, 60) is None, "the last hop keeps it"
    assert decide(bounced, 0, 60) is None, "a 5xx is a bounce, never a failover"
