"""Tracking identities: delivery ids, tokens and human references.

A delivery id is 128 bits: 48 bits of milliseconds since the Unix epoch, then
80 random bits (the layout of UUIDv7 without its version bits), so ids sort by
creation time. It is written in lowercase Crockford base32: 26 characters whose
sort order is the numeric order, with no ``i l o u``.

A token is what leaves the system::

    token = id (26) + key id (1-8) + HMAC-SHA256(key, id || key id) truncated to 80 bits (16)

All three parts use the same alphabet, so a token is a single lowercase word
(43 characters with a one-letter key id). Mail systems that fold the case of a
local part cannot break it, and ``bounces+TOKEN`` stays under the 64-character
limit on a local part (RFC 5321 §4.5.3.1.1). Verification accepts any key id
that is still configured, so keys can rotate: sign with the new key, keep the
old one until its mail can no longer come back.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from landed.errors import ConfigError, TokenError

#: Crockford's base32 alphabet, lowercased.
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
# Crockford decoding: letters that look like digits read as those digits.
_INDEX.update({"i": 1, "l": 1, "o": 0})

ID_LENGTH = 26
MAC_LENGTH = 16
MAC_BYTES = 10
_KEY_ID = re.compile(r"^[0-9a-hjkmnp-tv-z]{1,8}$")
_TOKEN = re.compile(r"^[0-9a-z]{43,50}$")
#: Where a token may be found inside other text (a VERP address, a Message-ID).
TOKEN_PATTERN = r"[0-9A-Za-z]{43,50}"


# Ids, tokens and references are made for every delivery, so encoding is on
# notify's hot path: two digits at a time from a table of all 1,024 pairs, one
# lookup per 10 bits of the value (about three times faster than going through
# ``base64.b32encode``, which is a Python loop too).
_PAIRS = [high + low for high in ALPHABET for low in ALPHABET]


@functools.cache
def _pair_shifts(length: int) -> tuple[int, ...]:
    """Where each pair of digits starts, most significant first (an even ``length``)."""
    return tuple(range(5 * length - 10, -1, -10))


def encode_base32(value: int, length: int) -> str:
    """Write ``value`` as ``length`` base32 digits, most significant first."""
    if value < 0 or value >> (5 * length):
        raise ValueError("value does not fit")
    pairs = _PAIRS
    text = "".join([pairs[(value >> shift) & 1023] for shift in _pair_shifts(length & ~1)])
    if length & 1:
        return ALPHABET[value >> (5 * length - 5)] + text
    return text


def decode_base32(text: str) -> int:
    """Read base32 digits (case-insensitive); raise ``TokenError`` on others."""
    value = 0
    for char in text.lower():
        digit = _INDEX.get(char)
        if digit is None:
            raise TokenError(f"not a base32 character: {char!r}")
        value = (value << 5) | digit
    return value


_last_ms = 0
_last_rand = 0


def new_id(now_ms: int | None = None) -> str:
    """A new time-ordered 128-bit id as 26 base32 characters.

    Ids made in the same millisecond by one process stay ordered: the random
    part is incremented instead of redrawn (as ULID's monotonic mode does).
    """
    global _last_ms, _last_rand
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    if ms == _last_ms and now_ms is None:
        _last_rand = (_last_rand + 1) & ((1 << 80) - 1)
    else:
        _last_rand = int.from_bytes(os.urandom(10), "big")
        _last_ms = ms
    value = ((ms & ((1 << 48) - 1)) << 80) | _last_rand
    return encode_base32(value, ID_LENGTH)


def id_timestamp_ms(delivery_id: str) -> int:
    """The creation time of an id in milliseconds since the epoch."""
    return decode_base32(delivery_id) >> 80


def human_ref(delivery_id: str) -> str:
    """A short reference for people, ``XXXX-XXXX``: 40 bits of a hash of the id.

    Hashed rather than cut from the id, because ids made in the same
    millisecond differ only in their last digit. Two deliveries rarely share a
    reference; lookups by reference still return every match.
    """
    digest = hashlib.sha256(b"landed-ref\0" + delivery_id.encode()).digest()[:5]
    ref = encode_base32(int.from_bytes(digest, "big"), 8).upper()
    return f"{ref[:4]}-{ref[4:]}"


def normalize_ref(ref: str) -> str:
    """The lowercase 8-character form of a human reference as people type it."""
    cleaned = ref.replace("-", "").replace(" ", "").lower()
    if len(cleaned) != 8 or any(c not in _INDEX for c in cleaned):
        raise TokenError(f"not a reference: {ref!r}")
    return "".join(ALPHABET[_INDEX[c]] for c in cleaned)


@dataclass(frozen=True, slots=True)
class Keyring:
    """The signing keys: one current key id and every key still accepted."""

    current: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("no signing key is configured", setting="signing_keys")
        for kid, secret in self.keys.items():
            if not _KEY_ID.match(kid):
                raise ConfigError(
                    f"signing key id {kid!r} must be 1-8 characters of {ALPHABET}",
                    setting="signing_keys",
                )
            if len(secret) < 16:
                raise ConfigError(
                    f"signing key {kid!r} is shorter than 16 bytes", setting="signing_keys"
                )
        if self.current not in self.keys:
            raise ConfigError(
                f"current signing key {self.current!r} is not among the configured keys",
                setting="signing_key_id",
            )

    def sign(self, delivery_id: str) -> str:
        """The token for ``delivery_id`` under the current key."""
        return delivery_id + self.current + self._mac(self.current, delivery_id)

    def verify(self, token: str) -> str:
        """The delivery id inside ``token``; ``TokenError`` unless it verifies."""
        token = token.strip().lower()
        if not _TOKEN.match(token):
            raise TokenError("malformed token")
        delivery_id = token[:ID_LENGTH]
        kid = token[ID_LENGTH:-MAC_LENGTH]
        mac = token[-MAC_LENGTH:]
        secret_known = kid in self.keys
        expected = self._mac(kid, delivery_id) if secret_known else "0" * MAC_LENGTH
        # Compare even for unknown key ids so timing does not reveal which ids exist.
        if not hmac.compare_digest(expected, _canonical(mac)) or not secret_known:
            raise TokenError("token does not verify")
        return _canonical(delivery_id)

    def _mac(self, kid: str, delivery_id: str) -> str:
        mac = _keyed(bytes(self.keys[kid])).copy()
        mac.update(b"landed-token\0" + _canonical(delivery_id).encode() + b"\0" + kid.encode())
        return encode_base32(int.from_bytes(mac.digest()[:MAC_BYTES], "big"), MAC_LENGTH)


@functools.lru_cache(maxsize=64)
def _keyed(secret: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 with ``secret`` already keyed in and nothing hashed yet.

    Each token copies it instead of keying a new HMAC (which hashes the padded
    key twice): the same bytes, in a third of the time. Never updated itself.
    """
    return hmac.new(secret, digestmod=hashlib.sha256)


def _canonical(text: str) -> str:
    """Lowercase, and map Crockford look-alikes (i, l, o) to their digits."""
    # Three replaces: several times faster than str.translate with a mapping.
    return text.lower().replace("i", "1").replace("l", "1").replace("o", "0")


def new_secret() -> str:
    """A fresh random signing secret, hex-encoded (256 bits)."""
    return os.urandom(32).hex()


def topic_root_id(topic_key: str, domain: str) -> str:
    """The stable Message-ID every message about a topic refers to (no brackets).

    Hashing keeps free-form topic keys out of headers and gives the same root
    for the same topic on every host, as GitHub's ``<owner/repo/issues/N@github.com>``.
    """
    digest = hashlib.sha256(b"landed-topic\0" + topic_key.encode("utf-8")).digest()[:15]
    return f"topic-{encode_base32(int.from_bytes(digest, 'big'), 24)}@{domain}"
