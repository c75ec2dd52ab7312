"""Bearer tokens for the REST API: created and revoked by ``landed token``.

A token is ``ldt_`` and 43 characters of URL-safe base64 (256 random bits).
It is shown once, when it is made; the ledger keeps only its SHA-256 and its
first characters (so a person can tell tokens apart in a listing). A stolen
copy of the ledger therefore holds nothing that opens the API, and a plain
unsalted hash suffices because the token itself has full entropy (there is
nothing to guess a dictionary for).

Verification looks the hash up through its unique index and then compares it
with ``hmac.compare_digest``: what varies with the guess is only the index
walk over hashes, which tells an attacker nothing about any valid token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, select, update
from sqlalchemy.exc import IntegrityError

from landed.errors import InputError, NotFoundError
from landed.store import tables as t

#: Marks a landed API token, so secret scanners and people can recognise one.
TOKEN_PREFIX = "ldt_"
_RANDOM_BYTES = 32
#: How many leading characters of a token are kept for listings.
SHOWN_PREFIX = len(TOKEN_PREFIX) + 6
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
#: ``last_used_at`` is written at most this often per token: a busy client
#: must not turn every read request into a write (SQLite has one writer).
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ApiTokenView:
    """A token as listed: never the token itself."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "active": self.active,
        }


@dataclass(frozen=True, slots=True)
class NewApiToken:
    """A token just made: ``token`` is shown once and stored nowhere."""

    name: str
    token: str
    prefix: str
    created_at: datetime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InputError(
            f"token name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def create_token(conn: Connection, name: str, *, now: datetime) -> NewApiToken:
    """Make a token called ``name``; ``InputError`` if the name is taken (even by a revoked one)."""
    check_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
    prefix = token[:SHOWN_PREFIX]
    taken = conn.execute(select(t.api_token.c.id).where(t.api_token.c.name == name)).first()
    if taken is not None:
        raise InputError(f"a token named {name!r} exists already (names are never reused)")
    try:
        with conn.begin_nested():
            conn.execute(
                t.api_token.insert().values(
                    name=name, prefix=prefix, token_hash=hash_token(token), created_at=now
                )
            )
    except IntegrityError:
        # Another process made one with this name between the check and the insert.
        raise InputError(f"a token named {name!r} exists already") from None
    return NewApiToken(name, token, prefix, now)


def list_tokens(conn: Connection, *, include_revoked: bool = True) -> list[ApiTokenView]:
    """Every token, oldest first."""
    query = select(t.api_token).order_by(t.api_token.c.created_at, t.api_token.c.id)
    if not include_revoked:
        query = query.where(t.api_token.c.revoked_at.is_(None))
    return [
        ApiTokenView(r.id, r.name, r.prefix, r.created_at, r.revoked_at, r.last_used_at)
        for r in conn.execute(query)
    ]


def revoke_token(conn: Connection, name: str, *, now: datetime) -> None:
    """Revoke the token called ``name`` at once; ``NotFoundError`` if no active one has it."""
    done = conn.execute(
        update(t.api_token)
        .where(t.api_token.c.name == name, t.api_token.c.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount
    if not done:
        raise NotFoundError(f"no active token named {name!r}")


def verify_token(conn: Connection, token: str) -> ApiTokenView | None:
    """The active token whose value is ``token``, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    row = conn.execute(select(t.api_token).where(t.api_token.c.token_hash == digest)).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None:
        return None
    return ApiTokenView(row.id, row.name, row.prefix, row.created_at, None, row.last_used_at)


def needs_touch(view: ApiTokenView, now: datetime) -> bool:
    """Whether ``last_used_at`` is stale enough to be written again."""
    return view.last_used_at is None or now - view.last_used_at >= TOUCH_EVERY


def touch_token(conn: Connection, token_id: int, *, now: datetime) -> None:
    """Record a use; a no-op when another request recorded one within ``TOUCH_EVERY``."""
    conn.execute(
        update(t.api_token)
        .where(
            t.api_token.c.id == token_id,
            or_(
                t.api_token.c.last_used_at.is_(None),
                t.api_token.c.last_used_at <= now - TOUCH_EVERY,
            ),
        )
        .values(last_used_at=now)
    )
