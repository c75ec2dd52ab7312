"""Dashboard logins: the store (both engines) and `landed user`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from landed.cli import cli
from landed.clock import FixedClock
from landed.errors import InputError, NotFoundError
from landed.store import Database
from landed.store import tables as t
from landed.store.operators import (
    add_operator,
    check_password,
    disable_operator,
    hash_password,
    list_operators,
    verify_operator,
)


def test_add_verify_list_disable(database: Database, clock: FixedClock) -> None:
    add_operator(database, "alice", "s3cret-passphrase", now=clock.now())
    add_operator(database, "bob", "another-passphrase", now=clock.now())
    assert verify_operator(database, "alice", "s3cret-passphrase")
    assert not verify_operator(database, "alice", "another-passphrase")
    assert not verify_operator(database, "nobody", "s3cret-passphrase")
    assert not verify_operator(database, "Alice", "s3cret-passphrase"), "names are exact"
    with database.read() as conn:
        stored = conn.execute(
            select(t.operator.c.password_hash).where(t.operator.c.username == "alice")
        ).scalar_one()
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert "s3cret" not in stored
    with pytest.raises(InputError, match="exists"):
        add_operator(database, "alice", "whatever-else", now=clock.now())
    clock.advance(60)
    assert disable_operator(database, "alice", now=clock.now())
    assert not disable_operator(database, "alice", now=clock.now())
    assert not verify_operator(database, "alice", "s3cret-passphrase"), "disabled: no login"
    with pytest.raises(NotFoundError):
        disable_operator(database, "nobody", now=clock.now())
    listed = {o.username: o for o in list_operators(database)}
    assert listed["alice"].disabled_at == clock.now() and listed["bob"].disabled_at is None
    add_operator(database, "alice", "a-new-passphrase", now=clock.now(), replace=True)
    assert verify_operator(database, "alice", "a-new-passphrase"), "replace re-enables"


def test_hashes_are_salted_per_user_and_bad_input_is_refused(
    database: Database, clock: FixedClock
) -> None:
    assert hash_password("same") != hash_password("same")
    assert check_password("same", hash_password("same"))
    assert not check_password("same", "plain")
    assert not check_password("same", "scrypt$x$8$1$00$00")
    for bad in ("", "has space", "-leading", "x" * 65, "semi;colon"):
        with pytest.raises(InputError):
            add_operator(database, bad, "long-enough-pass", now=clock.now())
    with pytest.raises(InputError):
        add_operator(database, "carol", "", now=clock.now())


def test_user_commands(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANDED_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("LANDED_DATABASE_URL", db_url)
    runner = CliRunner()
    done = runner.invoke(cli, ["user", "add", "ops", "--password-stdin"], input="pass-word-1\n")
    assert done.exit_code == 0, done.output
    prompted = runner.invoke(cli, ["user", "add", "eve"], input="pass-word-2\npass-word-2\n")
    assert prompted.exit_code == 0, prompted.output
    assert "pass-word" not in prompted.output, "the password is never echoed"
    short = runner.invoke(cli, ["user", "add", "tiny", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 8" in str(short.exception)
    disabled = runner.invoke(cli, ["user", "disable", "eve"])
    assert disabled.exit_code == 0 and "disabled" in disabled.output
    listed = runner.invoke(cli, ["user", "list", "--json"])
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["username"], r["disabled"]) for r in rows] == [("eve", True), ("ops", False)]
    table = runner.invoke(cli, ["user", "list"])
    assert "ops" in table.output and "active" in table.output
    db = Database(db_url)
    assert verify_operator(db, "ops", "pass-word-1")
    db.dispose()
