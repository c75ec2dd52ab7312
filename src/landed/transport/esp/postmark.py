"""Postmark ``/email``: fields and headers (Postmark has no raw MIME endpoint).

API: https://postmarkapp.com/developer/api/email-api (``POST /email``,
``X-Postmark-Server-Token``; ``200`` with ``{"MessageID", "ErrorCode": 0}``;
failures as ``422`` with a Postmark ``ErrorCode``:
https://postmarkapp.com/developer/api/overview#error-codes).

The composed message is taken apart: From, To, Subject, Reply-To, text and
HTML bodies, and our other headers (Message-ID, In-Reply-To, References,
X-Landed-Token) under ``Headers``. The token travels in ``Metadata``, which
Postmark returns in every webhook record. Open and link tracking are off, so
landed's signed links are not rewritten.
"""

from __future__ import annotations

import json

import httpx

from landed.compose.envelope import Envelope
from landed.transport.base import Kind
from landed.transport.esp.base import (
    TOKEN_FIELD,
    Answer,
    HTTPTransport,
    MessageParts,
    excerpt,
    status_kind,
)

__all__ = ["ERROR_CODES", "PostmarkTransport"]

PATH = "/email"

#: Postmark ErrorCode -> what it means for the delivery. Codes about our
#: token, sender signature or account are temporary (a person fixes them);
#: codes about this message or recipient are permanent.
ERROR_CODES: dict[int, Kind] = {
    10: Kind.TEMPORARY,  # bad or missing API token
    100: Kind.TEMPORARY,  # maintenance
    300: Kind.PERMANENT,  # invalid email request
    400: Kind.TEMPORARY,  # sender signature not found
    401: Kind.TEMPORARY,  # sender signature not confirmed
    402: Kind.PERMANENT,  # invalid JSON
    403: Kind.PERMANENT,  # incompatible JSON
    405: Kind.TEMPORARY,  # not allowed to send (account out of credits)
    406: Kind.PERMANENT,  # inactive recipient (bounced or complained before)
    409: Kind.PERMANENT,  # JSON required
    412: Kind.TEMPORARY,  # account pending approval
    413: Kind.TEMPORARY,  # account may not send
    429: Kind.TEMPORARY,  # rate limit exceeded
}


class PostmarkTransport(HTTPTransport):
    """A transport through Postmark's email API."""

    provider = "postmark"

    def __init__(
        self,
        *,
        server_token: str,
        message_stream: str = "outbound",
        base_url: str = "https://api.postmarkapp.com",
        timeout: float = 30.0,
        name: str | None = None,
    ) -> None:
        super().__init__(base_url=base_url, timeout=timeout, name=name)
        self._token = server_token
        self.message_stream = message_stream

    def request(self, envelope: Envelope, message: bytes) -> httpx.Request:
        parts = MessageParts.of(message)
        to = envelope.rcpt_to
        if parts.to_name:
            to = f'"{_quoted(parts.to_name)}" <{to}>'
        document: dict[str, object] = {
            "From": parts.sender,
            "To": to,
            "Subject": parts.subject,
            "TextBody": parts.text,
            "Headers": [{"Name": name, "Value": value} for name, value in parts.headers],
            "Metadata": {TOKEN_FIELD: envelope.envid},
            "MessageStream": self.message_stream,
            "TrackOpens": False,
            "TrackLinks": "None",
        }
        if parts.html is not None:
            document["HtmlBody"] = parts.html
        if parts.reply_to:
            document["ReplyTo"] = parts.reply_to
        payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "X-Postmark-Server-Token": self._token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        return self.build("POST", PATH, headers=headers, content=payload)

    def answer(self, response: httpx.Response) -> Answer:
        try:
            body = response.json()
        except ValueError:
            body = None
        fields = body if isinstance(body, dict) else {}
        code = fields.get("ErrorCode")
        if response.is_success and code in (0, None):
            message_id = fields.get("MessageID") or "(none)"
            return Answer(
                Kind.SENT,
                f"postmark accepted, message id {message_id}; response {excerpt(response.content)}",
            )
        kind = status_kind(response.status_code)
        if isinstance(code, int) and code in ERROR_CODES:
            kind = ERROR_CODES[code]
        elif response.status_code == 422:
            # Any other 422 is about this request (Postmark documents 422 for
            # "unprocessable entity" errors of the message).
            kind = Kind.PERMANENT
        detail = str(fields.get("Message") or "") or excerpt(response.content)
        return Answer(kind, f"postmark error {code if code is not None else '-'}: {detail}")


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')
