"""``landed.Client``: the library entry point.

from landed import Client

client = Client()                      # landed.toml / LANDED_* settings
ids = client.notify(
    topic="INC-1234", cls="incident",
    to=["alice@corp.test", "Bob <bob@corp.test>"],
    subject="Database down", text="db-3 is not answering.",
)
for delivery in client.status(topic="INC-1234"):
    print(delivery.recipient, delivery.level, delivery.outcome)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict, Unpack

from landed.clock import Clock, SystemClock
from landed.compose.request import validate_request
from landed.config import Settings, load_settings
from landed.domain import Level
from landed.errors import NotFoundError, TokenError
from landed.store import Database
from landed.store.ledger import NotifyResult
from landed.store.queries import DeliveryView, find_deliveries
from landed.store.record import record_notification
from landed.tokens import ID_LENGTH, normalize_ref


class NotifyFields(TypedDict):
    """The keyword arguments of ``Client.notify``, declared once for both entry points.

    ``validate_request`` checks each of them and names the offending field.
    """

    topic: str
    cls: str
    to: Sequence[str]
    subject: str
    text: str
    html: NotRequired[str | None]
    idempotency_key: NotRequired[str | None]


class Client:
    """Records notifications and answers questions about their deliveries.

    ``notify`` only records and queues; a sender worker (``landed worker`` or
    ``landed up``) sends. Both share the ledger, so they may run anywhere.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        database: Database | None = None,
        **overrides: Any,
    ) -> None:
        self.settings = settings or load_settings(**overrides)
        self.clock = clock or SystemClock()
        self._owns_db = database is None
        self.db = database or Database(self.settings.database_url)
        self.db.check_current()
        self._keyring = self.settings.keyring()
        self._sender = self.settings.require_from()
        self._id_domain = self.settings.id_domain()
        self._policies = self.settings.policy_list()

    def notify(self, **fields: Unpack[NotifyFields]) -> list[str]:
        """Record a notification and queue its deliveries; return their ids."""
        return [d.delivery_id for d in self.notify_detailed(**fields).deliveries]

    def notify_detailed(self, **fields: Unpack[NotifyFields]) -> NotifyResult:
        """As ``notify``, returning tokens, sequence numbers and references too."""
        request = validate_request(**fields)
        with self.db.write() as conn:
            return record_notification(
                conn,
                request,
                policies=self._policies,
                sender=self._sender,
                keyring=self._keyring,
                id_domain=self._id_domain,
                now=self.clock.now(),
                outstanding_below=Level(self.settings.outstanding_until),
                outstanding_limit=self.settings.outstanding_limit,
                outstanding_days=self.settings.outstanding_days,
            )

    def status(
        self,
        key: str | None = None,
        *,
        topic: str | None = None,
        recipient: str | None = None,
        limit: int = 1000,
    ) -> list[DeliveryView]:
        """Deliveries by id, token or human reference (``key``), topic or recipient."""
        ids: list[str] | None = None
        ref: str | None = None
        if key is not None:
            ids, ref = self._resolve_key(key)
        with self.db.read() as conn:
            found = find_deliveries(
                conn, delivery_ids=ids, ref=ref, topic=topic, recipient=recipient, limit=limit
            )
        if key is not None and not found:
            raise NotFoundError(f"no delivery {key!r}")
        return found

    def _resolve_key(self, key: str) -> tuple[list[str] | None, str | None]:
        key = key.strip().lower()
        if len(key) == ID_LENGTH:
            return [key], None
        if len(key) > ID_LENGTH:
            return [self._keyring.verify(key)], None
        try:
            return None, normalize_ref(key)
        except TokenError:
            raise NotFoundError(f"{key!r} is not a delivery id, token or reference") from None

    def close(self) -> None:
        """Release the ledger's connections (only if this client opened the ledger)."""
        if self._owns_db:
            self.db.dispose()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
