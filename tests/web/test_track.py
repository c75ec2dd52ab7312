"""The tracking endpoints over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from fastapi import FastAPI
from sqlalchemy import func, select

from landed.client import Client
from landed.compose.links import TrackingLinks
from landed.config import Settings
from landed.store import Database
from landed.store import tables as t
from landed.tokens import new_id
from tests.web.conftest import Http


def evidence_count(db: Database) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(t.evidence)).scalar_one())


def level_of(client: Client, delivery_id: str) -> str:
    (view,) = client.status(delivery_id)
    return view.level


def hits(app: FastAPI, kind: str, result: str) -> float:
    value = app.state.metrics.registry.get_sample_value(
        "landed_tracking_hits_total", {"kind": kind, "result": result}
    )
    return float(value or 0)


def token_of(settings: Settings, delivery_id: str) -> str:
    return settings.keyring().sign(delivery_id)


def forged(token: str) -> str:
    """The same token with its MAC's last character changed."""
    last = "0" if token[-1] != "0" else "1"
    return token[:-1] + last


def test_bad_tokens_get_one_plain_404_and_write_nothing(
    http: Http, app: FastAPI, notifier: Client, settings: Settings, database: Database
) -> None:
    (delivery_id,) = notifier.notify(
        topic="INC-1", cls="incident", to=["bob@corp.test"], subject="s", text="t"
    )
    good = token_of(settings, delivery_id)
    unknown = token_of(settings, new_id())  # verifies, but no such delivery
    other_key = good[:26] + "k9" + good[28:]  # a key id that is not configured
    before = evidence_count(database)
    bodies = set()
    for token in (forged(good), unknown, other_key, "abc", "x" * 43, good.upper() + "zz"):
        for method, path in (
            ("GET", f"/t/open/{token}.gif"),
            ("GET", f"/t/ack/{token}"),
            ("POST", f"/t/ack/{token}"),
            ("GET", f"/t/click/{token}?u=https%3A%2F%2Fexample.test%2F&s={'a' * 26}"),
            ("GET", f"/t/open/{token}.gif"),
            ("POST", f"/t/ack/{token}"),
        ):
            response = http.request(method, path)
            assert response.status_code == 404, (method, path)
            assert response.headers["content-type"].startswith("text/plain")
            bodies.add(response.text)
    for path in ("/t/", "/t/open/", "/t/nothing/here", f"/t/open/{good}.png"):
        response = http.get(path)
        assert response.status_code == 404
        bodies.add(response.text)
    assert bodies == {"Not found\n"}, "every bad token gets the same body"
    assert evidence_count(database) == before
    assert level_of(notifier, delivery_id) == "queued"
    assert hits(app, "open", "invalid") == 12
    assert hits(app, "ack", "invalid") == 18


def test_the_token_survives_case_folding(http: Http, notifier: Client, settings: Settings) -> None:
    (delivery_id,) = notifier.notify(
        topic="INC-1", cls="incident", to=["bob@corp.test"], subject="s", text="t"
    )
    response = http.get(f"/t/ack/{token_of(settings, delivery_id).upper()}")
    assert response.status_code == 200


def test_ack_page_get_shows_the_notification_and_records_nothing(
    http: Http, app: FastAPI, notifier: Client, settings: Settings, database: Database
) -> None:
    first, second = (
        notifier.notify(
            topic=f"INC-{n}", cls="incident", to=["bob@corp.test"], subject=f"Disk {n}", text="t"
        )[0]
        for n in (1, 2)
    )
    before = evidence_count(database)
    for _ in range(3):  # a link scanner, a preview, the person: all GETs
        page = http.get(f"/t/ack/{token_of(settings, second)}")
        assert page.status_code == 200
    assert page.headers["cache-control"].startswith("no-store")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "script-src" not in page.headers["content-security-policy"]
    html = page.text
    assert "#2 for you" in html and "INC-2" in html and "Disk 2" in html
    assert "Disk 1" in html, "the outstanding list shows the earlier notification"
    assert '<form method="post"' in html
    assert evidence_count(database) == before, "a GET never records anything"
    assert level_of(notifier, first) == level_of(notifier, second) == "queued"
    assert hits(app, "ack", "shown") == 3


def test_ack_post_is_cumulative_up_to_n(
    http: Http, app: FastAPI, notifier: Client, settings: Settings
) -> None:
    ids = [
        notifier.notify(
            topic=f"INC-{n}", cls="incident", to=["bob@corp.test"], subject=f"n{n}", text="t"
        )[0]
        for n in (1, 2, 3)
    ]
    (alice,) = notifier.notify(
        topic="INC-9", cls="incident", to=["alice@corp.test"], subject="a", text="t"
    )
    done = http.post(f"/t/ack/{token_of(settings, ids[2])}")
    assert done.status_code == 200
    assert "Thank you" in done.text and "#3" in done.text
    assert done.text.count("confirmed</span>") == 3
    assert [level_of(notifier, i) for i in ids] == ["acknowledged"] * 3
    assert level_of(notifier, alice) == "queued", "other recipients are untouched"
    (later,) = notifier.notify(
        topic="INC-4", cls="incident", to=["bob@corp.test"], subject="n4", text="t"
    )
    assert level_of(notifier, later) == "queued", "nothing after #3 is confirmed"
    (first,) = notifier.status(ids[0])
    assert "confirmed cumulatively by #3" in (first.evidence[-1].detail or "")
    (third,) = notifier.status(ids[2])
    (ack,) = [e for e in third.evidence if e.source == "ack"]
    assert "public network" in (ack.detail or "")
    again = http.post(f"/t/ack/{token_of(settings, ids[2])}")
    assert again.status_code == 200
    (third_again,) = notifier.status(ids[2])
    assert len(third_again.evidence) == len(third.evidence), "acknowledging twice records once"
    assert hits(app, "ack", "counted") == 2


def test_pixel_from_a_mail_client_is_seen(
    http: Http, app: FastAPI, notifier: Client, settings: Settings, database: Database
) -> None:
    (delivery_id,) = notifier.notify(
        topic="INC-1", cls="incident", to=["bob@corp.test"], subject="s", text="t"
    )
    response = http.get(f"/t/open/{token_of(settings, delivery_id)}.gif")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert "no-store" in response.headers["cache-control"]
    assert level_of(notifier, delivery_id) == "seen"
    (view,) = notifier.status(delivery_id)
    (pixel,) = view.evidence
    assert pixel.source == "pixel" and pixel.level == "seen"
    with database.read() as conn:
        raw = conn.execute(select(t.evidence.c.raw).where(t.evidence.c.id == pixel.id)).scalar_one()
    recorded = json.loads(raw)
    assert recorded["network"] == "public" and "Thunderbird" in recorded["user_agent"]
    assert "81.2.69.160" not in raw.decode(), "the address itself is not kept"
    http.get(f"/t/open/{token_of(settings, delivery_id)}.gif")
    (again,) = notifier.status(delivery_id)
    assert len(again.evidence) == 1, "the same client reloading is one fact"
    assert hits(app, "open", "counted") == 2


#: (user agent, client address, the fetcher it must be recognised as)
MACHINES = [
    (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "66.249.84.1",
        "google-image-proxy",
    ),
    (
        "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
        "98.136.1.1",
        "yahoo-mail-proxy",
    ),
    ("Mozilla/5.0", "172.224.1.1", "apple-mail-privacy"),
    (
        "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        "17.58.1.2",
        "apple-mail-privacy",
    ),
    ("Barracuda Sentinel (EE)", "81.2.69.161", "barracuda"),
    ("curl/8.5.0", "81.2.69.161", "http-client"),
    ("", "81.2.69.161", "no-user-agent"),
]


def test_machine_fetches_of_the_pixel_are_flagged_not_seen(
    app: FastAPI, notifier: Client, settings: Settings
) -> None:
    ids = notifier.notify(
        topic="INC-1",
        cls="incident",
        to=[f"r{i}@corp.test" for i in range(len(MACHINES))],
        subject="s",
        text="t",
    )
    for delivery_id, (user_agent, address, fetcher) in zip(ids, MACHINES, strict=True):
        machine = Http(app, user_agent=user_agent)
        response = machine.get(f"/t/open/{token_of(settings, delivery_id)}.gif", address=address)
        assert response.status_code == 200, "machines still get the image"
        assert level_of(notifier, delivery_id) == "queued", user_agent
        (view,) = notifier.status(delivery_id)
        (pixel,) = view.evidence
        assert pixel.source == "pixel" and pixel.level is None
        assert "by a machine, not counted" in (pixel.detail or "")
        assert f"[{fetcher}]" in (pixel.detail or ""), (user_agent, pixel.detail)
    assert hits(app, "open", "machine") == len(MACHINES)
    assert hits(app, "open", "counted") == 0


def test_a_head_request_is_not_an_open(http: Http, notifier: Client, settings: Settings) -> None:
    (delivery_id,) = notifier.notify(
        topic="INC-1", cls="incident", to=["bob@corp.test"], subject="s", text="t"
    )
    response = http.request("HEAD", f"/t/open/{token_of(settings, delivery_id)}.gif")
    assert response.status_code == 200
    assert level_of(notifier, delivery_id) == "queued"


def test_signed_click_redirects_and_counts_as_seen_never_acknowledged(
    http: Http, app: FastAPI, notifier: Client, settings: Settings
) -> None:
    (delivery_id,) = notifier.notify(
        topic="INC-1", cls="incident", to=["bob@corp.test"], subject="s", text="t"
    )
    token = token_of(settings, delivery_id)
    links = TrackingLinks(settings.public_url, token, settings.keyring(), clicks=True)
    target = "https://status.corp.test/incidents/1?tab=log&x=%2F"
    url = links.click_url(target)
    response = http.get(url.removeprefix(settings.public_url))
    assert response.status_code == 302
    assert response.headers["location"] == target
    assert response.headers["referrer-policy"] == "no-referrer"
    assert level_of(notifier, delivery_id) == "seen"
    (view,) = notifier.status(delivery_id)
    assert [e.source for e in view.evidence] == ["click"]
    assert target in (view.evidence[0].detail or "")
    assert hits(app, "click", "counted") == 1


def test_tampered_click_targets_get_the_plain_404(
    http: Http, notifier: Client, settings: Settings, database: Database
) -> None:
    first, second = notifier.notify(
        topic="INC-1", cls="incident", to=["bob@corp.test", "eve@corp.test"], subject="s", text="t"
    )
    links = TrackingLinks(
        settings.public_url, token_of(settings, first), settings.keyring(), clicks=True
    )
    path = links.click_url("https://status.corp.test/").removeprefix(settings.public_url)
    other_token = token_of(settings, second)
    before = evidence_count(database)
    for bad in (
        path.replace("status.corp.test", "evil.test"),  # another target
        path[:-1] + ("a" if path[-1] != "a" else "b"),  # another signature
        path.replace(token_of(settings, first), other_token),  # another delivery's link
        path.split("&s=")[0],  # no signature
        path + "x" * 70,  # an overlong signature
        f"/t/click/{token_of(settings, first)}?u={'a' * 5000}&s={'b' * 26}",  # an overlong target
        f"/t/click/{token_of(settings, first)}",  # nothing at all
    ):
        response = http.get(bad)
        assert response.status_code == 404, bad
        assert response.text == "Not found\n"
        assert "location" not in response.headers
    # A signed non-web target (javascript:, data:) is never served either.
    evil = TrackingLinks(
        settings.public_url, token_of(settings, first), settings.keyring(), clicks=True
    ).click_url("javascript:alert(1)")
    assert http.get(evil.removeprefix(settings.public_url)).status_code == 404
    assert evidence_count(database) == before


def test_a_scanner_following_a_link_is_redirected_but_not_counted(
    app: FastAPI, notifier: Client, settings: Settings
) -> None:
    (delivery_id,) = notifier.notify(
        topic="INC-1", cls="incident", to=["bob@corp.test"], subject="s", text="t"
    )
    links = TrackingLinks(
        settings.public_url, token_of(settings, delivery_id), settings.keyring(), clicks=True
    )
    scanner = Http(app, user_agent="Mozilla/5.0 (compatible; Proofpoint URL Defense)")
    response = scanner.get(links.click_url("https://corp.test/").removeprefix(settings.public_url))
    assert response.status_code == 302
    assert level_of(notifier, delivery_id) == "queued"
    assert hits(app, "click", "machine") == 1
