"""Dashboard sessions: signed, expiring cookies; CSRF tokens; login throttling.

A session cookie is ``v1.USER.EXPIRES.NONCE.MAC``: USER base64url, EXPIRES
seconds since the epoch, NONCE random, MAC an HMAC-SHA256 of the rest under a
key derived from the current signing key. Nothing is stored server-side; the
operator's row is still checked on every request, so disabling a login ends
its sessions at once. Rotating the signing key (changing ``signing_key_id``)
logs everyone out.

CSRF: every form carries a token derived from the session's nonce (the
"synchronizer token" of the OWASP CSRF cheat sheet, without server state),
and the cookie is ``SameSite=Lax`` besides. The login form, which has no
session yet, is tied to a short-lived pre-login cookie the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from landed.tokens import Keyring

COOKIE = "landed_session"
LOGIN_COOKIE = "landed_login"
#: How long a login lasts.
SESSION_LIFETIME = timedelta(hours=12)
#: Failed logins allowed per user name, and per client address, within the window.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    expires: datetime
    nonce: str


class SessionSigner:
    """Makes and checks session cookies and CSRF tokens."""

    def __init__(self, keyring: Keyring) -> None:
        secret = keyring.keys[keyring.current]
        self._key = hmac.new(secret, b"landed-dashboard-session", hashlib.sha256).digest()

    def _mac(self, purpose: str, payload: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}\0{payload}".encode(), hashlib.sha256).digest())

    def issue(self, username: str, now: datetime) -> tuple[str, Session]:
        expires = now + SESSION_LIFETIME
        nonce = _b64(os.urandom(16))
        payload = f"v1.{_b64(username.encode())}.{int(expires.timestamp())}.{nonce}"
        return f"{payload}.{self._mac('session', payload)}", Session(username, expires, nonce)

    def check(self, cookie: str | None, now: datetime) -> Session | None:
        """The session in a cookie, or None if it is missing, forged or expired."""
        if not cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(self._mac("session", payload), mac):
            return None
        try:
            version, user, expires_text, nonce = payload.split(".")
            username = _unb64(user).decode()
            expires = datetime.fromtimestamp(int(expires_text), now.tzinfo)
        except (ValueError, UnicodeDecodeError):
            return None
        if version != "v1" or expires <= now:
            return None
        return Session(username, expires, nonce)

    def csrf(self, session: Session) -> str:
        """The CSRF token for forms of this session."""
        return self._mac("csrf", session.nonce)

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(session), token or "")

    def login_nonce(self) -> str:
        return _b64(os.urandom(16))

    def login_csrf(self, nonce: str) -> str:
        return self._mac("login", nonce)

    def check_login_csrf(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.login_csrf(nonce), token)


class LoginThrottle:
    """Counts failed logins per user name and per client address; refuses more
    than ``MAX_FAILURES`` of either in ``FAILURE_WINDOW``.

    In memory, per process: with several API hosts an attacker gets that many
    tries per host. Each try also costs a full scrypt (see store.operators).
    """

    def __init__(self) -> None:
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        entries = self._failures.setdefault(key, deque())
        while entries and entries[0] <= now - FAILURE_WINDOW:
            entries.popleft()
        return entries

    def blocked(self, username: str, address: str, now: datetime) -> bool:
        with self._lock:
            return any(
                len(self._recent(key, now)) >= MAX_FAILURES
                for key in (f"u:{username.lower()}", f"a:{address}")
            )

    def failed(self, username: str, address: str, now: datetime) -> None:
        with self._lock:
            for key in (f"u:{username.lower()}", f"a:{address}"):
                self._recent(key, now).append(now)
            # Forget keys with nothing recent, so the table cannot grow without bound.
            if len(self._failures) > 10_000:
                for key in [k for k, v in self._failures.items() if not self._recent(k, now)]:
                    del self._failures[key]

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"u:{username.lower()}", None)
