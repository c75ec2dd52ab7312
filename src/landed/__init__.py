"""landed: accountable notification email.

Every (notification, recipient) gets a tracking identity and is followed until
there is evidence that it landed, or evidence (or silence) that it did not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from landed.clock import Clock, FixedClock, SystemClock
from landed.domain import EvidenceSource, Level, Outcome
from landed.errors import (
    ConfigError,
    HeaderInjectionError,
    InputError,
    LandedError,
    NotFoundError,
    TokenError,
    TransportError,
)

if TYPE_CHECKING:
    from landed.client import Client
    from landed.config import Settings, load_settings

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # Client pulls in the ledger (SQLAlchemy) and the settings pull in pydantic:
    # importing them lazily keeps `import landed.parse` (and `landed parse` on
    # one file) free of both.
    if name == "Client":
        from landed.client import Client

        return Client
    if name in ("Settings", "load_settings"):
        from landed import config

        return getattr(config, name)
    raise AttributeError(f"module 'landed' has no attribute {name!r}")


__all__ = [
    "Client",
    "Clock",
    "ConfigError",
    "EvidenceSource",
    "FixedClock",
    "HeaderInjectionError",
    "InputError",
    "LandedError",
    "Level",
    "NotFoundError",
    "Outcome",
    "Settings",
    "SystemClock",
    "TokenError",
    "TransportError",
    "__version__",
    "load_settings",
]
