"""`landed api` and `landed token` as an operator uses them: real processes, a real
socket on a loopback port, httpx as the client, SIGTERM to stop."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from landed.api.server import ApiServer
from landed.cli import main
from landed.clock import FixedClock
from landed.config import Settings
from landed.store import Database
from tests.api.conftest import SQLITE_ONLY


def start_api(home: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANDED_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "landed", "api", "--listen", "127.0.0.1:0"],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        found = re.search(r"API listening on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return proc, found[1]
    proc.kill()
    raise AssertionError(f"`landed api` did not start: {proc.stderr.read()}")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory with a landed.toml and a ledger, as `landed init` leaves them."""
    for name in list(os.environ):
        if name.startswith("LANDED_") and name != "LANDED_TEST_PG_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # `landed api` in this process sets up logging (force=True): put pytest's back after.
    handlers, level = logging.root.handlers[:], logging.root.level
    run("init", "--from", "Alerts <alerts@corp.test>")
    yield tmp_path
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


def run(*args: str) -> str:
    """`landed ARGS` in this process (quicker than a new interpreter); its stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(list(args))
    return out.getvalue()


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """`landed ARGS` must fail with exit status 1 and one line on stderr: that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.strip()


@pytest.mark.slow  # starts a `landed api` process: several seconds on a busy machine
def test_landed_api_serves_the_api_with_cli_tokens_and_stops_on_sigterm(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = json.loads(run("tokens", "create", "ci", "--json"))["token"]
    proc, url = start_api(home)
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.get("/healthz").json() == {"status": "ok", "database": "ok"}
            assert http.get("/v1/alerts").status_code == 401
            auth = {"Authorization": f"Bearer {token}"}
            sent = http.post(
                "/v1/notifications",
                headers={**auth, "Idempotency-Key": "deploy-1"},
                json={
                    "topic": "INC-7",
                    "class": "incident",
                    "to": ["alice@corp.test"],
                    "subject": "Deploy failed",
                    "text": "See the log.",
                },
            )
            assert sent.status_code == 202, sent.text
            (delivery,) = sent.json()["deliveries"]
            status = http.get(delivery["status_url"], headers=auth).json()
            assert status["level"] == "queued" and status["recipient"] == "alice@corp.test"

            # The CLI sees the API's notification: one ledger.
            assert json.loads(run("status", delivery["delivery_id"], "--json"))["topic"] == "INC-7"
            (row,) = [json.loads(line) for line in run("token", "list", "--json").splitlines()]
            assert row["name"] == "ci" and row["last_used_at"] is not None
            assert token not in str(row)

            # A port in use is a one-line error, before anything is served.
            port = url.rsplit(":", 1)[1]
            busy = fails(capsys, "api", "--listen", f"127.0.0.1:{port}")
            assert busy.startswith("landed: error: cannot listen on 127.0.0.1:")

            run("token", "revoke", "ci")
            assert http.get("/v1/alerts", headers=auth).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "API stopped" in err


def test_token_commands_say_what_went_wrong_in_one_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = run("tokens", "create", "ci")
    assert printed.strip().startswith("ldt_") and printed.count("\n") == 1
    assert "shown this once" in capsys.readouterr().err
    taken = fails(capsys, "token", "create", "ci")
    assert taken == "landed: error: a token named 'ci' exists already (names are never reused)"
    assert "token name" in fails(capsys, "token", "create", "no spaces")
    assert fails(capsys, "token", "revoke", "nobody") == (
        "landed: error: no active token named 'nobody'"
    )
    assert "ci" in run("tokens", "list"), "the `tokens` spelling of DESIGN.md works too"
    assert "cannot listen" in fails(capsys, "api", "--listen", "nowhere")


@SQLITE_ONLY
def test_stopping_lets_requests_in_flight_finish(
    settings: Settings, database: Database, clock: FixedClock
) -> None:
    server = ApiServer(settings, listen="127.0.0.1:0", db=database, clock=clock)
    in_handler = threading.Event()

    @server.app.get("/slow-for-test")
    def slow() -> dict[str, bool]:
        in_handler.set()
        time.sleep(1.0)  # a request that is still running when the stop comes
        return {"finished": True}

    stop = threading.Event()
    serving = threading.Thread(target=server.serve_until, args=(stop,))
    serving.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            answers: list[httpx.Response] = []
            caller = threading.Thread(target=lambda: answers.append(http.get("/slow-for-test")))
            caller.start()
            assert in_handler.wait(10)
            stop.set()
            caller.join(10)
        assert [a.json() for a in answers] == [{"finished": True}]
        serving.join(15)
        assert not serving.is_alive()
        with pytest.raises(httpx.TransportError), httpx.Client(timeout=2) as late:
            late.get(f"{server.url}/healthz")
    finally:
        stop.set()
        serving.join(15)
