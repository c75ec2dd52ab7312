"""Fake provider APIs on loopback: real HTTP servers in threads, built from each
provider's documented requests and answers, recording what they receive.

``FakeProvider(kind)`` serves one provider (``ses``, ``sendgrid``, ``mailgun``,
``postmark``): it checks the request's authentication the way the provider
does (SES: the SigV4 signature, recomputed here from the request as received),
answers with the provider's documented success body, or with whatever
``.script(status, body, headers)`` queued. ``FakeProvider("files", tls=...)``
serves files over HTTPS (SNS signing certificates) and records every GET
(SNS ``SubscribeURL`` confirmations).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

SES_ACCESS_KEY = "AKIDLANDEDTEST"
SES_SECRET = "landed/test/secret/key/EXAMPLE"
SENDGRID_KEY = "SG.test-key"
MAILGUN_KEY = "key-test"
POSTMARK_TOKEN = "postmark-server-token"

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, bytes]:
        """A multipart/form-data body's fields (files included), by name."""
        boundary = re.search(r"boundary=([^;]+)", self.headers["content-type"])
        assert boundary is not None
        fields: dict[str, bytes] = {}
        for part in self.body.split(b"--" + boundary.group(1).encode()):
            head, sep, value = part.partition(b"\r\n\r\n")
            name = re.search(rb'name="([^"]+)"', head)
            if sep and name:
                fields[name.group(1).decode()] = value.removesuffix(b"\r\n")
        return fields


@dataclass
class _Scripted:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def sigv4_problem(got: Received, *, host: str) -> str | None:
    """Why the request's SigV4 signature is wrong, or None: an independent check
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html)."""
    match = _AUTH.match(got.headers.get("authorization", ""))
    if match is None:
        return "no SigV4 Authorization header"
    if match["key"] != SES_ACCESS_KEY or match["service"] != "ses":
        return "wrong credential scope"
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    if got.headers.get("host") != host:
        return "Host header differs"
    amz_date = got.headers.get("x-amz-date", "")
    if not amz_date.startswith(match["date"]):
        return "x-amz-date does not match the scope date"
    payload_hash = hashlib.sha256(got.body).hexdigest()
    if got.headers.get("x-amz-content-sha256", payload_hash) != payload_hash:
        return "payload hash differs"
    url = urlsplit(got.path)
    query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(parse_qsl(url.query, keep_blank_values=True))
    )
    headers = "".join(f"{name}:{' '.join(got.headers[name].split())}\n" for name in signed)
    canonical = "\n".join(["POST", url.path, query, headers, match["signed"], payload_hash])
    scope = f"{match['date']}/{match['region']}/ses/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + SES_SECRET).encode()
    for part in (match["date"], match["region"], "ses", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, match["signature"]) else "signature differs"


class FakeProvider:
    """One fake provider API (or HTTPS file server) on 127.0.0.1."""

    def __init__(self, kind: str, *, tls: ssl.SSLContext | None = None) -> None:
        self.kind = kind
        self.received: list[Received] = []
        self.files: dict[str, bytes] = {}
        self._scripts: list[_Scripted] = []
        self._lock = threading.Lock()
        self._count = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._record(self, b"")
                body = fake.files.get(urlsplit(self.path).path)
                self._reply(200 if body is not None else 404, body or b"not found", {})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                got = fake._record(self, self.rfile.read(length))
                status, body, headers = fake._answer(got)
                self._reply(status, body, headers)

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Answer the next POST with this (a dict or list body is sent as JSON)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self._lock:
            self._scripts.append(_Scripted(status, raw, dict(headers or {})))

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes) -> Received:
        got = Received(
            handler.command,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            body,
        )
        with self._lock:
            self.received.append(got)
        return got

    def _answer(self, got: Received) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            scripted = self._scripts.pop(0) if self._scripts else None
            self._count += 1
            count = self._count
        problem = self._auth_problem(got)
        if problem is not None:
            return _documented_auth_failure(self.kind, problem)
        if scripted is not None:
            return scripted.status, scripted.body, scripted.headers
        return _documented_success(self.kind, count)

    def _auth_problem(self, got: Received) -> str | None:
        headers = got.headers
        if self.kind == "ses":
            return sigv4_problem(got, host=self.host)
        if self.kind == "sendgrid":
            ok = headers.get("authorization") == f"Bearer {SENDGRID_KEY}"
            return None if ok else "bad API key"
        if self.kind == "mailgun":
            expected = "Basic " + base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
            return None if headers.get("authorization") == expected else "bad API key"
        if self.kind == "postmark":
            ok = headers.get("x-postmark-server-token") == POSTMARK_TOKEN
            return None if ok else "bad server token"
        return None


def _documented_success(kind: str, count: int) -> tuple[int, bytes, dict[str, str]]:
    if kind == "ses":
        # SendEmail: 200 {"MessageId": ...}
        body = {"MessageId": f"0100018f-ses-{count:04d}-000000"}
        return 200, json.dumps(body).encode(), {}
    if kind == "sendgrid":
        # Mail Send: 202 Accepted, empty body, id in X-Message-Id.
        return 202, b"", {"X-Message-Id": f"sg-{count:04d}"}
    if kind == "mailgun":
        body = {"id": f"<20260301.{count:04d}@mg.corp.test>", "message": "Queued. Thank you."}
        return 200, json.dumps(body).encode(), {}
    body2 = {
        "To": "bob@corp.test",
        "SubmittedAt": "2026-03-01T12:00:00.0000000-05:00",
        "MessageID": f"b7bc2f4a-e38e-4336-af7d-e6c39{count:07d}",
        "ErrorCode": 0,
        "Message": "OK",
    }
    return 200, json.dumps(body2).encode(), {}


def _documented_auth_failure(kind: str, problem: str) -> tuple[int, bytes, dict[str, str]]:
    body: dict[str, object]
    if kind == "ses":
        body = {"message": f"The request signature we calculated does not match ({problem})"}
        return 403, json.dumps(body).encode(), {"x-amzn-ErrorType": "SignatureDoesNotMatch"}
    if kind == "sendgrid":
        body = {"errors": [{"field": None, "message": "authorization required"}]}
        return 401, json.dumps(body).encode(), {}
    if kind == "mailgun":
        return 401, b"Forbidden", {"Content-Type": "text/plain"}
    body = {"ErrorCode": 10, "Message": "No Account or Server API tokens were supplied"}
    return 401, json.dumps(body).encode(), {}
