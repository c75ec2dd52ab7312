"""An app per ledger (SQLite and PostgreSQL), an API token, and HTTP clients for it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from landed.api import create_app
from landed.clock import FixedClock
from landed.config import Settings
from landed.store import Database
from landed.store.apitokens import create_token

#: For tests of request handling that answers before the ledger is touched
#: (validation, routing, documents): once, on SQLite, rather than on both engines.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


class Api:
    """A synchronous HTTP client for an ASGI app: httpx over its ASGI transport (no
    sockets), on one event loop kept for the client's life."""

    def __init__(self, app: FastAPI, headers: dict[str, str] | None = None) -> None:
        self._runner = asyncio.Runner()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://landed.test",
            headers=headers,
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.request(method, url, **kwargs))

    def concurrently(
        self, method: str, url: str, times: int, **kwargs: Any
    ) -> list[httpx.Response]:
        """The same request ``times`` times at once (the app runs handlers on threads)."""

        async def all_at_once() -> list[httpx.Response]:
            calls = [self._client.request(method, url, **kwargs) for _ in range(times)]
            return list(await asyncio.gather(*calls))

        return self._runner.run(all_at_once())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def app(settings: Settings, database: Database, clock: FixedClock) -> FastAPI:
    return create_app(settings, database, clock=clock)


@pytest.fixture
def api_token(database: Database, clock: FixedClock) -> str:
    with database.write() as conn:
        return create_token(conn, "tests", now=clock.now()).token


@pytest.fixture
def client(app: FastAPI, api_token: str) -> Iterator[Api]:
    """Talks to the app over HTTP (in process), with a valid token."""
    with Api(app, headers={"Authorization": f"Bearer {api_token}"}) as http:
        yield http


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[Api]:
    with Api(app) as http:
        yield http


def notification(**overrides: Any) -> dict[str, Any]:
    """A valid ``POST /v1/notifications`` body."""
    body: dict[str, Any] = {
        "topic": "INC-1",
        "class": "incident",
        "to": ["alice@corp.test", "Bob <bob@corp.test>"],
        "subject": "Database down",
        "text": "db-3 is not answering.",
    }
    body.update(overrides)
    return body


def error_of(response: Any) -> dict[str, Any]:
    """The ``error`` object of a JSON error response (failing clearly when absent)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])
