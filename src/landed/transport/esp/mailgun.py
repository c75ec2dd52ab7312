"""Mailgun ``messages.mime``: the composed MIME message as it is.

API: https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/
(``POST /v3/{domain}/messages.mime``, HTTP basic auth ``api:KEY``, multipart
form with ``to`` and the ``message`` file; ``200`` with ``{"id", "message"}``).
The token travels as the user variable ``v:landed_token``, which Mailgun
returns in ``user-variables`` of every event. Tracking (``o:tracking``) is
off, so Mailgun does not rewrite landed's signed links.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import httpx

from landed.compose.envelope import Envelope
from landed.transport.base import Kind
from landed.transport.esp.base import TOKEN_FIELD, Answer, HTTPTransport, excerpt, status_kind

__all__ = ["MailgunTransport"]


class MailgunTransport(HTTPTransport):
    """A transport through Mailgun's HTTP API."""

    provider = "mailgun"

    def __init__(
        self,
        *,
        api_key: str,
        domain: str,
        base_url: str = "https://api.mailgun.net",
        timeout: float = 30.0,
        name: str | None = None,
    ) -> None:
        super().__init__(base_url=base_url, timeout=timeout, name=name)
        self.domain = domain
        self._auth = "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode("ascii")

    def request(self, envelope: Envelope, message: bytes) -> httpx.Request:
        return self.build(
            "POST",
            f"/v3/{quote(self.domain, safe='')}/messages.mime",
            headers={"Authorization": self._auth},
            data={
                "to": envelope.rcpt_to,
                f"v:{TOKEN_FIELD}": envelope.envid,
                "o:tracking": "no",
            },
            files={"message": ("message.mime", message, "message/rfc822")},
        )

    def answer(self, response: httpx.Response) -> Answer:
        try:
            body = response.json()
        except ValueError:
            body = None
        fields = body if isinstance(body, dict) else {}
        if response.is_success:
            message_id = fields.get("id") or "(none)"
            return Answer(
                Kind.SENT,
                f"mailgun accepted, message id {message_id}; response {excerpt(response.content)}",
            )
        detail = str(fields.get("message") or "") or excerpt(response.content)
        return Answer(status_kind(response.status_code), f"mailgun: {detail}")
