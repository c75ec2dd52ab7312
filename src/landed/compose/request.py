"""A caller's request to notify, checked before anything is recorded."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from landed.compose.headers import Mailbox, check_header_value, parse_mailbox
from landed.errors import InputError

_CLASS = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_TOPIC = 200
MAX_SUBJECT = 998 - len("Subject: ")
MAX_BODY = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyRequest:
    """A validated notification: one topic, one class, one or more recipients."""

    topic: str
    cls: str
    to: tuple[Mailbox, ...]
    subject: str
    text: str
    html: str | None = None
    idempotency_key: str | None = None


def validate_request(
    *,
    topic: str,
    cls: str,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    idempotency_key: str | None = None,
) -> NotifyRequest:
    """Check every caller-supplied field; raise ``InputError`` naming the field."""
    if isinstance(to, str):
        raise InputError("to: give a list of addresses, not one string")
    topic = check_header_value(topic, "topic").strip()
    if not topic:
        raise InputError("topic is empty")
    if len(topic) > MAX_TOPIC:
        raise InputError(f"topic is longer than {MAX_TOPIC} characters")
    if not _CLASS.match(cls):
        raise InputError(f"class {cls!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'")
    subject = check_header_value(subject, "subject").strip()
    if not subject:
        raise InputError("subject is empty")
    if len(subject) > MAX_SUBJECT:
        raise InputError(f"subject is longer than {MAX_SUBJECT} characters")
    if "\x00" in text or (html is not None and "\x00" in html):
        raise InputError("body contains NUL")
    if len(text) > MAX_BODY or (html is not None and len(html) > MAX_BODY):
        raise InputError("body is larger than 10 MiB")
    if idempotency_key is not None:
        check_header_value(idempotency_key, "idempotency_key")
        if not 0 < len(idempotency_key) <= 200:
            raise InputError("idempotency_key must be 1-200 characters")
    if not to:
        raise InputError("to: at least one recipient is needed")
    mailboxes: list[Mailbox] = []
    seen: set[str] = set()
    for i, address in enumerate(to):
        try:
            mailbox, normalized = _recipient(address)
        except (InputError, TypeError):
            parse_mailbox(address, f"to[{i}]")  # raises, naming the field
            raise
        if normalized in seen:
            continue  # one delivery per recipient, even if named twice
        seen.add(normalized)
        mailboxes.append(mailbox)
    return NotifyRequest(
        topic=topic,
        cls=cls,
        to=tuple(mailboxes),
        subject=subject,
        text=text,
        html=html,
        idempotency_key=idempotency_key,
    )


@lru_cache(maxsize=4096)
def _recipient(address: str) -> tuple[Mailbox, str]:
    """A recipient as parsed, and its normalized address. Remembered: notifications
    go to the same people again and again, and a ``Mailbox`` is immutable."""
    mailbox = parse_mailbox(address, "to")
    return mailbox, mailbox.normalized()
