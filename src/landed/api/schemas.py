"""The REST API's request and response bodies (they are also its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


def storable(value: object) -> object:
    """Reject strings no ledger can store: JSON may carry lone UTF-16 surrogates
    (``"\\ud800"``), which are not Unicode text and which neither SQLite's nor
    PostgreSQL's driver can encode."""
    texts = value if isinstance(value, list) else [value]
    for text in texts:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("contains a lone surrogate: not valid Unicode text") from None
    return value


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


# --- errors ---------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `invalid`, `not_found`.")
    message: str = Field(description="What is wrong, for people.")
    field: str | None = Field(
        default=None, description="The request field at fault, when there is one."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI documentation of the error bodies a route can answer with."""
    meaning = {
        401: "No API token, or not a valid one (`WWW-Authenticate: Bearer`).",
        404: "Nothing with that id.",
        409: "Conflicts with the current state.",
        422: "The request is invalid; `error.field` names the field.",
        503: "The ledger does not answer.",
    }
    return {s: {"model": ErrorBody, "description": meaning.get(s, "Error.")} for s in statuses}


# --- notifications --------------------------------------------------------------------


class NotificationIn(BaseModel):
    """A notification to record: one delivery per recipient is queued."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "topic": "INC-1234",
                    "class": "incident",
                    "to": ["alice@corp.example", "Bob <bob@corp.example>"],
                    "subject": "Database down",
                    "text": "db-3 is not answering.",
                }
            ]
        },
    )

    topic: str = Field(description="What it is about (free-form key, up to 200 characters).")
    cls: str = Field(
        alias="class",
        description="Notification class; selects the policy (1-64 of `a-z 0-9 . _ -`).",
    )
    to: list[str] = Field(description="Recipients: `addr@example.com` or `Name <addr@...>`.")
    subject: str
    text: str = Field(description="Plain-text body.")
    html: str | None = Field(default=None, description="Optional HTML body.")
    idempotency_key: str | None = Field(
        default=None,
        description="As the `Idempotency-Key` header (which is preferred); both must agree.",
    )

    _storable = field_validator("*")(storable)


class DeliveryCreated(_Out):
    delivery_id: str
    token: str = Field(description="The signed tracking token (what leaves the system).")
    recipient: str
    seq: int = Field(description="The recipient's sequence number: `#N for you`.")
    ref: str = Field(description="Short human reference, as printed in the footer.")
    status_url: str = Field(description="Path of this delivery's status.")


class NotificationAccepted(_Out):
    notification_id: str
    created: bool = Field(description="False when this is a replay of an earlier request.")
    deliveries: list[DeliveryCreated]


# --- deliveries -----------------------------------------------------------------------


class EvidenceOut(_Out):
    id: int
    source: str = Field(
        description="smtp-reply, dsn, bounce, mdn, autoreply, esp-webhook, pixel..."
    )
    level: str | None
    outcome: str | None
    status: str | None = Field(description="RFC 3463 enhanced status code, when known.")
    reason: str | None = Field(description="The parser's reason (`userunknown`...).")
    hard: bool | None
    attribution: str | None = Field(description="How it was tied to the delivery.")
    route: str | None
    detail: str | None
    observed_at: datetime
    recorded_at: datetime


class AlertRef(_Out):
    id: int
    reason: str
    state: str
    opened_at: datetime


class DeliveryOut(_Out):
    delivery_id: str
    token: str
    ref: str
    message_id: str
    notification_id: str
    topic: str
    cls: str = Field(alias="class")
    subject: str
    recipient: str
    seq: int
    level: str = Field(description="The highest level the evidence proves.")
    outcome: str | None = Field(description="The negative fact, if any (bounced, expired...).")
    policy: str | None
    required: str | None = Field(description="The level the policy requires.")
    deadline_at: datetime | None = Field(description="By when it must be reached.")
    route: str | None
    resend_of: str | None
    created_at: datetime
    updated_at: datetime
    in_outbox: bool
    attempts: int
    next_attempt_at: datetime | None
    alerts: list[AlertRef]
    evidence: list[EvidenceOut] = Field(description="The timeline, oldest first.")


# --- topics and recipients ------------------------------------------------------------


class TopicNotification(_Out):
    notification_id: str
    subject: str
    created_at: datetime


class TopicCell(_Out):
    notification_id: str
    delivery_id: str | None = Field(description="None: this recipient was not notified.")
    level: str | None
    outcome: str | None


class TopicRow(_Out):
    recipient: str
    cells: list[TopicCell] = Field(description="One per notification, in their order.")


class TopicOut(_Out):
    topic: str
    notifications: list[TopicNotification]
    recipients: list[TopicRow]


class LedgerEntryOut(_Out):
    seq: int
    delivery_id: str
    ref: str
    topic: str
    subject: str
    notification_id: str
    created_at: datetime
    level: str
    outcome: str | None
    required: str | None
    proven: bool
    open_alerts: int
    resends: int


class LedgerOut(_Out):
    recipient: str
    count: int
    unproven: int
    gaps: list[int] = Field(description="Sequence numbers missing from the ledger (normally none).")
    entries: list[LedgerEntryOut]


# --- alerts ---------------------------------------------------------------------------


class AlertEventOut(_Out):
    at: datetime
    kind: str
    detail: str


class AlertOut(_Out):
    id: int
    delivery_id: str
    reason: str
    state: str
    detail: str | None
    opened_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    note: str | None
    steps_done: int
    topic: str
    recipient: str
    seq: int
    level: str
    outcome: str | None
    timeline: list[AlertEventOut]


class AlertList(_Out):
    alerts: list[AlertOut]


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(
        min_length=1, max_length=2000, description="Why it is resolved (kept on the timeline)."
    )

    @field_validator("note")
    @classmethod
    def _check_note(cls, value: str) -> str:
        storable(value)
        if "\x00" in value:
            raise ValueError("contains NUL")
        return value


# --- health ---------------------------------------------------------------------------


class Health(BaseModel):
    status: str
    database: str
