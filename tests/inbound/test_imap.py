"""The IMAP bounce-mailbox poller against a real Dovecot, on both engines."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select, update

from landed.client import Client
from landed.clock import FixedClock
from landed.config import ImapURL, Settings
from landed.inbound.imap import ImapPoller
from landed.store import Database
from landed.store import tables as t
from tests.dovecot import Dovecot
from tests.inbound.dsn import Rcpt, postfix_dsn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with Dovecot() as server:
        server.add_user("bounces", "secret")
        yield server


class Mailbox:
    def __init__(self, dovecot: Dovecot, settings: Settings, clock: FixedClock) -> None:
        # One folder pair per test, so tests never see each other's mail.
        self.dovecot = dovecot
        self.user = "bounces"
        self.name = f"t{uuid.uuid4().hex[:8]}"
        dovecot.folder(self.user, self.name)
        self.url = ImapURL(
            dovecot.url(self.user, "secret", self.name, processed=f"{self.name}-done")
        )
        self.db = Database(settings.database_url)
        self.client = Client(settings, clock=clock, database=self.db)
        self.keyring = settings.keyring()
        self.clock = clock

    def poller(self, **kw: object) -> ImapPoller:
        return ImapPoller(self.db, self.keyring, self.url, clock=self.clock, **kw)  # type: ignore[arg-type]

    def deliver(self, raw: bytes) -> None:
        self.dovecot.deliver(self.user, raw, self.name)

    def folder_sizes(self) -> tuple[int, int]:
        imap = IMAPClient("127.0.0.1", port=self.dovecot.port, ssl=False, timeout=10)
        imap.login(self.user, "secret")
        try:
            imap.select_folder(self.name)
            inbox = len(imap.search(["ALL"]))
            imap.select_folder(self.url.processed)
            processed = len(imap.search(["ALL"]))
        finally:
            imap.logout()
        return inbox, processed

    def inbound_count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(t.inbound)).scalar_one())


@pytest.fixture
def mailbox(dovecot: Dovecot, settings: Settings, clock: FixedClock) -> Iterator[Mailbox]:
    box = Mailbox(dovecot, settings, clock)
    yield box
    box.db.dispose()


def test_poll_stores_reads_and_moves_every_message(mailbox: Mailbox) -> None:
    a, b = mailbox.client.notify_detailed(
        topic="INC-1", cls="c", to=["a@corp.test", "b@corp.test"], subject="s", text="t"
    ).deliveries
    mailbox.deliver(
        postfix_dsn(
            [Rcpt("a@corp.test", "failed", "5.1.1", "550 5.1.1 User unknown")], envid=a.token
        )
    )
    mailbox.deliver(
        postfix_dsn(
            [Rcpt("b@corp.test", "delivered", "2.0.0")], message_id=f"<{b.token}@corp.test>"
        )
    )
    mailbox.deliver(b"From: someone@other.test\r\nSubject: hello\r\n\r\nnot a bounce\r\n")
    poller = mailbox.poller()
    try:
        assert poller.poll_once() == 3
    finally:
        poller.close()
    (va,) = mailbox.client.status(a.delivery_id)
    (vb,) = mailbox.client.status(b.delivery_id)
    assert va.outcome == "bounced" and va.evidence[0].status == "5.1.1"
    assert vb.level == "delivered"
    assert mailbox.folder_sizes() == (0, 3), "read mail is moved, not deleted"
    with mailbox.db.read() as conn:
        states = sorted(conn.execute(select(t.inbound.c.state)).scalars())
        attribution = sorted(conn.execute(select(t.evidence.c.attribution)).scalars())
    assert states == ["ingested", "ingested", "quarantined"]
    assert attribution == ["envid", "message-id"]


def test_restarts_are_idempotent(mailbox: Mailbox) -> None:
    d = mailbox.client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
    ).deliveries[0]
    mailbox.deliver(postfix_dsn([Rcpt("a@corp.test", "delayed", "4.4.1")], envid=d.token))
    first = mailbox.poller()
    assert first.poll_once() == 1
    first.close()
    second = mailbox.poller()
    assert second.poll_once() == 0, "the checkpoint remembers"
    mailbox.deliver(postfix_dsn([Rcpt("a@corp.test", "delivered", "2.0.0")], envid=d.token))
    assert second.poll_once() == 1
    second.close()
    (view,) = mailbox.client.status(d.delivery_id)
    assert [e.outcome or e.level for e in view.evidence] == ["deferred", "delivered"]
    assert view.level == "delivered" and view.outcome is None
    assert mailbox.inbound_count() == 2


def test_a_crash_before_the_move_neither_loses_nor_doubles(mailbox: Mailbox) -> None:
    d = mailbox.client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
    ).deliveries[0]
    mailbox.deliver(postfix_dsn([Rcpt("a@corp.test", "failed", "5.2.2")], envid=d.token))
    crashing = mailbox.poller()

    def crash(*_: object) -> None:
        raise ConnectionResetError("connection lost before MOVE")

    crashing._move = crash  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        crashing.poll_once()
    crashing.close()
    assert mailbox.folder_sizes() == (1, 0), "not moved: still in the mailbox"
    (view,) = mailbox.client.status(d.delivery_id)
    assert view.outcome == "bounced", "but its evidence was committed first"
    again = mailbox.poller()
    assert again.poll_once() == 0
    again.close()
    assert mailbox.folder_sizes() == (0, 1)
    assert mailbox.inbound_count() == 1, "the leftover was moved, not stored twice"


def test_uidvalidity_change_rereads_without_double_counting(mailbox: Mailbox) -> None:
    d = mailbox.client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
    ).deliveries[0]
    raw = postfix_dsn([Rcpt("a@corp.test", "failed", "5.1.1")], envid=d.token)
    mailbox.deliver(raw)
    poller = mailbox.poller()
    poller.poll_once()
    with mailbox.db.write() as conn:
        conn.execute(update(t.imap_checkpoint).values(uidvalidity=1, last_uid=999))
    mailbox.deliver(raw)  # the same bounce again, as after a mailbox restore
    assert poller.poll_once() == 1
    poller.close()
    (view,) = mailbox.client.status(d.delivery_id)
    assert len(view.evidence) == 1, "the same message is the same evidence"


def test_idle_wakes_the_poller_when_mail_arrives(mailbox: Mailbox) -> None:
    d = mailbox.client.notify_detailed(
        topic="T", cls="c", to=["a@corp.test"], subject="s", text="t"
    ).deliveries[0]
    arrived = threading.Event()
    poller = mailbox.poller(on_ingested=lambda _id: arrived.set())
    stop = threading.Event()
    runner = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    runner.start()
    try:
        threading.Event().wait(1.0)  # let it reach IDLE
        mailbox.deliver(postfix_dsn([Rcpt("a@corp.test", "delivered", "2.0.0")], envid=d.token))
        assert arrived.wait(15), "IDLE should report the new message"
    finally:
        stop.set()
        runner.join(10)
    (view,) = mailbox.client.status(d.delivery_id)
    assert view.level == "delivered"


def test_bad_imap_urls() -> None:
    with pytest.raises(ValueError, match="password"):
        ImapURL("imap://user@127.0.0.1/INBOX")
    with pytest.raises(ValueError, match="clear"):
        ImapURL("imap://u:p@mail.corp.test/INBOX?starttls=off")
    url = ImapURL("imaps://u:p%40x@mail.corp.test/Bounces?processed=Done")
    assert (url.port, url.mailbox, url.processed, url.password) == (993, "Bounces", "Done", "p@x")
    assert "p@x" not in url.key
