from __future__ import annotations

from pathlib import Path

import pytest

from landed.config import RelayURL, Settings, load_settings, parse_hostport
from landed.errors import ConfigError


@pytest.fixture(autouse=True)
def config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for name in list(os.environ):
        if name.startswith("LANDED_"):
            monkeypatch.delenv(name)
    path = tmp_path / "landed.toml"
    monkeypatch.setenv("LANDED_CONFIG", str(path))
    return path


def test_defaults_match_the_contract() -> None:
    s = Settings()
    assert s.database_url == "sqlite:///landed.db"
    assert s.inbound_listen == "127.0.0.1:2525"
    assert s.public_url == "http://127.0.0.1:8025"
    assert s.api_listen == "127.0.0.1:8025"
    assert s.lease_seconds == 30
    assert s.relay_url is None and s.from_ is None and s.bounce_domain is None


def test_toml_file_then_environment_wins(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text(
        'from = "Ops <ops@corp.test>"\nbounce_domain = "bounce.corp.test"\nlease_seconds = 12\n'
        '[signing_keys]\nk1 = "0123456789abcdef0123"\n'
    )
    s = load_settings()
    assert s.from_ == "Ops <ops@corp.test>" and s.lease_seconds == 12
    assert s.keyring().current == "k1"
    monkeypatch.setenv("LANDED_FROM", "other@corp.test")
    monkeypatch.setenv("LANDED_LEASE_SECONDS", "5")
    monkeypatch.setenv("LANDED_SIGNING_KEYS", "k2:abcdefabcdefabcdefabcdef,k1:0123456789abcdef0123")
    monkeypatch.setenv("LANDED_SIGNING_KEY_ID", "k2")
    s = load_settings()
    assert s.from_ == "other@corp.test" and s.lease_seconds == 5
    assert s.keyring().current == "k2" and set(s.keyring().keys) == {"k1", "k2"}
    assert s.id_domain() == "corp.test"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("LANDED_LEASE_SECONDS", "soon", "lease_seconds"),
        ("LANDED_LEASE_SECONDS", "-1", "lease_seconds"),
        ("LANDED_RELAY_URL", "http://relay.test", "relay_url"),
        ("LANDED_RELAY_URL", "smtp://relay.test:25?starttls=maybe", "relay_url"),
        ("LANDED_FROM", "not an address", "from"),
        ("LANDED_BOUNCE_DOMAIN", "bad domain", "bounce_domain"),
        ("LANDED_INBOUND_LISTEN", "nowhere", "inbound_listen"),
        ("LANDED_DSN_NOTIFY", "SOMETIMES", "dsn_notify"),
        ("LANDED_SIGNING_KEYS", "k1", "signing_keys"),
    ],
)
def test_bad_settings_give_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert named in message and env in message


def test_unknown_key_in_file_is_named(config_file: Path) -> None:
    config_file.write_text('relay = "smtp://x.test"\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "relay" in str(info.value) and "unknown" in str(info.value)


def test_short_signing_key_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANDED_SIGNING_KEYS", "k1:short")
    with pytest.raises(ConfigError, match="signing"):
        load_settings()


def test_relay_url_forms() -> None:
    r = RelayURL("smtp://user%40corp:p%3Ass@relay.corp.test:587?starttls=required&timeout=5")
    assert (r.host, r.port, r.username, r.password) == ("relay.corp.test", 587, "user@corp", "p:ss")
    assert r.starttls == "required" and not r.implicit_tls and r.timeout == 5
    assert "p%3Ass" not in r.redacted() and "***" in r.redacted()
    s = RelayURL("smtps://relay.corp.test")
    assert s.implicit_tls and s.port == 465 and s.verify
    assert RelayURL("smtp://127.0.0.1").port == 25
    assert RelayURL("smtp://h.test:25?verify=false").verify is False
    with pytest.raises(ValueError, match="unknown"):
        RelayURL("smtp://h.test?bogus=1")


def test_hostport() -> None:
    assert parse_hostport("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_hostport("[::1]:25") == ("::1", 25)
    with pytest.raises(ValueError):
        parse_hostport("127.0.0.1:99999")


def test_missing_required_settings_are_config_errors() -> None:
    s = Settings()
    for call in (s.keyring, s.relay, s.require_from, s.require_bounce_domain):
        with pytest.raises(ConfigError):
            call()
