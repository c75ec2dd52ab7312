"""Amazon SES v2 ``SendEmail`` with raw content, signed with SigV4.

API: https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html
(``POST /v2/email/outbound-emails``; ``Content.Raw.Data`` is the whole MIME
message, base64). The message goes out byte for byte as composed. The token
travels as the message tag ``landed_token`` (``EmailTags``), which SES event
publishing echoes in ``mail.tags`` of every event; SES may replace our
Message-ID with its own, and ``X-Landed-Token`` reaches the events only when
headers are included, so the tag is the link that survives.

Errors (``x-amzn-ErrorType`` header, JSON ``message``):
https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html#API_SendEmail_Errors
"""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import httpx

from landed.clock import Clock, SystemClock
from landed.compose.envelope import Envelope
from landed.transport.base import Kind
from landed.transport.esp.base import TOKEN_FIELD, Answer, HTTPTransport, excerpt, status_kind
from landed.transport.esp.sigv4 import Credentials, sign

__all__ = ["ERRORS", "SESTransport"]

PATH = "/v2/email/outbound-emails"
SERVICE = "ses"

#: SES error types whose meaning differs from their HTTP status. Everything
#: about our account or configuration is temporary: it is fixed by a person,
#: then the delivery goes through.
ERRORS: dict[str, Kind] = {
    # The message itself was refused (a virus, an unverified address in the sandbox).
    "MessageRejected": Kind.PERMANENT,
    "BadRequestException": Kind.PERMANENT,
    "MailFromDomainNotVerifiedException": Kind.TEMPORARY,
    "AccountSuspendedException": Kind.TEMPORARY,
    "SendingPausedException": Kind.TEMPORARY,
    "LimitExceededException": Kind.TEMPORARY,
    "TooManyRequestsException": Kind.TEMPORARY,
    "NotFoundException": Kind.TEMPORARY,
}


class SESTransport(HTTPTransport):
    """A transport through Amazon SES v2."""

    provider = "ses"

    def __init__(
        self,
        *,
        credentials: Credentials,
        region: str,
        base_url: str | None = None,
        configuration_set: str | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url or f"https://email.{region}.amazonaws.com",
            timeout=timeout,
            name=name,
        )
        self.credentials = credentials
        self.region = region
        self.configuration_set = configuration_set
        self.clock = clock or SystemClock()

    def request(self, envelope: Envelope, message: bytes) -> httpx.Request:
        document: dict[str, object] = {
            "Destination": {"ToAddresses": [envelope.rcpt_to]},
            "Content": {"Raw": {"Data": base64.b64encode(message).decode("ascii")}},
            # Tag values allow letters, digits, "_", "-", ".", "@": a token fits.
            "EmailTags": [{"Name": TOKEN_FIELD, "Value": envelope.envid}],
        }
        if self.configuration_set:
            document["ConfigurationSetName"] = self.configuration_set
        payload = json.dumps(document, separators=(",", ":")).encode()
        url = urlsplit(self.base_url + PATH)
        headers = sign(
            self.credentials,
            method="POST",
            url_host=url.netloc,
            path=url.path,
            headers={"Content-Type": "application/json"},
            payload=payload,
            region=self.region,
            service=SERVICE,
            now=self.clock.now(),
        )
        return self.build("POST", PATH, headers=headers, content=payload)

    def answer(self, response: httpx.Response) -> Answer:
        body = _json(response)
        if response.is_success:
            message_id = str(body.get("MessageId") or "(none)")
            text = f"ses accepted, message id {message_id}; response {excerpt(response.content)}"
            return Answer(Kind.SENT, text)
        # "MessageRejected:http://internal.amazon.com/coral/..." -> "MessageRejected"
        error = response.headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
        error = error or str(body.get("__type") or "").rpartition("#")[2]
        detail = str(body.get("message") or body.get("Message") or "") or excerpt(response.content)
        kind = ERRORS.get(error, status_kind(response.status_code))
        return Answer(kind, f"ses {error or 'error'}: {detail}")


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
