"""What the ESP transports share: one HTTP call per send, its answer as a result.

Each provider module builds its request from the envelope and the composed
message; this base sends it with httpx and turns the answer into a
:class:`~landed.transport.base.SendResult`, never raising for a delivery's
failure:

* 2xx: ``SENT``; the reply text carries the provider's message id and body,
  which the sender records as ``submitted`` evidence;
* 429, 5xx, a timeout or a connection error: ``TEMPORARY`` (retry);
* 401, 403, 404, 407: ``TEMPORARY`` too: a wrong key or domain is our
  configuration's fault, and must not bounce every notification (as the SMTP
  relay treats a failed AUTH);
* any other 4xx (400, 413, 422...): ``PERMANENT``: the request will never
  succeed. Providers refine this with their own error codes.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses

import httpx

from landed.compose.envelope import Envelope
from landed.errors import InputError
from landed.parse.providers.event import TOKEN_FIELD
from landed.transport.base import Kind, Reply, SendResult, Stage

__all__ = ["TOKEN_FIELD", "Answer", "HTTPTransport", "MessageParts", "status_kind"]


#: 4xx statuses that say our credentials or account settings are wrong.
_CONFIGURATION = frozenset({401, 403, 404, 407})
#: 4xx statuses that say "try again later".
_LATER = frozenset({408, 409, 425, 429})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Headers of our composed message that the JSON APIs (SendGrid, Postmark)
#: take as fields of their own or build themselves, and trace or signature
#: headers that would be false once the provider rebuilds the message
#: (SendGrid refuses several of them: its Mail Send "headers" reference).
_OWN_FIELDS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "reply-to", "date", "mime-version",
     "content-type", "content-transfer-encoding", "dkim-signature", "received",
     "return-path"}
)  # fmt: skip
_REPLY_BODY_LIMIT = 500


def status_kind(status: int) -> Kind:
    """What an HTTP status means for a delivery, before provider-specific refinement."""
    if 200 <= status < 300:
        return Kind.SENT
    if status >= 500 or status in _LATER or status in _CONFIGURATION:
        return Kind.TEMPORARY
    if 400 <= status < 500:
        return Kind.PERMANENT
    # 1xx/3xx: we follow no redirects; a provider that answers so is misconfigured.
    return Kind.TEMPORARY


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's HTTP answer, as the provider module reads it."""

    kind: Kind
    #: One line for the evidence: message id on success, the error otherwise.
    text: str


@dataclass(frozen=True, slots=True)
class MessageParts:
    """A composed message taken apart for the APIs that want fields, not MIME."""

    sender: str
    sender_name: str
    sender_address: str
    to_name: str
    subject: str
    text: str
    html: str | None
    reply_to: str | None
    #: Other headers to pass on (Message-ID, In-Reply-To, References, our token...).
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, message: bytes) -> MessageParts:
        """Read our own composed message (``landed.compose``)."""
        parsed = email.message_from_bytes(message, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        sender = _header(parsed, "From")
        sender_name, sender_address = _first_address(sender)
        to_name, _ = _first_address(_header(parsed, "To"))
        text_part = parsed.get_body(preferencelist=("plain",))
        html_part = parsed.get_body(preferencelist=("html",))
        text = text_part.get_content() if isinstance(text_part, EmailMessage) else ""
        html = html_part.get_content() if isinstance(html_part, EmailMessage) else None
        headers = tuple(
            (name, _clean(str(value)))
            for name, value in parsed.items()
            if name.lower() not in _OWN_FIELDS
        )
        return cls(
            sender=sender,
            sender_name=sender_name,
            sender_address=sender_address,
            to_name=to_name,
            subject=_header(parsed, "Subject"),
            text=text,
            html=html,
            reply_to=_header(parsed, "Reply-To") or None,
            headers=headers,
        )


def _first_address(value: str) -> tuple[str, str]:
    pairs = getaddresses([value])
    return pairs[0] if pairs else ("", "")


def _header(message: EmailMessage, name: str) -> str:
    value = message.get(name)
    return _clean(str(value)) if value is not None else ""


def _clean(value: str) -> str:
    """Unfold a header value; no CR, LF or other control characters survive."""
    return _CONTROL.sub(" ", " ".join(value.split()))


def excerpt(body: bytes | str) -> str:
    """A provider's response body, on one line and bounded, for the evidence."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= _REPLY_BODY_LIMIT else text[:_REPLY_BODY_LIMIT] + "…"


class HTTPTransport:
    """Base of the ESP transports: one pooled httpx client, one request per send.

    Subclasses implement ``request`` (what to send) and ``answer`` (what the
    response means). One instance may be shared by threads: httpx's client is
    thread-safe, and ``close`` is guarded.
    """

    #: The provider's name, as in route chains and webhook URLs.
    provider = ""

    def __init__(self, *, base_url: str, timeout: float, name: str | None = None) -> None:
        self.name = name or self.provider
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._lock = threading.Lock()
        self._closed = False

    def send(self, envelope: Envelope, message: bytes) -> SendResult:
        """One API call for one delivery; never raises for a delivery's failure."""
        for value, what in ((envelope.rcpt_to, "recipient"), (envelope.envid, "token")):
            if _CONTROL.search(value):
                raise InputError(f"{what} contains control characters")
        request = self.request(envelope, message)
        where = f"{self.provider} {request.url.host}"
        try:
            response = self._client.send(request)
        except httpx.TimeoutException:
            return self._result(Kind.TEMPORARY, 0, f"{where}: timed out")
        except httpx.HTTPError as exc:
            text = f"cannot reach {where}: {exc.__class__.__name__}: {exc}"
            return self._result(Kind.TEMPORARY, 0, text)
        answer = self.answer(response)
        return self._result(answer.kind, response.status_code, answer.text)

    def request(self, envelope: Envelope, message: bytes) -> httpx.Request:
        raise NotImplementedError

    def answer(self, response: httpx.Response) -> Answer:
        raise NotImplementedError

    def build(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        **kwargs: object,
    ) -> httpx.Request:
        """A request to the provider's API at ``path`` (below the base URL)."""
        return self._client.build_request(
            method,
            self.base_url + path,
            headers=dict(headers or {}),
            **kwargs,  # type: ignore[arg-type]
        )

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._client.close()

    def __enter__(self) -> HTTPTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _result(self, kind: Kind, status: int, text: str) -> SendResult:
        return SendResult(kind=kind, reply=Reply(status, text, Stage.API), route=self.name)
