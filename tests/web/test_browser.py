"""The dashboard and the acknowledgement page in real headless Chromium.

Debian's ``/usr/bin/chromium`` driven by Playwright, against a real uvicorn
server on a loopback port. Screenshots go to ``$LANDED_TEST_ARTIFACTS``
(default ``build/test-artifacts/``). Under CI a missing Chromium fails.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from landed.api import create_app
from landed.client import Client
from landed.clock import FixedClock
from landed.config import Settings
from landed.domain import EvidenceSource, Level
from landed.store import Database
from landed.store.alerts import find_alerts
from landed.store.ledger import NewEvidence, append_evidence
from landed.store.operators import add_operator
from tests.conftest import TEST_KEY, need_service
from tests.web.conftest import OPERATOR, PASSWORD, bounced_alert

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def artifacts() -> Path:
    directory = Path(os.environ.get("LANDED_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def server(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Settings, Database, FixedClock]]:
    """landed's HTTP app under uvicorn on 127.0.0.1, on a SQLite ledger."""
    monkeypatch.setenv("LANDED_CONFIG", str(tmp_path / "absent.toml"))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = Settings(
        database_url=sqlite_url,
        from_="Alerts <alerts@corp.test>",
        bounce_domain="bounce.test",
        signing_keys={"k1": TEST_KEY},
        public_url=base,
    )
    database = Database(sqlite_url)
    clock = FixedClock()
    app = create_app(settings, database, clock=clock)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    http = uvicorn.Server(config)
    thread = threading.Thread(target=http.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    for _ in range(200):
        if http.started:
            break
        threading.Event().wait(0.05)
    assert http.started, "uvicorn did not start"
    try:
        yield base, settings, database, clock
    finally:
        http.should_exit = True
        thread.join(timeout=10)
        listener.close()
        database.dispose()


def _launch(playwright: Any) -> Any:
    if not CHROMIUM.exists():
        need_service("chromium", f"{CHROMIUM} is not installed (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)


def test_log_in_open_every_page_resolve_an_alert_and_acknowledge(
    server: tuple[str, Settings, Database, FixedClock], artifacts: Path
) -> None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        need_service("playwright", str(exc))

    base, settings, database, clock = server
    add_operator(database, OPERATOR, PASSWORD, now=clock.now())
    notifier = Client(settings, clock=clock, database=database)
    delivery_id, alert_id = bounced_alert(notifier, database, clock)
    first, second = notifier.notify(
        topic="INC-7",
        cls="incident",
        to=["alice@corp.test", "carol@corp.test"],
        subject="Disk full again",
        text="t",
    )
    clock.advance(90)
    with database.write() as conn:
        append_evidence(
            conn,
            [
                NewEvidence(
                    delivery_id=first,
                    source=EvidenceSource.DSN,
                    level=Level.DELIVERED,
                    observed_at=clock.now(),
                    detail="Action: delivered",
                    raw=b"Action: delivered\r\nStatus: 2.0.0\r\n",
                )
            ],
            now=clock.now(),
        )
    clock.advance(hours=2)
    problems: list[str] = []

    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))

            page.goto(f"{base}/dashboard/")
            expect(page).to_have_url(f"{base}/dashboard/login?next=/dashboard/")
            page.screenshot(path=artifacts / "01-login.png")
            page.fill("input[name=username]", OPERATOR)
            page.fill("input[name=password]", PASSWORD)
            page.click("button:has-text('Log in')")
            expect(page).to_have_url(f"{base}/dashboard/")
            alert = page.locator(f"#alert-{alert_id}")
            expect(alert).to_contain_text("bounced")
            expect(alert).to_contain_text("bob@corp.test")
            expect(alert).to_contain_text("open 2h")
            page.screenshot(path=artifacts / "02-alerts.png", full_page=True)

            page.click("nav >> text=Topics")
            expect(page.locator("h1")).to_have_text("Topics")
            page.click("text=INC-7")
            expect(page.locator("table.matrix")).to_contain_text("carol@corp.test")
            page.screenshot(path=artifacts / "03-topic-matrix.png", full_page=True)

            page.click("nav >> text=Recipients")
            page.fill("input[name=address]", "bob@corp.test")
            page.click("button:has-text('Show ledger')")
            expect(page.locator("main")).to_contain_text("1 not proven")
            page.screenshot(path=artifacts / "04-recipient-ledger.png", full_page=True)

            page.click("text=#1")
            expect(page.locator("h1")).to_contain_text("Delivery")
            page.click("summary:has-text('Raw evidence')")
            raw = page.locator("pre.raw").first
            expect(raw).to_contain_text("<script>alert(1)</script>")  # shown as text
            page.screenshot(path=artifacts / "05-delivery.png", full_page=True)

            page.click("nav >> text=Charts")
            expect(page.locator("svg.chart").first).to_be_visible()
            page.screenshot(path=artifacts / "06-charts.png", full_page=True)

            page.fill("input[name=q]", second)
            page.press("input[name=q]", "Enter")
            expect(page).to_have_url(f"{base}/dashboard/deliveries/{second}")

            page.click("nav >> text=Alerts")
            alert.locator("input[name=note]").fill("address fixed in the directory")
            alert.locator("button:has-text('Resolve')").click()
            expect(page.locator("main")).to_contain_text("No open alerts")
            page.screenshot(path=artifacts / "07-alert-resolved.png", full_page=True)

            # The person's side: the acknowledgement page, then its button.
            token = settings.keyring().sign(second)
            reader = browser.new_page(viewport={"width": 900, "height": 700})
            reader.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            reader.goto(f"{base}/t/ack/{token}")
            expect(reader.locator("h1")).to_have_text("Did you get this notification?")
            reader.screenshot(path=artifacts / "08-ack-page.png", full_page=True)
            reader.click("button.primary")
            expect(reader.locator("h1")).to_have_text("Thank you")
            reader.screenshot(path=artifacts / "09-ack-done.png", full_page=True)
        finally:
            browser.close()

    with database.read() as conn:
        (resolved,) = find_alerts(conn, state=None, ids=[alert_id])
    assert resolved.state == "resolved"
    assert resolved.note == f"{OPERATOR}: address fixed in the directory"
    (acknowledged,) = notifier.status(second)
    assert acknowledged.level == "acknowledged"
    assert problems == [], f"the browser reported errors (CSP?): {problems}"
    shots = sorted(p.name for p in artifacts.glob("0*.png"))
    assert len(shots) >= 9 and all((artifacts / s).stat().st_size > 1000 for s in shots)
    assert delivery_id
