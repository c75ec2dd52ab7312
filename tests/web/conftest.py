"""An app per ledger (SQLite and PostgreSQL), an HTTP client for it, notifications
to track and an operator.

The client speaks HTTP to the app in process through httpx's ASGI transport
(no sockets), keeps cookies like a browser, and can pretend to come from any
address (the network class of the pixel depends on it).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from landed.api import create_app
from landed.client import Client
from landed.clock import FixedClock
from landed.config import Settings
from landed.domain import EvidenceSource, Outcome
from landed.store import Database
from landed.store.alerts import open_alert
from landed.store.ledger import NewEvidence, append_evidence
from landed.store.operators import add_operator

OPERATOR = "ops"
PASSWORD = "correct horse battery"
#: A mail client's user agent (not a machine fetcher).
MAIL_CLIENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.3.0"


class Http:
    """A synchronous HTTP client for an ASGI app, with a cookie jar."""

    def __init__(
        self, app: FastAPI, *, user_agent: str = MAIL_CLIENT, base_url: str = "http://landed.test"
    ) -> None:
        self.app = app
        self.base_url = base_url
        self.cookies = httpx.Cookies()
        self.user_agent = user_agent

    def request(
        self, method: str, url: str, *, address: str = "81.2.69.160", **kwargs: Any
    ) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
            async with httpx.AsyncClient(
                transport=transport,
                base_url=self.base_url,
                cookies=self.cookies,
                headers={"User-Agent": self.user_agent},
            ) as client:
                response = await client.request(method, url, **kwargs)
                self.cookies = client.cookies
                return response

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture
def app(settings: Settings, database: Database, clock: FixedClock) -> FastAPI:
    return create_app(settings, database, clock=clock)


@pytest.fixture
def http(app: FastAPI) -> Http:
    return Http(app)


@pytest.fixture
def notifier(settings: Settings, database: Database, clock: FixedClock) -> Client:
    return Client(settings, clock=clock, database=database)


@pytest.fixture
def operator(database: Database, clock: FixedClock) -> str:
    add_operator(database, OPERATOR, PASSWORD, now=clock.now())
    return OPERATOR


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def log_in(http: Http, username: str = OPERATOR, password: str = PASSWORD) -> httpx.Response:
    """Log in through the form; return the answer to the POST."""
    page = http.get("/dashboard/login")
    assert page.status_code == 200
    return http.post(
        "/dashboard/login",
        data={"username": username, "password": password, "csrf": csrf_of(page.text)},
    )


def bounced_alert(notifier: Client, database: Database, clock: FixedClock) -> tuple[str, int]:
    """A notification to bob that bounced, with its open alert."""
    (delivery_id,) = notifier.notify(
        topic="INC-7", cls="incident", to=["bob@corp.test"], subject="Disk full", text="t"
    )
    with database.write() as conn:
        append_evidence(
            conn,
            [
                NewEvidence(
                    delivery_id=delivery_id,
                    source=EvidenceSource.DSN,
                    outcome=Outcome.BOUNCED,
                    status="5.1.1",
                    observed_at=clock.now(),
                    detail="550 5.1.1 <bob@corp.test>: user unknown",
                    raw=b"Reporting-MTA: dns; mx.corp.test\r\n<script>alert(1)</script>\r\n",
                )
            ],
            now=clock.now(),
        )
        alert_id = open_alert(
            conn, delivery_id, reason="bounced", detail="550 5.1.1 user unknown", now=clock.now()
        )
    return delivery_id, alert_id
