"""`landed up`: every part in one process, working together, stopping cleanly.

Graceful stops are tested part by part: the inbound listener answers the
message it is storing, the HTTP service finishes the request in progress, and
a part that fails stops the others.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from landed.config import Settings
from landed.inbound.smtpd import BounceHandler, InboundServer
from landed.service import HttpServer, Service
from landed.store import Database
from landed.store import tables as t
from landed.tokens import new_id
from tests.dovecot import free_port
from tests.inbound.dsn import Rcpt, postfix_dsn
from tests.relay import TestRelay
from tests.test_cli import landed


def wait_until(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_up_serves_sends_receives_reconciles_and_stops_on_sigterm(tmp_path: Path) -> None:
    done = landed(
        tmp_path, "init", "--from", "Alerts <alerts@corp.test>", "--bounce-domain", "bounce.test"
    )
    assert done.returncode == 0, done.stderr
    inbound_port, http_port = free_port(), free_port()
    with TestRelay() as relay:
        relay.script(
            at="rcpt", rcpt="ghost@corp.test", reply="550 5.1.1 <ghost@corp.test>: User unknown"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANDED_")}
        env.update(
            {
                "LANDED_RELAY_URL": relay.url(),
                "LANDED_INBOUND_LISTEN": f"127.0.0.1:{inbound_port}",
                "LANDED_API_LISTEN": f"127.0.0.1:{http_port}",
                "LANDED_WORKER_POLL_SECONDS": "0.1",
            }
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "landed", "up"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            sent = landed(
                tmp_path, "notify", "--topic", "INC-9", "--class", "incident",
                "--to", "alice@corp.test", "--to", "ghost@corp.test",
                "--subject", "Up?", "--text-file", "-", "--json", stdin="x",
            )  # fmt: skip
            rows = {json.loads(x)["recipient"]: json.loads(x) for x in sent.stdout.splitlines()}
            wait_until(lambda: len(relay.received) == 1)
            alice = rows["alice@corp.test"]
            dsn = postfix_dsn([Rcpt("alice@corp.test", "delivered", "2.0.0")], envid=alice["token"])
            wait_until(lambda: _listening(inbound_port))
            with smtplib.SMTP("127.0.0.1", inbound_port, timeout=10) as smtp:
                smtp.sendmail("", [f"bounces+{alice['token']}@bounce.test"], dsn)

            def settled() -> bool:
                status = landed(tmp_path, "status", alice["delivery_id"], "--json")
                return status.returncode == 0 and json.loads(status.stdout)["level"] == "delivered"

            wait_until(settled)
            wait_until(lambda: "bounced" in landed(tmp_path, "alerts", "--json").stdout)
            # The HTTP service runs in the same process, on the same ledger.
            health = httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=10)
            assert health.json() == {"status": "ok", "database": "ok"}
            page = httpx.get(f"http://127.0.0.1:{http_port}/t/ack/{alice['token']}", timeout=10)
            assert page.status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "landed up: http, sender, inbound-smtp, reconciler, alert-sinks" in err
    assert "Traceback" not in err


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- graceful stops, part by part ---------------------------------------------------------


class _GatedHandler(BounceHandler):
    """Stores a message only once the test opens the gate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storing = threading.Event()
        self.gate = threading.Event()

    def _store(self, *args: Any) -> int:
        self.storing.set()
        assert self.gate.wait(20)
        return super()._store(*args)


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_inbound_stop_answers_the_message_being_stored(
    settings: Settings, database: Database
) -> None:
    keyring = settings.keyring()
    handler = _GatedHandler(database, keyring, {"bounce.test"})
    server = InboundServer(handler, "127.0.0.1", 0)
    server.start()
    port = server.port
    outcome: dict[str, object] = {}

    def send() -> None:
        rcpt = f"bounces+{keyring.sign(new_id())}@bounce.test"
        dsn = postfix_dsn([Rcpt("bob@corp.test", "failed", "5.1.1")])
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                outcome["refused"] = smtp.sendmail("", [rcpt], dsn)
        except Exception as exc:  # the assertion below shows it
            outcome["error"] = exc

    client = threading.Thread(target=send)
    client.start()
    assert handler.storing.wait(20)
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    # New connections are refused at once, while the message in hand is waited for.
    # (Probing only once the listener is closed: a connection asyncio accepts in
    # the same loop iteration as Server.close() leaks its socket on Python 3.11.)
    listener = server.controller.server
    assert listener is not None
    wait_until(lambda: not listener.is_serving(), timeout=5)
    assert _refused(port)
    assert stopping.is_alive()
    handler.gate.set()
    client.join(30)
    stopping.join(30)
    assert outcome == {"refused": {}}  # the client got its 250
    with database.read() as conn:
        states = conn.execute(select(t.inbound.c.state)).scalars().all()
    assert len(states) == 1
    assert states[0] != "pending"  # stored, and read before stop returned


def test_http_stop_finishes_the_request_in_progress(settings: Settings, database: Database) -> None:
    port = free_port()
    http = HttpServer(
        settings.model_copy(update={"api_listen": f"127.0.0.1:{port}"}), database, access_log=False
    )
    started = threading.Event()

    @http.app.get("/test-slow")
    async def slow() -> dict[str, bool]:
        started.set()
        await asyncio.sleep(1.0)
        return {"finished": True}

    stop = threading.Event()
    serving = threading.Thread(target=http.run, args=(stop,))
    serving.start()
    wait_until(lambda: http.server.started)
    got: dict[str, httpx.Response] = {}
    request = threading.Thread(
        target=lambda: got.setdefault("r", httpx.get(f"http://127.0.0.1:{port}/test-slow"))
    )
    request.start()
    assert started.wait(10)
    stop.set()
    request.join(20)
    serving.join(20)
    assert not serving.is_alive()
    assert got["r"].status_code == 200
    assert got["r"].json() == {"finished": True}
    assert _refused(port)


def test_a_part_that_fails_stops_the_others(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        service = Service(
            settings.model_copy(
                update={
                    "api_listen": f"127.0.0.1:{busy}",
                    "inbound_listen": f"127.0.0.1:{free_port()}",
                }
            )
        )
        assert [p.name for p in service.parts] == [
            "http",
            "sender",
            "inbound-smtp",
            "reconciler",
            "alert-sinks",
        ]
        stop = threading.Event()
        began = time.monotonic()
        assert service.run(stop) is False
    assert service.failed == ["http"]
    assert time.monotonic() - began < 20
