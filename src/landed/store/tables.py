"""The ledger's tables (SQLAlchemy 2 typed declarative models).

Deliveries and notifications are keyed by 26-character base32 ids
(time-ordered, see ``landed.tokens``); other tables by integers. Every
timestamp is stored in UTC and read back timezone-aware, on SQLite as on
PostgreSQL (``UTCDateTime``). Statements are written with SQLAlchemy Core
against these tables; the ORM is used only to declare them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every engine.

    SQLite has no time zones: values are stored as naive UTC text (which sorts
    correctly) and given back their zone on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Topic(Base):
    """What notifications are about (``INC-1234``)."""

    __tablename__ = "topic"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Recipient(Base):
    """One email address, with its own sequence counter."""

    __tablename__ = "recipient"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: Lowercased address: the identity of a recipient.
    address: Mapped[str] = mapped_column(String(320), unique=True)
    #: The last sequence number given out ("#N for you").
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    """One event about a topic, sent to one or more recipients."""

    __tablename__ = "notification"
    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topic.id"), index=True)
    cls: Mapped[str] = mapped_column(String(64))
    #: The From header as sent (kept so that a resend is identical after a config change).
    sender: Mapped[str] = mapped_column(String(400))
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Delivery(Base):
    """One email to one recipient for one notification: the unit that is tracked."""

    __tablename__ = "delivery"
    # Not unique: an escalation "resend" is a second delivery of the same
    # notification to the same recipient, with the same "#N for you".
    __table_args__ = (
        Index("ix_delivery_notification_id_recipient_id", "notification_id", "recipient_id"),
        Index("ix_delivery_recipient_id_seq", "recipient_id", "seq"),
    )
    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    notification_id: Mapped[str] = mapped_column(ForeignKey("notification.id"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipient.id"))
    #: The recipient's sequence number for this delivery ("#N for you").
    seq: Mapped[int] = mapped_column(Integer)
    #: The To header as given by the caller (display name kept).
    to_header: Mapped[str] = mapped_column(String(400))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    #: Short human reference, ``XXXX-XXXX`` without the dash, lowercase.
    ref: Mapped[str] = mapped_column(String(8), index=True)
    message_id: Mapped[str] = mapped_column(String(255))
    #: The verdict folded from the evidence (``landed.domain.fold``); a cache of it.
    level: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The policy chosen at notify time, the level it requires, and by when.
    policy: Mapped[str | None] = mapped_column(String(64), nullable=True)
    required: Mapped[str | None] = mapped_column(String(16), nullable=True)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Which earlier deliveries this email lists as still unconfirmed: their ids,
    #: separated by spaces (NULL or empty: none). Written with the row at notify
    #: time and never changed, so a resend lists the same ones. A column, not a
    #: table of pairs: about nine listed per delivery, and a row per pair with two
    #: foreign keys was a third of PostgreSQL's work per notification
    #: (docs/benchmarks.md, "The outstanding list in a column").
    listed: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The delivery this one re-sends (escalation step "resend" or "fallback").
    resend_of: Mapped[str | None] = mapped_column(
        ForeignKey("delivery.id"), nullable=True, index=True
    )
    #: The route that carried (or is carrying) it: ``relay``, ``mx``, ``ses``...
    route: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DeliveryDue(Base):
    """When the reconciler must look at a delivery next; no row when nothing is pending.

    Indexed by time, so that a tick reads only what is due, never the whole
    ledger. A table of its own rather than a column of ``delivery``: every tick
    re-schedules or closes a thousand deliveries, and on PostgreSQL changing an
    indexed column of the wide delivery row writes a new entry in every one of
    its indexes; here closing is a DELETE and re-scheduling rewrites a
    two-column row.
    """

    __tablename__ = "delivery_due"
    # SQLite: the primary key is the table itself, not a second B-tree beside it.
    __table_args__ = ({"sqlite_with_rowid": False},)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("delivery.id"), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Alert(Base):
    """A delivery that failed or missed its policy, open until resolved."""

    __tablename__ = "alert"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("delivery.id"), index=True)
    #: bounced, complained, suppressed, rejected, or expired (deadline missed).
    reason: Mapped[str] = mapped_column(String(32))
    #: open or resolved.
    state: Mapped[str] = mapped_column(String(16), index=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: "evidence" (late proof arrived) or "person".
    resolved_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: How many escalation steps have run.
    steps_done: Mapped[int] = mapped_column(Integer, default=0)


class AlertEvent(Base):
    """The alert's timeline: opened, each escalation step and its result, resolved."""

    __tablename__ = "alert_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)


class Suppression(Base):
    """An address not to send to (hard bounce, complaint, or by hand)."""

    __tablename__ = "suppression"
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str | None] = mapped_column(ForeignKey("delivery.id"), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: NULL: until removed by hand.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Dispatch(Base):
    """An alert notice waiting for its sink (webhook, email): an outbox, so a sink
    that is down loses nothing. Removed once delivered."""

    __tablename__ = "dispatch"
    __table_args__ = (Index("ix_dispatch_available_at", "available_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    #: ``webhook``, ``email``, or ``webhook:<url>`` for an escalation step's own URL.
    sink: Mapped[str] = mapped_column(Text)
    #: The receiver deduplicates on this.
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Evidence(Base):
    """One observed fact about a delivery. Append-only; raw material kept."""

    __tablename__ = "evidence"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str | None] = mapped_column(
        ForeignKey("delivery.id"), index=True, nullable=True
    )
    source: Mapped[str] = mapped_column(String(32))
    level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: RFC 3463 enhanced status code (``5.1.1``), when one is known.
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: Human-readable summary: the SMTP reply, the DSN's diagnostic.
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Which route or transport the evidence came through (``relay``).
    route: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: How it was tied to the delivery: verp, envid, message-id, header, heuristic.
    attribution: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: The parser's reason (``userunknown``, ``mailboxfull``...) and hard/soft verdict.
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    hard: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: The parser that read it (``landed.parse.PARSER_VERSION``), so it can be re-read later.
    parser: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The received message it was read from, if any.
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound.id"), index=True, nullable=True
    )
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The same event ingested twice has the same key and is stored once.
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class Inbound(Base):
    """A message received by landed (inbound SMTP or the IMAP bounce mailbox).

    Stored, raw and whole, before the sender is told ``250``; read into
    evidence afterwards. Mail that cannot be tied to a delivery stays here as
    ``quarantined``, never dropped.
    """

    __tablename__ = "inbound"
    __table_args__ = (Index("ix_inbound_state", "state", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: ``smtp`` or ``imap``.
    channel: Mapped[str] = mapped_column(String(8))
    #: SMTP envelope: MAIL FROM (``""`` for bounces) and the RCPT TO list, one per line.
    mail_from: Mapped[str] = mapped_column(String(512))
    rcpt_to: Mapped[str] = mapped_column(Text)
    #: Where it came from: the peer address, or the IMAP mailbox and UID.
    peer: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    #: ``pending`` (not yet read), ``ingested``, ``quarantined``.
    state: Mapped[str] = mapped_column(String(16))
    #: What ingest made of it (kind, dialect, why quarantined).
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ingested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ImapCheckpoint(Base):
    """How far the IMAP poller has read a mailbox: UIDs only grow within one UIDVALIDITY."""

    __tablename__ = "imap_checkpoint"
    #: ``user@host:port/MAILBOX``: which mailbox (no password).
    mailbox: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Outbox(Base):
    """Deliveries waiting to be sent. A row is removed once its send is settled.

    ``available_at`` is both the due time and the lease: claiming a row moves
    it to ``now + lease``, so a crashed worker's rows come back by themselves,
    and one index serves the claim query.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_available_at", "available_at"),)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("delivery.id"), primary_key=True)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Which hop of the delivery's route chain is being tried (0: the first).
    route_index: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Since when the current route has failed without a break (for failover).
    route_failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiToken(Base):
    """A bearer token for the REST API. Only its SHA-256 is stored."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the token, shown in listings so a person can tell them apart.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Operator(Base):
    """A person who may log in to the dashboard."""

    __tablename__ = "operator"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``scrypt$n$r$p$salt$hash`` (hashlib.scrypt); never the password itself.
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookRequest(Base):
    """A provider webhook request that passed its signature check, kept raw and whole.

    Requests that fail verification are not stored (only counted).
    """

    __tablename__ = "webhook_request"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: ``ses``, ``sendgrid``, ``mailgun``, ``postmark``.
    provider: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    peer: Mapped[str] = mapped_column(String(255))
    #: Request headers as a JSON object.
    headers: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    #: How many events it carried, and how many were new (not duplicates).
    events: Mapped[int] = mapped_column(Integer, default=0)
    new_events: Mapped[int] = mapped_column(Integer, default=0)


class WebhookNonce(Base):
    """A webhook signature nonce already used (Mailgun's signature token), kept
    until its timestamp leaves the accepted window, so that a captured signature
    cannot be replayed to any host sharing this ledger."""

    __tablename__ = "webhook_nonce"
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Forward(Base):
    """A human reply waiting to be forwarded to the configured address (an outbox)."""

    __tablename__ = "forward"
    __table_args__ = (Index("ix_forward_available_at", "available_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id"), index=True)
    delivery_id: Mapped[str | None] = mapped_column(ForeignKey("delivery.id"), nullable=True)
    to_address: Mapped[str] = mapped_column(String(320))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


topic = cast(Table, Topic.__table__)
recipient = cast(Table, Recipient.__table__)
notification = cast(Table, Notification.__table__)
delivery = cast(Table, Delivery.__table__)
delivery_due = cast(Table, DeliveryDue.__table__)
evidence = cast(Table, Evidence.__table__)
outbox = cast(Table, Outbox.__table__)
inbound = cast(Table, Inbound.__table__)
imap_checkpoint = cast(Table, ImapCheckpoint.__table__)
alert = cast(Table, Alert.__table__)
alert_event = cast(Table, AlertEvent.__table__)
suppression = cast(Table, Suppression.__table__)
dispatch = cast(Table, Dispatch.__table__)
api_token = cast(Table, ApiToken.__table__)
operator = cast(Table, Operator.__table__)
webhook_request = cast(Table, WebhookRequest.__table__)
forward = cast(Table, Forward.__table__)
webhook_nonce = cast(Table, WebhookNonce.__table__)
metadata = Base.metadata
