"""Email service provider transports: Amazon SES, SendGrid, Mailgun, Postmark.

``esp_transport("sendgrid", settings)`` builds the transport a route chain
names; each carries the delivery token in a field the provider echoes back in
its webhook events (see docs/providers.md), and reports the provider's answer
as a :class:`~landed.transport.base.SendResult` like the SMTP relay does.
"""

from __future__ import annotations

from landed.config import Settings
from landed.errors import ConfigError
from landed.transport.base import Transport
from landed.transport.esp.base import TOKEN_FIELD, HTTPTransport
from landed.transport.esp.mailgun import MailgunTransport
from landed.transport.esp.postmark import PostmarkTransport
from landed.transport.esp.sendgrid import SendGridTransport
from landed.transport.esp.ses import SESTransport
from landed.transport.esp.sigv4 import Credentials

__all__ = [
    "ESP_NAMES",
    "TOKEN_FIELD",
    "HTTPTransport",
    "MailgunTransport",
    "PostmarkTransport",
    "SESTransport",
    "SendGridTransport",
    "esp_transport",
]

#: The provider names a route chain may use.
ESP_NAMES = ("ses", "sendgrid", "mailgun", "postmark")


def esp_transport(name: str, settings: Settings) -> Transport:
    """The transport for provider ``name``; ``ConfigError`` if it is unknown or
    its credentials are not configured."""
    provider = name.strip().lower()
    timeout = settings.esp_timeout_seconds
    if provider == "ses":
        key_id = _require(settings.ses_access_key_id, "ses_access_key_id")
        secret = _require(settings.ses_secret_access_key, "ses_secret_access_key")
        return SESTransport(
            credentials=Credentials(key_id, secret, settings.ses_session_token),
            region=settings.ses_region,
            base_url=settings.ses_base_url,
            configuration_set=settings.ses_configuration_set,
            timeout=timeout,
        )
    if provider == "sendgrid":
        return SendGridTransport(
            api_key=_require(settings.sendgrid_api_key, "sendgrid_api_key"),
            base_url=settings.sendgrid_base_url,
            timeout=timeout,
        )
    if provider == "mailgun":
        return MailgunTransport(
            api_key=_require(settings.mailgun_api_key, "mailgun_api_key"),
            domain=_require(settings.mailgun_domain, "mailgun_domain"),
            base_url=settings.mailgun_base_url,
            timeout=timeout,
        )
    if provider == "postmark":
        return PostmarkTransport(
            server_token=_require(settings.postmark_server_token, "postmark_server_token"),
            message_stream=settings.postmark_message_stream,
            base_url=settings.postmark_base_url,
            timeout=timeout,
        )
    raise ConfigError(
        f"unknown email service provider {name!r}: expected one of {', '.join(ESP_NAMES)}",
    )


def _require(value: str | None, setting: str) -> str:
    if not value:
        raise ConfigError(
            f"the {setting.split('_')[0]} transport needs {setting} (LANDED_{setting.upper()})",
            setting=setting,
        )
    return value
