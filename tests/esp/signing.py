"""Test keys and real signatures for provider webhooks.

* SNS: an RSA signing certificate (made with cryptography's x509), served over
  HTTPS by a loopback server whose TLS certificate comes from a trustme test
  CA; messages signed as SNS does (SignatureVersion 1: SHA-1, 2: SHA-256).
* SendGrid: an ECDSA P-256 key pair; the public key as SendGrid's console
  shows it (base64 DER).
* Mailgun: an HMAC-SHA256 signing key.
* Postmark: basic-auth credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from landed.api.sns import canonical_string

MAILGUN_WEBHOOK_KEY = "mailgun-webhook-signing-key-test"
POSTMARK_AUTH = "landed:hook-password"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:landed-ses-events"
CERT_PATH = "/SimpleNotificationService-test.pem"


@dataclass
class SNSSigner:
    """An SNS signing identity: its key, and the PEM certificate to serve."""

    key: rsa.RSAPrivateKey
    cert_pem: bytes

    @classmethod
    def make(
        cls,
        *,
        not_before: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        not_after: datetime = datetime(2027, 1, 1, tzinfo=UTC),
    ) -> SNSSigner:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert.public_bytes(serialization.Encoding.PEM))

    def message(
        self,
        cert_url: str,
        *,
        message: str = "",
        kind: str = "Notification",
        topic: str = TOPIC,
        version: str = "2",
        message_id: str | None = None,
        subscribe_url: str | None = None,
        subject: str | None = None,
    ) -> dict[str, str]:
        """A signed SNS message (the JSON body SNS posts)."""
        fields = {
            "Type": kind,
            "MessageId": message_id or os.urandom(16).hex(),
            "TopicArn": topic,
            "Message": message,
            "Timestamp": "2026-03-01T12:00:00.000Z",
            "SignatureVersion": version,
            "SigningCertURL": cert_url,
        }
        if subject is not None:
            fields["Subject"] = subject
        if kind != "Notification":
            fields["Token"] = "2336412f37fb687f5d51e6e2425c464de"
            fields["SubscribeURL"] = subscribe_url or ""
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(canonical_string(fields), padding.PKCS1v15(), algorithm)
        fields["Signature"] = base64.b64encode(signature).decode()
        return fields


@dataclass
class SendGridSigner:
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls) -> SendGridSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signature = self.key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
            "Content-Type": "application/json",
        }


def mailgun_body(event_data: dict[str, object], timestamp: int, token: str | None = None) -> bytes:
    """A Mailgun webhook body signed with the test key."""
    token = token or os.urandom(25).hex()
    signature = hmac.new(
        MAILGUN_WEBHOOK_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
            "event-data": event_data,
        }
    ).encode()


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
