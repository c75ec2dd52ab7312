"""Email service providers' webhook events, read into neutral records (pure).

Each provider module holds its mapping from the provider's event types to the
evidence ladder as a literal table, and a ``read`` function: JSON in, a list
of :class:`~landed.parse.providers.event.ProviderEvent` out (one per
recipient), no database, no network. Authentication of the request happens
before any of this, at the edge (``landed.api.hooks``).
"""

from __future__ import annotations

from landed.parse.providers.event import (
    TOKEN_FIELD,
    EventFormatError,
    ProviderEvent,
)

__all__ = ["PROVIDERS", "TOKEN_FIELD", "EventFormatError", "ProviderEvent"]

#: The providers landed speaks to, by the name used in routes and URLs.
PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark")
