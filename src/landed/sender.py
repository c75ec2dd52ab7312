"""The sender worker: claims due deliveries, sends them, records what happened.

One batch is: claim up to ``worker_batch`` rows with a lease (one write
transaction), load what their emails are built from, send each through the
transport, then record every reply as evidence and settle the rows (one write
transaction). A delivery counts as sent only once that last transaction has
committed; a worker killed before it loses nothing, because the lease runs out
and another worker sends again (same Message-ID, same bytes).

Each delivery goes through the route its class and recipient choose
(:mod:`landed.transport.routes`), on the hop its outbox row says; a failure
that calls for failover moves the row to the next hop in the same transaction
that records the failure.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby

from landed.clock import Clock, SystemClock
from landed.compose import (
    Envelope,
    OutgoingMessage,
    compose,
    parse_mailbox,
    verp_sender,
)
from landed.compose.links import TrackingLinks
from landed.config import Settings
from landed.domain import EvidenceSource, Level, Outcome
from landed.domain.policy import choose
from landed.errors import LandedError
from landed.parse import RecipientReport
from landed.parse.classify import finish
from landed.parse.draft import Draft
from landed.store import Database
from landed.store.ledger import NewEvidence
from landed.store.outbox import (
    Claim,
    OutstandingItem,
    SendJob,
    Settlement,
    claim,
    load_jobs,
    release,
    renew,
    settle,
)
from landed.tokens import topic_root_id
from landed.transport.base import Kind, Reply, SendResult, Stage, Transport, send_all
from landed.transport.mx import MXResult
from landed.transport.routes import Hop, Route, Router

log = logging.getLogger("landed.sender")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": half fixed, half random, so retries
    spread out but never come back at once."""

    base: float
    cap: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class _Batch:
    """Rows this worker claimed, by delivery id, and their loaded jobs."""

    claims: dict[str, Claim]
    jobs: list[SendJob]
    #: ``time.monotonic()`` when the claim committed: the lease runs from then.
    claimed_at: float


@dataclass(frozen=True, slots=True)
class _Routed:
    """A claimed delivery and the route and hop it goes by."""

    job: SendJob
    held: Claim
    route: Route
    index: int
    hop: Hop


@dataclass(frozen=True, slots=True)
class _Ready:
    """A delivery routed and built, ready for its transport."""

    routed: _Routed
    envelope: Envelope
    message: bytes

    @property
    def job(self) -> SendJob:
        return self.routed.job


def _hop_of(item: _Routed | Settlement) -> Hop | None:
    """Consecutive deliveries through the same hop go to its transport as one run."""
    return item.hop if isinstance(item, _Routed) else None


def worker_name() -> str:
    """A name unique to this worker process, stamped on the rows it holds."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{os.urandom(3).hex()}"


class Sender:
    """Sends due deliveries through a router's routes (or through one transport)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        transport: Router | Transport,
        *,
        clock: Clock | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        #: The routes and their transports; a bare transport is one route of one hop.
        self.transport = transport if isinstance(transport, Router) else Router.single(transport)
        self.clock = clock or SystemClock()
        self.owner = owner or worker_name()
        self.rng = rng or random.Random()
        self.keyring = settings.keyring()
        self.bounce_domain = settings.require_bounce_domain()
        self.id_domain = settings.id_domain()
        self.policies = settings.policy_list()
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.backoff = Backoff(settings.retry_base_seconds, settings.retry_max_seconds)
        self.lifetime = timedelta(seconds=settings.retry_lifetime_seconds)
        #: Renew leases (or give back a batch that waited) after a third of the lease.
        self._renew_after = settings.lease_seconds / 3
        #: Called after each attempt with (delivery id, result); for tests and metrics.
        self.on_result: Callable[[str, SendResult], None] | None = None
        #: Earlier deliveries listed as outstanding, by id (see ``load_jobs``).
        self._listed: dict[str, OutstandingItem] = {}

    # --- loops ---------------------------------------------------------------------

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Send everything due now; return how many attempts were made."""
        total = 0
        while stop is None or not stop.is_set():
            done = self.process_batch(stop)
            if done == 0:
                break
            total += done
        return total

    def run(self, stop: threading.Event) -> None:
        """Send until ``stop`` is set; idle polls every ``worker_poll_seconds``.

        The ledger work runs beside the sending, in one helper thread: while
        this thread composes and sends one batch, the helper has already
        claimed and loaded the next one, and it commits the previous batch's
        evidence while the next is sent. On SQLite that thread waits for the
        single write lock (a notifier holds it most of the time when
        notifications pour in) and for ``fsync``, and the sending goes on
        meanwhile. Nothing changes about when a delivery counts as sent: its
        row leaves the outbox in the same transaction that commits its evidence.
        """
        log.info("sender %s started (transport %s)", self.owner, self.transport.name)
        ledger = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landed-ledger")
        claiming: Future[_Batch | None] | None = None
        settling: Future[None] | None = None
        try:
            claiming = ledger.submit(self._claim_batch)
            while not stop.is_set():
                batch = claiming.result()
                claiming = None
                if batch is not None and time.monotonic() - batch.claimed_at > self._renew_after:
                    # Claimed long ago, behind a slow batch: its lease may be
                    # running out. Give it back and claim afresh rather than send
                    # rows another worker may be taking over.
                    ledger.submit(self._release, batch).result()
                    batch = None
                if batch is None:
                    stop.wait(self.settings.worker_poll_seconds)
                    claiming = ledger.submit(self._claim_batch)
                    continue
                claiming = ledger.submit(self._claim_batch)

                def settle_now(done: list[Settlement], rest: list[str]) -> None:
                    ledger.submit(self._settle, done, renew_ids=rest).result()

                pending, unsent, _ = self._send_batch(batch, stop, settle_now)
                if settling is not None:
                    settling.result()  # the previous batch's commit: its error stops us here
                settling = ledger.submit(self._settle, pending, release_ids=unsent)
        finally:
            try:
                if settling is not None:
                    settling.result()
            finally:
                try:
                    if claiming is not None and (unsent_batch := claiming.result()) is not None:
                        self._release(unsent_batch)
                finally:
                    ledger.shutdown(wait=True)
                    self.transport.close()
                    log.info("sender %s stopped", self.owner)

    # --- one batch -----------------------------------------------------------------

    def process_batch(self, stop: threading.Event | None = None) -> int:
        """Claim, send and settle one batch; return how many attempts were made."""
        batch = self._claim_batch()
        if batch is None:
            return 0

        def settle_now(done: list[Settlement], rest: list[str]) -> None:
            self._settle(done, renew_ids=rest)

        pending, unsent, attempts = self._send_batch(batch, stop, settle_now)
        self._settle(pending, release_ids=unsent)
        return attempts

    def _claim_batch(self) -> _Batch | None:
        """Claim up to ``worker_batch`` due rows and load what their emails are built from."""
        with self.db.write() as conn:
            claims = claim(
                conn,
                owner=self.owner,
                now=self.clock.now(),
                lease=self.lease,
                limit=self.settings.worker_batch,
            )
        if not claims:
            return None
        claimed_at = time.monotonic()
        if len(self._listed) > _LISTED_CACHE_SIZE:
            self._listed.clear()
        with self.db.read() as conn:
            jobs = load_jobs(conn, [c.delivery_id for c in claims], listed_cache=self._listed)
        return _Batch({c.delivery_id: c for c in claims}, jobs, claimed_at)

    def _release(self, batch: _Batch) -> None:
        with self.db.write() as conn:
            release(conn, owner=self.owner, delivery_ids=list(batch.claims), now=self.clock.now())

    def _send_batch(
        self,
        batch: _Batch,
        stop: threading.Event | None,
        settle_now: Callable[[list[Settlement], list[str]], None],
    ) -> tuple[list[Settlement], list[str], int]:
        """Send a claimed batch: (settlements not yet recorded, ids not sent, attempts).

        Consecutive deliveries through the same hop go to its transport as one
        run (``send_all``: the SMTP relay pipelines them), each built as the
        transport asks for it. ``settle_now`` records what is done so far and
        extends the lease on the rest; it is called well before the lease could
        run out, so a slow relay never lets another worker take rows this one
        is still sending. Once ``stop`` is set no further delivery is started.
        """
        pending: list[Settlement] = []
        attempts = 0
        renewed = batch.claimed_at
        unsent = {job.delivery_id: None for job in batch.jobs}  # ordered

        def done(settlement: Settlement) -> None:
            nonlocal attempts, renewed
            pending.append(settlement)
            unsent.pop(settlement.delivery_id, None)
            attempts += 1
            if time.monotonic() - renewed > self._renew_after:
                settle_now(pending.copy(), list(unsent))
                pending.clear()
                renewed = time.monotonic()

        def stopped() -> bool:
            return stop is not None and stop.is_set()

        def built(
            run: Iterator[_Routed], in_flight: deque[_Ready]
        ) -> Iterator[tuple[Envelope, bytes]]:
            """A run's deliveries, each built when its transport asks for it."""
            for routed in run:
                if stopped():
                    return
                ready = self._build(routed)
                if isinstance(ready, Settlement):  # could not be built: nothing to send
                    done(ready)
                    continue
                in_flight.append(ready)
                yield ready.envelope, ready.message

        routed = (self._route(job, batch) for job in batch.jobs)
        for hop, run in groupby(routed, key=_hop_of):
            if stopped():
                break
            if hop is None:  # could not be routed: nothing to send
                for settlement in run:
                    assert isinstance(settlement, Settlement)
                    done(settlement)
                continue
            in_flight: deque[_Ready] = deque()
            sendable = (r for r in run if isinstance(r, _Routed))
            for result in send_all(hop.transport, built(sendable, in_flight)):
                ready = in_flight.popleft()
                if self.on_result is not None:
                    self.on_result(ready.job.delivery_id, result)
                done(self._settlement(ready, result))
        return pending, list(unsent), attempts

    def _settle(
        self,
        settlements: list[Settlement],
        *,
        renew_ids: list[str] | None = None,
        release_ids: list[str] | None = None,
    ) -> None:
        now = self.clock.now()
        with self.db.write() as conn:
            settle(conn, owner=self.owner, settlements=settlements, now=now)
            if renew_ids:
                renew(conn, owner=self.owner, delivery_ids=renew_ids, until=now + self.lease)
            if release_ids:
                release(conn, owner=self.owner, delivery_ids=release_ids, now=now)

    def _route(self, job: SendJob, batch: _Batch) -> _Routed | Settlement:
        """The route and hop a delivery goes by; if there is none, its settlement."""
        held = batch.claims[job.delivery_id]
        try:
            route = self.transport.choose(job.cls, job.recipient)
            index, hop = self.transport.hop(route, held.route_index)
        except LandedError as exc:
            return self._cannot_send(job, held, exc)
        return _Routed(job, held, route, index, hop)

    def _build(self, routed: _Routed) -> _Ready | Settlement:
        """A routed delivery's bytes and envelope; if it cannot be built, its settlement."""
        try:
            message, envelope = self.build(routed.job)
            message = self.transport.prepare(routed.hop, message)
        except LandedError as exc:
            return self._cannot_send(routed.job, routed.held, exc)
        return _Ready(routed, envelope, message)

    def _cannot_send(self, job: SendJob, held: Claim, exc: LandedError) -> Settlement:
        # Stored data that cannot be sent (it was validated at notify time, so
        # this means a changed configuration), no route for it, or a message the
        # DKIM signer refuses: a clear outcome, not a crash loop.
        now = self.clock.now()
        attempt = held.attempts + 1
        return Settlement(
            job.delivery_id,
            (
                NewEvidence(
                    delivery_id=job.delivery_id,
                    source=EvidenceSource.WORKER,
                    outcome=Outcome.REJECTED,
                    observed_at=now,
                    detail=f"cannot send: {exc}",
                    raw=str(exc).encode(),
                    dedupe_key=f"build\0{job.delivery_id}\0{self.owner}\0{attempt}",
                ),
            ),
        )

    def build(self, job: SendJob) -> tuple[bytes, Envelope]:
        """The message bytes and envelope of a delivery, the same on every attempt."""
        recipient = parse_mailbox(job.to_header, "to")
        verp = verp_sender(job.token, self.bounce_domain)
        policy = choose(self.policies, job.cls, job.recipient)
        outgoing = OutgoingMessage(
            sender=parse_mailbox(job.sender, "from"),
            recipient=recipient,
            subject=job.subject,
            text=job.text,
            html=job.html,
            topic_key=job.topic_key,
            topic_root=_topic_root(job.topic_key, self.id_domain),
            delivery_id=job.delivery_id,
            token=job.token,
            message_id_domain=self.id_domain,
            seq=job.seq,
            date=job.created_at,
            outstanding=job.outstanding,
            links=self._links(job.token),
            # Replies and read receipts come back to landed, token and all.
            reply_to=f"reply+{job.token}@{self.bounce_domain}" if policy.request_reply else None,
            disposition_notification_to=verp if policy.request_mdn else None,
        )
        envelope = Envelope(
            mail_from=verp,
            rcpt_to=recipient.address,
            envid=job.token,
        )
        return compose(outgoing), envelope

    def _links(self, token: str) -> TrackingLinks | None:
        """The delivery's tracked URLs (docs/tracking.md), or None when switched off."""
        settings = self.settings
        if not (settings.track_ack_link or settings.track_opens or settings.track_clicks):
            return None
        return TrackingLinks(
            settings.public_url,
            token,
            self.keyring,
            ack=settings.track_ack_link,
            pixel=settings.track_opens,
            clicks=settings.track_clicks,
        )

    def _settlement(self, ready: _Ready, result: SendResult) -> Settlement:
        routed = ready.routed
        job, held, route, index, hop = (
            routed.job,
            routed.held,
            routed.route,
            routed.index,
            routed.hop,
        )
        attempt = held.attempts + 1
        now = self.clock.now()
        reply = result.reply
        detail = str(reply)
        if result.kind is Kind.SENT and result.dsn:
            detail += " [DSN requested]"
        elif result.kind is Kind.SENT and result.dsn is False:
            detail += f" [{hop.name} offers no DSN]"
        if isinstance(result, MXResult) and result.note:
            detail += f" [{result.note}]"
        failover: int | None = None
        failing_since = held.route_failing_since or now
        if result.kind is Kind.TEMPORARY:
            failover = self.transport.failover(
                route, index, result, failing_since=failing_since, now=now
            )
            if failover is not None:
                detail += (
                    f" [route {route.name}: moving from {hop.name} to"
                    f" {route.via[failover]}, hop {failover + 1} of {len(route.via)}]"
                )

        def evidence(
            level: Level | None,
            outcome: Outcome | None,
            status: str | None,
            reason: str | None = None,
            hard: bool | None = None,
        ) -> NewEvidence:
            return NewEvidence(
                delivery_id=job.delivery_id,
                source=EvidenceSource.SMTP_REPLY,
                level=level,
                outcome=outcome,
                status=status,
                detail=f"attempt {attempt}: {detail}",
                route=hop.name,
                reason=reason,
                hard=hard,
                observed_at=now,
                raw=str(reply).encode("utf-8"),
                dedupe_key=f"send\0{job.delivery_id}\0{self.owner}\0{attempt}\0{reply}",
            )

        if result.kind is Kind.SENT:
            log.debug("sent %s: %s", job.delivery_id, detail)
            return Settlement(
                job.delivery_id, (evidence(hop.proves, None, reply.enhanced),), route=hop.name
            )
        if result.kind is Kind.PERMANENT:
            log.info("bounced %s: %s", job.delivery_id, detail)
            # The same classifier that reads DSNs, so a refusal at send time
            # and the same refusal in a bounce message get the same reason.
            report = refusal_report(reply, job.recipient)
            status = reply.enhanced or _class_status(reply.code) or report.status or None
            bounced = evidence(None, Outcome.BOUNCED, status, report.reason, report.hard)
            return Settlement(job.delivery_id, (bounced,), route=hop.name)
        first = held.first_attempt_at or now
        deferred = evidence(None, Outcome.DEFERRED, reply.enhanced or _class_status(reply.code))
        if now - first >= self.lifetime:
            log.info("expired %s after %d attempts: %s", job.delivery_id, attempt, detail)
            expired = NewEvidence(
                delivery_id=job.delivery_id,
                source=EvidenceSource.WORKER,
                outcome=Outcome.EXPIRED,
                observed_at=now,
                detail=(
                    f"gave up after {attempt} attempts over {_duration(now - first)}"
                    f" (retry lifetime {_duration(self.lifetime)}); last: {detail}"
                ),
                raw=str(reply).encode("utf-8"),
                dedupe_key=f"expire\0{job.delivery_id}",
            )
            return Settlement(job.delivery_id, (deferred, expired), route=hop.name)
        if failover is not None:
            log.info(
                "deferred %s on %s, failing over to %s: %s",
                job.delivery_id,
                hop.name,
                route.via[failover],
                detail,
            )
            # The next hop has not been tried: at once, with its own failure clock.
            return Settlement(
                job.delivery_id,
                (deferred,),
                retry_at=now,
                error=detail,
                attempted_at=first,
                route=hop.name,
                route_index=failover,
            )
        delay = self.backoff.delay(attempt, self.rng)
        log.info(
            "deferred %s (attempt %d, retry in %.0fs): %s", job.delivery_id, attempt, delay, detail
        )
        return Settlement(
            job.delivery_id,
            (deferred,),
            retry_at=now + timedelta(seconds=delay),
            error=detail,
            attempted_at=first,
            route=hop.name,
            route_index=index,
            route_failing_since=failing_since,
        )


#: How many listed deliveries a sender remembers before starting afresh.
_LISTED_CACHE_SIZE = 50_000

#: The same topic comes back in batch after batch; its root id is a hash.
_topic_root = functools.lru_cache(maxsize=4096)(topic_root_id)


#: The SMTP command a reply answered, as bounce messages name it (Sisimai's names).
_COMMANDS = {
    Stage.CONNECT: "CONN",
    Stage.EHLO: "EHLO",
    Stage.MAIL: "MAIL",
    Stage.RCPT: "RCPT",
    Stage.DATA: "DATA",
    Stage.MESSAGE: "DATA",
}


def refusal_report(reply: Reply, recipient: str) -> RecipientReport:
    """What the bounce parser's classifier makes of a refusal received while sending."""
    return finish(
        Draft(
            recipient=recipient,
            action="failed",
            status=reply.enhanced or "",
            diagnosis=str(reply) if reply.code else reply.text,
            spec="SMTP",
            command=_COMMANDS.get(reply.stage, ""),
            reply_code=str(reply.code) if reply.code else "",
        )
    )


def _class_status(code: int) -> str | None:
    # RFC 3463 §3.1: with no enhanced code, the reply class still says temporary or permanent.
    if 400 <= code < 500:
        return "4.0.0"
    if 500 <= code < 600:
        return "5.0.0"
    return None


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
