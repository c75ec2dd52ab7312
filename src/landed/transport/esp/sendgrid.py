"""SendGrid v3 Mail Send.

API: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
(``POST /v3/mail/send``, bearer API key; ``202 Accepted`` with the message id
in ``X-Message-Id``; errors as ``{"errors": [{"message", "field"}]}``).

SendGrid takes fields, not MIME, so the composed message is taken apart:
From, To, Subject, Reply-To, the text and HTML parts, and our other headers
(Message-ID, In-Reply-To, References, X-Landed-Token) under ``headers``. The
token travels in ``custom_args``, which SendGrid copies into every event it
posts (SendGrid rewrites message ids, so its own id is not a link).

SendGrid's click and open tracking are turned off for these messages: click
tracking rewrites links, which would break landed's signed tracking URLs.
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

__all__ = ["SendGridTransport"]

PATH = "/v3/mail/send"


class SendGridTransport(HTTPTransport):
    """A transport through SendGrid's v3 API."""

    provider = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.sendgrid.com",
        timeout: float = 30.0,
        name: str | None = None,
    ) -> None:
        super().__init__(base_url=base_url, timeout=timeout, name=name)
        self._api_key = api_key

    def request(self, envelope: Envelope, message: bytes) -> httpx.Request:
        parts = MessageParts.of(message)
        to: dict[str, str] = {"email": envelope.rcpt_to}
        if parts.to_name:
            to["name"] = parts.to_name
        sender: dict[str, str] = {"email": parts.sender_address}
        if parts.sender_name:
            sender["name"] = parts.sender_name
        content = [{"type": "text/plain", "value": parts.text or " "}]
        if parts.html is not None:
            content.append({"type": "text/html", "value": parts.html})
        document: dict[str, object] = {
            "personalizations": [{"to": [to], "custom_args": {TOKEN_FIELD: envelope.envid}}],
            "from": sender,
            "subject": parts.subject,
            "content": content,
            "headers": dict(parts.headers),
            "tracking_settings": {
                "click_tracking": {"enable": False, "enable_text": False},
                "open_tracking": {"enable": False},
            },
        }
        if parts.reply_to:
            document["reply_to"] = {"email": parts.reply_to}
        payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Content-Type": "application/json",
        }
        return self.build("POST", PATH, headers=headers, content=payload)

    def answer(self, response: httpx.Response) -> Answer:
        if response.is_success:
            message_id = response.headers.get("X-Message-Id", "(none)")
            text = f"sendgrid accepted, message id {message_id}"
            if response.content:
                text += f"; response {excerpt(response.content)}"
            return Answer(Kind.SENT, text)
        return Answer(status_kind(response.status_code), f"sendgrid: {_errors(response)}")


def _errors(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return excerpt(response.content) or response.reason_phrase
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        messages = []
        for error in errors:
            if isinstance(error, dict):
                field = f" ({error['field']})" if error.get("field") else ""
                messages.append(f"{error.get('message', '')}{field}")
        return excerpt("; ".join(messages))
    return excerpt(response.content)
