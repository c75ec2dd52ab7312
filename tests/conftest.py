"""Shared fixtures: a fresh ledger on SQLite and on PostgreSQL, settings, clocks.

PostgreSQL: 127.0.0.1:5432, user postgres (override with LANDED_TEST_PG_URL).
A template database is migrated once per session, and each test gets its own
copy (``CREATE DATABASE ... TEMPLATE``). Under CI (``CI=true``) a missing
PostgreSQL fails the tests that need it; elsewhere they are skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from landed.clock import FixedClock
from landed.config import Settings
from landed.store import Database

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get("LANDED_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_KEY = "0123456789abcdef0123456789abcdef"


def need_service(what: str, why: str) -> None:
    """Skip outside CI; fail under CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI: {why}")
    pytest.skip(f"{what} unavailable: {why}")


def _pg_admin() -> object:
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def _pg_url(dbname: str) -> str:
    from sqlalchemy.engine import make_url

    return (
        make_url(PG_ADMIN_URL)
        .set(drivername="postgresql+psycopg", database=dbname)
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Name of a migrated template database for this test session."""
    try:
        admin = _pg_admin()
    except Exception as exc:
        need_service("PostgreSQL", str(exc).strip().splitlines()[0])
    name = f"landed_tpl_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    db = Database(_pg_url(name))
    db.upgrade()
    db.dispose()
    yield name
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
    admin.close()  # type: ignore[attr-defined]


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for one test."""
    name = f"landed_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')  # type: ignore[attr-defined]
    yield _pg_url(name)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
    admin.close()  # type: ignore[attr-defined]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    db = Database(url)
    db.upgrade()
    db.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated ledger; every test using it runs on both engines."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    yield db
    db.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings for tests: no config file, test keys, loopback everything."""
    monkeypatch.setenv("LANDED_CONFIG", str(tmp_path / "absent.toml"))
    for name in list(os.environ):
        if name.startswith("LANDED_") and name not in ("LANDED_CONFIG", "LANDED_TEST_PG_URL"):
            monkeypatch.delenv(name)
    return Settings(
        database_url=db_url,
        from_="Alerts <alerts@corp.test>",
        bounce_domain="bounce.test",
        signing_keys={"k1": TEST_KEY},
        relay_url="smtp://127.0.0.1:1?starttls=off",
        retry_base_seconds=60,
        retry_max_seconds=3600,
        retry_lifetime_seconds=4 * 3600,
        lease_seconds=30,
    )
