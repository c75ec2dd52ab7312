"""Provider webhooks over HTTP, with real signatures, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Row, func, select

from landed.api import create_app
from landed.api.hooks import MAX_BODY
from landed.clock import FixedClock
from landed.compose.request import validate_request
from landed.config import Settings
from landed.store import Database
from landed.store import tables as t
from landed.store.ledger import CreatedDelivery, notify
from tests.esp.fakes import FakeProvider
from tests.esp.signing import (
    CERT_PATH,
    MAILGUN_WEBHOOK_KEY,
    POSTMARK_AUTH,
    TOPIC,
    SendGridSigner,
    SNSSigner,
    basic,
    mailgun_body,
)
from tests.relay import TLSFiles, make_tls

pytestmark = pytest.mark.timeout(60)


# --- fixtures and helpers -----------------------------------------------------------


class Hooks:
    """A synchronous HTTP client for the app, through httpx's ASGI transport."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=("54.240.1.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://landed.test") as c:
                return await c.post(url, **kwargs)

        return asyncio.run(send())


@pytest.fixture(scope="module")
def sns_signer() -> SNSSigner:
    return SNSSigner.make()


@pytest.fixture(scope="module")
def sendgrid_signer() -> SendGridSigner:
    return SendGridSigner.make()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls(tmp_path_factory.mktemp("sns-tls"))


@pytest.fixture(scope="module")
def sns_host(tls: TLSFiles, sns_signer: SNSSigner) -> Iterator[FakeProvider]:
    """Plays sns.<region>.amazonaws.com: the signing certificate and SubscribeURL, over HTTPS."""
    with FakeProvider("files", tls=tls.server_context) as server:
        server.files[CERT_PATH] = sns_signer.cert_pem
        server.files["/confirm"] = b"<ConfirmSubscriptionResponse/>"
        yield server


@pytest.fixture
def hooks(
    settings: Settings,
    database: Database,
    clock: FixedClock,
    sendgrid_signer: SendGridSigner,
    sns_host: FakeProvider,
    tls: TLSFiles,
) -> Hooks:
    configured = settings.model_copy(
        update={
            "ses_topic_arns": f"{TOPIC}, arn:aws:sns:eu-west-1:123456789012:other",
            "ses_sns_hosts": sns_host.host,
            "ses_sns_cafile": str(tls.ca_file),
            "sendgrid_webhook_key": sendgrid_signer.public_key,
            "mailgun_webhook_key": MAILGUN_WEBHOOK_KEY,
            "postmark_webhook_auth": POSTMARK_AUTH,
        }
    )
    return Hooks(create_app(configured, database, clock=clock))


def record(
    database: Database, settings: Settings, clock: FixedClock, to: Sequence[str]
) -> list[CreatedDelivery]:
    request = validate_request(topic="INC-9", cls="incident", to=list(to), subject="s", text="t")
    with database.write() as conn:
        created = notify(
            conn, request, sender=settings.require_from(), keyring=settings.keyring(),
            id_domain="corp.test", now=clock.now(),
        )  # fmt: skip
    return list(created.deliveries)


def verdict(database: Database, delivery_id: str) -> tuple[str, str | None]:
    with database.read() as conn:
        row = conn.execute(
            select(t.delivery.c.level, t.delivery.c.outcome).where(t.delivery.c.id == delivery_id)
        ).one()
    return row.level, row.outcome


def evidence(database: Database, delivery_id: str | None = None) -> list[Row[Any]]:
    query = select(t.evidence).where(t.evidence.c.source == "esp-webhook").order_by(t.evidence.c.id)
    if delivery_id is not None:
        query = query.where(t.evidence.c.delivery_id == delivery_id)
    with database.read() as conn:
        return list(conn.execute(query).all())


def stored_requests(database: Database) -> list[Row[Any]]:
    with database.read() as conn:
        return list(conn.execute(select(t.webhook_request).order_by(t.webhook_request.c.id)))


def counter(client: Hooks, provider: str, result: str) -> float:
    registry = client.app.state.metrics.registry
    value = registry.get_sample_value(
        "landed_webhook_requests_total", {"provider": provider, "result": result}
    )
    return float(value or 0)


def now_ts(clock: FixedClock) -> int:
    return int(clock.now().timestamp())


def sendgrid_post(
    client: Hooks,
    signer: SendGridSigner,
    events: list[dict[str, object]],
    timestamp: int,
    *,
    tamper: bytes | None = None,
) -> Any:
    body = json.dumps(events).encode()
    headers = signer.headers(body, timestamp)
    return client.post("/v1/hooks/sendgrid", content=tamper or body, headers=headers)


def sg_event(
    kind: str, delivery: CreatedDelivery | None, n: int, **extra: object
) -> dict[str, object]:
    event: dict[str, object] = {
        "email": delivery.recipient if delivery else "stranger@ext.test",
        "timestamp": 1772366400 + n,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": kind,
        "sg_event_id": f"sg-event-{kind}-{n}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    }
    if delivery is not None:
        event["landed_token"] = delivery.token
    event.update(extra)
    return event


# --- SendGrid ------------------------------------------------------------------------


def test_sendgrid_events_climb_the_ladder_and_unknown_ones_are_kept(
    hooks: Hooks,
    database: Database,
    settings: Settings,
    clock: FixedClock,
    sendgrid_signer: SendGridSigner,
) -> None:
    [d] = record(database, settings, clock, ["carol@ext.test"])
    events = [
        sg_event("processed", d, 1),
        sg_event("delivered", d, 2, response="250 2.0.0 OK 1772366402 a1si"),
        sg_event("future_event_type", d, 3),
    ]
    response = sendgrid_post(hooks, sendgrid_signer, events, now_ts(clock))
    assert response.status_code == 200, response.text
    assert response.json() | {"request": 0} == {
        "request": 0,
        "events": 3,
        "new": 3,
        "attributed": 3,
    }
    # "delivered" means the recipient's server took it: accepted, not delivered.
    assert verdict(database, d.delivery_id) == ("accepted", None)
    rows = evidence(database, d.delivery_id)
    assert [(r.level, r.outcome) for r in rows] == [
        ("submitted", None),
        ("accepted", None),
        (None, None),
    ]
    assert "unknown event type, kept" in rows[2].detail
    assert {r.route for r in rows} == {"sendgrid"} and {r.attribution for r in rows} == {
        "provider-field"
    }
    assert json.loads(rows[1].raw)["response"] == "250 2.0.0 OK 1772366402 a1si"
    [stored] = stored_requests(database)
    assert (stored.provider, stored.events, stored.new_events) == ("sendgrid", 3, 3)
    assert json.loads(stored.body) == events
    assert "x-twilio-email-event-webhook-signature" in json.loads(stored.headers)
    assert counter(hooks, "sendgrid", "accepted") == 1
    with database.read() as conn:
        due = conn.execute(
            select(t.delivery_due.c.due_at).where(t.delivery_due.c.delivery_id == d.delivery_id)
        )
        assert due.scalar_one() == clock.now()  # the reconciler judges it again


def test_provider_opens_and_clicks_are_seen_at_most_and_machine_opens_not_even_that(
    hooks: Hooks,
    database: Database,
    settings: Settings,
    clock: FixedClock,
    sendgrid_signer: SendGridSigner,
) -> None:
    machine, person = record(database, settings, clock, ["a@ext.test", "b@ext.test"])
    events = [
        sg_event("open", machine, 1, sg_machine_open=True),
        sg_event("open", person, 2, sg_machine_open=False),
        sg_event("click", person, 3, url="https://landed.test/t/ack/x"),
    ]
    assert sendgrid_post(hooks, sendgrid_signer, events, now_ts(clock)).status_code == 200
    assert verdict(database, machine.delivery_id) == ("queued", None)
    assert verdict(database, person.delivery_id) == ("seen", None)
    rows = evidence(database)
    assert all(r.level in (None, "seen") for r in rows)
    assert all(r.detail.startswith("provider-reported: ") for r in rows)
    assert "machine open" in rows[0].detail


def test_a_duplicate_delivery_of_the_same_events_adds_nothing(
    hooks: Hooks,
    database: Database,
    settings: Settings,
    clock: FixedClock,
    sendgrid_signer: SendGridSigner,
) -> None:
    [d] = record(database, settings, clock, ["carol@ext.test"])
    events = [sg_event("processed", d, 1), sg_event("delivered", d, 2)]
    first = sendgrid_post(hooks, sendgrid_signer, events, now_ts(clock))
    second = sendgrid_post(hooks, sendgrid_signer, events, now_ts(clock) + 1)
    assert (first.json()["new"], second.json()["new"]) == (2, 0)
    assert len(evidence(database, d.delivery_id)) == 2
    assert [(r.events, r.new_events) for r in stored_requests(database)] == [(2, 2), (2, 0)]


def test_out_of_order_events_fold_monotonically(
    hooks: Hooks,
    database: Database,
    settings: Settings,
    clock: FixedClock,
    sendgrid_signer: SendGridSigner,
) -> None:
    bounced, deferred = record(database, settings, clock, ["gone@ext.test", "slow@ext.test"])
    diagnostic = "550 5.1.1 The email account that you tried to reach does not exist."
    # The bounce arrives first, a stale "delivered" for it later; a "delivered"
    # arrives before the "deferred" it ends.
    sendgrid_post(hooks, sendgrid_signer, [
        sg_event("bounce", bounced, 5, reason=diagnostic, status="5.1.1", type="bounce"),
        sg_event("delivered", deferred, 6),
    ], now_ts(clock))  # fmt: skip
    sendgrid_post(hooks, sendgrid_signer, [
        sg_event("delivered", bounced, 4),
        sg_event("deferred", deferred, 3, response="451 4.7.1 try later", attempt="1"),
        sg_event("processed", deferred, 1),
    ], now_ts(clock))  # fmt: skip
    assert verdict(database, bounced.delivery_id) == ("accepted", "bounced")
    assert verdict(database, deferred.delivery_id) == ("accepted", None)
    [bounce] = [r for r in evidence(database, bounced.delivery_id) if r.outcome == "bounced"]
    assert (bounce.status, bounce.reason, bounce.hard) == ("5.1.1", "userunknown", True)
    assert diagnostic in bounce.detail


def test_forged_sendgrid_requests_are_refused_and_leave_nothing(
    hooks: Hooks,
    database: Database,
    settings: Settings,
    clock: FixedClock,
    sendgrid_signer: SendGridSigner,
) -> None:
    [d] = record(database, settings, clock, ["carol@ext.test"])
    genuine = [sg_event("delivered", d, 1)]
    forged = json.dumps([sg_event("spamreport", d, 1)]).encode()
    other = SendGridSigner.make()
    answers = [
        sendgrid_post(hooks, sendgrid_signer, genuine, now_ts(clock), tamper=forged),
        sendgrid_post(hooks, other, genuine, now_ts(clock)),
        sendgrid_post(hooks, sendgrid_signer, genuine, now_ts(clock) - 3600),  # stale
        sendgrid_post(hooks, sendgrid_signer, genuine, now_ts(clock) + 3600),  # from the future
        hooks.post("/v1/hooks/sendgrid", json=genuine),  # unsigned
    ]
    assert [a.status_code for a in answers] == [401] * 5
    assert answers[2].json()["error"]["code"] == "unauthorized"
    assert "window" in answers[2].json()["error"]["message"]
    assert stored_requests(database) == [] and evidence(database) == []
    assert verdict(database, d.delivery_id) == ("queued", None)
    assert counter(hooks, "sendgrid", "unauthorized") == 5


def test_tokens_that_do_not_verify_are_kept_without_a_delivery(
    hooks: Hooks,
    database: Database,
    settings: Settings,
    clock: FixedClock,
    sendgrid_signer: SendGridSigner,
) -> None:
    [d] = record(database, settings, clock, ["carol@ext.test"])
    forged_token = d.token[:-4] + ("aaaa" if not d.token.endswith("aaaa") else "bbbb")
    events = [
        sg_event("spamreport", None, 1, landed_token=forged_token, email="carol@ext.test"),
        sg_event("bounce", None, 2, reason="550 no such user"),
    ]
    response = sendgrid_post(hooks, sendgrid_signer, events, now_ts(clock))
    assert response.json()["attributed"] == 0 and response.json()["new"] == 2
    rows = evidence(database)
    assert [r.delivery_id for r in rows] == [None, None]
    assert [r.outcome for r in rows] == ["complained", "bounced"]
    assert verdict(database, d.delivery_id) == ("queued", None)


# --- Mailgun -------------------------------------------------------------------------


def mg_event(kind: str, delivery: CreatedDelivery, n: int, **extra: object) -> dict[str, object]:
    event: dict[str, object] = {
        "id": f"mg-{kind}-{n}",
        "timestamp": 1772366400.5 + n,
        "event": kind,
        "recipient": delivery.recipient,
        "message": {"headers": {"message-id": f"{delivery.token}@corp.test"}},
        "user-variables": {"landed_token": delivery.token},
    }
    event.update(extra)
    return event


def test_mailgun_failure_is_classified_like_a_dsn(
    hooks: Hooks, database: Database, settings: Settings, clock: FixedClock
) -> None:
    gone, slow = record(database, settings, clock, ["gone@ext.test", "slow@ext.test"])
    bounce = mg_event(
        "failed", gone, 1, severity="permanent", reason="bounce",
        **{"delivery-status": {"code": 550, "message": "5.2.2 mailbox full",
                               "mx-host": "mx.ext.test", "attempt-no": 1}},
    )  # fmt: skip
    delay = mg_event(
        "failed", slow, 2, severity="temporary", reason="generic",
        **{"delivery-status": {"code": 451, "message": "4.7.1 Greylisted, try again"}},
    )  # fmt: skip
    for n, event in enumerate((bounce, delay)):
        response = hooks.post("/v1/hooks/mailgun", content=mailgun_body(event, now_ts(clock) - n))
        assert response.status_code == 200, response.text
    assert verdict(database, gone.delivery_id) == ("queued", "bounced")
    assert verdict(database, slow.delivery_id) == ("submitted", "deferred")
    [row] = evidence(database, gone.delivery_id)
    assert (row.reason, row.hard) == ("mailboxfull", False)
    later = mg_event("delivered", slow, 3, **{"delivery-status": {"code": 250, "message": "OK"}})
    hooks.post("/v1/hooks/mailgun", content=mailgun_body(later, now_ts(clock)))
    assert verdict(database, slow.delivery_id) == ("accepted", None)


def test_mailgun_replays_forgeries_and_stale_signatures_are_refused(
    hooks: Hooks, database: Database, settings: Settings, clock: FixedClock
) -> None:
    [d] = record(database, settings, clock, ["carol@ext.test"])
    body = mailgun_body(mg_event("delivered", d, 1), now_ts(clock))
    assert hooks.post("/v1/hooks/mailgun", content=body).status_code == 200
    replay = hooks.post("/v1/hooks/mailgun", content=body)
    assert replay.status_code == 403 and "replay" in replay.json()["error"]["message"]
    # Mailgun signs timestamp + token, not the body: a captured signature on a
    # forged body is stopped by the spent-token check...
    forged = json.loads(body)
    forged["event-data"]["event"] = "complained"
    assert hooks.post("/v1/hooks/mailgun", json=forged).status_code == 403
    # ...and a made-up signature by the HMAC check.
    fresh = json.loads(mailgun_body(mg_event("complained", d, 2), now_ts(clock)))
    fresh["signature"]["signature"] = "0" * 64
    assert hooks.post("/v1/hooks/mailgun", json=fresh).status_code == 401
    stale = mailgun_body(mg_event("complained", d, 2), now_ts(clock) - 3600)
    assert hooks.post("/v1/hooks/mailgun", content=stale).status_code == 401
    assert hooks.post("/v1/hooks/mailgun", content=b"not json").status_code == 400
    assert len(stored_requests(database)) == 1
    assert verdict(database, d.delivery_id) == ("accepted", None)
    assert counter(hooks, "mailgun", "forbidden") == 2
    assert counter(hooks, "mailgun", "unauthorized") == 2
    assert counter(hooks, "mailgun", "bad_request") == 1


# --- Postmark ------------------------------------------------------------------------


def test_postmark_needs_basic_auth_and_maps_its_records(
    hooks: Hooks, database: Database, settings: Settings, clock: FixedClock
) -> None:
    delivered, bounced, complained = record(
        database, settings, clock, ["a@ext.test", "b@ext.test", "c@ext.test"]
    )
    delivery = {
        "RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Recipient": "a@ext.test",
        "Tag": "", "DeliveredAt": "2026-03-01T12:00:05Z",
        "Details": "Test delivery webhook details", "Metadata": {"landed_token": delivered.token},
    }  # fmt: skip
    bounce = {
        "RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1,
        "Name": "Hard bounce", "MessageID": "9bc1a2b4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Email": "b@ext.test", "BouncedAt": "2026-03-01T12:00:06Z", "Inactive": True,
        "Metadata": {"landed_token": bounced.token}, "MessageStream": "outbound",
    }  # fmt: skip
    complaint = bounce | {
        "RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint", "Email": "c@ext.test",
        "Metadata": {"landed_token": complained.token},
    }  # fmt: skip
    unauthenticated = hooks.post("/v1/hooks/postmark", json=delivery)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"].startswith("Basic")
    wrong = hooks.post("/v1/hooks/postmark", json=delivery, headers=basic("landed:guess"))
    assert wrong.status_code == 401
    assert stored_requests(database) == []
    for record_ in (delivery, bounce, complaint, {"RecordType": "Inbound", "MessageID": "x"}):
        answer = hooks.post("/v1/hooks/postmark", json=record_, headers=basic(POSTMARK_AUTH))
        assert answer.status_code == 200, answer.text
    assert verdict(database, delivered.delivery_id) == ("accepted", None)
    assert verdict(database, bounced.delivery_id) == ("queued", "bounced")
    assert verdict(database, complained.delivery_id) == ("delivered", "complained")
    [hard] = evidence(database, bounced.delivery_id)
    assert (hard.status, hard.reason, hard.hard) == ("5.1.1", "userunknown", True)
    unknown = [r for r in evidence(database) if r.delivery_id is None]
    assert len(unknown) == 1 and "unknown record type" in unknown[0].detail
    assert "authorization" not in json.loads(stored_requests(database)[0].headers) or (
        json.loads(stored_requests(database)[0].headers)["authorization"] == "(redacted)"
    )


# --- Amazon SES through SNS ----------------------------------------------------------


def ses_delivery(token: str, recipients: list[str]) -> str:
    return json.dumps({
        "eventType": "Delivery",
        "mail": {
            "timestamp": "2026-03-01T12:00:00.000Z", "source": "alerts@corp.test",
            "messageId": "0100018f2b3c4d5e-ses", "destination": recipients,
            "headersTruncated": False,
            "headers": [{"name": "X-Landed-Token", "value": token}],
            "commonHeaders": {"messageId": "<0100018f2b3c4d5e-ses@email.amazonses.com>"},
            "tags": {"landed_token": [token], "ses:configuration-set": ["landed-events"]},
        },
        "delivery": {
            "timestamp": "2026-03-01T12:00:01.000Z", "processingTimeMillis": 1000,
            "recipients": recipients, "smtpResponse": "250 2.0.0 OK",
            "reportingMTA": "a8-1.smtp-out.amazonses.com",
        },
    })  # fmt: skip


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_events_for_several_recipients_reach_each_delivery(
    hooks: Hooks,
    database: Database,
    settings: Settings,
    clock: FixedClock,
    sns_signer: SNSSigner,
    sns_host: FakeProvider,
    version: str,
) -> None:
    alice, bob = record(database, settings, clock, ["alice@ext.test", "Bob <bob@ext.test>"])
    cert_url = sns_host.url + CERT_PATH
    fetched = sum(1 for r in sns_host.received if r.path == CERT_PATH)
    message = sns_signer.message(
        cert_url, message=ses_delivery(alice.token, ["alice@ext.test", "bob@ext.test"]),
        version=version, subject="Amazon SES Email Event Notification",
    )  # fmt: skip
    response = hooks.post("/v1/hooks/ses", content=json.dumps(message))
    assert response.status_code == 200, response.text
    assert response.json()["events"] == 2 and response.json()["attributed"] == 2
    assert verdict(database, alice.delivery_id) == ("accepted", None)
    assert verdict(database, bob.delivery_id) == ("accepted", None)
    assert [r.attribution for r in evidence(database)] == ["provider-field", "heuristic"]
    # A second message: same certificate URL, fetched once and cached.
    again = sns_signer.message(cert_url, message=ses_delivery(alice.token, ["alice@ext.test"]))
    assert hooks.post("/v1/hooks/ses", content=json.dumps(again)).json()["new"] == 1
    assert sum(1 for r in sns_host.received if r.path == CERT_PATH) == fetched + 1


def test_ses_bounce_is_classified_and_a_redelivered_sns_message_is_a_duplicate(
    hooks: Hooks,
    database: Database,
    settings: Settings,
    clock: FixedClock,
    sns_signer: SNSSigner,
    sns_host: FakeProvider,
) -> None:
    [d] = record(database, settings, clock, ["gone@ext.test"])
    bounce = json.dumps({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{
                "emailAddress": "gone@ext.test", "action": "failed", "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }],
            "timestamp": "2026-03-01T12:00:02.000Z", "feedbackId": "0100018f-feedback",
            "reportingMTA": "dsn; a8-1.smtp-out.amazonses.com",
        },
        "mail": {"messageId": "0100018f-ses", "destination": ["gone@ext.test"],
                 "tags": {"landed_token": [d.token]}},
    })  # fmt: skip
    message = sns_signer.message(sns_host.url + CERT_PATH, message=bounce, message_id="sns-1")
    first = hooks.post("/v1/hooks/ses", content=json.dumps(message))
    second = hooks.post("/v1/hooks/ses", content=json.dumps(message))
    assert (first.json()["new"], second.json()["new"]) == (1, 0)
    assert verdict(database, d.delivery_id) == ("queued", "bounced")
    [row] = evidence(database)
    assert (row.status, row.reason, row.hard) == ("5.1.1", "userunknown", True)


def test_ses_refuses_strangers_topics_forgeries_and_foreign_certificates(
    hooks: Hooks,
    database: Database,
    settings: Settings,
    clock: FixedClock,
    sns_signer: SNSSigner,
    sns_host: FakeProvider,
) -> None:
    [d] = record(database, settings, clock, ["alice@ext.test"])
    cert_url = sns_host.url + CERT_PATH
    body = ses_delivery(d.token, ["alice@ext.test"])
    before = len(sns_host.received)
    stranger = sns_signer.message(cert_url, message=body, topic="arn:aws:sns:eu-west-1:666:evil")
    answer = hooks.post("/v1/hooks/ses", content=json.dumps(stranger))
    assert answer.status_code == 403
    assert len(sns_host.received) == before  # nothing fetched for a stranger's topic
    elsewhere = sns_signer.message(
        "https://sns.eu-west-1.amazonaws.com.evil.test/c.pem", message=body
    )
    assert hooks.post("/v1/hooks/ses", content=json.dumps(elsewhere)).status_code == 401
    plain_http = sns_signer.message(cert_url.replace("https:", "http:"), message=body)
    assert hooks.post("/v1/hooks/ses", content=json.dumps(plain_http)).status_code == 401
    forged = sns_signer.message(cert_url, message=body)
    forged["Message"] = forged["Message"].replace("Delivery", "Complaint", 1)
    assert hooks.post("/v1/hooks/ses", content=json.dumps(forged)).status_code == 401
    impostor = SNSSigner.make().message(cert_url, message=body)
    assert hooks.post("/v1/hooks/ses", content=json.dumps(impostor)).status_code == 401
    assert hooks.post("/v1/hooks/ses", content=b"{not json").status_code == 400
    assert stored_requests(database) == [] and evidence(database) == []
    assert counter(hooks, "ses", "forbidden") == 1 and counter(hooks, "ses", "unauthorized") == 4


def test_ses_subscription_is_confirmed_only_for_allowed_topics(
    hooks: Hooks, database: Database, sns_signer: SNSSigner, sns_host: FakeProvider
) -> None:
    cert_url = sns_host.url + CERT_PATH
    confirm = f"{sns_host.url}/confirm?Action=ConfirmSubscription&Token=abc"
    denied = sns_signer.message(
        cert_url, kind="SubscriptionConfirmation", subscribe_url=confirm,
        topic="arn:aws:sns:eu-west-1:666:evil", message="You have chosen to subscribe...",
    )  # fmt: skip

    def confirmations() -> int:
        return sum(1 for r in sns_host.received if r.path.startswith("/confirm"))

    calls = confirmations()
    assert hooks.post("/v1/hooks/ses", content=json.dumps(denied)).status_code == 403
    assert confirmations() == calls
    allowed = sns_signer.message(
        cert_url, kind="SubscriptionConfirmation", subscribe_url=confirm,
        message="You have chosen to subscribe...",
    )  # fmt: skip
    response = hooks.post("/v1/hooks/ses", content=json.dumps(allowed))
    assert response.status_code == 200 and response.json()["events"] == 0
    assert confirmations() == calls + 1
    [stored] = stored_requests(database)
    assert stored.provider == "ses" and stored.events == 0


def test_ses_refuses_a_certificate_outside_its_validity(
    hooks: Hooks, database: Database, settings: Settings, clock: FixedClock,
    sns_host: FakeProvider,
) -> None:  # fmt: skip
    expired = SNSSigner.make(
        not_before=datetime(2024, 1, 1, tzinfo=UTC), not_after=datetime(2025, 1, 1, tzinfo=UTC)
    )
    sns_host.files["/expired.pem"] = expired.cert_pem
    [d] = record(database, settings, clock, ["alice@ext.test"])
    message = expired.message(
        sns_host.url + "/expired.pem", message=ses_delivery(d.token, ["alice@ext.test"])
    )
    answer = hooks.post("/v1/hooks/ses", content=json.dumps(message))
    assert answer.status_code == 401 and "not valid now" in answer.json()["error"]["message"]
    assert stored_requests(database) == []


# --- the route itself ----------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_unread(hooks: Hooks, database: Database) -> None:
    answer = hooks.post("/v1/hooks/postmark", content=b"x" * (MAX_BODY + 1))
    assert answer.status_code == 413
    assert counter(hooks, "postmark", "too_large") == 1
    assert stored_requests(database) == []


def test_a_mailgun_signature_is_spent_on_every_host_sharing_the_ledger(
    hooks: Hooks, database: Database, settings: Settings, clock: FixedClock
) -> None:
    """The spent-token record lives in the ledger, not in one process: a
    captured signature replayed to a second API host is refused too."""
    [d] = record(database, settings, clock, ["erin@ext.test"])
    other_host = Hooks(create_app(hooks.app.state.settings, database, clock=clock))
    body = mailgun_body(mg_event("delivered", d, 1), now_ts(clock))
    assert hooks.post("/v1/hooks/mailgun", content=body).status_code == 200
    forged = json.loads(body)
    forged["event-data"]["event"] = "complained"
    assert other_host.post("/v1/hooks/mailgun", json=forged).status_code == 403
    assert verdict(database, d.delivery_id) == ("accepted", None)


def test_spent_mailgun_tokens_are_forgotten_once_outside_the_window(
    hooks: Hooks, database: Database, settings: Settings, clock: FixedClock
) -> None:
    [d] = record(database, settings, clock, ["fred@ext.test"])
    hooks.post(
        "/v1/hooks/mailgun", content=mailgun_body(mg_event("delivered", d, 1), now_ts(clock))
    )
    with database.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.webhook_nonce)).scalar() == 1
    clock.advance(settings.webhook_max_age_seconds + 1)
    later = mailgun_body(mg_event("opened", d, 2), now_ts(clock))
    assert hooks.post("/v1/hooks/mailgun", content=later).status_code == 200
    with database.read() as conn:
        # The first token expired and was cleared when the second was spent.
        assert conn.execute(select(func.count()).select_from(t.webhook_nonce)).scalar() == 1


def test_unconfigured_and_unknown_providers_are_404(
    settings: Settings, database: Database, clock: FixedClock, tmp_path: Path
) -> None:
    client = Hooks(create_app(settings, database, clock=clock))
    if True:
        for provider in ("ses", "sendgrid", "mailgun", "postmark", "sparkpost"):
            response = client.post(f"/v1/hooks/{provider}", json=[])
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
    with database.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.webhook_request)).scalar() == 0
