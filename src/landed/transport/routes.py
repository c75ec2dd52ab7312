"""Routes: which transports carry a delivery, in failover order.

A route is chosen per delivery by notification class and recipient address
(shell-style patterns, first match wins, like policies), and names a chain of
transports, its *hops*: ``via = ["relay", "mx", "ses"]``. A delivery starts on
the first hop and moves to the next one when its current hop

* cannot be reached: no connection (refused, timed out, no address), or TLS
  failed (the result carries no reply code, at the connect or STARTTLS stage,
  or an ESP's API gave no HTTP answer); or
* has answered with temporary failures (4xx, dropped sessions) for longer than
  ``route_failover_after`` since the first one.

A permanent refusal (5xx) is a bounce, not a reason to fail over: the relay or
the recipient's mail host has judged this message or recipient, and another
path leads to the same recipient's server, which would say the same; trying
elsewhere would also hide the refusal from the sender. (A relay's 5xx about
*our* configuration, such as bad credentials, is temporary already: see
:mod:`landed.transport.smtp`.)

The hop a delivery is on is stored with its outbox row (``route_index``,
``route_failing_since``) and only changed in the transaction that records the
attempt that made it change, by the worker that holds the row's lease. A worker
that dies before that transaction leaves the row on the same hop, so the retry
goes through the same transport: one delivery is never on two routes at once.

:func:`build_router` builds every transport the routes name from the settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from landed.compose.envelope import Envelope
from landed.config import ESP_TRANSPORTS, Settings
from landed.domain import Level
from landed.errors import ConfigError
from landed.transport.base import Kind, SendResult, Stage, Transport
from landed.transport.dkim import DKIMSigner

__all__ = ["Hop", "Route", "Router", "build_router", "unreachable"]

#: ESPs that take our MIME message as it is, so that our DKIM signature survives:
#: SES ``Content.Raw`` and Mailgun ``messages.mime``. SendGrid and Postmark build
#: a new message from fields, and sign it with the keys set up in their consoles.
_RAW_ESPS = frozenset({"ses", "mailgun"})

#: Stages where a result without a reply code means "the hop cannot be reached or
#: secured": no SMTP connection or TLS, or (API, for ESPs) no HTTP answer at all.
_UNREACHABLE_STAGES = frozenset({Stage.CONNECT, Stage.STARTTLS, Stage.API})


@dataclass(frozen=True, slots=True)
class Route:
    """A named chain of transports for the deliveries its patterns match."""

    name: str
    via: tuple[str, ...]
    classes: tuple[str, ...] = ("*",)
    recipients: tuple[str, ...] = ("*",)

    def matches(self, cls: str, address: str) -> bool:
        address = address.lower()
        return any(fnmatchcase(cls, p) for p in self.classes) and any(
            fnmatchcase(address, p.lower()) for p in self.recipients
        )


@dataclass(frozen=True, slots=True)
class Hop:
    """One transport in routes, with what its success proves."""

    transport: Transport
    #: The level a success proves: ``submitted`` for a relay or an ESP (our
    #: first hop took it), ``accepted`` for direct MX (the recipient's system did).
    proves: Level = Level.SUBMITTED
    #: DKIM-sign messages before handing them to this transport.
    sign: bool = False

    @property
    def name(self) -> str:
        return self.transport.name


def unreachable(result: SendResult) -> bool:
    """Whether a result says its transport could not be reached or secured at all."""
    return (
        result.kind is Kind.TEMPORARY
        and result.reply.code == 0
        and result.reply.stage in _UNREACHABLE_STAGES
    )


class Router:
    """Chooses a route per delivery, signs, sends through a hop, and decides failover."""

    def __init__(
        self,
        routes: Sequence[Route],
        hops: Mapping[str, Hop],
        *,
        signer: DKIMSigner | None = None,
        failover_after: timedelta = timedelta(minutes=10),
    ) -> None:
        if not routes:
            raise ConfigError(
                "nothing to send through: set relay_url (LANDED_RELAY_URL) or configure [[routes]]",
                setting="routes",
            )
        for route in routes:
            missing = [name for name in route.via if name not in hops]
            if missing:
                raise ConfigError(f"route {route.name}: no transport {missing[0]!r}")
        self.routes = tuple(routes)
        self.hops = dict(hops)
        self.signer = signer
        self.failover_after = failover_after

    @classmethod
    def single(cls, transport: Transport) -> Router:
        """One route through one transport (what ``Sender`` makes of a bare transport)."""
        from landed.transport.mx import MXTransport

        proves = Level.ACCEPTED if isinstance(transport, MXTransport) else Level.SUBMITTED
        return cls([Route("default", (transport.name,))], {transport.name: Hop(transport, proves)})

    @property
    def name(self) -> str:
        """For logs: each route and its hops."""
        return ", ".join(f"{r.name} via {'>'.join(r.via)}" for r in self.routes)

    def choose(self, cls: str, address: str) -> Route:
        """The first route that matches; ``ConfigError`` when none does."""
        for route in self.routes:
            if route.matches(cls, address):
                return route
        raise ConfigError(f"no route matches class {cls!r} and recipient {address} (routes)")

    def hop(self, route: Route, index: int) -> tuple[int, Hop]:
        """The hop at ``index`` of ``route`` (the last one if the route got shorter)."""
        index = max(0, min(index, len(route.via) - 1))
        return index, self.hops[route.via[index]]

    def prepare(self, hop: Hop, message: bytes) -> bytes:
        """The bytes to hand to ``hop``: DKIM-signed when it signs and a signer is set."""
        if hop.sign and self.signer is not None:
            return self.signer.sign(message)
        return message

    def send(self, hop: Hop, envelope: Envelope, message: bytes) -> SendResult:
        """One attempt through ``hop``, with the bytes :meth:`prepare` gave."""
        return hop.transport.send(envelope, message)

    def failover(
        self,
        route: Route,
        index: int,
        result: SendResult,
        *,
        failing_since: datetime,
        now: datetime,
    ) -> int | None:
        """The hop to move to after a temporary failure at ``index``, or None to stay.

        ``failing_since`` is when the current hop first failed for this delivery.
        """
        if result.kind is not Kind.TEMPORARY or index + 1 >= len(route.via):
            return None
        if unreachable(result) or now - failing_since >= self.failover_after:
            return index + 1
        return None

    def close(self) -> None:
        """Close every transport."""
        for hop in self.hops.values():
            hop.transport.close()


def routes_from_settings(settings: Settings) -> list[Route]:
    """The configured routes, or one route via the relay when only relay_url is set."""
    if settings.routes:
        return [
            Route(r.name, tuple(r.via), tuple(r.classes), tuple(r.recipients))
            for r in settings.routes
        ]
    if settings.relay_url:
        return [Route("default", ("relay",))]
    return []


def build_router(settings: Settings) -> Router:
    """Every transport the routes name, built from the settings, in one router."""
    routes = routes_from_settings(settings)
    names = _unique(name for route in routes for name in route.via)
    hops: dict[str, Hop] = {}
    try:
        for name in names:
            hops[name] = _hop(name, settings)
        signer = DKIMSigner.from_settings(settings)
        return Router(routes, hops, signer=signer, failover_after=settings.failover_after())
    except BaseException:
        for hop in hops.values():
            hop.transport.close()
        raise


def _hop(name: str, settings: Settings) -> Hop:
    if name == "relay":
        from landed.transport.smtp import SMTPRelay

        relay = SMTPRelay(
            settings.relay(), dsn_notify=settings.dsn_notify, dsn_ret=settings.dsn_ret
        )
        return Hop(relay, Level.SUBMITTED, sign=settings.dkim_sign_relay)
    if name == "mx":
        from landed.transport.mx import MXTransport

        return Hop(MXTransport.from_settings(settings), Level.ACCEPTED, sign=True)
    if name in ESP_TRANSPORTS:
        from landed.transport.esp import esp_transport

        return Hop(esp_transport(name, settings), Level.SUBMITTED, sign=name in _RAW_ESPS)
    raise ConfigError(f"unknown transport {name!r}", setting="routes")


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
