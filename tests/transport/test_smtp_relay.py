"""SMTPRelay against a real SMTP server (aiosmtpd on 127.0.0.1): no mocks, real sockets."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from landed.compose.envelope import Envelope, xtext
from landed.config import RelayURL
from landed.errors import InputError
from landed.transport.base import Kind, Stage, Transport
from landed.transport.smtp import SMTPRelay, credentials_allowed, is_loopback_host
from tests.relay import TestRelay, TLSFiles, make_tls

pytestmark = pytest.mark.timeout(30)

TOKEN = "01jd5x7k2q8m3n4p5r6s7t8v9wab3kq7"
SENDER = f"bounces+{TOKEN}@bounce.example.test"
RCPT = "bob@corp.test"
MESSAGE = (
    b"From: Alerts <alerts@example.test>\r\n"
    b"To: bob@corp.test\r\n"
    b"Subject: [INC-1234] Disk full on db1\r\n"
    b"Message-ID: <" + TOKEN.encode() + b"@example.test>\r\n"
    b"X-Landed-Token: " + TOKEN.encode() + b"\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"\r\n"
    b"The disk is full.\r\n"
    b".a line that starts with a dot\r\n"
    b"..and one with two\r\n"
    b".\r\n"
    b"Ref 7K3Q-9XP2 #42 for you\r\n"
)


def envelope(rcpt: str = RCPT, token: str = TOKEN) -> Envelope:
    return Envelope(mail_from=f"bounces+{token}@bounce.example.test", rcpt_to=rcpt, envid=token)


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that did not sign the relay's certificate."""
    return make_tls(tmp_path_factory.mktemp("other")).ca_file


@pytest.fixture(params=[True, False], ids=["pipelining", "lockstep"])
def relay(request: pytest.FixtureRequest) -> Iterator[TestRelay]:
    """The relay, advertising PIPELINING (as Postfix does) or not: every
    relay test runs against both ways the client talks."""
    with TestRelay(pipelining=request.param) as server:
        yield server


@pytest.fixture
def connect() -> Iterator[Callable[..., SMTPRelay]]:
    """Make SMTPRelay clients; all are closed at the end of the test."""
    made: list[SMTPRelay] = []

    def make(url: str, **kwargs: str) -> SMTPRelay:
        client = SMTPRelay(RelayURL(url), **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- envelope, DSN, message bytes ------------------------------------------------------


def test_is_a_transport(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    client: Transport = connect(relay.url())
    assert client.name == "relay"


def test_sends_verp_envelope_dsn_parameters_and_exact_bytes(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    result = connect(relay.url()).send(envelope(), MESSAGE)

    [got] = relay.received
    assert result.kind is Kind.SENT
    assert result.reply.code == 250
    assert result.reply.stage is Stage.MESSAGE
    assert result.reply.text == f"2.0.0 Ok: queued as {got.queue_id}"
    assert result.reply.enhanced == "2.0.0"
    assert result.dsn is True
    assert result.route == "relay"

    assert got.mail_from == SENDER
    assert got.rcpt_tos == [RCPT]
    assert got.mail_options == ["RET=HDRS", f"ENVID={TOKEN}"]
    assert got.rcpt_options == [["NOTIFY=SUCCESS,FAILURE,DELAY", f"ORCPT=rfc822;{RCPT}"]]
    assert got.data == MESSAGE  # headers and body byte-identical, dot-stuffing undone
    assert got.message["Message-ID"] == f"<{TOKEN}@example.test>"
    assert got.message["X-Landed-Token"] == TOKEN
    assert got.tls is False


def test_orcpt_and_envid_are_xtext(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    odd = "bob+alerts=ops@corp.test"
    connect(relay.url()).send(Envelope(SENDER, odd, "id+with=signs"), MESSAGE)

    [got] = relay.received
    assert got.rcpt_tos == [odd]
    assert got.mail_options == ["RET=HDRS", "ENVID=id+2Bwith+3Dsigns"]
    assert got.rcpt_options == [["NOTIFY=SUCCESS,FAILURE,DELAY", f"ORCPT=rfc822;{xtext(odd)}"]]
    assert xtext(odd) == "bob+2Balerts+3Dops@corp.test"


def test_notify_never_and_ret_full(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    client = connect(relay.url(), dsn_notify="never", dsn_ret="FULL")
    assert client.send(envelope(), MESSAGE).kind is Kind.SENT

    [got] = relay.received
    assert got.mail_options == ["RET=FULL", f"ENVID={TOKEN}"]
    assert got.rcpt_options == [["NOTIFY=NEVER", f"ORCPT=rfc822;{RCPT}"]]


def test_bad_dsn_settings_are_refused() -> None:
    url = RelayURL("smtp://127.0.0.1:25?starttls=off")
    with pytest.raises(ValueError, match="dsn_notify"):
        SMTPRelay(url, dsn_notify="SUCCESS,NEVER")
    with pytest.raises(ValueError, match="dsn_ret"):
        SMTPRelay(url, dsn_ret="BODY")


def test_no_dsn_parameters_when_not_advertised(connect: Callable[..., SMTPRelay]) -> None:
    with TestRelay(dsn=False) as relay:
        result = connect(relay.url()).send(envelope(), MESSAGE)
        received = relay.received

    # This relay answers 555 to DSN parameters (see the next test), so a
    # success proves none was sent.
    assert result.kind is Kind.SENT
    assert result.dsn is False
    [got] = received
    assert got.mail_options == []
    assert got.rcpt_options == [[]]
    assert got.data == MESSAGE


def test_relay_without_dsn_rejects_dsn_parameters() -> None:
    """The test double behaves like a real server without DSN."""
    with TestRelay(dsn=False) as relay, smtplib.SMTP(relay.host, relay.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        assert not smtp.has_extn("dsn")
        assert smtp.mail(SENDER, ["RET=HDRS"])[0] == 555
    with TestRelay() as relay, smtplib.SMTP(relay.host, relay.port, timeout=5) as smtp:
        smtp.ehlo("client.test")
        assert smtp.has_extn("dsn")


def test_bare_line_feeds_become_crlf(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    sloppy = b"Subject: lf\n\nline one\n.dot\rline three"
    assert connect(relay.url()).send(envelope(), sloppy).kind is Kind.SENT
    [got] = relay.received
    assert got.data == b"Subject: lf\r\n\r\nline one\r\n.dot\r\nline three\r\n"


def test_eight_bit_body_is_declared(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    body = "Subject: 8bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße, ça va?\r\n".encode()
    assert connect(relay.url()).send(envelope(), body).kind is Kind.SENT
    [got] = relay.received
    assert got.mail_options == ["BODY=8BITMIME", "RET=HDRS", f"ENVID={TOKEN}"]
    assert got.data == body


def test_helo_name_from_url(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    connect(relay.url(helo="sender.example.test")).send(envelope(), MESSAGE)
    connect(relay.url(), local_hostname="other.example.test").send(envelope(), MESSAGE)
    assert [got.helo for got in relay.received] == ["sender.example.test", "other.example.test"]


def test_addresses_with_line_breaks_are_a_programming_error(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    client = connect(relay.url())
    with pytest.raises(InputError):
        client.send(Envelope(SENDER, "bob@corp.test>\r\nRCPT TO:<evil@x.test", TOKEN), MESSAGE)
    assert relay.connections == 0


# --- connection reuse ------------------------------------------------------------------


def test_connection_is_reused(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    client = connect(relay.url())
    results = [client.send(envelope(f"user{i}@corp.test"), MESSAGE) for i in range(5)]

    assert [r.kind for r in results] == [Kind.SENT] * 5
    assert len({r.reply.text for r in results}) == 5  # five queue ids
    assert relay.connections == 1
    assert [got.rcpt_tos for got in relay.received] == [[f"user{i}@corp.test"] for i in range(5)]


def test_close_then_send_reconnects(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    client = connect(relay.url())
    assert client.send(envelope(), MESSAGE).kind is Kind.SENT
    client.close()
    client.close()  # harmless twice
    assert client.send(envelope(), MESSAGE).kind is Kind.SENT
    assert relay.connections == 2


def test_idle_connection_dropped_by_server_is_reopened(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    client = connect(relay.url())
    assert client.send(envelope(), MESSAGE).kind is Kind.SENT
    relay.disconnect_all()

    result = client.send(envelope("second@corp.test"), MESSAGE)

    assert result.kind is Kind.SENT
    assert relay.connections == 2
    assert [got.rcpt_tos for got in relay.received] == [[RCPT], ["second@corp.test"]]


def test_idle_timeout_421_is_reopened(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    client = connect(relay.url())
    assert client.send(envelope(), MESSAGE).kind is Kind.SENT
    relay.disconnect_all(reply="421 4.4.2 relay.test Error: timeout exceeded")

    assert client.send(envelope(), MESSAGE).kind is Kind.SENT
    assert relay.connections == 2
    assert len(relay.received) == 2


def test_connection_survives_a_refused_transaction(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    relay.script(at="rcpt", rcpt="gone@corp.test", reply="550 5.1.1 <gone@corp.test>: no such user")
    client = connect(relay.url())

    assert client.send(envelope("gone@corp.test"), MESSAGE).kind is Kind.PERMANENT
    assert client.send(envelope(), MESSAGE).kind is Kind.SENT  # after RSET, same connection

    assert relay.connections == 1
    [got] = relay.received
    assert got.rcpt_tos == [RCPT]
    assert got.mail_from == SENDER


# --- refusals --------------------------------------------------------------------------


def test_550_at_rcpt_is_permanent_with_full_text(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    text = "5.1.1 <x@corp.test>: Recipient address rejected: User unknown in local recipient table"
    relay.script(at="rcpt", rcpt="x@corp.test", reply=f"550 {text}")

    result = connect(relay.url()).send(envelope("x@corp.test"), MESSAGE)

    assert result.kind is Kind.PERMANENT
    assert result.reply.code == 550
    assert result.reply.text == text
    assert result.reply.enhanced == "5.1.1"
    assert result.reply.stage is Stage.RCPT
    assert result.dsn is True
    assert relay.received == []


def test_451_at_rcpt_is_temporary(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    relay.script(at="rcpt", reply="451 4.7.1 Greylisted, try again in 5 minutes", times=1)
    client = connect(relay.url())

    first = client.send(envelope(), MESSAGE)
    second = client.send(envelope(), MESSAGE)

    assert first.kind is Kind.TEMPORARY
    assert (first.reply.code, first.reply.stage, first.reply.enhanced) == (451, Stage.RCPT, "4.7.1")
    assert first.reply.text == "4.7.1 Greylisted, try again in 5 minutes"
    assert second.kind is Kind.SENT
    assert relay.connections == 1


def test_421_closes_and_next_send_reconnects(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    relay.script(at="rcpt", reply="421 4.3.2 Service shutting down, closing channel", times=1)
    client = connect(relay.url())

    first = client.send(envelope(), MESSAGE)
    second = client.send(envelope(), MESSAGE)

    assert first.kind is Kind.TEMPORARY
    assert (first.reply.code, first.reply.enhanced, first.reply.stage) == (421, "4.3.2", Stage.RCPT)
    assert second.kind is Kind.SENT
    assert relay.connections == 2


def test_mail_from_refused(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    relay.script(at="mail", mail_from=SENDER, reply="553 5.7.1 <sender>: Sender address rejected")
    result = connect(relay.url()).send(envelope(), MESSAGE)
    assert result.kind is Kind.PERMANENT
    assert (result.reply.code, result.reply.stage) == (553, Stage.MAIL)


def test_mail_refused_then_connection_reused(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    """With PIPELINING, RCPT and DATA were already sent after the refused MAIL:
    their replies must be read (drained) before the connection is reused."""
    relay.script(at="mail", reply="451 4.3.0 Try again later", times=1)
    client = connect(relay.url())

    first = client.send(envelope(), MESSAGE)
    second = client.send(envelope(), MESSAGE)

    assert (first.kind, first.reply.code, first.reply.stage) == (Kind.TEMPORARY, 451, Stage.MAIL)
    assert second.kind is Kind.SENT
    assert relay.connections == 1
    assert len(relay.received) == 1


class ScriptedServer:
    """A raw SMTP server that answers each line with the next scripted reply,
    recording every byte it receives: for server behaviour aiosmtpd will not show."""

    def __init__(self, greeting: str, replies: list[str]) -> None:
        self.greeting = greeting
        self.replies = list(replies)
        self.got = bytearray()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port: int = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.sendall(self.greeting.encode() + b"\r\n")
            buffer = b""
            while self.replies:
                data = conn.recv(65536)
                if not data:
                    return
                self.got += data
                buffer += data
                while b"\r\n" in buffer and self.replies:
                    _line, buffer = buffer.split(b"\r\n", 1)
                    reply = self.replies.pop(0)
                    if reply:
                        conn.sendall(reply.encode() + b"\r\n")
            conn.recv(65536)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


def test_pipelined_data_accepted_after_refused_rcpt_gets_no_body(
    connect: Callable[..., SMTPRelay],
) -> None:
    """RFC 2920 section 3.1: a server that says 354 to DATA although every RCPT
    was refused gets an empty message (a lone dot), never the body."""
    server = ScriptedServer(
        "220 odd.test ESMTP",
        [
            "250-odd.test\r\n250 PIPELINING",  # EHLO
            "250 2.1.0 Ok",  # MAIL
            "550 5.1.1 <x@corp.test>: no such user",  # RCPT
            "354 go ahead",  # DATA, wrongly
            "554 5.5.1 No valid recipients",  # the lone dot
            "250 2.0.0 Reset",  # RSET
        ],
    )
    try:
        result = connect(f"smtp://127.0.0.1:{server.port}?starttls=off&timeout=5").send(
            envelope("x@corp.test"), MESSAGE
        )
    finally:
        server.close()

    assert (result.kind, result.reply.code, result.reply.stage) == (
        Kind.PERMANENT,
        550,
        Stage.RCPT,
    )
    wire = bytes(server.got)
    assert b"MAIL FROM:<" in wire and b"DATA\r\n.\r\nRSET\r\n" in wire.upper()
    assert b"Subject" not in wire  # the body was never sent


def test_message_refused_after_data(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    relay.script(at="data", reply="554 5.7.1 Message rejected: spam score too high")
    result = connect(relay.url()).send(envelope(), MESSAGE)
    assert result.kind is Kind.PERMANENT
    assert (result.reply.code, result.reply.enhanced, result.reply.stage) == (
        554,
        "5.7.1",
        Stage.MESSAGE,
    )
    assert relay.received == []


def test_message_deferred_after_data(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    relay.script(at="data", reply="452 4.3.1 Insufficient system storage")
    result = connect(relay.url()).send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY
    assert (result.reply.code, result.reply.stage) == (452, Stage.MESSAGE)


def test_multiline_reply_keeps_its_lines(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    text = "5.1.1 The account that you tried to reach does not exist.\nPlease check it."
    relay.script(at="rcpt", reply=f"550 {text}")
    result = connect(relay.url()).send(envelope(), MESSAGE)
    assert result.reply.text == text
    assert result.reply.enhanced == "5.1.1"


def test_connection_dropped_mid_data_then_recovers(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    relay.script(at="data", action="drop", times=1)
    client = connect(relay.url())

    dropped = client.send(envelope(), MESSAGE)
    again = client.send(envelope(), MESSAGE)

    assert dropped.kind is Kind.TEMPORARY
    assert dropped.reply.code == 0
    assert dropped.reply.stage is Stage.MESSAGE
    assert "connection lost" in dropped.reply.text
    assert again.kind is Kind.SENT
    assert relay.connections == 2
    assert len(relay.received) == 1


def test_connection_dropped_at_rcpt(relay: TestRelay, connect: Callable[..., SMTPRelay]) -> None:
    relay.script(at="rcpt", action="drop", times=1)
    client = connect(relay.url())
    dropped = client.send(envelope(), MESSAGE)
    assert (dropped.kind, dropped.reply.code, dropped.reply.stage) == (
        Kind.TEMPORARY,
        0,
        Stage.RCPT,
    )
    assert client.send(envelope(), MESSAGE).kind is Kind.SENT


def test_connection_refused(connect: Callable[..., SMTPRelay]) -> None:
    port = free_port()
    result = connect(f"smtp://127.0.0.1:{port}?starttls=off&timeout=2").send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY
    assert (result.reply.code, result.reply.stage) == (0, Stage.CONNECT)
    assert f"127.0.0.1:{port}" in result.reply.text
    assert "refused" in result.reply.text.lower()


def test_server_that_never_greets_times_out(connect: Callable[..., SMTPRelay]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel completes the handshake; nobody ever speaks
        port = listener.getsockname()[1]
        started = time.monotonic()
        result = connect(f"smtp://127.0.0.1:{port}?starttls=off&timeout=0.3").send(
            envelope(), MESSAGE
        )
        elapsed = time.monotonic() - started
    assert result.kind is Kind.TEMPORARY
    assert (result.reply.code, result.reply.stage) == (0, Stage.CONNECT)
    assert "timed out" in result.reply.text
    assert elapsed < 5


def test_greeting_554_is_temporary(connect: Callable[..., SMTPRelay]) -> None:
    """A relay that refuses us at connect is our problem, not the delivery's."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"554 5.7.1 relay.test: no SMTP service for you\r\n")
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(1024)  # QUIT, or EOF

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        result = connect(f"smtp://127.0.0.1:{port}?starttls=off&timeout=2").send(
            envelope(), MESSAGE
        )
        thread.join(5)
    assert result.kind is Kind.TEMPORARY
    assert (result.reply.code, result.reply.stage) == (554, Stage.CONNECT)
    assert "no SMTP service" in result.reply.text


# --- TLS -------------------------------------------------------------------------------


def test_starttls_required_with_trusted_ca(
    tls: TLSFiles, connect: Callable[..., SMTPRelay]
) -> None:
    with TestRelay(tls_context=tls.server_context, require_starttls=True) as relay:
        result = connect(relay.url("required", cafile=str(tls.ca_file))).send(envelope(), MESSAGE)
        received = relay.received
    assert result.kind is Kind.SENT
    assert result.dsn is True  # learnt from the EHLO after STARTTLS
    [got] = received
    assert got.tls is True
    assert got.data == MESSAGE
    assert got.mail_options == ["RET=HDRS", f"ENVID={TOKEN}"]


def test_starttls_required_with_untrusted_certificate(
    tls: TLSFiles, other_ca: Path, connect: Callable[..., SMTPRelay]
) -> None:
    with TestRelay(tls_context=tls.server_context) as relay:
        system_cas = connect(relay.url("required")).send(envelope(), MESSAGE)
        wrong_ca = connect(relay.url("required", cafile=str(other_ca))).send(envelope(), MESSAGE)
        received = relay.received
    for result in (system_cas, wrong_ca):
        assert result.kind is Kind.TEMPORARY
        assert (result.reply.code, result.reply.stage) == (0, Stage.STARTTLS)
        assert "not trusted" in result.reply.text
    assert received == []


def test_starttls_required_without_verification(
    tls: TLSFiles, connect: Callable[..., SMTPRelay]
) -> None:
    with TestRelay(tls_context=tls.server_context) as relay:
        result = connect(relay.url("required", verify="false")).send(envelope(), MESSAGE)
        [got] = relay.received
    assert result.kind is Kind.SENT
    assert got.tls is True


def test_starttls_required_but_not_offered(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    result = connect(relay.url("required")).send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY
    assert (result.reply.code, result.reply.stage) == (0, Stage.STARTTLS)
    assert "STARTTLS" in result.reply.text
    assert relay.received == []


def test_starttls_opportunistic_is_unverified(
    tls: TLSFiles, connect: Callable[..., SMTPRelay]
) -> None:
    # No cafile: the certificate cannot be verified, and opportunistic TLS uses it anyway.
    with TestRelay(tls_context=tls.server_context) as relay:
        result = connect(relay.url("opportunistic")).send(envelope(), MESSAGE)
        [got] = relay.received
    assert result.kind is Kind.SENT
    assert got.tls is True


def test_starttls_opportunistic_without_offer_sends_in_clear(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    assert connect(relay.url("opportunistic")).send(envelope(), MESSAGE).kind is Kind.SENT
    [got] = relay.received
    assert got.tls is False


def test_starttls_handshake_failure(tls: TLSFiles, connect: Callable[..., SMTPRelay]) -> None:
    """Required: TEMPORARY. Opportunistic (Postfix "may"): in clear, on a new connection."""
    broken = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.ca.issue_cert("127.0.0.1").configure_cert(broken)
    broken.maximum_version = ssl.TLSVersion.TLSv1_2
    broken.set_ciphers("ECDHE-ECDSA-AES128-SHA")  # SHA-1 suites: our client offers none
    with TestRelay(tls_context=broken) as relay:
        ca = str(tls.ca_file)
        required = connect(relay.url("required", cafile=ca)).send(envelope(), MESSAGE)
        opportunistic = connect(relay.url("opportunistic")).send(envelope(), MESSAGE)
        received = relay.received
    assert required.kind is Kind.TEMPORARY
    assert (required.reply.code, required.reply.stage) == (0, Stage.STARTTLS)
    assert "TLS handshake failed" in required.reply.text
    assert opportunistic.kind is Kind.SENT
    [got] = received
    assert got.tls is False


def test_implicit_tls(tls: TLSFiles, other_ca: Path, connect: Callable[..., SMTPRelay]) -> None:
    with TestRelay(implicit_tls_context=tls.server_context) as relay:
        assert relay.url().startswith("smtps://")
        trusted = connect(relay.url(cafile=str(tls.ca_file))).send(envelope(), MESSAGE)
        untrusted = connect(relay.url(cafile=str(other_ca))).send(envelope(), MESSAGE)
        received = relay.received
    assert trusted.kind is Kind.SENT
    assert untrusted.kind is Kind.TEMPORARY
    assert (untrusted.reply.code, untrusted.reply.stage) == (0, Stage.CONNECT)
    assert "not trusted" in untrusted.reply.text
    [got] = received
    assert got.tls is True
    assert got.data == MESSAGE


# --- AUTH ------------------------------------------------------------------------------


def test_auth_over_starttls(tls: TLSFiles, connect: Callable[..., SMTPRelay]) -> None:
    with TestRelay(
        tls_context=tls.server_context, auth=("notify", "s3cret:/@"), auth_require_tls=True
    ) as relay:
        url = relay.url(
            "required", username="notify", password="s3cret:/@", cafile=str(tls.ca_file)
        )
        result = connect(url).send(envelope(), MESSAGE)
        [got] = relay.received
    assert result.kind is Kind.SENT
    assert (got.auth_user, got.tls) == ("notify", True)


def test_auth_in_clear_on_loopback(connect: Callable[..., SMTPRelay]) -> None:
    with TestRelay(auth=("notify", "pw")) as relay:
        result = connect(relay.url(username="notify", password="pw")).send(envelope(), MESSAGE)
        [got] = relay.received
    assert result.kind is Kind.SENT
    assert (got.auth_user, got.tls) == ("notify", False)


def test_wrong_password_is_temporary(connect: Callable[..., SMTPRelay]) -> None:
    with TestRelay(auth=("notify", "pw")) as relay:
        result = connect(relay.url(username="notify", password="wrong")).send(envelope(), MESSAGE)
        received = relay.received
    assert result.kind is Kind.TEMPORARY  # our login is wrong: never bounce the delivery
    assert (result.reply.code, result.reply.stage, result.reply.enhanced) == (
        535,
        Stage.AUTH,
        "5.7.8",
    )
    assert "credentials invalid" in result.reply.text
    assert received == []


def test_missing_credentials_530_is_temporary(connect: Callable[..., SMTPRelay]) -> None:
    with TestRelay(auth=("notify", "pw")) as relay:
        result = connect(relay.url()).send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY
    assert (result.reply.code, result.reply.stage) == (530, Stage.MAIL)


def test_credentials_without_auth_offered(
    relay: TestRelay, connect: Callable[..., SMTPRelay]
) -> None:
    result = connect(relay.url(username="u", password="p")).send(envelope(), MESSAGE)
    assert result.kind is Kind.TEMPORARY
    assert (result.reply.code, result.reply.stage) == (0, Stage.AUTH)


def test_loopback_hosts() -> None:
    for host in (
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "[::1]",
        "localhost",
        "LOCALHOST.",
        "::ffff:127.0.0.1",
    ):
        assert is_loopback_host(host), host
    for host in (
        "10.0.0.1",
        "192.168.1.10",
        "mail.corp.test",
        "localhost.corp.test",
        "::",
        "0.0.0.0",
    ):
        assert not is_loopback_host(host), host


def test_credentials_guard() -> None:
    assert credentials_allowed("mail.corp.test", encrypted=True)
    assert credentials_allowed("127.0.0.1", encrypted=False)
    assert not credentials_allowed("mail.corp.test", encrypted=False)
    assert not credentials_allowed("192.0.2.25", encrypted=False)


def test_credentials_refused_in_clear_to_remote_host() -> None:
    """Decided before connecting: nothing is attempted (mail.corp.test does not even resolve)."""
    client = SMTPRelay(RelayURL("smtp://notify:pw@mail.corp.test:587?starttls=off&timeout=1"))
    started = time.monotonic()
    result = client.send(envelope(), MESSAGE)
    client.close()
    assert result.kind is Kind.TEMPORARY
    assert (result.reply.code, result.reply.stage) == (0, Stage.AUTH)
    assert "refusing to send relay credentials" in result.reply.text
    assert "pw" not in result.reply.text
    assert time.monotonic() - started < 1
