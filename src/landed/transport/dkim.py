"""DKIM signing (RFC 6376) of the mail landed hands to the world itself.

A relay usually signs what it relays (it holds the domain's key); mail that
landed delivers to an MX host itself, or hands raw to an ESP, carries no
signature unless landed adds one, and then fails DMARC at every receiver that
enforces it. docs/dns.md explains the DNS records this needs.

The signature covers dkimpy's default header set (From, To, Subject, Date,
Message-ID, In-Reply-To, References, MIME and list headers present in the
message, with From signed once more than it appears, so that no second From
can be added without breaking it) plus ``X-Landed-Token``. Canonicalization is
``relaxed/relaxed``, which survives the header refolding and trailing-space
changes relays make (RFC 6376 §3.4). A resend is signed again: every byte of
the message is the same, the signature's ``t=`` time is not.
"""

from __future__ import annotations

from pathlib import Path

import dkim

from landed.compose.headers import parse_mailbox
from landed.config import Settings
from landed.errors import ConfigError, InputError

__all__ = ["DKIMSigner"]

#: Signed besides dkimpy's defaults: our tracking header, so it cannot be swapped.
_EXTRA_HEADERS = (b"x-landed-token",)

_PROBE = (
    b"From: probe@example.com\r\nTo: probe@example.com\r\nSubject: probe\r\n"
    b"Message-ID: <probe@example.com>\r\n\r\nprobe\r\n"
)


class DKIMSigner:
    """Signs messages for one domain with one selector and RSA private key (PEM).

    RSA only: Ed25519 signatures (RFC 8463) are not verified by every receiver
    yet, and a domain that uses them publishes an RSA key next to them anyway.
    """

    def __init__(self, *, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector.strip()
        self.domain = domain.strip().lower().rstrip(".")
        self._key = private_key
        if not self.selector or not self.domain:
            raise ConfigError("DKIM needs a selector and a domain", setting="dkim_selector")
        # Fail at start-up, not on the first message: a key dkimpy cannot use.
        try:
            self.sign(_PROBE)
        except InputError as exc:
            raise ConfigError(
                f"cannot sign with the DKIM key: {exc}", setting="dkim_key_file"
            ) from None

    @classmethod
    def from_settings(cls, settings: Settings) -> DKIMSigner | None:
        """The signer the ``dkim_*`` settings describe; None when DKIM is not configured."""
        if not settings.dkim_selector and not settings.dkim_key_file:
            return None
        if not (settings.dkim_selector and settings.dkim_key_file):
            raise ConfigError(
                "set both dkim_selector and dkim_key_file to sign with DKIM",
                setting="dkim_selector",
            )
        try:
            key = Path(settings.dkim_key_file).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the DKIM key: {exc.strerror}", setting="dkim_key_file"
            ) from None
        domain = settings.dkim_domain or parse_mailbox(settings.require_from(), "from").domain
        return cls(selector=settings.dkim_selector, domain=domain, private_key=key)

    def sign(self, message: bytes) -> bytes:
        """``message`` with a ``DKIM-Signature`` header field in front."""
        signer = dkim.DKIM(message, signature_algorithm=b"rsa-sha256")
        present = {name.lower() for name, _ in signer.headers}
        # The defaults are the headers present, From once more (oversigned).
        headers = [*signer.default_sign_headers(), *(h for h in _EXTRA_HEADERS if h in present)]
        try:
            signature: bytes = signer.sign(
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self._key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=headers,
            )
        except (dkim.DKIMException, UnicodeError, ValueError) as exc:
            raise InputError(f"DKIM signing failed: {exc}") from None
        return signature + message
