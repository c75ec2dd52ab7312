"""The dashboard over HTTP, on SQLite and PostgreSQL: login, CSRF, pages, actions."""

from __future__ import annotations

from fastapi import FastAPI

from landed.api import create_app
from landed.client import Client
from landed.clock import FixedClock
from landed.config import Settings
from landed.store import Database
from landed.store.alerts import find_alerts
from landed.store.operators import disable_operator
from tests.web.conftest import OPERATOR, PASSWORD, Http, bounced_alert, csrf_of, log_in

PAGES = [
    "/dashboard/",
    "/dashboard/?state=resolved",
    "/dashboard/topics",
    "/dashboard/topics?key=INC-7",
    "/dashboard/recipients",
    "/dashboard/recipients?address=bob@corp.test",
    "/dashboard/charts",
]


def test_every_page_needs_a_login(
    http: Http, notifier: Client, database: Database, clock: FixedClock, operator: str
) -> None:
    delivery_id, alert_id = bounced_alert(notifier, database, clock)
    for path in [*PAGES, f"/dashboard/deliveries/{delivery_id}", "/dashboard/search?q=INC-7"]:
        response = http.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/dashboard/login?next=")
    for path in (
        f"/dashboard/alerts/{alert_id}/resolve",
        f"/dashboard/alerts/{alert_id}/acknowledge",
    ):
        response = http.post(path, data={"csrf": "x", "note": "n"})
        assert response.status_code == 303
    with database.read() as conn:
        (alert,) = find_alerts(conn, state=None)
    assert alert.state == "open" and [e[1] for e in alert.timeline] == ["opened"]
    assert http.get("/").headers["location"] == "/dashboard/"
    assert http.get("/dashboard/static/style.css").status_code == 200, "styles need no login"


def test_login_logout_and_the_session_cookie(
    http: Http, operator: str, clock: FixedClock, database: Database
) -> None:
    page = http.get("/dashboard/login")
    assert "content-security-policy" in page.headers
    done = log_in(http)
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/"
    cookie = done.headers["set-cookie"]
    assert "landed_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie, "public_url is http here"
    assert http.get("/dashboard/").status_code == 200
    logout = http.post("/dashboard/logout", data={"csrf": csrf_of(http.get("/dashboard/").text)})
    assert logout.status_code == 303
    assert http.get("/dashboard/").status_code == 303, "logged out"
    # Sessions expire, and a disabled operator's session stops at once.
    log_in(http)
    clock.advance(hours=13)
    assert http.get("/dashboard/").status_code == 303
    log_in(http)
    disable_operator(database, OPERATOR, now=clock.now())
    assert http.get("/dashboard/").status_code == 303


def test_session_cookie_is_secure_behind_https(
    settings: Settings, database: Database, clock: FixedClock, operator: str
) -> None:
    app = create_app(
        settings.model_copy(update={"public_url": "https://landed.corp.test"}),
        database,
        clock=clock,
    )
    done = log_in(Http(app, base_url="https://landed.corp.test"))
    assert "Secure" in done.headers["set-cookie"]


def test_wrong_passwords_are_refused_then_throttled(http: Http, operator: str) -> None:
    for _ in range(5):
        failed = log_in(http, password="wrong")
        assert failed.status_code == 303 and "error=failed" in failed.headers["location"]
        assert "landed_session" not in failed.headers.get("set-cookie", "")
    throttled = log_in(http)  # the right password, too late
    assert "error=throttled" in throttled.headers["location"]
    assert "Too many failed attempts" in http.get(throttled.headers["location"]).text
    assert http.get("/dashboard/").status_code == 303


def test_forged_sessions_and_csrf_are_rejected(
    http: Http,
    app: FastAPI,
    notifier: Client,
    database: Database,
    clock: FixedClock,
    operator: str,
) -> None:
    _, alert_id = bounced_alert(notifier, database, clock)
    page = http.get("/dashboard/login")
    no_cookie = Http(app)
    refused = no_cookie.post(
        "/dashboard/login",
        data={"username": OPERATOR, "password": PASSWORD, "csrf": csrf_of(page.text)},
    )
    assert refused.status_code == 403, "the login form is tied to its own cookie"
    log_in(http)
    for token in ("", "forged", csrf_of(page.text)):
        response = http.post(
            f"/dashboard/alerts/{alert_id}/resolve", data={"csrf": token, "note": "done"}
        )
        assert response.status_code == 403
    response = http.post(f"/dashboard/alerts/{alert_id}/acknowledge", data={"note": "x"})
    assert response.status_code == 403
    with database.read() as conn:
        (alert,) = find_alerts(conn, state=None)
    assert alert.state == "open" and len(alert.timeline) == 1
    # A session cookie with a changed user name does not verify.
    session = http.cookies["landed_session"]
    version, _user, rest = session.split(".", 2)
    forged = Http(app)
    forged.cookies.set("landed_session", f"{version}.{'YWRtaW4'}.{rest}", domain="landed.test")
    assert forged.get("/dashboard/").status_code == 303


def test_acknowledge_and_resolve_an_alert(
    http: Http, notifier: Client, database: Database, clock: FixedClock, operator: str
) -> None:
    _, alert_id = bounced_alert(notifier, database, clock)
    log_in(http)
    clock.advance(hours=3)
    page = http.get("/dashboard/")
    assert "open 3h 0m" in page.text and "550 5.1.1 user unknown" in page.text
    csrf = csrf_of(page.text)
    acked = http.post(
        f"/dashboard/alerts/{alert_id}/acknowledge", data={"csrf": csrf, "note": "calling Bob"}
    )
    assert acked.status_code == 303
    with database.read() as conn:
        (alert,) = find_alerts(conn)
    assert alert.state == "open"
    assert alert.timeline[-1][1:] == ("acknowledged", f"by {OPERATOR}: calling Bob")
    assert "acknowledged by ops: calling Bob" in http.get("/dashboard/").text
    done = http.post(
        f"/dashboard/alerts/{alert_id}/resolve", data={"csrf": csrf, "note": "typo in address"}
    )
    assert done.status_code == 303
    with database.read() as conn:
        (alert,) = find_alerts(conn, state=None)
    assert alert.state == "resolved" and alert.resolved_by == "person"
    assert alert.note == f"{OPERATOR}: typo in address"
    assert "No open alerts" in http.get("/dashboard/").text
    assert "typo in address" in http.get("/dashboard/?state=resolved").text


def test_pages_show_the_ledger_and_escape_raw_evidence(
    http: Http,
    notifier: Client,
    database: Database,
    clock: FixedClock,
    settings: Settings,
    operator: str,
) -> None:
    delivery_id, _ = bounced_alert(notifier, database, clock)
    notifier.notify(topic="INC-7", cls="incident", to=["alice@corp.test"], subject="Up", text="t")
    log_in(http)
    for path in PAGES:
        page = http.get(path)
        assert page.status_code == 200, path
        assert "<script" not in page.text
    matrix = http.get("/dashboard/topics?key=INC-7").text
    assert "alice@corp.test" in matrix and "bob@corp.test" in matrix and "bounced" in matrix
    ledger = http.get("/dashboard/recipients?address=bob@corp.test").text
    assert "1 not proven" in ledger and "Disk full" in ledger
    page = http.get(f"/dashboard/deliveries/{delivery_id}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, "raw evidence is shown, escaped"
    assert "<script>" not in page
    assert "550 5.1.1" in page
    charts = http.get("/dashboard/charts?days=7").text
    assert "<svg" in charts and "≥ queued" in charts
    assert http.get("/dashboard/deliveries/nonsense").status_code == 404
    assert http.get("/dashboard/charts?days=0").status_code == 422


def test_search_finds_tokens_ids_refs_addresses_and_topics(
    http: Http,
    notifier: Client,
    database: Database,
    clock: FixedClock,
    settings: Settings,
    operator: str,
) -> None:
    delivery_id, _ = bounced_alert(notifier, database, clock)
    log_in(http)
    (view,) = notifier.status(delivery_id)
    for q in (settings.keyring().sign(delivery_id), delivery_id.upper(), view.ref):
        found = http.get("/dashboard/search", params={"q": q})
        assert found.headers["location"] == f"/dashboard/deliveries/{delivery_id}", q
    by_address = http.get("/dashboard/search", params={"q": "Bob@corp.test"})
    assert by_address.headers["location"].startswith("/dashboard/recipients?address=")
    by_topic = http.get("/dashboard/search", params={"q": "INC-7"})
    assert by_topic.headers["location"] == "/dashboard/topics?key=INC-7"
    nothing = http.get("/dashboard/search", params={"q": "<b>nothing</b>"})
    assert nothing.status_code == 200 and "Nothing found" in nothing.text
    assert "<b>nothing</b>" not in nothing.text


def test_login_redirects_only_within_the_dashboard(http: Http, operator: str) -> None:
    page = http.get("/dashboard/login", params={"next": "https://evil.test/"})
    assert 'value="/dashboard/"' in page.text
    done = http.post(
        "/dashboard/login",
        data={
            "username": OPERATOR,
            "password": PASSWORD,
            "csrf": csrf_of(page.text),
            "next": "//evil.test/x",
        },
    )
    assert done.headers["location"] == "/dashboard/"
