"""Verifying Amazon SNS messages (how SES events reach landed).

Per https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html:

1. the ``TopicArn`` must be one we subscribed (``ses_topic_arns``): checked
   first, so a stranger's topic never makes us fetch anything;
2. ``SigningCertURL`` must be https on an SNS host (``sns.<region of the
   topic>.amazonaws.com``, or the hosts in ``ses_sns_hosts``), with no
   credentials or redirects; the certificate is fetched over verified TLS,
   checked for its validity dates, and cached by URL;
3. the signature (base64, RSA PKCS#1 v1.5, SHA-1 for ``SignatureVersion`` 1,
   SHA-256 for 2) must verify over the canonical string: the documented
   fields, in that order, each as ``name\\nvalue\\n``.

A ``SubscriptionConfirmation`` for an allowed topic is confirmed by fetching
its ``SubscribeURL`` (the same host rule applies).
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["SNSError", "SNSMessage", "SNSVerifier", "read_envelope"]

#: The fields signed, in order, for each message type.
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_MAX_CERT_BYTES = 64 * 1024
_CACHE_SIZE = 32


class SNSError(Exception):
    """A message that is refused: ``status`` is the HTTP answer (400, 401, 403, 502, 503)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SNSMessage:
    """A verified SNS message."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    subscribe_url: str | None


def read_envelope(body: bytes) -> dict[str, str]:
    """The SNS JSON envelope: an object of strings (nothing in it is trusted yet)."""
    try:
        fields = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SNSError(400, "body is not an SNS JSON message") from None
    if not isinstance(fields, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in fields.items()
    ):
        raise SNSError(400, "body is not an SNS JSON message")
    return fields


def canonical_string(fields: Mapping[str, str]) -> bytes:
    """The string SNS signs for this message (optional fields skipped when absent)."""
    names = SIGNED_FIELDS.get(fields.get("Type", ""))
    if names is None:
        raise SNSError(400, f"unknown SNS message type {fields.get('Type', '')!r}")
    parts = []
    for name in names:
        if name in fields:
            parts.append(f"{name}\n{fields[name]}\n")
        elif name != "Subject":
            raise SNSError(401, f"SNS message lacks the signed field {name}")
    return "".join(parts).encode("utf-8")


class SNSVerifier:
    """Checks SNS messages for one set of topics; caches signing certificates."""

    def __init__(
        self,
        *,
        topics: frozenset[str],
        hosts: frozenset[str] | None = None,
        cafile: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.topics = topics
        self.hosts = hosts
        self._context = ssl.create_default_context(cafile=cafile)
        self._timeout = timeout
        self._certificates: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def verify(self, fields: Mapping[str, str], *, now: datetime) -> SNSMessage:
        """The message, once its topic, certificate and signature check out."""
        topic = fields.get("TopicArn", "")
        if topic not in self.topics:
            raise SNSError(403, "TopicArn is not in ses_topic_arns")
        hash_type = _HASHES.get(fields.get("SignatureVersion", ""))
        if hash_type is None:
            raise SNSError(401, "unsupported SignatureVersion")
        try:
            signature = base64.b64decode(fields.get("Signature", ""), validate=True)
        except (binascii.Error, ValueError):
            raise SNSError(401, "Signature is not base64") from None
        signed = canonical_string(fields)
        url = fields.get("SigningCertURL", "")
        self.check_url(url, topic, "SigningCertURL")
        certificate = self._certificate(url)
        if not (
            certificate.not_valid_before_utc
            <= now.astimezone(certificate.not_valid_after_utc.tzinfo)
            <= certificate.not_valid_after_utc
        ):
            raise SNSError(401, "signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SNSError(401, "signing certificate has no RSA key")
        try:
            key.verify(signature, signed, padding.PKCS1v15(), hash_type())
        except InvalidSignature:
            raise SNSError(401, "SNS signature does not verify") from None
        return SNSMessage(
            type=fields["Type"],
            message_id=fields.get("MessageId", ""),
            topic_arn=topic,
            message=fields.get("Message", ""),
            subscribe_url=fields.get("SubscribeURL"),
        )

    def check_url(self, url: str, topic: str, what: str) -> None:
        """Refuse a URL that is not https on an allowed SNS host (no credentials)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme != "https" or not host or parts.username or parts.password:
            raise SNSError(401, f"{what} is not an https URL")
        where = host if port in (None, 443) else f"{host}:{port}"
        if self.hosts is not None:
            allowed = where in self.hosts or (port is not None and f"{host}:{port}" in self.hosts)
        else:
            allowed = port in (None, 443) and host == default_host(topic)
        if not allowed:
            raise SNSError(401, f"{what} is not on an allowed SNS host: {where}")

    def confirm(self, message: SNSMessage) -> None:
        """Confirm a subscription to an allowed topic by fetching its SubscribeURL."""
        url = message.subscribe_url or ""
        self.check_url(url, message.topic_arn, "SubscribeURL")
        try:
            with self._client() as client:
                response = client.get(url)
        except httpx.HTTPError as exc:
            raise SNSError(502, f"cannot confirm the subscription: {exc}") from None
        if not response.is_success:
            raise SNSError(502, f"subscription confirmation answered {response.status_code}")

    def _client(self) -> httpx.Client:
        return httpx.Client(verify=self._context, timeout=self._timeout, follow_redirects=False)

    def _certificate(self, url: str) -> x509.Certificate:
        with self._lock:
            cached = self._certificates.get(url)
        if cached is not None:
            return cached
        try:
            with self._client() as client:
                response = client.get(url)
        except httpx.HTTPError as exc:
            # Our side cannot reach SNS: the sender is not at fault, SNS retries.
            raise SNSError(503, f"cannot fetch the SNS signing certificate: {exc}") from None
        if not response.is_success or len(response.content) > _MAX_CERT_BYTES:
            raise SNSError(401, f"signing certificate URL answered {response.status_code}")
        try:
            certificate = x509.load_pem_x509_certificate(response.content)
        except ValueError:
            raise SNSError(401, "signing certificate is not a PEM certificate") from None
        with self._lock:
            if len(self._certificates) >= _CACHE_SIZE:
                self._certificates.pop(next(iter(self._certificates)))
            self._certificates[url] = certificate
        return certificate


def default_host(topic_arn: str) -> str:
    """``sns.<region>.amazonaws.com`` for the topic's region (``.com.cn`` in China)."""
    parts = topic_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[3]:
        return ""
    suffix = "amazonaws.com.cn" if parts[1] == "aws-cn" else "amazonaws.com"
    return f"sns.{parts[3]}.{suffix}"
