"""Tracked URLs: the acknowledgement link, the open pixel and signed click-through.

Pure: URLs are built from strings and verified with the keyring, nothing is
fetched. The web endpoints (``landed.web.track``) serve these paths; compose
puts them into the message.

Paths (a contract: mail already sent carries them)::

    {public_url}/t/ack/{token}               acknowledgement page (GET shows, POST acknowledges)
    {public_url}/t/open/{token}.gif          open pixel
    {public_url}/t/click/{token}?u={url}&s={sig} click-through to ``url``

A click-through target is signed together with the token, so the endpoint is
not an open redirect: only URLs landed itself put into that delivery's email
verify. The signature is made with the key named inside the token (not the
current key), so a message rebuilt after a key rotation is byte-identical, and
a link stays valid for as long as its token does.
"""

from __future__ import annotations

import hashlib
import hmac
import html as html_lib
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from landed.errors import TokenError
from landed.tokens import ID_LENGTH, MAC_LENGTH, Keyring, encode_base32

ACK_PATH = "/t/ack/"
OPEN_PATH = "/t/open/"
CLICK_PATH = "/t/click/"
#: 128 bits of HMAC-SHA256, base32: 26 characters in the URL.
_SIG_BYTES = 16
_SIG_LENGTH = 26
_SIG = re.compile(r"^[0-9a-z]{26}$")


def _key_id(token: str) -> str:
    return token.strip().lower()[ID_LENGTH:-MAC_LENGTH]


def click_signature(keyring: Keyring, token: str, target: str) -> str:
    """The signature binding ``target`` to ``token``; the token's own key signs it.

    ``TokenError`` when the token's key is not configured.
    """
    kid = _key_id(token)
    secret = keyring.keys.get(kid)
    if secret is None:
        raise TokenError("token signed with an unknown key")
    digest = hmac.new(
        secret,
        b"landed-click\0" + token.strip().lower().encode() + b"\0" + target.encode("utf-8"),
        hashlib.sha256,
    ).digest()[:_SIG_BYTES]
    return encode_base32(int.from_bytes(digest, "big"), _SIG_LENGTH)


def verify_click(keyring: Keyring, token: str, target: str, signature: str) -> bool:
    """Whether ``signature`` is landed's signature of ``target`` for ``token``.

    The caller verifies the token itself first (``Keyring.verify``).
    """
    if not _SIG.match(signature) or not is_web_url(target):
        return False
    try:
        expected = click_signature(keyring, token, target)
    except TokenError:
        return False
    return hmac.compare_digest(expected, signature)


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host: the only targets click-through serves."""
    if any(c in url for c in "\r\n\0") or len(url) > 4096:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@dataclass(frozen=True, slots=True)
class TrackingLinks:
    """The tracked URLs of one delivery, and which of them its email carries.

    ``base`` is the public URL of landed's HTTP service (``public_url``).
    ``ack``, ``pixel`` and ``clicks`` say which the email carries: the
    acknowledgement link, the open pixel, click-through rewriting.
    """

    base: str
    token: str
    keyring: Keyring
    ack: bool = True
    pixel: bool = False
    clicks: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", self.base.rstrip("/"))

    @property
    def ack_url(self) -> str:
        return f"{self.base}{ACK_PATH}{self.token}"

    @property
    def pixel_url(self) -> str:
        return f"{self.base}{OPEN_PATH}{self.token}.gif"

    def click_url(self, target: str) -> str:
        """The signed click-through URL for ``target`` (an absolute http(s) URL)."""
        signature = click_signature(self.keyring, self.token, target)
        return f"{self.base}{CLICK_PATH}{self.token}?u={quote(target, safe='')}&s={signature}"


# An <a> start tag's href attribute, quoted. Unquoted values and other elements
# are left alone: the point is the links a person clicks, and a link that is
# not rewritten still works (it is only not tracked).
_HREF = re.compile(
    r"""(<a\b[^>]*?\bhref\s*=\s*)(?P<q>["'])(?P<url>[^"']*)(?P=q)""",
    re.IGNORECASE | re.DOTALL,
)


def rewrite_links(html: str, links: TrackingLinks) -> str:
    """``html`` with every http(s) ``<a href>`` sent through signed click-through.

    Attribute values are HTML: ``&amp;`` in an href is ``&`` in the URL, so the
    value is unescaped before signing and the new URL escaped again. Links to
    landed's own tracking endpoints, ``mailto:``, ``tel:`` and fragments are
    kept as they are.
    """

    def replace(match: re.Match[str]) -> str:
        target = html_lib.unescape(match["url"]).strip()
        if not is_web_url(target) or target.startswith(f"{links.base}/t/"):
            return match.group(0)
        quote_char = match["q"]
        new = html_lib.escape(links.click_url(target), quote=True)
        return f"{match.group(1)}{quote_char}{new}{quote_char}"

    return _HREF.sub(replace, html)
