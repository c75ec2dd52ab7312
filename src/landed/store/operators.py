"""Dashboard logins: the ``operator`` table.

Passwords are stored as ``scrypt$N$r$p$SALT$HASH`` (SALT and HASH in hex):
``hashlib.scrypt`` (RFC 7914) with a random 16-byte salt per user and the
parameters written next to the hash, so they can be raised later without
invalidating existing passwords. N=2^14, r=8, p=1 are the interactive-login
parameters RFC 7914 §2 and the Python documentation suggest (about 16 MiB
and tens of milliseconds per check).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from landed.errors import InputError, NotFoundError
from landed.store import tables as t
from landed.store.engine import Database

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True, slots=True)
class OperatorView:
    """An operator as listed (never the hash)."""

    username: str
    created_at: datetime
    disabled_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "username": self.username,
            "created_at": self.created_at.isoformat(),
            "disabled": self.disabled_at is not None,
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
        }


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``password``: ``scrypt$N$r$p$SALT$HASH``."""
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a stored ``scrypt$...`` hash (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        actual = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = _HASH_BYTES) -> bytes:
    # maxmem: 128·r·N bytes are needed; allow twice that.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * r * n
    )


@functools.cache
def _dummy_hash() -> str:
    """Checked when the user does not exist, so that a wrong name takes as long as a
    wrong password and timing does not tell which names exist."""
    return hash_password("landed-no-such-operator", salt=b"\0" * _SALT_BYTES)


def check_username(username: str) -> str:
    """``username`` if usable as a login: 1-64 of letters, digits, ``. _ @ -``."""
    if not _USERNAME.match(username):
        raise InputError(
            f"bad username {username!r}: 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return username


def add_operator(
    db: Database, username: str, password: str, *, now: datetime, replace: bool = False
) -> None:
    """Create a dashboard login. ``InputError`` when it exists, unless ``replace``:
    then its password is set anew and a disabled login enabled again."""
    check_username(username)
    if not password:
        raise InputError("the password is empty")
    stored = hash_password(password)
    with db.write() as conn:
        existing = conn.execute(
            select(t.operator.c.username).where(t.operator.c.username == username)
        ).first()
        if existing is not None:
            if not replace:
                raise InputError(f"operator {username!r} exists")
            conn.execute(
                update(t.operator)
                .where(t.operator.c.username == username)
                .values(password_hash=stored, disabled_at=None)
            )
            return
        conn.execute(
            t.operator.insert().values(
                username=username, password_hash=stored, created_at=now, disabled_at=None
            )
        )


def verify_operator(db: Database, username: str, password: str) -> bool:
    """Whether ``username`` is an enabled operator with this password.

    Takes the same time whether or not the user exists or is disabled.
    """
    with db.read() as conn:
        row = conn.execute(
            select(t.operator.c.password_hash, t.operator.c.disabled_at).where(
                t.operator.c.username == username
            )
        ).first()
    if row is None:
        check_password(password, _dummy_hash())
        return False
    matches = check_password(password, row.password_hash)
    return matches and row.disabled_at is None


def operator_enabled(db: Database, username: str) -> bool:
    """Whether ``username`` exists and is not disabled (checked on every dashboard request)."""
    with db.read() as conn:
        row = conn.execute(
            select(t.operator.c.disabled_at).where(t.operator.c.username == username)
        ).first()
    return row is not None and row.disabled_at is None


def list_operators(db: Database) -> list[OperatorView]:
    """Every operator, by name."""
    with db.read() as conn:
        rows = conn.execute(
            select(
                t.operator.c.username, t.operator.c.created_at, t.operator.c.disabled_at
            ).order_by(t.operator.c.username)
        ).all()
    return [OperatorView(r.username, r.created_at, r.disabled_at) for r in rows]


def disable_operator(db: Database, username: str, *, now: datetime) -> bool:
    """Disable a login (its sessions stop working at once); False if already disabled.

    ``NotFoundError`` when there is no such operator.
    """
    with db.write() as conn:
        row = conn.execute(
            select(t.operator.c.disabled_at).where(t.operator.c.username == username)
        ).first()
        if row is None:
            raise NotFoundError(f"no operator {username!r}")
        if row.disabled_at is not None:
            return False
        conn.execute(
            update(t.operator).where(t.operator.c.username == username).values(disabled_at=now)
        )
    return True
