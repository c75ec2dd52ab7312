"""SMTPRelay.send_many against a real SMTP server: one round trip per message, same results."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from landed.compose.envelope import Envelope
from landed.config import RelayURL
from landed.errors import InputError
from landed.transport.base import Kind, Reply, SendResult, Stage, send_all
from landed.transport.smtp import SMTPRelay
from tests.relay import TestRelay

pytestmark = pytest.mark.timeout(30)


def item(n: int, rcpt: str | None = None) -> tuple[Envelope, bytes]:
    token = f"tok{n:04d}"
    to = rcpt or f"user{n}@corp.test"
    message = (
        f"From: alerts@example.test\r\nTo: {to}\r\nSubject: n{n}\r\n"
        f"Message-ID: <{token}@example.test>\r\n\r\nbody {n}\r\n.dot line\r\n"
    ).encode()
    return Envelope(mail_from=f"bounces+{token}@bounce.test", rcpt_to=to, envid=token), message


@pytest.fixture(params=[True, False], ids=["pipelining", "lockstep"])
def relay(request: pytest.FixtureRequest) -> Iterator[TestRelay]:
    with TestRelay(pipelining=request.param) as server:
        yield server


@pytest.fixture
def client(relay: TestRelay) -> Iterator[SMTPRelay]:
    made = SMTPRelay(RelayURL(relay.url()))
    yield made
    made.close()


def counting_writes(client: SMTPRelay) -> list[bytes]:
    """Connect, then record every write the client makes on that connection."""
    assert client.send(*item(0)).kind is Kind.SENT
    conn = client._conn
    assert conn is not None
    writes: list[bytes] = []
    send = conn.send

    def record(data: bytes | str) -> None:
        writes.append(data if isinstance(data, bytes) else data.encode())
        send(data)

    conn.send = record  # type: ignore[method-assign]
    return writes


def test_every_message_arrives_once_in_order_with_its_reply(
    relay: TestRelay, client: SMTPRelay
) -> None:
    results = list(client.send_many(item(n) for n in range(1, 8)))
    assert [r.kind for r in results] == [Kind.SENT] * 7
    got = relay.received
    assert [g.rcpt_tos for g in got] == [[f"user{n}@corp.test"] for n in range(1, 8)]
    for n, (g, r) in enumerate(zip(got, results, strict=True), start=1):
        assert g.data == item(n)[1], "dot-stuffing undone, bytes identical"
        assert r.reply.stage is Stage.MESSAGE and r.reply.text.endswith(g.queue_id)
        assert r.dsn is True
        assert g.mail_options == ["RET=HDRS", f"ENVID=tok{n:04d}"]


def test_pipelining_takes_one_write_per_message(relay: TestRelay, client: SMTPRelay) -> None:
    writes = counting_writes(client)
    assert [r.kind for r in client.send_many(item(n) for n in range(1, 6))] == [Kind.SENT] * 5
    if relay.pipelining:
        # MAIL+RCPT+DATA of the first; then each content with the next one's
        # commands; then the last content.
        assert len(writes) == 6
        assert (
            writes[1].startswith(b"From:") and b"\r\n.\r\nMAIL FROM:<bounces+tok0002" in (writes[1])
        )
    else:
        assert len(writes) == 5 * 4  # MAIL, RCPT, DATA, content: one at a time


def test_a_refused_recipient_in_the_middle_leaves_the_others_sent(
    relay: TestRelay, client: SMTPRelay
) -> None:
    relay.script(at="rcpt", rcpt="user3@corp.test", reply="550 5.1.1 <user3@corp.test>: unknown")
    counting_writes(client)
    results = list(client.send_many(item(n) for n in range(1, 6)))
    assert [r.kind for r in results] == [Kind.SENT, Kind.SENT, Kind.PERMANENT] + [Kind.SENT] * 2
    assert results[2].reply.stage is Stage.RCPT and results[2].reply.code == 550
    assert [g.rcpt_tos[0] for g in relay.received] == [
        "user0@corp.test",
        "user1@corp.test",
        "user2@corp.test",
        "user4@corp.test",
        "user5@corp.test",
    ]


def test_a_refused_message_does_not_stop_the_next(relay: TestRelay, client: SMTPRelay) -> None:
    relay.script(at="data", rcpt="user2@corp.test", reply="452 4.3.1 Insufficient storage")
    relay.script(at="data", rcpt="user3@corp.test", reply="554 5.6.0 Message rejected")
    counting_writes(client)
    results = list(client.send_many(item(n) for n in range(1, 5)))
    assert [r.kind for r in results] == [Kind.SENT, Kind.TEMPORARY, Kind.PERMANENT, Kind.SENT]
    assert results[1].reply.code == 452 and results[1].reply.stage is Stage.MESSAGE
    assert results[2].reply.enhanced == "5.6.0"
    assert [g.rcpt_tos[0] for g in relay.received] == [
        "user0@corp.test",
        "user1@corp.test",
        "user4@corp.test",
    ]


def test_a_connection_dropped_mid_message_fails_that_one_and_the_next_goes_afresh(
    relay: TestRelay, client: SMTPRelay
) -> None:
    relay.script(at="data", rcpt="user2@corp.test", action="drop", times=1)
    counting_writes(client)
    results = list(client.send_many(item(n) for n in range(1, 5)))
    assert [r.kind for r in results] == [Kind.SENT, Kind.TEMPORARY, Kind.SENT, Kind.SENT]
    assert "connection lost" in results[1].reply.text
    assert [g.rcpt_tos[0] for g in relay.received] == [
        "user0@corp.test",
        "user1@corp.test",
        "user3@corp.test",
        "user4@corp.test",
    ]
    assert relay.connections == 2


def test_a_421_after_a_message_fails_it_and_the_next_goes_on_a_new_connection(
    relay: TestRelay, client: SMTPRelay
) -> None:
    relay.script(at="data", rcpt="user2@corp.test", reply="421 4.3.2 Shutting down", times=1)
    counting_writes(client)
    results = list(client.send_many(item(n) for n in range(1, 5)))
    assert [r.kind for r in results] == [Kind.SENT, Kind.TEMPORARY, Kind.SENT, Kind.SENT]
    assert results[1].reply.code == 421
    assert [g.rcpt_tos[0] for g in relay.received][-2:] == ["user3@corp.test", "user4@corp.test"]
    assert relay.connections == 2


def test_a_kept_connection_the_relay_closed_is_reopened_without_a_failure(
    relay: TestRelay, client: SMTPRelay
) -> None:
    counting_writes(client)
    relay.disconnect_all("421 4.4.2 Idle timeout")
    results = list(client.send_many(item(n) for n in range(1, 4)))
    assert [r.kind for r in results] == [Kind.SENT] * 3
    assert len(relay.received) == 4


def test_stopping_mid_way_sends_no_half_message(relay: TestRelay, client: SMTPRelay) -> None:
    counting_writes(client)
    results = client.send_many(item(n) for n in range(1, 6))
    first = next(results)
    assert first.kind is Kind.SENT
    results.close()  # the second's DATA may have its 354: it must not be delivered empty
    assert [g.rcpt_tos[0] for g in relay.received] == ["user0@corp.test", "user1@corp.test"]
    # The client is usable again afterwards.
    assert client.send(*item(9)).kind is Kind.SENT
    assert relay.received[-1].rcpt_tos == ["user9@corp.test"]


def test_an_address_with_control_characters_is_refused_before_it_is_sent(
    relay: TestRelay, client: SMTPRelay
) -> None:
    bad = Envelope(mail_from="bounces+x@bounce.test", rcpt_to="a@corp.test\r\nRSET", envid="x")
    counting_writes(client)
    results = client.send_many(iter([item(1), (bad, b"x\r\n"), item(3)]))
    with pytest.raises(InputError):
        list(results)
    assert all(g.rcpt_tos[0] != "a@corp.test\r\nRSET" for g in relay.received)


def test_send_all_uses_send_for_a_transport_without_send_many() -> None:
    sent: list[str] = []

    class OneAtATime:
        name = "one"

        def send(self, envelope: Envelope, message: bytes) -> SendResult:
            sent.append(envelope.rcpt_to)
            return SendResult(Kind.SENT, Reply(250, "ok", Stage.MESSAGE), "one")

        def close(self) -> None:
            pass

    results = list(send_all(OneAtATime(), (item(n) for n in range(3))))
    assert len(results) == 3 and sent == ["user0@corp.test", "user1@corp.test", "user2@corp.test"]


def test_a_connection_that_breaks_under_a_write_loses_nothing_after_it(
    relay: TestRelay, client: SMTPRelay
) -> None:
    counting_writes(client)
    results = client.send_many(item(n) for n in range(1, 6))
    assert next(results).kind is Kind.SENT
    conn = client._conn
    assert conn is not None and conn.sock is not None
    conn.sock.shutdown(socket.SHUT_RDWR)  # the next write fails at once
    rest = list(results)
    if relay.pipelining:
        # The second message's DATA had its 354: its content could not be
        # written, so it is retried later. Every one after it still goes out,
        # on a new connection.
        assert [r.kind for r in rest] == [Kind.TEMPORARY, Kind.SENT, Kind.SENT, Kind.SENT]
        assert "connection lost" in rest[0].reply.text
    else:
        # One transaction at a time: the broken kept connection is noticed at
        # MAIL, before anything was accepted, and replaced silently.
        assert [r.kind for r in rest] == [Kind.SENT] * 4
    assert [g.rcpt_tos[0] for g in relay.received][-3:] == [
        "user3@corp.test",
        "user4@corp.test",
        "user5@corp.test",
    ]
