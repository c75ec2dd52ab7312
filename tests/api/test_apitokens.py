"""API tokens in the ledger: made at random, stored as SHA-256 only, revoked at once."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from landed.clock import FixedClock
from landed.errors import InputError, NotFoundError
from landed.store import Database
from landed.store import tables as t
from landed.store.apitokens import (
    TOKEN_PREFIX,
    create_token,
    list_tokens,
    needs_touch,
    revoke_token,
    touch_token,
    verify_token,
)


def test_a_token_is_random_shown_once_and_stored_as_its_hash_only(
    database: Database, clock: FixedClock
) -> None:
    with database.write() as conn:
        one = create_token(conn, "ci", now=clock.now())
        two = create_token(conn, "grafana", now=clock.now())
    assert one.token.startswith(TOKEN_PREFIX) and len(one.token) == len(TOKEN_PREFIX) + 43
    assert one.token != two.token
    assert one.token.startswith(one.prefix) and len(one.prefix) < len(one.token) // 3
    with database.read() as conn:
        rows = conn.execute(select(t.api_token)).all()
    stored = " ".join(str(value) for row in rows for value in row)
    assert one.token not in stored and one.token[len(TOKEN_PREFIX) :] not in stored
    assert {r.token_hash for r in rows} == {
        hashlib.sha256(one.token.encode()).hexdigest(),
        hashlib.sha256(two.token.encode()).hexdigest(),
    }


def test_verify_accepts_the_token_only_while_it_is_active_and_names_are_never_reused(
    database: Database, clock: FixedClock
) -> None:
    with database.write() as conn:
        made = create_token(conn, "ci", now=clock.now())
    with database.read() as conn:
        found = verify_token(conn, made.token)
        assert found is not None and found.name == "ci"
        assert verify_token(conn, made.token[:-1] + ("A" if made.token[-1] != "A" else "B")) is None
        assert verify_token(conn, made.token[len(TOKEN_PREFIX) :]) is None
        assert verify_token(conn, "") is None
        assert verify_token(conn, TOKEN_PREFIX + "\udcff" * 10) is None
    with database.write() as conn:
        revoke_token(conn, "ci", now=clock.now())
    with database.read() as conn:
        assert verify_token(conn, made.token) is None
        (listed,) = list_tokens(conn)
        assert listed.revoked_at == clock.now() and not listed.active
        assert list_tokens(conn, include_revoked=False) == []
    # Names are checked, and never reused (a revoked name stays as a record).
    for bad in ("ci", "", "has space", "-dash", "x" * 65, "a\nb"):
        with database.write() as conn, pytest.raises(InputError):
            create_token(conn, bad, now=clock.now())
    with database.write() as conn, pytest.raises(NotFoundError):
        revoke_token(conn, "ci", now=clock.now())  # already revoked
    with database.write() as conn, pytest.raises(NotFoundError):
        revoke_token(conn, "never-made", now=clock.now())


def test_last_use_is_written_at_most_once_a_minute(database: Database, clock: FixedClock) -> None:
    with database.write() as conn:
        made = create_token(conn, "ci", now=clock.now())
    with database.read() as conn:
        view = verify_token(conn, made.token)
    assert view is not None and needs_touch(view, clock.now())
    with database.write() as conn:
        touch_token(conn, view.id, now=clock.now())
    first = clock.now()
    clock.advance(59)
    with database.write() as conn:
        touch_token(conn, view.id, now=clock.now())  # a concurrent request: no change
    with database.read() as conn:
        again = verify_token(conn, made.token)
    assert again is not None and again.last_used_at == first
    assert not needs_touch(again, clock.now())
    clock.advance(1)
    assert needs_touch(again, clock.now())
