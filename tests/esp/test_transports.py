"""The ESP transports against fake provider APIs on loopback (real HTTP, no mocks)."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from landed.clock import FixedClock
from landed.compose.envelope import Envelope
from landed.compose.request import validate_request
from landed.config import Settings
from landed.domain import Level, Outcome
from landed.errors import ConfigError
from landed.sender import Sender
from landed.store import Database
from landed.store import tables as t
from landed.store.ledger import notify
from landed.transport.base import Kind, Stage
from landed.transport.esp import (
    MailgunTransport,
    PostmarkTransport,
    SendGridTransport,
    SESTransport,
    esp_transport,
)
from landed.transport.esp.sigv4 import Credentials, authorization
from tests.esp.fakes import (
    MAILGUN_KEY,
    POSTMARK_TOKEN,
    SENDGRID_KEY,
    SES_ACCESS_KEY,
    SES_SECRET,
    FakeProvider,
)

pytestmark = pytest.mark.timeout(30)

TOKEN = "01jnkq3m4n5p6q7r8s9t0vwxyzk1abcdefghjkmnpqrs"
ENVELOPE = Envelope(mail_from=f"bounces+{TOKEN}@bounce.test", rcpt_to="bob@corp.test", envid=TOKEN)
MESSAGE = (
    "From: Alerts <alerts@corp.test>\r\n"
    "To: Bob Example <bob@corp.test>\r\n"
    "Reply-To: reply+" + TOKEN + "@bounce.test\r\n"
    "Subject: =?utf-8?q?=5BINC-1=5D_Disk_full_=E2=80=94_db1?=\r\n"
    "Date: Sun, 01 Mar 2026 12:00:00 +0000\r\n"
    "Message-ID: <" + TOKEN + "@corp.test>\r\n"
    "In-Reply-To: <topic-abc@corp.test>\r\n"
    "References: <topic-abc@corp.test>\r\n"
    "X-Landed-Token: " + TOKEN + "\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/alternative; boundary="b1"\r\n'
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "The disk is full \u2014 really.\r\n"
    "--b1\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "<p>The disk is <b>full</b>.</p>\r\n"
    "--b1--\r\n"
).encode("utf-8")


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    with FakeProvider(request.param) as server:
        yield server


def transport_for(
    kind: str, url: str, **overrides: str
) -> SESTransport | SendGridTransport | MailgunTransport | PostmarkTransport:
    if kind == "ses":
        return SESTransport(
            credentials=Credentials(SES_ACCESS_KEY, overrides.get("secret", SES_SECRET)),
            region="eu-west-1",
            base_url=url,
            configuration_set="landed-events",
            timeout=5,
            clock=FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        )
    if kind == "sendgrid":
        return SendGridTransport(
            api_key=overrides.get("key", SENDGRID_KEY), base_url=url, timeout=5
        )
    if kind == "mailgun":
        return MailgunTransport(
            api_key=overrides.get("key", MAILGUN_KEY),
            domain="mg.corp.test",
            base_url=url,
            timeout=5,
        )
    return PostmarkTransport(
        server_token=overrides.get("key", POSTMARK_TOKEN), base_url=url, timeout=5
    )


def test_sigv4_matches_the_aws_test_suite_vector() -> None:
    # "get-vanilla" from AWS's SigV4 test suite (aws-sig-v4-test-suite).
    header = authorization(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        method="GET",
        path="/",
        query="",
        headers={"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"},
        payload=b"",
        region="us-east-1",
        service="service",
        now=datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
    )
    assert header == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


@pytest.mark.parametrize("fake", ["ses"], indirect=True)
def test_ses_sends_raw_mime_signed_with_sigv4_and_tags_the_token(fake: FakeProvider) -> None:
    with transport_for(fake.kind, fake.url) as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    assert result.kind is Kind.SENT, result
    assert result.reply.code == 200 and result.reply.stage is Stage.API
    assert "message id 0100018f-ses-0001-000000" in result.reply.text
    assert result.route == "ses"
    [got] = fake.received
    assert got.path == "/v2/email/outbound-emails"
    body = got.json()
    assert base64.b64decode(body["Content"]["Raw"]["Data"]) == MESSAGE
    assert body["Destination"] == {"ToAddresses": ["bob@corp.test"]}
    assert body["EmailTags"] == [{"Name": "landed_token", "Value": TOKEN}]
    assert body["ConfigurationSetName"] == "landed-events"
    assert (
        "Credential=AKIDLANDEDTEST/20260301/eu-west-1/ses/aws4_request"
        in got.headers["authorization"]
    )


@pytest.mark.parametrize("fake", ["ses"], indirect=True)
def test_ses_wrong_secret_is_refused_by_the_signature_check_and_retried(fake: FakeProvider) -> None:
    with transport_for(fake.kind, fake.url, secret="not-the-secret") as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    # The fake recomputed the signature and refused it: our configuration, not the delivery.
    assert result.kind is Kind.TEMPORARY
    assert result.reply.code == 403 and "SignatureDoesNotMatch" in result.reply.text


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (400, "MessageRejected", Kind.PERMANENT),
        (400, "BadRequestException", Kind.PERMANENT),
        (400, "AccountSuspendedException", Kind.TEMPORARY),
        (400, "MailFromDomainNotVerifiedException", Kind.TEMPORARY),
        (429, "TooManyRequestsException", Kind.TEMPORARY),
        (500, "InternalFailure", Kind.TEMPORARY),
    ],
)
@pytest.mark.parametrize("fake", ["ses"], indirect=True)
def test_ses_errors_map_by_error_type(
    fake: FakeProvider, status: int, error: str, kind: Kind
) -> None:
    fake.script(
        status,
        {"message": f"{error} happened"},
        {"x-amzn-ErrorType": f"{error}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"},
    )
    with transport_for(fake.kind, fake.url) as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    assert result.kind is kind
    assert result.reply.code == status
    assert result.reply.text == f"ses {error}: {error} happened"


@pytest.mark.parametrize("fake", ["sendgrid"], indirect=True)
def test_sendgrid_sends_fields_headers_and_custom_args(fake: FakeProvider) -> None:
    with transport_for(fake.kind, fake.url) as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    assert result.kind is Kind.SENT and result.reply.code == 202
    assert "message id sg-0001" in result.reply.text
    [got] = fake.received
    assert got.path == "/v3/mail/send"
    assert got.headers["authorization"] == f"Bearer {SENDGRID_KEY}"
    body = got.json()
    [personalization] = body["personalizations"]
    assert personalization["to"] == [{"email": "bob@corp.test", "name": "Bob Example"}]
    assert personalization["custom_args"] == {"landed_token": TOKEN}
    assert body["from"] == {"email": "alerts@corp.test", "name": "Alerts"}
    assert body["reply_to"] == {"email": f"reply+{TOKEN}@bounce.test"}
    assert body["subject"] == "[INC-1] Disk full \u2014 db1"
    assert body["content"] == [
        {"type": "text/plain", "value": "The disk is full \u2014 really."},
        {"type": "text/html", "value": "<p>The disk is <b>full</b>.</p>"},
    ]
    assert body["headers"] == {
        "Message-ID": f"<{TOKEN}@corp.test>",
        "In-Reply-To": "<topic-abc@corp.test>",
        "References": "<topic-abc@corp.test>",
        "X-Landed-Token": TOKEN,
    }
    assert body["tracking_settings"]["click_tracking"]["enable"] is False


@pytest.mark.parametrize("fake", ["mailgun"], indirect=True)
def test_mailgun_posts_the_mime_message_with_a_user_variable(fake: FakeProvider) -> None:
    with transport_for(fake.kind, fake.url) as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    assert result.kind is Kind.SENT and result.reply.code == 200
    assert "message id <20260301.0001@mg.corp.test>" in result.reply.text
    assert "Queued. Thank you." in result.reply.text
    [got] = fake.received
    assert got.path == "/v3/mg.corp.test/messages.mime"
    form = got.form()
    assert form["to"] == b"bob@corp.test"
    assert form["v:landed_token"] == TOKEN.encode()
    assert form["o:tracking"] == b"no"
    assert form["message"] == MESSAGE


@pytest.mark.parametrize("fake", ["postmark"], indirect=True)
def test_postmark_sends_fields_headers_and_metadata(fake: FakeProvider) -> None:
    with transport_for(fake.kind, fake.url) as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    assert result.kind is Kind.SENT, result
    assert "message id b7bc2f4a-e38e-4336-af7d-e6c390000001" in result.reply.text
    [got] = fake.received
    assert got.path == "/email"
    assert got.headers["x-postmark-server-token"] == POSTMARK_TOKEN
    body = got.json()
    assert body["From"] == "Alerts <alerts@corp.test>"
    assert body["To"] == '"Bob Example" <bob@corp.test>'
    assert body["Metadata"] == {"landed_token": TOKEN}
    assert body["MessageStream"] == "outbound"
    assert body["HtmlBody"] == "<p>The disk is <b>full</b>.</p>"
    assert {"Name": "X-Landed-Token", "Value": TOKEN} in body["Headers"]
    assert {"Name": "Message-ID", "Value": f"<{TOKEN}@corp.test>"} in body["Headers"]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            422,
            {
                "ErrorCode": 406,
                "Message": "You tried to send to recipient(s) that have been marked as inactive.",
            },
            Kind.PERMANENT,
        ),
        (422, {"ErrorCode": 300, "Message": "Invalid 'To' address"}, Kind.PERMANENT),
        (422, {"ErrorCode": 400, "Message": "Sender signature not found"}, Kind.TEMPORARY),
        (429, {"ErrorCode": 429, "Message": "Rate limit exceeded"}, Kind.TEMPORARY),
        (500, {"ErrorCode": 100, "Message": "Maintenance"}, Kind.TEMPORARY),
    ],
)
@pytest.mark.parametrize("fake", ["postmark"], indirect=True)
def test_postmark_error_codes(
    fake: FakeProvider, status: int, body: dict[str, object], kind: Kind
) -> None:
    fake.script(status, body)
    with transport_for(fake.kind, fake.url) as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    assert result.kind is kind
    assert result.reply.text == f"postmark error {body['ErrorCode']}: {body['Message']}"


@pytest.mark.parametrize(
    ("fake", "status", "body", "kind", "text"),
    [
        ("sendgrid", 400,
         {"errors": [{"message": "Does not contain a valid address.",
                      "field": "personalizations.0.to.0.email"}]},
         Kind.PERMANENT,
         "sendgrid: Does not contain a valid address. (personalizations.0.to.0.email)"),
        ("sendgrid", 413, {"errors": [{"message": "too large"}]},
         Kind.PERMANENT, "sendgrid: too large"),
        ("sendgrid", 429, {"errors": [{"message": "too many requests"}]},
         Kind.TEMPORARY, "sendgrid: too many requests"),
        ("sendgrid", 503, b"upstream unavailable",
         Kind.TEMPORARY, "sendgrid: upstream unavailable"),
        ("mailgun", 400, {"message": "'to' parameter is not a valid address"},
         Kind.PERMANENT, "mailgun: 'to' parameter is not a valid address"),
        ("mailgun", 404, {"message": "Domain not found: mg.corp.test"},
         Kind.TEMPORARY, "mailgun: Domain not found: mg.corp.test"),
        ("mailgun", 500, {"message": "Internal error"},
         Kind.TEMPORARY, "mailgun: Internal error"),
    ],
    indirect=["fake"],
)  # fmt: skip
def test_http_errors_map_to_permanent_or_temporary(
    fake: FakeProvider, status: int, body: object, kind: Kind, text: str
) -> None:
    fake.script(status, body)
    with transport_for(fake.kind, fake.url) as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    assert (result.kind, result.reply.code, result.reply.text) == (kind, status, text)


@pytest.mark.parametrize("fake", ["sendgrid", "mailgun", "postmark"], indirect=True)
def test_a_wrong_api_key_is_temporary_not_a_bounce(fake: FakeProvider) -> None:
    with transport_for(fake.kind, fake.url, key="wrong") as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    assert result.kind is Kind.TEMPORARY and result.reply.code == 401


@pytest.mark.parametrize("kind", ["ses", "sendgrid", "mailgun", "postmark"])
def test_connection_refused_is_temporary(kind: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port was free a moment ago and nothing listens on it now.
    with transport_for(kind, f"http://127.0.0.1:{port}") as transport:
        result = transport.send(ENVELOPE, MESSAGE)
    assert result.kind is Kind.TEMPORARY and result.reply.code == 0
    assert "cannot reach" in result.reply.text and "ConnectError" in result.reply.text


@pytest.fixture
def plain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings with no database behind them (these tests need none)."""
    monkeypatch.setenv("LANDED_CONFIG", str(tmp_path / "absent.toml"))
    for name in list(os.environ):
        if name.startswith("LANDED_") and name != "LANDED_CONFIG":
            monkeypatch.delenv(name)
    return Settings(from_="alerts@corp.test", signing_keys={"k1": "0123456789abcdef0123"})


def test_factory_builds_each_provider_and_refuses_missing_credentials(plain: Settings) -> None:
    settings = plain
    configured = settings.model_copy(
        update={
            "ses_access_key_id": "AKID",
            "ses_secret_access_key": "secret",
            "sendgrid_api_key": "SG.x",
            "mailgun_api_key": "key",
            "mailgun_domain": "mg.corp.test",
            "postmark_server_token": "t",
        }
    )
    expected = {
        "ses": SESTransport,
        "sendgrid": SendGridTransport,
        "mailgun": MailgunTransport,
        "postmark": PostmarkTransport,
    }
    for name, cls in expected.items():
        transport = esp_transport(name, configured)
        assert isinstance(transport, cls) and transport.name == name
        transport.close()
    with pytest.raises(ConfigError, match="mailgun_domain"):
        esp_transport("mailgun", configured.model_copy(update={"mailgun_domain": None}))
    with pytest.raises(ConfigError, match="sendgrid_api_key"):
        esp_transport("sendgrid", settings)
    with pytest.raises(ConfigError, match="unknown email service provider"):
        esp_transport("sparkpost", configured)


def test_base_urls_must_be_https_except_on_loopback(plain: Settings) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Settings(sendgrid_base_url="http://api.sendgrid.com")
    assert Settings(sendgrid_base_url="http://127.0.0.1:8080/").sendgrid_base_url == (
        "http://127.0.0.1:8080"
    )
    assert Settings(mailgun_base_url="https://api.eu.mailgun.net").mailgun_base_url


@pytest.mark.parametrize("fake", ["sendgrid", "postmark"], indirect=True)
def test_the_sender_records_the_provider_answer_as_submitted_evidence(
    fake: FakeProvider, database: Database, settings: Settings, clock: FixedClock
) -> None:
    keyring = settings.keyring()
    request = validate_request(
        topic="INC-7", cls="incident", to=["Carol <carol@ext.test>"], subject="Down", text="db-3"
    )
    with database.write() as conn:
        created = notify(
            conn, request, sender=settings.require_from(), keyring=keyring,
            id_domain="corp.test", now=clock.now(),
        )  # fmt: skip
    [delivery] = created.deliveries
    sender = Sender(database, settings, transport_for(fake.kind, fake.url), clock=clock)
    assert sender.run_once() == 1
    [got] = fake.received
    token_field = (
        got.json()["personalizations"][0]["custom_args"]
        if fake.kind == "sendgrid"
        else got.json()["Metadata"]
    )
    assert token_field == {"landed_token": delivery.token}
    with database.read() as conn:
        rows = conn.execute(
            t.evidence.select().where(t.evidence.c.delivery_id == delivery.delivery_id)
        ).all()
        level = (
            conn.execute(t.delivery.select().where(t.delivery.c.id == delivery.delivery_id))
            .one()
            .level
        )
    [row] = rows
    assert row.level == Level.SUBMITTED.value and row.outcome is None
    assert row.route == fake.kind
    assert "accepted, message id" in row.detail
    assert level == Level.SUBMITTED.value


@pytest.mark.parametrize("fake", ["mailgun"], indirect=True)
def test_a_request_that_can_never_succeed_bounces_the_delivery(
    fake: FakeProvider, database: Database, settings: Settings, clock: FixedClock
) -> None:
    request = validate_request(
        topic="INC-8", cls="incident", to=["nobody@ext.test"], subject="Down", text="db-3"
    )
    with database.write() as conn:
        created = notify(
            conn, request, sender=settings.require_from(), keyring=settings.keyring(),
            id_domain="corp.test", now=clock.now(),
        )  # fmt: skip
    fake.script(400, {"message": "'to' parameter is not a valid address"})
    Sender(database, settings, transport_for(fake.kind, fake.url), clock=clock).run_once()
    with database.read() as conn:
        row = conn.execute(
            t.delivery.select().where(t.delivery.c.id == created.deliveries[0].delivery_id)
        ).one()
    assert (row.level, row.outcome) == (Level.QUEUED.value, Outcome.BOUNCED.value)
