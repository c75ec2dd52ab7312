"""The IMAP bounce-mailbox poller (imapclient).

For deployments where bounces land in a corporate mailbox rather than at
landed's own SMTP listener. Each message is handled in this order, so nothing
is lost whatever fails or crashes in between:

1. fetched with ``BODY.PEEK[]`` (the server's \\Seen flag is left alone);
2. stored raw in the ledger, and the mailbox's checkpoint (UIDVALIDITY, last
   UID) advanced, in one transaction;
3. read into evidence (``landed.ingest``), committed;
4. only then moved to the ``processed`` folder (``MOVE``, or ``COPY`` +
   ``\\Deleted`` + ``UID EXPUNGE`` where the server lacks MOVE).

A restart resumes from the checkpoint; a message fetched but not yet moved is
recognised by its UID being at or below the checkpoint, and moved without
being stored again. If the server's UIDVALIDITY changes (the mailbox was
recreated), the checkpoint starts over: the evidence dedupe key, derived from
the message bytes, keeps re-read messages from counting twice. Where the
server offers IDLE, the poller waits on it instead of polling.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import select

from landed.clock import Clock, SystemClock
from landed.config import ImapURL
from landed.ingest import ingest
from landed.store import Database
from landed.store import tables as t
from landed.store.forwards import ReplyForwarding
from landed.store.inbound import pending_ids, store_inbound
from landed.store.ledger import dialect_insert
from landed.tokens import Keyring

log = logging.getLogger("landed.imap")

#: Messages fetched per FETCH command.
FETCH_CHUNK = 50
#: Longest IDLE before re-issuing it (RFC 2177 asks clients to re-IDLE within 29 minutes).
IDLE_SECONDS = 25 * 60


class ImapPoller:
    """Reads one IMAP mailbox into the ledger."""

    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        url: ImapURL,
        *,
        clock: Clock | None = None,
        on_ingested: Callable[[int], None] | None = None,
        forwarding: ReplyForwarding | None = None,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.url = url
        self.clock = clock or SystemClock()
        self.on_ingested = on_ingested
        #: Where new human replies are forwarded (``landed.forwarder``); None: nowhere.
        self.forwarding = forwarding
        self._client: IMAPClient | None = None

    # --- connection ------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.url.cafile)
        if not self.url.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self) -> IMAPClient:
        """The open connection, logged in, with the processed folder present."""
        if self._client is not None:
            return self._client
        client = IMAPClient(
            self.url.host,
            port=self.url.port,
            ssl=self.url.implicit_tls,
            ssl_context=self._ssl_context() if self.url.implicit_tls else None,
            timeout=self.url.timeout,
        )
        try:
            if self.url.starttls:
                client.starttls(self._ssl_context())
            client.login(self.url.username, self.url.password)
            if not client.folder_exists(self.url.processed):
                client.create_folder(self.url.processed)
        except Exception:
            _quietly(client.logout)
            raise
        self._client = client
        return client

    def close(self) -> None:
        if self._client is not None:
            _quietly(self._client.logout)
            self._client = None

    # --- one pass ----------------------------------------------------------------------

    def poll_once(self) -> int:
        """Store, read and move every message in the mailbox; return how many were new."""
        self._ingest_pending()
        client = self.connect()
        info = client.select_folder(self.url.mailbox)
        uidvalidity = int(info[b"UIDVALIDITY"])
        last_uid = self._checkpoint(uidvalidity)
        uids = sorted(int(u) for u in client.search(["ALL"]))
        leftovers = [u for u in uids if u <= last_uid]
        if leftovers:
            # Stored before a crash or a failed move: the ledger has them already.
            self._move(client, leftovers)
        fresh = [u for u in uids if u > last_uid]
        for start in range(0, len(fresh), FETCH_CHUNK):
            chunk = fresh[start : start + FETCH_CHUNK]
            fetched = client.fetch(chunk, ["BODY.PEEK[]"])
            for uid in chunk:
                body = fetched.get(uid, {}).get(b"BODY[]")
                if body is None:
                    continue  # expunged by someone else meanwhile
                self._take(client, uidvalidity, uid, bytes(body))
        return len(fresh)

    def _take(self, client: IMAPClient, uidvalidity: int, uid: int, raw: bytes) -> None:
        now = self.clock.now()
        with self.db.write() as conn:
            inbound_id = store_inbound(
                conn,
                channel="imap",
                mail_from="",
                rcpt_to=[],
                peer=f"{self.url.key}#{uidvalidity}/{uid}",
                raw=raw,
                now=now,
            )
            self._save_checkpoint(conn, uidvalidity, uid, now)
        try:
            ingest(
                self.db,
                self.keyring,
                inbound_id,
                now=self.clock.now(),
                forwarding=self.forwarding,
            )
        except Exception:
            # Stored and still "pending": read again on the next pass. Not moved yet.
            log.exception("could not read message %d (UID %d)", inbound_id, uid)
            return
        if self.on_ingested is not None:
            self.on_ingested(inbound_id)
        self._move(client, [uid])

    def _move(self, client: IMAPClient, uids: list[int]) -> None:
        if client.has_capability("MOVE"):
            client.move(uids, self.url.processed)
            return
        client.copy(uids, self.url.processed)
        client.add_flags(uids, [b"\\Deleted"])
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()

    def _ingest_pending(self) -> None:
        with self.db.read() as conn:
            ids = pending_ids(conn)
        for inbound_id in ids:
            try:
                ingest(
                    self.db,
                    self.keyring,
                    inbound_id,
                    now=self.clock.now(),
                    forwarding=self.forwarding,
                )
            except Exception:
                log.exception("could not read pending message %d", inbound_id)

    # --- checkpoint --------------------------------------------------------------------

    def _checkpoint(self, uidvalidity: int) -> int:
        with self.db.read() as conn:
            row = conn.execute(
                select(t.imap_checkpoint.c.uidvalidity, t.imap_checkpoint.c.last_uid).where(
                    t.imap_checkpoint.c.mailbox == self.url.key
                )
            ).one_or_none()
        if row is None:
            return 0
        if int(row.uidvalidity) != uidvalidity:
            log.warning(
                "%s: UIDVALIDITY changed (%s -> %s); reading the mailbox again",
                self.url.key,
                row.uidvalidity,
                uidvalidity,
            )
            return 0
        return int(row.last_uid)

    def _save_checkpoint(self, conn: Any, uidvalidity: int, uid: int, now: Any) -> None:
        ins = dialect_insert(conn, t.imap_checkpoint)
        conn.execute(
            ins.values(
                mailbox=self.url.key, uidvalidity=uidvalidity, last_uid=uid, updated_at=now
            ).on_conflict_do_update(
                index_elements=["mailbox"],
                set_={"uidvalidity": uidvalidity, "last_uid": uid, "updated_at": now},
            )
        )

    # --- the loop --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop``: IDLE where offered, else every ``poll`` seconds."""
        failures = 0
        while not stop.is_set():
            try:
                self.poll_once()
                failures = 0
                self._wait(stop)
            except (OSError, IMAPClientError) as exc:
                failures += 1
                delay = min(300.0, 2.0**failures)
                log.warning("IMAP %s: %s; retrying in %.0fs", self.url.key, exc, delay)
                self.close()
                stop.wait(delay)
        self.close()

    def _wait(self, stop: threading.Event) -> None:
        client = self.connect()
        if not client.has_capability("IDLE"):
            stop.wait(self.url.poll)
            return
        client.idle()
        try:
            deadline = time.monotonic() + IDLE_SECONDS
            while not stop.is_set() and time.monotonic() < deadline:
                if client.idle_check(timeout=1):
                    break  # something arrived (EXISTS) or changed
        finally:
            client.idle_done()


def _quietly(call: Callable[[], object]) -> None:
    # Closing a connection that may already be gone.
    with contextlib.suppress(Exception):
        call()
