"""Configuration: one typed ``Settings`` object from a TOML file and ``LANDED_*``
environment variables (which win), passed explicitly; there is no global config.

The file is ``landed.toml`` in the working directory, or the path in
``LANDED_CONFIG``. See docs/configuration.md for every setting.
"""

from __future__ import annotations

import json
import os
import re
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from landed.domain.enums import Level
from landed.domain.policy import Action, Policy, Step, parse_duration
from landed.errors import ConfigError
from landed.tokens import Keyring

DEFAULT_CONFIG_FILE = "landed.toml"
_HOSTPORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]]+):(?P<port>\d{1,5})$")


def config_path() -> Path:
    """Where the configuration file is looked for."""
    return Path(os.environ.get("LANDED_CONFIG", DEFAULT_CONFIG_FILE))


@dataclass(frozen=True, slots=True)
class _ServerURL:
    """What relay and mailbox URLs share: scheme, host, port, credentials, options."""

    parts: SplitResult
    implicit_tls: bool
    host: str
    port: int
    username: str | None
    password: str | None
    query: dict[str, str]


def _split_server_url(
    url: str, *, plain: str, tls: str, ports: tuple[int, int], options: set[str]
) -> _ServerURL:
    parts = urlsplit(url)
    if parts.scheme not in (plain, tls):
        raise ValueError(f"scheme must be {plain}:// or {tls}://")
    if not parts.hostname:
        raise ValueError("no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    implicit_tls = parts.scheme == tls
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - options
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    return _ServerURL(
        parts=parts,
        implicit_tls=implicit_tls,
        host=parts.hostname,
        port=port or ports[1 if implicit_tls else 0],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        query=query,
    )


class RelayURL:
    """A parsed ``LANDED_RELAY_URL``: ``smtp://[user:pass@]host:port[?starttls=...]``."""

    def __init__(self, url: str) -> None:
        split = _split_server_url(
            url,
            plain="smtp",
            tls="smtps",
            ports=(25, 465),
            options={"starttls", "verify", "cafile", "timeout", "helo"},
        )
        query = split.query
        self.url = url
        self.implicit_tls = split.implicit_tls
        self.host: str = split.host
        self.port: int = split.port
        self.username = split.username
        self.password = split.password or None
        starttls = query.get("starttls", "opportunistic")
        if starttls not in ("required", "opportunistic", "off"):
            raise ValueError("starttls must be required, opportunistic or off")
        if self.implicit_tls and starttls == "required":
            starttls = "off"  # smtps:// is already encrypted
        self.starttls: Literal["required", "opportunistic", "off"] = starttls  # type: ignore[assignment]
        verify = query.get("verify", "true").lower()
        if verify not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("verify must be true or false")
        self.verify = verify in ("true", "1", "yes")
        self.cafile = query.get("cafile") or None
        try:
            self.timeout = float(query.get("timeout", "30"))
        except ValueError:
            raise ValueError("timeout must be a number of seconds") from None
        self.helo = query.get("helo") or None

    def redacted(self) -> str:
        """The URL with the password hidden, for logs."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()


class ImapURL:
    """A parsed ``LANDED_IMAP_URL``: ``imap[s]://user:pass@host[:port]/MAILBOX[?options]``.

    Options: ``starttls=required|off`` (imap:// only; default required unless
    the host is loopback), ``verify=true|false``, ``cafile=PATH``,
    ``processed=FOLDER`` (where read messages go; default ``landed-processed``),
    ``timeout=SECONDS``, ``poll=SECONDS`` (when the server has no IDLE).
    """

    def __init__(self, url: str) -> None:
        split = _split_server_url(
            url,
            plain="imap",
            tls="imaps",
            ports=(143, 993),
            options={"starttls", "verify", "cafile", "processed", "timeout", "poll"},
        )
        if not split.username or split.password is None:
            raise ValueError("user and password are required: imap://user:pass@host/MAILBOX")
        query = split.query
        self.url = url
        self.implicit_tls = split.implicit_tls
        self.host: str = split.host
        self.port: int = split.port
        self.username: str = split.username
        self.password: str = split.password
        self.mailbox = unquote(split.parts.path.lstrip("/")) or "INBOX"
        default_tls = "off" if self.implicit_tls or _is_loopback(self.host) else "required"
        starttls = query.get("starttls", default_tls)
        if starttls not in ("required", "off"):
            raise ValueError("starttls must be required or off")
        self.starttls = starttls == "required" and not self.implicit_tls
        self.verify = query.get("verify", "true").lower() in ("true", "1", "yes")
        self.cafile = query.get("cafile") or None
        self.processed = query.get("processed", "landed-processed")
        if not self.processed or self.processed == self.mailbox:
            raise ValueError("processed must name a folder other than the polled mailbox")
        try:
            self.timeout = float(query.get("timeout", "30"))
            self.poll = float(query.get("poll", "60"))
        except ValueError:
            raise ValueError("timeout and poll must be numbers of seconds") from None
        if not (self.implicit_tls or self.starttls or _is_loopback(self.host)):
            raise ValueError("refusing to send the password in clear to a non-loopback host")

    @property
    def key(self) -> str:
        """Which mailbox this is, without the password (the checkpoint's key)."""
        return f"{self.username}@{self.host}:{self.port}/{self.mailbox}"[:255]


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _nameserver(value: str) -> tuple[str, int]:
    """``HOST`` (port 53) or ``HOST:PORT`` (``[::1]:53`` for IPv6), HOST an IP address."""
    import ipaddress

    text = value.strip()
    # A bare IPv6 address has colons but no brackets: it does not match HOST:PORT.
    host, port = (text, 53) if _HOSTPORT.match(text) is None else parse_hostport(text)
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"name server must be an IP address[:port], got {value!r}") from None
    return host.strip("[]"), port


def parse_hostport(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:25`` for IPv6)."""
    match = _HOSTPORT.match(value.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return match["host"].strip("[]"), int(match["port"])


class StepConfig(BaseModel):
    """One escalation step in the config file."""

    model_config = ConfigDict(extra="forbid")

    after: str | float = "0s"
    action: Action
    to: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _check(self) -> StepConfig:
        parse_duration(self.after)
        if self.action is Action.NOTIFY and not self.to:
            raise ValueError("a notify step needs `to`")
        if self.action is Action.WEBHOOK and not self.url:
            raise ValueError("a webhook step needs `url`")
        if self.to is not None:
            from landed.compose.headers import parse_mailbox

            parse_mailbox(self.to, "to")
        return self


class PolicyConfig(BaseModel):
    """One ``[[policies]]`` table."""

    model_config = ConfigDict(extra="forbid")

    name: str
    classes: list[str] = ["*"]
    recipients: list[str] = ["*"]
    required: Literal["submitted", "accepted", "delivered", "seen", "acknowledged"] = "accepted"
    deadline: str | float = "30m"
    steps: list[StepConfig] = []
    request_reply: bool = False
    request_mdn: bool = False
    suppress: bool = True
    #: Forward human replies to this address (docs/policies.md); unset: use the
    #: global ``reply_forward_to``; ``""``: never forward this policy's replies.
    reply_forward_to: str | None = None

    @field_validator("deadline")
    @classmethod
    def _check_deadline(cls, value: str | float) -> str | float:
        parse_duration(value)
        return value

    def to_policy(self) -> Policy:
        return Policy(
            name=self.name,
            required=Level(self.required),
            deadline=parse_duration(self.deadline),
            classes=tuple(self.classes),
            recipients=tuple(self.recipients),
            steps=tuple(
                Step(parse_duration(s.after), s.action, to=s.to, url=s.url) for s in self.steps
            ),
            request_reply=self.request_reply,
            request_mdn=self.request_mdn,
            suppress=self.suppress,
        )


#: Transport names a route may use besides the ESPs: the SMTP relay and direct MX.
ROUTE_TRANSPORTS = ("relay", "mx")
#: ESP transports (landed.transport.esp).
ESP_TRANSPORTS = ("ses", "sendgrid", "mailgun", "postmark")


class RouteConfig(BaseModel):
    """One ``[[routes]]`` table: which transports, in failover order, carry what."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40)
    classes: list[str] = ["*"]
    recipients: list[str] = ["*"]
    via: list[str] = Field(min_length=1)

    @field_validator("via")
    @classmethod
    def _check_via(cls, value: list[str]) -> list[str]:
        names = [v.strip().lower() for v in value]
        known = (*ROUTE_TRANSPORTS, *ESP_TRANSPORTS)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown transport {unknown[0]!r}; known: {', '.join(known)}")
        if len(set(names)) != len(names):
            raise ValueError("a transport appears twice in via")
        return names


class _TomlSource(TomlConfigSettingsSource):
    """The TOML file, with ``from`` renamed to the field's name ``from_``."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        data = super()._read_file(file_path)
        if "from" in data:
            data["from_"] = data.pop("from")
        return data


class Settings(BaseSettings):
    """Everything landed needs to run. Field ``x`` is ``LANDED_X`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="LANDED_",
        extra="forbid",
        case_sensitive=False,
        populate_by_name=True,
    )

    database_url: str = "sqlite:///landed.db"
    relay_url: str | None = None
    #: ``from`` in the TOML file (renamed on reading: it is a Python keyword).
    from_: str | None = Field(default=None, validation_alias=AliasChoices("LANDED_FROM", "from_"))
    bounce_domain: str | None = None
    message_id_domain: str | None = None
    inbound_listen: str = "127.0.0.1:2525"
    public_url: str = "http://127.0.0.1:8025"
    api_listen: str = "127.0.0.1:8025"
    #: Serve ``/metrics`` without a bearer API token (for a scraper on a trusted network).
    metrics_public: bool = False
    lease_seconds: float = Field(default=30.0, gt=0)
    imap_url: str | None = None
    #: PEM certificate chain and key: when both are set, the inbound listener offers STARTTLS.
    inbound_tls_cert: str | None = None
    inbound_tls_key: str | None = None
    #: Largest message the inbound listener accepts, in bytes (SMTP SIZE).
    inbound_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    ses_topic_arns: str | None = None
    sendgrid_webhook_key: str | None = None
    mailgun_webhook_key: str | None = None
    postmark_webhook_auth: str | None = None
    #: Tracked URLs in outgoing mail (docs/tracking.md): the acknowledgement link
    #: (text and HTML), the open pixel (HTML only) and signed click-through for
    #: the links of the HTML part. The pixel and click-through are off by
    #: default: they prove little (proxies and scanners fetch them) and track people.
    track_ack_link: bool = True
    track_opens: bool = False
    track_clicks: bool = False

    #: Delivery policies, first match wins; see docs/policies.md. When none is
    #: configured: internal_domains must reach ``delivered`` in 15 minutes,
    #: everything else ``accepted`` in 30.
    policies: list[PolicyConfig] = Field(default_factory=list)
    #: Domains whose mailboxes we can expect success DSNs from (default: the From domain).
    internal_domains: list[str] = Field(default_factory=list)
    #: A second address per recipient, for the ``fallback`` escalation step.
    fallbacks: dict[str, str] = Field(default_factory=dict)
    #: How long a hard bounce or complaint keeps an address suppressed ("0" = forever).
    suppress_for: str = "90d"

    #: Alert sinks. A structured log line is always written; these add a
    #: webhook (JSON, HMAC-SHA256 signed with alert_webhook_secret), an email
    #: to an operations address, and a digest of open alerts every so often.
    alert_webhook_url: str | None = None
    alert_webhook_secret: str | None = None
    alert_email_to: str | None = None
    alert_digest_every: str | None = None
    #: Where human replies (to ``reply+TOKEN@bounce_domain``) are forwarded, as a
    #: new message with the reply attached; a policy may override it. Unset: kept, not forwarded.
    reply_forward_to: str | None = None

    #: Signing keys, ``{key_id: secret}``; in the environment ``id:secret,id:secret`` or JSON.
    signing_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    #: The key id new tokens are signed with; defaults to the only key when there is one.
    signing_key_id: str | None = None

    #: RFC 3461 NOTIFY value requested when the relay advertises DSN.
    dsn_notify: str = "SUCCESS,FAILURE,DELAY"
    #: RFC 3461 RET value: HDRS returns only headers (our Message-ID is among them).
    dsn_ret: Literal["HDRS", "FULL"] = "HDRS"
    #: First retry delay after a temporary failure, in seconds; doubles each attempt.
    retry_base_seconds: float = Field(default=60.0, gt=0)
    #: Longest delay between two attempts.
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    #: After this long without a successful submission, a delivery is ``expired``.
    retry_lifetime_seconds: float = Field(default=86400.0, gt=0)
    #: How many outbox rows a worker claims at once.
    worker_batch: int = Field(default=100, ge=1, le=10000)
    #: How often an idle worker looks for due rows, in seconds.
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    #: Deliveries below this level are listed as "outstanding" in the recipient's next emails.
    outstanding_until: Literal["submitted", "accepted", "delivered", "seen", "acknowledged"] = (
        "delivered"
    )
    #: At most this many outstanding notifications are listed in one email.
    outstanding_limit: int = Field(default=10, ge=0, le=100)
    #: Only notifications this recent are listed as outstanding, in days.
    outstanding_days: int = Field(default=30, ge=1)

    # --- routes, direct MX and DKIM (docs/routes.md, docs/dns.md) ---------------------
    #: Routes, first match wins; default: one route via the relay when relay_url is set.
    routes: list[RouteConfig] = Field(default_factory=list)
    #: A hop whose 4xx replies have lasted this long hands the delivery to the next hop.
    route_failover_after: str | float = "10m"
    #: DNS servers for MX lookups, ``HOST`` or ``HOST:PORT``; empty: the system's resolver.
    mx_nameservers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: The port of recipients' mail hosts (25; tests use a loopback high port).
    mx_port: int = Field(default=25, ge=1, le=65535)
    #: Seconds for each connection, command and DNS lookup of direct MX delivery.
    mx_timeout: float = Field(default=30.0, gt=0)
    #: ``opportunistic`` (TLS when offered, certificate not checked), ``verify``, ``off``.
    mx_tls: Literal["opportunistic", "verify", "off"] = "opportunistic"
    #: CA bundle for ``mx_tls = "verify"`` (default: the system's).
    mx_cafile: str | None = None
    #: The EHLO name (default: this host's fully qualified name).
    mx_helo: str | None = None
    #: At most this many simultaneous sessions per recipient domain, per process.
    mx_domain_limit: int = Field(default=4, ge=1, le=100)
    #: DKIM selector: with dkim_key_file, signs what landed hands over itself (mx, ses, mailgun).
    dkim_selector: str | None = None
    #: The signing domain (``d=``); default the From address's domain.
    dkim_domain: str | None = None
    #: PEM RSA private key file.
    dkim_key_file: str | None = None
    #: Sign what goes through the relay too (for a relay that does not sign).
    dkim_sign_relay: bool = False

    # --- ESP transports and provider webhooks (docs/providers.md) --------------------
    #: Amazon SES v2: AWS region, credentials (SigV4), optional configuration set
    #: (event publishing, which echoes the message tags that carry the token).
    ses_region: str = "us-east-1"
    ses_access_key_id: str | None = None
    ses_secret_access_key: str | None = None
    ses_session_token: str | None = None
    ses_configuration_set: str | None = None
    #: API base URL; default ``https://email.<ses_region>.amazonaws.com``.
    ses_base_url: str | None = None
    #: Hosts (``host`` or ``host:port``, comma-separated) SNS certificates and
    #: subscription URLs may come from; default ``sns.<region of the topic>.amazonaws.com``.
    ses_sns_hosts: str | None = None
    #: PEM CA bundle trusted when fetching SNS certificates (default: the system's).
    ses_sns_cafile: str | None = None
    sendgrid_api_key: str | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    mailgun_api_key: str | None = None
    mailgun_domain: str | None = None
    #: ``https://api.eu.mailgun.net`` for domains in Mailgun's EU region.
    mailgun_base_url: str = "https://api.mailgun.net"
    postmark_server_token: str | None = None
    postmark_message_stream: str = "outbound"
    postmark_base_url: str = "https://api.postmarkapp.com"
    #: Seconds to wait for a provider's API.
    esp_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Signed webhook timestamps (SendGrid, Mailgun) older or newer than this are refused.
    webhook_max_age_seconds: float = Field(default=300.0, gt=0)

    @field_validator("ses_base_url", "sendgrid_base_url", "mailgun_base_url", "postmark_base_url")
    @classmethod
    def _check_esp_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if not parts.hostname or parts.scheme not in ("https", "http"):
            raise ValueError("expected https://host[:port]")
        # API keys travel in every request: in clear only over loopback (test servers).
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("http:// is allowed only for a loopback host; use https://")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = config_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path.is_file():
            sources.append(_TomlSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("signing_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    return json.loads(text)
                except json.JSONDecodeError:
                    raise ValueError("not valid JSON") from None
            keys: dict[str, str] = {}
            for item in filter(None, (part.strip() for part in text.split(","))):
                kid, sep, secret = item.partition(":")
                if not sep or not kid or not secret:
                    raise ValueError("expected key_id:secret[,key_id:secret...]")
                keys[kid.strip()] = secret.strip()
            return keys
        return value

    @field_validator("relay_url")
    @classmethod
    def _check_relay(cls, value: str | None) -> str | None:
        if value:
            RelayURL(value)
        return value or None

    @field_validator("suppress_for")
    @classmethod
    def _check_suppress_for(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("imap_url")
    @classmethod
    def _check_imap(cls, value: str | None) -> str | None:
        if value:
            ImapURL(value)
        return value or None

    @field_validator("inbound_listen", "api_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_hostport(value)
        return value

    @field_validator("from_")
    @classmethod
    def _check_from(cls, value: str | None) -> str | None:
        if value is not None:
            from landed.compose.headers import parse_mailbox

            parse_mailbox(value, "from")
        return value

    @field_validator("bounce_domain", "message_id_domain")
    @classmethod
    def _check_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower().rstrip(".")
        if not re.fullmatch(
            r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", value
        ):
            raise ValueError(f"not a domain name: {value!r}")
        return value

    @field_validator("dsn_notify")
    @classmethod
    def _check_notify(cls, value: str) -> str:
        items = [v.strip().upper() for v in value.split(",") if v.strip()]
        if items == ["NEVER"]:
            return "NEVER"
        if not items or not set(items) <= {"SUCCESS", "FAILURE", "DELAY"}:
            raise ValueError("NEVER, or a comma-separated subset of SUCCESS,FAILURE,DELAY")
        return ",".join(items)

    @field_validator("alert_digest_every")
    @classmethod
    def _check_digest(cls, value: str | None) -> str | None:
        if value:
            parse_duration(value)
        return value or None

    @field_validator("route_failover_after")
    @classmethod
    def _check_failover(cls, value: str | float) -> str | float:
        parse_duration(value)
        return value

    @field_validator("mx_nameservers", mode="before")
    @classmethod
    def _split_nameservers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for item in value:
                _nameserver(str(item))
        return value

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, value: list[RouteConfig]) -> list[RouteConfig]:
        names = [route.name for route in value]
        if len(set(names)) != len(names):
            raise ValueError("two routes have the same name")
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> Settings:
        if self.signing_keys:
            self.keyring()
        if self.alert_webhook_url and not self.alert_webhook_secret:
            raise ValueError(
                "alert_webhook_url needs alert_webhook_secret: webhooks are always signed"
            )
        return self

    # --- derived values -------------------------------------------------------------

    def keyring(self) -> Keyring:
        """The signing keys; ``ConfigError`` when none is configured."""
        if not self.signing_keys:
            raise ConfigError(
                "no signing key: run `landed init`, or set LANDED_SIGNING_KEYS",
                setting="signing_keys",
            )
        current = self.signing_key_id
        if current is None:
            if len(self.signing_keys) != 1:
                raise ConfigError(
                    "several signing keys: say which signs new tokens with signing_key_id",
                    setting="signing_key_id",
                )
            current = next(iter(self.signing_keys))
        return Keyring(current, {k: v.encode() for k, v in self.signing_keys.items()})

    def relay(self) -> RelayURL:
        """The parsed relay URL; ``ConfigError`` when none is configured."""
        if not self.relay_url:
            raise ConfigError("no relay: set relay_url (LANDED_RELAY_URL)", setting="relay_url")
        return RelayURL(self.relay_url)

    def inbound_tls(self) -> ssl.SSLContext | None:
        """The listener's STARTTLS context, or None when no certificate is configured."""
        if not self.inbound_tls_cert and not self.inbound_tls_key:
            return None
        if not (self.inbound_tls_cert and self.inbound_tls_key):
            raise ConfigError(
                "set both inbound_tls_cert and inbound_tls_key", setting="inbound_tls_cert"
            )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.inbound_tls_cert, self.inbound_tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the certificate: {exc}", setting="inbound_tls_cert"
            ) from None
        return context

    def policy_list(self) -> tuple[Policy, ...]:
        """The configured policies, or the documented defaults."""
        if self.policies:
            return tuple(p.to_policy() for p in self.policies)
        domains = self.internal_domains
        if not domains and self.from_:
            from landed.compose.headers import parse_mailbox

            domains = [parse_mailbox(self.from_, "from").domain]
        internal = Policy(
            name="internal",
            required=Level.DELIVERED,
            deadline=timedelta(minutes=15),
            recipients=tuple(f"*@{d}" for d in domains),
        )
        external = Policy(name="external", required=Level.ACCEPTED, deadline=timedelta(minutes=30))
        return (internal, external) if domains else (external,)

    def mx_nameserver_list(self) -> list[tuple[str, int]]:
        """The MX-lookup name servers as (address, port); empty for the system's."""
        return [_nameserver(item) for item in self.mx_nameservers]

    def failover_after(self) -> timedelta:
        """How long a hop may answer 4xx before its deliveries move to the next hop."""
        return parse_duration(self.route_failover_after)

    def suppression_period(self) -> timedelta | None:
        """How long suppression lasts; None for ever."""
        period = parse_duration(self.suppress_for)
        return period or None

    def imap(self) -> ImapURL:
        """The parsed IMAP bounce mailbox URL; ``ConfigError`` when none is configured."""
        if not self.imap_url:
            raise ConfigError(
                "no bounce mailbox: set imap_url (LANDED_IMAP_URL)", setting="imap_url"
            )
        return ImapURL(self.imap_url)

    def require_from(self) -> str:
        """The From address; ``ConfigError`` when unset."""
        if not self.from_:
            raise ConfigError("no From address: set from (LANDED_FROM)", setting="from")
        return self.from_

    def require_bounce_domain(self) -> str:
        """The VERP domain; ``ConfigError`` when unset."""
        if not self.bounce_domain:
            raise ConfigError(
                "no bounce domain: set bounce_domain (LANDED_BOUNCE_DOMAIN)",
                setting="bounce_domain",
            )
        return self.bounce_domain

    def id_domain(self) -> str:
        """The right-hand side of our Message-IDs: ``message_id_domain`` or the From domain."""
        if self.message_id_domain:
            return self.message_id_domain
        from landed.compose.headers import parse_mailbox

        return parse_mailbox(self.require_from(), "from").domain


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; turn any validation problem into a one-line ``ConfigError``."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise config_error_from(exc) from None
    except SettingsError as exc:
        raise ConfigError(f"bad setting: {exc}") from None
    except (OSError, ValueError) as exc:
        # An unreadable or malformed TOML file.
        raise ConfigError(f"cannot read {config_path()}: {exc}", setting="config") from None


def config_error_from(exc: ValidationError) -> ConfigError:
    """One line naming the first bad setting and its environment variable."""
    error = exc.errors()[0]
    loc = [str(part) for part in error.get("loc", ())]
    name = loc[0] if loc else "?"
    name = "from" if name in ("from_", "LANDED_FROM") else name.lower().removeprefix("landed_")
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "unknown setting"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    if name == "?":  # a rule across settings: its message names them
        return ConfigError(f"bad configuration: {message}{more}")
    return ConfigError(f"bad setting {name} (LANDED_{name.upper()}): {message}{more}", setting=name)
