"""The transport seam: one method, ``send(envelope, message) -> SendResult``.

A transport may also offer ``send_many(items) -> Iterator[SendResult]`` for a
run of messages (the SMTP relay pipelines them); ``send_all`` uses it when
there, and ``send`` otherwise.

A transport never raises for something that went wrong with one delivery
(a refused recipient, a dropped connection, a timeout): it returns a result
saying whether the failure is temporary or permanent, with the server's reply.
It raises only for programming errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from landed.compose.envelope import Envelope

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


class Stage(StrEnum):
    """Where in the SMTP dialogue a reply came from."""

    CONNECT = "connect"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    #: The final reply after the message body (``250 2.0.0 Ok: queued as ...``).
    MESSAGE = "message"
    #: An HTTP API call (ESP transports).
    API = "api"


class Kind(StrEnum):
    """What a send attempt came to."""

    #: The first hop took responsibility (SMTP 250 after DATA, 2xx from an API).
    SENT = "sent"
    #: Try again later: 4xx, connection refused or dropped, timeout, TLS trouble.
    TEMPORARY = "temporary"
    #: The first hop refused permanently: 5xx.
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Reply:
    """A server's reply, or a description of why there was none (``code`` 0)."""

    code: int
    text: str
    stage: Stage

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code at the start of the text, if any."""
        match = _ENHANCED.match(self.text)
        return ".".join(match.groups()) if match else None

    def __str__(self) -> str:
        if self.code == 0:
            return f"[{self.stage}] {self.text}"
        return f"{self.code} {self.text}"


@dataclass(frozen=True, slots=True)
class SendResult:
    """The result of one attempt to send one delivery."""

    kind: Kind
    reply: Reply
    #: Which transport or route carried it (``relay``).
    route: str
    #: Whether RFC 3461 DSN parameters were sent (the server advertised DSN);
    #: None where DSN does not apply (an email service provider's HTTP API).
    dsn: bool | None = None


class Transport(Protocol):
    """Something that can hand a message to the mail world."""

    name: str

    def send(self, envelope: Envelope, message: bytes) -> SendResult:
        """Try once to send ``message``; never raise for a per-delivery failure."""
        ...

    def close(self) -> None:
        """Close any open connection."""
        ...


def send_all(transport: Transport, items: Iterable[tuple[Envelope, bytes]]) -> Iterator[SendResult]:
    """One result per ``(envelope, message)``, in order.

    Through the transport's ``send_many`` when it has one (the SMTP relay
    pipelines consecutive messages over its connection), else one ``send``
    after the other. ``items`` is consumed lazily, at most one ahead of the
    results.
    """
    many: Callable[[Iterable[tuple[Envelope, bytes]]], Iterator[SendResult]] | None = getattr(
        transport, "send_many", None
    )
    if many is not None:
        yield from many(items)
        return
    for envelope, message in items:
        yield transport.send(envelope, message)
