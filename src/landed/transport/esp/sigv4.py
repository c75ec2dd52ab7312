"""AWS Signature Version 4 for one HTTP request (what the SES API requires).

Follows https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html:
a canonical request (method, path, query, the signed headers, the payload's
SHA-256), a string to sign with the credential scope
(``date/region/service/aws4_request``), and an HMAC-SHA256 chain that derives
the signing key from the secret. Pure: the time is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

__all__ = ["Credentials", "authorization", "canonical_request", "sign"]

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    #: For temporary credentials (STS): sent as ``X-Amz-Security-Token``.
    session_token: str | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _uri_encode(text: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX (uppercase).
    return quote(text, safe="-_.~")


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """The canonical request and its signed-headers list, from lowercased ``headers``."""
    # Each path segment URI-encoded (non-S3 services encode it twice; our paths
    # hold only unreserved characters, where once and twice are the same).
    segments = path.split("/") if path else [""]
    canonical_path = "/".join(_uri_encode(_uri_encode(segment)) for segment in segments) or "/"
    pairs = sorted((_uri_encode(k), _uri_encode(v)) for k, v in parse_qsl(query, True))
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
    signed = ";".join(names)
    text = "\n".join(
        [method.upper(), canonical_path, canonical_query, canonical_headers, signed, payload_hash]
    )
    return text, signed


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def authorization(
    credentials: Credentials,
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload: bytes,
    region: str,
    service: str,
    now: datetime,
) -> str:
    """The ``Authorization`` header value. ``headers`` must include ``host`` and
    ``x-amz-date`` (``now`` as ``YYYYMMDDTHHMMSSZ``), and are all signed."""
    moment = now.astimezone(UTC)
    date = moment.strftime("%Y%m%d")
    lowered = {name.lower(): value for name, value in headers.items()}
    request, signed = canonical_request(
        method, path, query, lowered, hashlib.sha256(payload).hexdigest()
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            ALGORITHM,
            moment.strftime("%Y%m%dT%H%M%SZ"),
            scope,
            hashlib.sha256(request.encode("utf-8")).hexdigest(),
        ]
    )
    signature = hmac.new(
        signing_key(credentials.secret_access_key, date, region, service),
        to_sign.encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    return (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


def sign(
    credentials: Credentials,
    *,
    method: str,
    url_host: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str],
    payload: bytes,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """``headers`` plus ``Host``, ``X-Amz-Date``, ``X-Amz-Content-Sha256``, the
    session token if any, and ``Authorization``: everything signed."""
    signed = dict(headers)
    signed["Host"] = url_host
    signed["X-Amz-Date"] = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    signed["X-Amz-Content-Sha256"] = hashlib.sha256(payload).hexdigest()
    if credentials.session_token:
        signed["X-Amz-Security-Token"] = credentials.session_token
    signed["Authorization"] = authorization(
        credentials,
        method=method,
        path=path,
        query=query,
        headers=signed,
        payload=payload,
        region=region,
        service=service,
        now=now,
    )
    return signed
