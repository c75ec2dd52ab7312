"""`landed demo` as a newcomer runs it: a real process, its printed URL and login,
the dashboard over HTTP, alerts within a minute, and a clean stop on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from landed.demo.sandbox import read_form
from tests.dovecot import free_port


def _read_banner(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    found: dict[str, str] = {}
    for line in proc.stdout:
        match = re.match(r"^\s+(dashboard|user|password)\s+(\S+)\s*$", line)
        if match:
            found[match.group(1)] = match.group(2)
        if len(found) == 3:
            return found
    raise AssertionError("the demo printed no banner")


@pytest.mark.slow
def test_demo_prints_a_login_that_shows_alerts_within_a_minute(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "stderr.log").open("w")  # a file: a full pipe would stall the demo
    command = ["demo", "--dir", str(tmp_path / "demo"), "--listen", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "landed", *command, "--for", "90"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        banner = _read_banner(proc)
        assert banner["dashboard"] == f"http://127.0.0.1:{port}/dashboard/"
        assert banner["user"] == "demo"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            login = http.get("/dashboard/login")
            action, fields = read_form(login.text)
            fields.update(username=banner["user"], password=banner["password"])
            done = http.post(action or "/dashboard/login", data=fields)
            assert done.status_code == 303
            assert done.headers["location"] == "/dashboard/"
            started = time.monotonic()
            seen: set[str] = set()
            while time.monotonic() - started < 60:
                page = http.get("/dashboard/")
                assert page.status_code == 200
                seen = {
                    who
                    for who in ("dave@corp.test", "erin@example.test", "frank@example.test")
                    if who in page.text
                }
                if len(seen) == 3:
                    break
                time.sleep(2)
            assert seen == {"dave@corp.test", "erin@example.test", "frank@example.test"}
            assert "bounced" in page.text
            # A wrong password does not get in.
            http.cookies.clear()
            fields.update(password="wrong")
            fields.update(read_form(http.get("/dashboard/login").text)[1])
            fields["password"] = "wrong"
            refused = http.post("/dashboard/login", data=fields)
            assert "error=failed" in refused.headers.get("location", "")
        # Ctrl-C, as the banner says (--for is the safety net).
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        log.close()
    err = (tmp_path / "stderr.log").read_text()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert (tmp_path / "demo" / "landed.db").exists()


def test_demo_refuses_a_directory_with_a_ledger(tmp_path: Path) -> None:
    (tmp_path / "landed.db").write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-m", "landed", "demo", "--dir", str(tmp_path), "--for", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "landed.db exists" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_busy_dashboard_port_is_replaced_by_a_free_one() -> None:
    import socket

    from landed.demo.session import free_port as demo_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        other = demo_port("127.0.0.1", busy)
        assert other != busy
        assert demo_port("127.0.0.1", other) == other
