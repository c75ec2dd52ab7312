"""The REST API under ``/v1``: notifications, deliveries, topics, recipients, alerts.

Every route needs a bearer API token (``landed.api.auth``). Handlers are plain
functions: FastAPI runs them on its thread pool, where the ledger's blocking
SQLAlchemy calls belong. Validation is the one the library and the CLI use
(``validate_request``), so the three interfaces accept exactly the same input.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request, Response
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from landed.api import schemas as s
from landed.api.auth import ApiToken, require_token
from landed.api.deps import get_clock, get_db, get_keyring, get_settings
from landed.api.errors import ApiError, input_error, install_handlers
from landed.api.limits import MAX_REQUEST_BYTES, BodyLimit
from landed.compose.request import NotifyRequest, validate_request
from landed.domain import Level
from landed.errors import ConfigError, IdempotencyConflict, InputError, TokenError
from landed.store import tables as t
from landed.store.alerts import AlertView, find_alerts, resolve_alert
from landed.store.queries import (
    DeliveryView,
    find_deliveries,
    recipient_ledger,
    sequence_gaps,
    topic_matrix,
)
from landed.store.record import record_notification
from landed.tokens import ALPHABET, ID_LENGTH, human_ref

router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(require_token)],
    responses=s.error_responses(401),
)

#: The largest id SQLite and PostgreSQL integer keys hold; larger ones would be a 500.
_MAX_ID = 2**63 - 1


def _not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


# --- notifications --------------------------------------------------------------------


@router.post(
    "/notifications",
    status_code=202,
    response_model=s.NotificationAccepted,
    tags=["notifications"],
    responses=s.error_responses(409, 422),
)
def post_notification(
    request: Request,
    response: Response,
    body: s.NotificationIn,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Repeat-safe key: the same key with the same body returns the "
            "original deliveries; with a different body, 409.",
        ),
    ] = None,
) -> s.NotificationAccepted:
    """Record a notification and queue one delivery per recipient.

    Answers 202: the deliveries are queued, not sent; follow each through its
    `status_url`. With `Idempotency-Key`, a retry returns the original result
    (with `Idempotent-Replayed: true`) instead of notifying twice.
    """
    key = idempotency_key if idempotency_key is not None else body.idempotency_key
    if idempotency_key is not None and body.idempotency_key not in (None, idempotency_key):
        raise ApiError(
            422,
            "invalid",
            "idempotency_key in the body differs from the Idempotency-Key header",
            field="idempotency_key",
        )
    try:
        notify = validate_request(
            topic=body.topic,
            cls=body.cls,
            to=body.to,
            subject=body.subject,
            text=body.text,
            html=body.html,
            idempotency_key=key,
        )
    except InputError as exc:
        error = input_error(exc)
        if idempotency_key is not None and error.field == "idempotency_key":
            error.field = "Idempotency-Key header"
        raise error from None
    accepted = _record(request, notify)
    if not accepted.created:
        response.headers["Idempotent-Replayed"] = "true"
    return accepted


def _record(request: Request, notify: NotifyRequest) -> s.NotificationAccepted:
    settings = get_settings(request)
    try:
        sender = settings.require_from()
        id_domain = settings.id_domain()
    except ConfigError as exc:
        raise ApiError(503, "not_configured", f"landed cannot send: {exc}") from None
    db = get_db(request)
    # Twice at most: a concurrent request with the same idempotency key may
    # insert first; its unique key then makes ours fail, and the second pass
    # finds and replays it.
    for attempt in (1, 2):
        try:
            with db.write() as conn:
                # An earlier notification under the same key is replayed (created
                # false), or refused as a conflict, by the ledger itself.
                result = record_notification(
                    conn,
                    notify,
                    policies=settings.policy_list(),
                    sender=sender,
                    keyring=get_keyring(request),
                    id_domain=id_domain,
                    now=get_clock(request).now(),
                    outstanding_below=Level(settings.outstanding_until),
                    outstanding_limit=settings.outstanding_limit,
                    outstanding_days=settings.outstanding_days,
                )
        except IdempotencyConflict as exc:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this Idempotency-Key was already used for a different notification "
                f"({exc.notification_id}); use a new key for a new notification",
            ) from None
        except IntegrityError:
            if attempt == 2 or notify.idempotency_key is None:
                raise
            continue
        return s.NotificationAccepted(
            notification_id=result.notification_id,
            created=result.created,
            deliveries=[
                _created(d.delivery_id, d.token, d.recipient, d.seq) for d in result.deliveries
            ],
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _created(delivery_id: str, token: str, recipient: str, seq: int) -> s.DeliveryCreated:
    return s.DeliveryCreated(
        delivery_id=delivery_id,
        token=token,
        recipient=recipient,
        seq=seq,
        ref=human_ref(delivery_id),
        status_url=f"/v1/deliveries/{delivery_id}",
    )


# --- deliveries -----------------------------------------------------------------------


@router.get(
    "/deliveries/{key}",
    response_model=s.DeliveryOut,
    tags=["deliveries"],
    responses=s.error_responses(404),
)
def get_delivery(
    request: Request,
    key: Annotated[str, Path(description="A delivery id or its token.")],
) -> s.DeliveryOut:
    """A delivery's verdict (level, outcome), its policy and deadline, and its evidence."""
    delivery_id = _delivery_id(request, key)
    with get_db(request).read() as conn:
        found = find_deliveries(conn, delivery_ids=[delivery_id], limit=1)
        if not found:
            raise _not_found(f"no delivery {key!r}")
        return _delivery_out(conn, found[0])


def _delivery_id(request: Request, key: str) -> str:
    key = key.strip().lower()
    if len(key) == ID_LENGTH and all(c in ALPHABET for c in key):
        return key
    if len(key) > ID_LENGTH:
        try:
            return get_keyring(request).verify(key)
        except TokenError:
            pass
    # One answer for "malformed", "forged" and "unknown": nothing to learn from it.
    raise _not_found(f"no delivery {key[:80]!r}")


def _delivery_out(conn: Connection, view: DeliveryView) -> s.DeliveryOut:
    extra = conn.execute(
        select(
            t.delivery.c.policy,
            t.delivery.c.required,
            t.delivery.c.deadline_at,
            t.delivery.c.route,
            t.delivery.c.resend_of,
        ).where(t.delivery.c.id == view.delivery_id)
    ).one()
    evidence = conn.execute(
        select(t.evidence)
        .where(t.evidence.c.delivery_id == view.delivery_id)
        .order_by(t.evidence.c.observed_at, t.evidence.c.id)
    ).all()
    alerts = conn.execute(
        select(t.alert.c.id, t.alert.c.reason, t.alert.c.state, t.alert.c.opened_at)
        .where(t.alert.c.delivery_id == view.delivery_id)
        .order_by(t.alert.c.id)
    ).all()
    return s.DeliveryOut(
        delivery_id=view.delivery_id,
        token=view.token,
        ref=view.ref,
        message_id=view.message_id,
        notification_id=view.notification_id,
        topic=view.topic,
        cls=view.cls,
        subject=view.subject,
        recipient=view.recipient,
        seq=view.seq,
        level=view.level,
        outcome=view.outcome,
        policy=extra.policy,
        required=extra.required,
        deadline_at=extra.deadline_at,
        route=extra.route,
        resend_of=extra.resend_of,
        created_at=view.created_at,
        updated_at=view.updated_at,
        in_outbox=view.queued,
        attempts=view.attempts,
        next_attempt_at=view.next_attempt_at,
        alerts=[
            s.AlertRef(id=a.id, reason=a.reason, state=a.state, opened_at=a.opened_at)
            for a in alerts
        ],
        evidence=[
            s.EvidenceOut(
                id=e.id,
                source=e.source,
                level=e.level,
                outcome=e.outcome,
                status=e.status,
                reason=e.reason,
                hard=e.hard,
                attribution=e.attribution,
                route=e.route,
                detail=e.detail,
                observed_at=e.observed_at,
                recorded_at=e.recorded_at,
            )
            for e in evidence
        ],
    )


# --- topics and recipients ------------------------------------------------------------


@router.get(
    "/topics/{key:path}",
    response_model=s.TopicOut,
    tags=["topics"],
    responses=s.error_responses(404),
)
def get_topic(
    request: Request,
    key: Annotated[str, Path(description="The topic key (URL-encoded), e.g. `INC-1234`.")],
) -> s.TopicOut:
    """Who did and did not get the topic's notifications: recipients against notifications."""
    if "\x00" in key:  # no topic has one (validate_request), and PostgreSQL cannot compare it
        raise _not_found(f"no notifications about topic {key[:200]!r}")
    with get_db(request).read() as conn:
        matrix = topic_matrix(conn, key)
    if not matrix.notifications:
        raise _not_found(f"no notifications about topic {key[:200]!r}")
    return s.TopicOut(
        topic=matrix.topic,
        notifications=[
            s.TopicNotification(notification_id=n_id, subject=subject, created_at=created)
            for n_id, subject, created in matrix.notifications
        ],
        recipients=[
            s.TopicRow(
                recipient=recipient,
                cells=[
                    _cell(n_id, matrix.cells.get((recipient, n_id)))
                    for n_id, _, _ in matrix.notifications
                ],
            )
            for recipient in matrix.recipients
        ],
    )


def _cell(notification_id: str, cell: tuple[str, str | None, str] | None) -> s.TopicCell:
    if cell is None:
        return s.TopicCell(
            notification_id=notification_id, delivery_id=None, level=None, outcome=None
        )
    level, outcome, delivery_id = cell
    return s.TopicCell(
        notification_id=notification_id, delivery_id=delivery_id, level=level, outcome=outcome
    )


@router.get(
    "/recipients/{address}",
    response_model=s.LedgerOut,
    tags=["recipients"],
    responses=s.error_responses(404),
)
def get_recipient(
    request: Request,
    address: Annotated[str, Path(description="The recipient's address.")],
) -> s.LedgerOut:
    """Did this recipient get all of their notifications? Every one by `#N`, with gaps."""
    entries = []
    if "\x00" not in address:  # no address has one, and PostgreSQL cannot compare it
        with get_db(request).read() as conn:
            entries = recipient_ledger(conn, address)
    if not entries:
        raise _not_found(f"no notifications for {address[:320]!r}")
    return s.LedgerOut(
        recipient=address.strip().lower(),
        count=len(entries),
        unproven=sum(1 for e in entries if not e.proven),
        gaps=sequence_gaps(entries),
        entries=[
            s.LedgerEntryOut(
                seq=e.seq,
                delivery_id=e.delivery_id,
                ref=human_ref(e.delivery_id),
                topic=e.topic,
                subject=e.subject,
                notification_id=e.notification_id,
                created_at=e.created_at,
                level=e.level,
                outcome=e.outcome,
                required=e.required,
                proven=e.proven,
                open_alerts=e.open_alerts,
                resends=e.resends,
            )
            for e in entries
        ],
    )


# --- alerts ---------------------------------------------------------------------------


@router.get(
    "/alerts", response_model=s.AlertList, tags=["alerts"], responses=s.error_responses(422)
)
def list_alerts(
    request: Request,
    state: Annotated[Literal["open", "resolved", "all"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> s.AlertList:
    """Alerts with their timelines, oldest first (open ones by default)."""
    with get_db(request).read() as conn:
        found = find_alerts(conn, state=None if state == "all" else state, limit=limit)
    return s.AlertList(alerts=[_alert_out(a) for a in found])


@router.post(
    "/alerts/{alert_id}/resolve",
    response_model=s.AlertOut,
    tags=["alerts"],
    responses=s.error_responses(404, 409, 422),
)
def resolve(
    request: Request,
    alert_id: Annotated[int, Path(ge=1, le=_MAX_ID)],
    body: Annotated[s.ResolveIn, Body()],
    token: ApiToken,
) -> s.AlertOut:
    """Resolve an open alert by hand, with a note that is kept on its timeline.

    The note is recorded as `token NAME: note`, naming the API token used (as the
    dashboard records the operator's name).
    """
    note = body.note.strip()
    if not note:
        raise ApiError(422, "invalid", "note: is empty", field="note")
    note = f"token {token.name}: {note}"
    with get_db(request).write() as conn:
        if not find_alerts(conn, state=None, ids=[alert_id], timeline=False):
            raise _not_found(f"no alert {alert_id}")
        if not resolve_alert(conn, alert_id, by="person", note=note, now=get_clock(request).now()):
            raise ApiError(409, "already_resolved", f"alert {alert_id} is already resolved")
        (alert,) = find_alerts(conn, state=None, ids=[alert_id])
    return _alert_out(alert)


def _alert_out(a: AlertView) -> s.AlertOut:
    return s.AlertOut(
        id=a.id,
        delivery_id=a.delivery_id,
        reason=a.reason,
        state=a.state,
        detail=a.detail,
        opened_at=a.opened_at,
        resolved_at=a.resolved_at,
        resolved_by=a.resolved_by,
        note=a.note,
        steps_done=a.steps_done,
        topic=a.topic,
        recipient=a.recipient,
        seq=a.seq,
        level=a.level,
        outcome=a.outcome,
        timeline=[
            s.AlertEventOut(at=at, kind=kind, detail=detail) for at, kind, detail in a.timeline
        ],
    )


def install(app: FastAPI) -> None:
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=MAX_REQUEST_BYTES, prefix="/v1/")
    app.include_router(router)
