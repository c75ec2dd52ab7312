"""The `landed` command line as an operator uses it: real processes, a real relay."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.relay import TestRelay

pytestmark = pytest.mark.slow  # each test starts several `landed` processes


def landed(
    cwd: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LANDED_")}
    if "LANDED_TEST_PG_URL" in os.environ:
        base["LANDED_TEST_PG_URL"] = os.environ["LANDED_TEST_PG_URL"]
    return subprocess.run(
        [sys.executable, "-m", "landed", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    done = landed(
        tmp_path, "init", "--from", "Alerts <alerts@corp.test>", "--bounce-domain", "bounce.test"
    )
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_init_writes_a_private_config_with_a_key_and_creates_the_ledger(home: Path) -> None:
    config = home / "landed.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    assert "[signing_keys]" in text and 'from = "Alerts <alerts@corp.test>"' in text
    assert (home / "landed.db").exists()
    again = landed(home, "init")
    assert again.returncode == 0 and "exists" in again.stdout
    assert config.read_text() == text, "init never overwrites without --force"
    current = landed(home, "db", "current", "--json")
    assert json.loads(current.stdout)["up_to_date"] is True


def test_notify_status_and_worker_once(home: Path) -> None:
    with TestRelay() as relay:
        env = {"LANDED_RELAY_URL": relay.url()}
        done = landed(
            home,
            "notify",
            "--topic", "INC-1234",
            "--class", "incident",
            "--to", "alice@corp.test",
            "--to", "Bob <bob@corp.test>",
            "--subject", "Database down",
            "--text-file", "-",
            stdin="db-3 is not answering\n",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        ids = done.stdout.split()
        assert len(ids) == 2
        sent = landed(home, "worker", "--once", env=env)
        assert sent.returncode == 0, sent.stderr
        assert len(relay.received) == 2
    status = landed(home, "status", "--topic", "INC-1234", "--json")
    rows = [json.loads(line) for line in status.stdout.splitlines()]
    assert {r["delivery_id"] for r in rows} == set(ids)
    for row in rows:
        for field in ("delivery_id", "token", "topic", "notification_id", "recipient", "seq"):
            assert row[field]
        assert row["level"] == "submitted" and row["outcome"] is None
        (evidence,) = row["evidence"]
        assert set(evidence) >= {"source", "level", "outcome", "status", "observed_at", "detail"}
    one = landed(home, "status", rows[0]["token"])
    assert one.returncode == 0 and rows[0]["ref"] in one.stdout and "smtp-reply" in one.stdout
    by_ref = landed(home, "status", rows[0]["ref"], "--json")
    assert json.loads(by_ref.stdout)["delivery_id"] == rows[0]["delivery_id"]
    table = landed(home, "status", "--recipient", "bob@corp.test")
    assert "INC-1234" in table.stdout and "submitted" in table.stdout


def test_notify_json_and_idempotency(home: Path) -> None:
    args = ["notify", "--topic", "T-1", "--class", "c", "--to", "a@corp.test", "--subject", "s"]
    first = landed(home, *args, "--text-file", "-", "--json", "--idempotency-key", "k-1", stdin="x")
    again = landed(home, *args, "--text-file", "-", "--json", "--idempotency-key", "k-1", stdin="x")
    one, two = json.loads(first.stdout), json.loads(again.stdout)
    assert one["delivery_id"] == two["delivery_id"]
    assert one["created"] is True and two["created"] is False
    assert one["seq"] == 1 and one["ref"]


def test_header_injection_is_a_clear_error(home: Path) -> None:
    done = landed(
        home, "notify", "--topic", "T", "--class", "c", "--to", "a@corp.test",
        "--subject", "hi\r\nBcc: evil@corp.test", "--text-file", "-", stdin="x",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "subject contains CR" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LANDED_LEASE_SECONDS": "soon"}, "LANDED_LEASE_SECONDS"),
        ({"LANDED_RELAY_URL": "ftp://x.test"}, "LANDED_RELAY_URL"),
        ({"LANDED_DATABASE_URL": "mysql://x"}, "database_url"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_setting(
    home: Path, env: dict[str, str], named: str
) -> None:
    done = landed(home, "status", env=env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and named in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_without_relay_says_what_to_set(home: Path) -> None:
    done = landed(home, "worker", "--once")
    assert done.returncode == 2 and "relay_url" in done.stderr


def test_status_of_unknown_delivery(home: Path) -> None:
    done = landed(home, "status", "ZZZZ-ZZZZ")
    assert done.returncode == 1 and "no delivery" in done.stderr


def test_reconcile_alerts_ledger_topic_and_suppression(home: Path) -> None:
    with TestRelay() as relay:
        relay.script(
            at="rcpt",
            rcpt="nosuchuser@corp.test",
            reply="550 5.1.1 <nosuchuser@corp.test>: User unknown",
        )
        env = {"LANDED_RELAY_URL": relay.url()}
        for topic in ("INC-1", "INC-2"):
            done = landed(
                home, "notify", "--topic", topic, "--class", "incident",
                "--to", "alice@corp.test", "--to", "nosuchuser@corp.test",
                "--subject", f"About {topic}", "--text-file", "-", stdin="x",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert landed(home, "worker", "--once", env=env).returncode == 0
    assert landed(home, "reconcile", "--once").returncode == 0
    alerts = [json.loads(x) for x in landed(home, "alerts", "--json").stdout.splitlines()]
    assert [a["reason"] for a in alerts] == ["bounced", "bounced"]
    assert alerts[0]["recipient"] == "nosuchuser@corp.test"
    assert alerts[0]["timeline"][0]["kind"] == "opened"
    ledger = [
        json.loads(x)
        for x in landed(home, "ledger", "nosuchuser@corp.test", "--json").stdout.splitlines()
    ]
    assert [(e["seq"], e["proven"], e["open_alerts"]) for e in ledger] == [
        (1, False, 1),
        (2, False, 1),
    ]
    table = landed(home, "ledger", "alice@corp.test").stdout
    assert "2 notifications, 2 not proven, 0 gaps" in table, "submitted is not yet delivered"
    matrix = [json.loads(x) for x in landed(home, "topic", "INC-1", "--json").stdout.splitlines()]
    cells = {
        row["recipient"]: row["notifications"][0]["outcome"] or row["notifications"][0]["level"]
        for row in matrix
    }
    assert cells == {"alice@corp.test": "submitted", "nosuchuser@corp.test": "bounced"}
    listed = [
        json.loads(x) for x in landed(home, "suppression", "list", "--json").stdout.splitlines()
    ]
    assert [s["address"] for s in listed] == ["nosuchuser@corp.test"]
    resolved = landed(home, "alerts", "resolve", str(alerts[0]["id"]), "--note", "address fixed")
    assert resolved.returncode == 0, resolved.stderr
    again = landed(home, "alerts", "resolve", str(alerts[0]["id"]), "--note", "twice")
    assert again.returncode == 1 and "no open alert" in again.stderr
    assert len(landed(home, "alerts", "--json").stdout.splitlines()) == 1
    assert landed(home, "suppression", "remove", "nosuchuser@corp.test").returncode == 0
    assert landed(home, "suppression", "list", "--json").stdout == ""
    assert (
        landed(home, "suppression", "add", "Bob <bob@corp.test>", "--note", "left").returncode == 0
    )
    assert "bob@corp.test" in landed(home, "suppression", "list").stdout
