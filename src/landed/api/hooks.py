"""Provider webhooks: ``POST /v1/hooks/{ses,sendgrid,mailgun,postmark}``.

Not behind the REST API's bearer tokens: each provider authenticates its own
way, and that is checked before anything in the request is believed:

* ``ses``: Amazon SNS message signature (X.509), topic allowlist (``landed.api.sns``);
* ``sendgrid``: ECDSA P-256 signature over timestamp + body
  (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features),
  within ``webhook_max_age_seconds``;
* ``mailgun``: HMAC-SHA256 of timestamp + token under the webhook signing key
  (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks),
  within the window, each token accepted once;
* ``postmark``: HTTP basic auth, compared in constant time
  (https://postmarkapp.com/developer/webhooks/webhooks-overview#protecting-your-webhook).

A provider whose webhook key is not configured is 404. A request that fails
its check gets 401 (or 403: a topic we did not subscribe, a replayed token)
and leaves nothing behind but the ``landed_webhook_requests`` counter. A
request that passes is stored whole (``webhook_request``), then read into
evidence (``landed.store.webhooks``); a stored request whose body the
provider's reader cannot make sense of gets 400.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from landed.api.errors import error_response
from landed.api.metrics import Metrics
from landed.api.sns import SNSError, SNSMessage, SNSVerifier, read_envelope
from landed.clock import Clock
from landed.config import Settings
from landed.errors import ConfigError
from landed.parse.providers import PROVIDERS, EventFormatError, ProviderEvent
from landed.parse.providers import mailgun as mailgun_events
from landed.parse.providers import postmark as postmark_events
from landed.parse.providers import sendgrid as sendgrid_events
from landed.parse.providers import ses as ses_events
from landed.store import Database
from landed.store.webhooks import first_use, record_events, store_request
from landed.tokens import Keyring

__all__ = ["MAX_BODY", "install", "router"]

router = APIRouter(tags=["webhooks"])

#: Largest webhook body accepted (SendGrid batches events; they stay far below this).
MAX_BODY = 5 * 1024 * 1024
#: Header values not kept with the stored request.
_SECRET_HEADERS = frozenset({"authorization", "cookie"})
_SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
_SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
#: The ``landed_webhook_requests`` result label of each refusal.
_RESULTS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    413: "too_large",
    502: "bad_gateway",
}


class Refused(Exception):
    """A request that fails its provider's authentication (or cannot be read)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    @property
    def result(self) -> str:
        """The metrics label (and error code) of this refusal."""
        return _RESULTS.get(self.status, "unavailable")

    @property
    def code(self) -> str:
        return self.result


@dataclass(frozen=True, slots=True)
class _Verified:
    """What passed authentication: the body, and what had to be decoded to check it."""

    body: bytes
    payload: Mapping[str, object] | None = None
    sns: SNSMessage | None = None
    #: A signature nonce to spend in the recording transaction, and until when.
    nonce: tuple[str, datetime] | None = None


class _Replayed(Exception):
    """The request's signature nonce was spent already."""


def configured(provider: str, settings: Settings) -> bool:
    """Whether the provider's webhook has its key: otherwise the path is 404."""
    return {
        "ses": bool(_topics(settings)),
        "sendgrid": bool(settings.sendgrid_webhook_key),
        "mailgun": bool(settings.mailgun_webhook_key),
        "postmark": bool(settings.postmark_webhook_auth),
    }.get(provider, False)


@router.post(
    "/v1/hooks/{provider}",
    summary="Receive an email service provider's event webhook",
    responses={401: {}, 403: {}, 404: {}, 413: {}},
)
async def provider_hook(provider: str, request: Request) -> JSONResponse:
    app = request.app
    settings = cast(Settings, app.state.settings)
    if provider not in PROVIDERS or not configured(provider, settings):
        return error_response(404, "not_found", f"no webhook for {provider!r} is configured")
    metrics = cast(Metrics, app.state.metrics)
    try:
        body = await _read_body(request)
    except Refused as refused:
        metrics.webhook_requests.labels(provider, refused.result).inc()
        return error_response(refused.status, refused.code, refused.reason)
    peer = f"{request.client.host}:{request.client.port}" if request.client else "unknown"
    headers = {name.lower(): value for name, value in request.headers.items()}
    status, answer, result = await run_in_threadpool(
        _handle, app, settings, provider, headers, body, peer
    )
    metrics.webhook_requests.labels(provider, result).inc()
    return JSONResponse(answer, status_code=status, headers=_challenge(provider, status))


def _error(status: int, message: str) -> dict[str, object]:
    """The REST API's error shape (``landed.api.errors``)."""
    return {"error": {"code": _RESULTS.get(status, "unavailable"), "message": message}}


def _challenge(provider: str, status: int) -> dict[str, str] | None:
    if provider == "postmark" and status == 401:
        return {"WWW-Authenticate": 'Basic realm="landed webhooks"'}
    return None


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise Refused(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _handle(
    app: FastAPI,
    settings: Settings,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    peer: str,
) -> tuple[int, dict[str, object], str]:
    """Authenticate, store, record: (HTTP status, JSON answer, metrics result)."""
    clock = cast(Clock, app.state.clock)
    now = clock.now()
    try:
        verified = _authenticate(app, settings, provider, headers, body, now)
    except Refused as refused:
        return refused.status, _error(refused.status, refused.reason), refused.result
    kept = {k: ("(redacted)" if k in _SECRET_HEADERS else v) for k, v in headers.items()}
    try:
        return _record(app, settings, provider, verified, kept, body, peer, now)
    except _Replayed:
        replayed = Refused(403, f"{provider} signature token already used (replay)")
        return replayed.status, _error(replayed.status, replayed.reason), replayed.result


def _record(
    app: FastAPI,
    settings: Settings,
    provider: str,
    verified: _Verified,
    kept: Mapping[str, str],
    body: bytes,
    peer: str,
    now: datetime,
) -> tuple[int, dict[str, object], str]:
    db = cast(Database, app.state.db)
    keyring = cast(Keyring, app.state.keyring)
    with db.write() as conn:
        if verified.nonce is not None:
            nonce, expires_at = verified.nonce
            # Spent in the same transaction that records the request: a
            # replay is refused on every host, and a request whose recording
            # failed leaves its nonce unspent for the provider's retry.
            if not first_use(conn, provider, nonce, expires_at=expires_at, now=now):
                raise _Replayed
        request_id = store_request(
            conn, provider=provider, received_at=now, peer=peer, headers=kept, body=body
        )
        try:
            events = _events(provider, verified)
        except EventFormatError as exc:
            # Stored all the same: it passed authentication, and is material.
            return 400, _error(400, f"{exc} (request {request_id} kept)"), "bad_request"
        outcome = record_events(conn, keyring, request_id, events, now=now)
    sns = verified.sns
    if sns is not None and sns.type == "SubscriptionConfirmation":
        try:
            _sns_verifier(app, settings).confirm(sns)
        except SNSError as exc:
            return exc.status, _error(exc.status, exc.reason), "unavailable"
    answer: dict[str, object] = {
        "request": request_id,
        "events": outcome.events,
        "new": outcome.new_events,
        "attributed": outcome.attributed,
    }
    return 200, answer, "accepted"


def _events(provider: str, verified: _Verified) -> list[ProviderEvent]:
    if provider == "ses":
        assert verified.sns is not None
        if verified.sns.type != "Notification":
            return []
        return ses_events.read(verified.sns.message, verified.sns.message_id)
    if provider == "sendgrid":
        return sendgrid_events.read(verified.body)
    assert verified.payload is not None
    if provider == "mailgun":
        return mailgun_events.read(verified.payload)
    return postmark_events.read(verified.payload)


# --- authentication ------------------------------------------------------------------


def _authenticate(
    app: FastAPI,
    settings: Settings,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> _Verified:
    if provider == "ses":
        try:
            fields = read_envelope(body)
            message = _sns_verifier(app, settings).verify(fields, now=now)
        except SNSError as exc:
            raise Refused(exc.status, exc.reason) from None
        return _Verified(body, sns=message)
    if provider == "sendgrid":
        _check_sendgrid(settings, headers, body, now)
        return _Verified(body)
    if provider == "mailgun":
        payload = _json_object(body)
        nonce = _check_mailgun(settings, payload, now)
        return _Verified(body, payload=payload, nonce=nonce)
    _check_postmark(settings, headers)
    return _Verified(body, payload=_json_object(body))


def _within_window(stamp: str, settings: Settings, now: datetime) -> float:
    """The timestamp as Unix seconds, if close enough to now; else 401."""
    try:
        seconds = float(stamp)
    except ValueError:
        raise Refused(401, "signature timestamp is not a number") from None
    if abs(now.timestamp() - seconds) > settings.webhook_max_age_seconds:
        raise Refused(401, "signature timestamp is outside the allowed window")
    return seconds


def _check_sendgrid(
    settings: Settings, headers: Mapping[str, str], body: bytes, now: datetime
) -> None:
    signature = headers.get(_SENDGRID_SIGNATURE, "")
    stamp = headers.get(_SENDGRID_TIMESTAMP, "")
    if not signature or not stamp:
        raise Refused(401, "missing SendGrid signature headers")
    _within_window(stamp, settings, now)
    try:
        key = _sendgrid_key(settings.sendgrid_webhook_key or "")
    except ConfigError as exc:
        raise Refused(503, str(exc)) from None
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            stamp.encode("utf-8") + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused(401, "SendGrid signature does not verify") from None


@functools.lru_cache(maxsize=4)
def _sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 DER as its console shows it, or PEM."""
    try:
        if text.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text.strip()))
    except (ValueError, binascii.Error):
        raise ConfigError(
            "sendgrid_webhook_key is not a base64 or PEM public key", setting="sendgrid_webhook_key"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(
            "sendgrid_webhook_key is not an ECDSA key", setting="sendgrid_webhook_key"
        )
    return key


def _check_mailgun(
    settings: Settings, payload: Mapping[str, object], now: datetime
) -> tuple[str, datetime]:
    """Check Mailgun's HMAC and timestamp; give the signature token to spend.

    Mailgun signs timestamp + token, not the body: only spending the token once
    stops a captured signature from carrying another body.
    """
    block = payload.get("signature")
    fields = block if isinstance(block, dict) else {}
    stamp, token, signature = (
        str(fields.get(k) or "") for k in ("timestamp", "token", "signature")
    )
    if not (stamp and token and signature):
        raise Refused(401, "missing Mailgun signature")
    seconds = _within_window(stamp, settings, now)
    key = (settings.mailgun_webhook_key or "").encode("utf-8")
    expected = hmac.new(key, (stamp + token).encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise Refused(401, "Mailgun signature does not verify")
    # Remembered until its timestamp leaves the window: after that, the window
    # check refuses it anyway.
    return token, datetime.fromtimestamp(seconds + settings.webhook_max_age_seconds, UTC)


def _check_postmark(settings: Settings, headers: Mapping[str, str]) -> None:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Refused(401, "basic authentication required")
    try:
        presented = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(401, "malformed basic authentication") from None
    expected = (settings.postmark_webhook_auth or "").encode("utf-8")
    if not hmac.compare_digest(
        hashlib.sha256(presented).digest(), hashlib.sha256(expected).digest()
    ):
        raise Refused(401, "wrong webhook credentials")


def _json_object(body: bytes) -> dict[str, object]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "body is not JSON") from None
    if not isinstance(value, dict):
        raise Refused(400, "body is not a JSON object")
    return value


def _topics(settings: Settings) -> frozenset[str]:
    return frozenset(
        arn.strip() for arn in (settings.ses_topic_arns or "").split(",") if arn.strip()
    )


_verifier_lock = threading.Lock()


def _sns_verifier(app: FastAPI, settings: Settings) -> SNSVerifier:
    """The app's SNS verifier (and its certificate cache), made on first use."""
    with _verifier_lock:
        verifier = getattr(app.state, "sns_verifier", None)
        if verifier is None:
            hosts = None
            if settings.ses_sns_hosts:
                hosts = frozenset(
                    h.strip().lower() for h in settings.ses_sns_hosts.split(",") if h.strip()
                )
            verifier = SNSVerifier(
                topics=_topics(settings),
                hosts=hosts,
                cafile=settings.ses_sns_cafile,
                timeout=min(settings.esp_timeout_seconds, 10.0),
            )
            app.state.sns_verifier = verifier
        return cast(SNSVerifier, verifier)


def install(app: FastAPI) -> None:
    app.include_router(router)
