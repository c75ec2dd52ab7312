"""Errors raised by landed.

The tree::

    LandedError
    ├── ConfigError          bad or missing configuration; names the setting
    ├── InputError           caller-supplied data that cannot be sent as given
    │   └── HeaderInjectionError   CR, LF or NUL in a header field
    ├── TokenError           a token that does not parse or does not verify
    ├── NotFoundError        no such delivery, topic or recipient
    └── TransportError       the mail path failed in a way no single delivery explains

Each exception's docstring is its default message.
"""

from __future__ import annotations


class LandedError(Exception):
    """landed failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(LandedError):
    """The configuration is invalid."""

    def __init__(self, message: str | None = None, *, setting: str | None = None) -> None:
        self.setting = setting
        message = message or (self.__doc__ or "").strip()
        if setting and setting not in message:
            message = f"{setting}: {message}"
        super().__init__(message)


class InputError(LandedError, ValueError):
    """The input is invalid."""


class IdempotencyConflict(InputError):
    """An idempotency key already recorded a different notification."""

    def __init__(self, message: str, *, notification_id: str) -> None:
        super().__init__(message)
        self.notification_id = notification_id


class HeaderInjectionError(InputError):
    """A header field contains CR, LF or NUL."""


class TokenError(LandedError, ValueError):
    """The token is malformed or does not verify."""


class NotFoundError(LandedError, LookupError):
    """Nothing matched."""


class TransportError(LandedError):
    """The transport failed."""
