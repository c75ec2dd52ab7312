"""DKIM signing: signatures made by DKIMSigner verify with dkimpy against a test DNS record,
and the sender signs what it sends directly (MX) but not what the relay signs itself."""

from __future__ import annotations

import base64
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from landed.client import Client
from landed.clock import FixedClock
from landed.config import RouteConfig, Settings
from landed.errors import ConfigError
from landed.sender import Sender
from landed.store import Database
from landed.transport.dkim import DKIMSigner
from landed.transport.routes import build_router
from tests.dnsstub import MailHostStub, StubDNS, shared_port
from tests.relay import TestRelay

pytestmark = pytest.mark.timeout(60)

MESSAGE = (
    b"From: Alerts <alerts@corp.test>\r\n"
    b"To: bob@ext.test\r\n"
    b"Subject: [INC-1] Disk full\r\n"
    b"Date: Sun, 01 Mar 2026 12:00:00 +0000\r\n"
    b"Message-ID: <tok@corp.test>\r\n"
    b"X-Landed-Token: tok\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"The disk is full.\r\n"
)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def dnsfunc(key: rsa.RSAPrivateKey) -> Callable[..., bytes | None]:
    """What dkimpy's verifier would find in DNS: ``s1._domainkey.corp.test`` TXT."""
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name.lower() == b"s1._domainkey.corp.test." else None

    return lookup


def test_a_signature_verifies_and_covers_our_headers(
    pem: bytes, dnsfunc: Callable[..., bytes | None]
) -> None:
    signed = DKIMSigner(selector="s1", domain="corp.test", private_key=pem).sign(MESSAGE)
    assert signed.endswith(MESSAGE) and signed.startswith(b"DKIM-Signature:")
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    header = signed[: len(signed) - len(MESSAGE)].decode()
    tags = {k.strip(): v.strip() for k, _, v in (t.partition("=") for t in header.split(";"))}
    assert tags["d"] == "corp.test" and tags["s"] == "s1"
    assert tags["c"] == "relaxed/relaxed" and tags["a"] == "rsa-sha256"
    signed_headers = [h.strip().lower() for h in "".join(tags["h"].split()).split(":")]
    assert signed_headers.count("from") == 2, "From is oversigned"
    assert {"to", "subject", "date", "message-id", "x-landed-token"} <= set(signed_headers)


def test_changed_mail_no_longer_verifies(pem: bytes, dnsfunc: Callable[..., bytes | None]) -> None:
    signed = DKIMSigner(selector="s1", domain="corp.test", private_key=pem).sign(MESSAGE)
    assert not dkim.verify(signed.replace(b"disk is full", b"disk is fine"), dnsfunc=dnsfunc)
    added_from = b"From: mallory@evil.test\r\n" + signed
    assert not dkim.verify(added_from, dnsfunc=dnsfunc)


def test_signer_from_settings(pem: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANDED_CONFIG", str(tmp_path / "absent.toml"))
    for name in list(os.environ):
        if name.startswith("LANDED_") and name != "LANDED_CONFIG":
            monkeypatch.delenv(name)
    base = Settings(from_="Alerts <alerts@corp.test>", database_url="sqlite://")
    assert DKIMSigner.from_settings(base) is None
    with pytest.raises(ConfigError, match="dkim_selector and dkim_key_file"):
        DKIMSigner.from_settings(base.model_copy(update={"dkim_selector": "s1"}))
    missing = base.model_copy(
        update={"dkim_selector": "s1", "dkim_key_file": str(tmp_path / "none.pem")}
    )
    with pytest.raises(ConfigError, match="cannot read the DKIM key"):
        DKIMSigner.from_settings(missing)
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="cannot sign with the DKIM key"):
        DKIMSigner.from_settings(missing.model_copy(update={"dkim_key_file": str(junk)}))
    good = tmp_path / "dkim.pem"
    good.write_bytes(pem)
    signer = DKIMSigner.from_settings(missing.model_copy(update={"dkim_key_file": str(good)}))
    assert signer is not None and signer.domain == "corp.test", "the From domain by default"


@pytest.fixture
def world() -> Iterator[tuple[StubDNS, MailHostStub, TestRelay]]:
    with StubDNS() as dns, MailHostStub("127.0.0.2", shared_port("127.0.0.2")) as host:
        dns.mx("ext.test", (10, "mx.ext.test"))
        dns.address("mx.ext.test", "127.0.0.2")
        with TestRelay() as relay:
            yield dns, host, relay


def test_the_sender_signs_direct_mx_mail_but_not_relayed_mail(
    settings: Settings,
    clock: FixedClock,
    pem: bytes,
    dnsfunc: Callable[..., bytes | None],
    tmp_path: Path,
    world: tuple[StubDNS, MailHostStub, TestRelay],
) -> None:
    dns, host, relay = world
    keyfile = tmp_path / "dkim.pem"
    keyfile.write_bytes(pem)
    s = settings.model_copy(
        update={
            "relay_url": relay.url(),
            "routes": [
                RouteConfig(name="internal", recipients=["*@corp.test"], via=["relay"]),
                RouteConfig(name="external", via=["mx"]),
            ],
            "mx_nameservers": [dns.nameserver],
            "mx_port": host.port,
            "mx_helo": "landed.test",
            "dkim_selector": "s1",
            "dkim_key_file": str(keyfile),
        }
    )
    db = Database(s.database_url)
    sender = Sender(db, s, build_router(s), clock=clock, owner="w", rng=random.Random(1))
    try:
        client = Client(s, clock=clock, database=db)
        client.notify(
            topic="T", cls="c", to=["bob@ext.test", "al@corp.test"], subject="s", text="t"
        )
        assert sender.run_once() == 2
    finally:
        sender.transport.close()
        db.dispose()
    (direct,) = host.received
    assert direct.data.startswith(b"DKIM-Signature:")
    assert dkim.verify(direct.data, dnsfunc=dnsfunc)
    (relayed,) = relay.received
    assert b"DKIM-Signature" not in relayed.data
