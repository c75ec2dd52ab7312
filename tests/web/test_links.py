"""Tracked URLs in outgoing mail (pure compose), and the sender putting them there."""

from __future__ import annotations

import email
import email.policy
import html as html_lib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from landed.compose import OutgoingMessage, Outstanding, compose, parse_mailbox
from landed.compose.links import TrackingLinks, click_signature, rewrite_links, verify_click
from landed.config import RelayURL, Settings
from landed.sender import Sender
from landed.store import Database
from landed.store.outbox import SendJob
from landed.tokens import Keyring, new_id, topic_root_id
from landed.transport.smtp import SMTPRelay

RING = Keyring("k1", {"k1": b"k" * 32})
BASE = "https://landed.corp.test"
WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def links_for(token: str, **flags: bool) -> TrackingLinks:
    return TrackingLinks(BASE + "/", token, RING, **flags)


def message(links: TrackingLinks | None, html: str | None = None) -> OutgoingMessage:
    delivery_id = new_id()
    token = links.token if links else RING.sign(delivery_id)
    return OutgoingMessage(
        sender=parse_mailbox("Alerts <alerts@corp.test>", "from"),
        recipient=parse_mailbox("bob@corp.test", "to"),
        subject="Database down",
        text="db-3 is not answering.\n",
        html=html,
        topic_key="INC-1",
        topic_root=topic_root_id("INC-1", "corp.test"),
        delivery_id=token[:26],
        token=token,
        message_id_domain="corp.test",
        seq=7,
        date=WHEN,
        outstanding=(Outstanding(5, "INC-0", "Disk full", new_id(), WHEN),),
        links=links,
    )


def parts(raw: bytes) -> dict[str, str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    found = {}
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            found[part.get_content_subtype()] = part.get_content()
    return found


def test_paths_and_signatures() -> None:
    token = RING.sign(new_id())
    links = links_for(token)
    assert links.ack_url == f"{BASE}/t/ack/{token}"
    assert links.pixel_url == f"{BASE}/t/open/{token}.gif"
    url = links.click_url("https://status.corp.test/a b?x=1&y=2")
    query = parse_qs(urlsplit(url).query)
    assert urlsplit(url).path == f"/t/click/{token}"
    assert query["u"] == ["https://status.corp.test/a b?x=1&y=2"]
    assert verify_click(RING, token, query["u"][0], query["s"][0])
    assert not verify_click(RING, token, "https://status.corp.test/other", query["s"][0])
    assert not verify_click(RING, RING.sign(new_id()), query["u"][0], query["s"][0])
    assert not verify_click(RING, token, query["u"][0], "0" * 26)
    assert not verify_click(RING, token, query["u"][0], "short")


def test_click_signatures_survive_a_key_rotation() -> None:
    token = RING.sign(new_id())
    target = "https://status.corp.test/"
    rotated = Keyring("k2", {"k1": b"k" * 32, "k2": b"n" * 32})
    assert click_signature(rotated, token, target) == click_signature(RING, token, target)
    retired = Keyring("k2", {"k2": b"n" * 32})
    assert not verify_click(retired, token, target, click_signature(RING, token, target))


def test_text_part_carries_the_ack_link_and_never_a_pixel() -> None:
    token = RING.sign(new_id())
    body = parts(compose(message(links_for(token, pixel=True, clicks=True))))
    text = body["plain"]
    assert f"Got it? Confirm #7 and the earlier ones listed below: {BASE}/t/ack/{token}" in text
    assert "/t/open/" not in text and "/t/click/" not in text
    alone = parts(compose(message(None)))["plain"]
    assert "/t/ack/" not in alone, "no links object, no tracked URLs"


def test_html_part_ack_link_pixel_and_rewritten_links() -> None:
    token = RING.sign(new_id())
    html = (
        '<html><body><p>See <a href="https://status.corp.test/i?a=1&amp;b=2">status</a>, '
        "<A HREF='http://wiki.corp.test/x'>wiki</A>, <a href=\"mailto:ops@corp.test\">mail</a>, "
        '<a href="#top">top</a>.</p></body></html>'
    )
    raw = compose(message(links_for(token, pixel=True, clicks=True), html))
    out = parts(raw)["html"]
    assert f'<a href="{BASE}/t/ack/{token}">Got it? Confirm #7' in out
    assert f'<img src="{BASE}/t/open/{token}.gif" width="1" height="1" alt=""' in out
    assert out.index("/t/open/") < out.lower().index("</body>")
    assert 'href="mailto:ops@corp.test"' in out and 'href="#top"' in out
    assert 'status.corp.test/i?a=1&amp;b=2"' not in out, "the web links are rewritten"
    rewritten = [
        html_lib.unescape(href)
        for href in re.findall(r"""href=["']([^"']*)["']""", out, re.IGNORECASE)
        if "/t/click/" in href
    ]
    assert len(rewritten) == 2
    query = parse_qs(urlsplit(rewritten[0]).query)
    assert query["u"] == ["https://status.corp.test/i?a=1&b=2"], "the URL as a browser reads it"
    assert verify_click(RING, token, query["u"][0], query["s"][0])
    assert parse_qs(urlsplit(rewritten[1]).query)["u"] == ["http://wiki.corp.test/x"]


def test_defaults_carry_only_the_ack_link() -> None:
    token = RING.sign(new_id())
    html = '<p><a href="https://status.corp.test/">status</a></p>'
    out = parts(compose(message(links_for(token), html)))["html"]
    assert f"{BASE}/t/ack/{token}" in out
    assert "/t/open/" not in out and "/t/click/" not in out
    assert 'href="https://status.corp.test/"' in out


def test_rewriting_leaves_our_own_links_alone() -> None:
    token = RING.sign(new_id())
    links = links_for(token, clicks=True)
    own = f'<a href="{links.ack_url}">ack</a>'
    assert rewrite_links(own, links) == own


def test_the_same_delivery_composes_to_the_same_bytes() -> None:
    token = RING.sign(new_id())
    first = message(links_for(token, pixel=True, clicks=True), '<a href="https://x.test/">x</a>')
    assert compose(first) == compose(first)


@pytest.fixture
def sender_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LANDED_CONFIG", str(tmp_path / "absent.toml"))
    for name in list(os.environ):
        if name.startswith("LANDED_") and name != "LANDED_CONFIG":
            monkeypatch.delenv(name)
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        from_="Alerts <alerts@corp.test>",
        bounce_domain="bounce.test",
        signing_keys={"k1": "0123456789abcdef0123456789abcdef"},
        relay_url="smtp://127.0.0.1:1?starttls=off",
        public_url="https://landed.corp.test/",
    )


@pytest.mark.parametrize(
    ("flags", "ack", "pixel", "click"),
    [
        ({}, True, False, False),
        ({"track_opens": True, "track_clicks": True}, True, True, True),
        ({"track_ack_link": False}, False, False, False),
    ],
)
def test_the_sender_puts_in_what_the_settings_ask_for(
    sender_settings: Settings, flags: dict[str, bool], ack: bool, pixel: bool, click: bool
) -> None:
    settings = sender_settings.model_copy(update=flags)
    db = Database(settings.database_url)
    sender = Sender(db, settings, SMTPRelay(RelayURL(settings.relay_url or "")))
    delivery_id = new_id()
    token = settings.keyring().sign(delivery_id)
    job = SendJob(
        delivery_id=delivery_id,
        token=token,
        seq=1,
        to_header="bob@corp.test",
        recipient="bob@corp.test",
        topic_key="INC-1",
        cls="incident",
        sender="Alerts <alerts@corp.test>",
        subject="s",
        text="t",
        html='<p><a href="https://status.corp.test/">status</a></p>',
        created_at=WHEN,
    )
    raw, _envelope = sender.build(job)
    body = parts(raw)
    assert (f"https://landed.corp.test/t/ack/{token}" in body["plain"]) is ack
    assert (f"https://landed.corp.test/t/open/{token}.gif" in body["html"]) is pixel
    assert ("/t/click/" in body["html"]) is click
    db.dispose()
