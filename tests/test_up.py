"""`landed up`: every part in one process, working together, stopping cleanly."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dovecot import free_port
from tests.inbound.dsn import Rcpt, postfix_dsn
from tests.relay import TestRelay
from tests.test_cli import landed

pytestmark = pytest.mark.slow


def wait_until(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_up_sends_receives_reconciles_and_stops_on_sigterm(tmp_path: Path) -> None:
    done = landed(
        tmp_path, "init", "--from", "Alerts <alerts@corp.test>", "--bounce-domain", "bounce.test"
    )
    assert done.returncode == 0, done.stderr
    inbound_port = free_port()
    with TestRelay() as relay:
        relay.script(
            at="rcpt", rcpt="ghost@corp.test", reply="550 5.1.1 <ghost@corp.test>: User unknown"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANDED_")}
        env.update(
            {
                "LANDED_RELAY_URL": relay.url(),
                "LANDED_INBOUND_LISTEN": f"127.0.0.1:{inbound_port}",
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
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "landed up: sender, inbound-smtp, reconciler, alert-sinks" in err


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
