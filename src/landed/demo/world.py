"""The sandbox's people, what their mailboxes do, and what the demo sends them.

Pure data and decisions: no I/O. Two mail domains live in the sandbox:

- ``corp.test``, the company's own mail system, behind the relay: it delivers
  into mailboxes itself, so it reports ``Action: delivered`` (RFC 3464 §2.3.3);
- ``example.test``, the outside world: the relay hands mail to its MX, which
  offers no DSN, so the relay reports ``Action: relayed`` and no more, as
  Postfix does (https://www.postfix.org/DSN_README.html). That is why landed's
  policies ask outside addresses for ``accepted`` only.

Any other domain is refused at ``RCPT`` (the sandbox never sends real mail).
Besides the named residents below, an address can pick its behaviour with a
sub-address: ``anyone+full@example.test`` has a full mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

INTERNAL_DOMAIN = "corp.test"
EXTERNAL_DOMAIN = "example.test"
DOMAINS = (INTERNAL_DOMAIN, EXTERNAL_DOMAIN)
#: The relay's own name, as it signs its reports (Reporting-MTA).
RELAY_HOST = "relay.corp.test"
#: Where corp.test mail is delivered into mailboxes.
INTERNAL_MX = "mx.corp.test"
#: The outside world's mail server.
EXTERNAL_MX = "mx.example.test"

FROM = "Alerts <alerts@corp.test>"
BOUNCE_DOMAIN = "bounce.corp.test"
ONCALL = "oncall@corp.test"


class Behaviour(StrEnum):
    """What happens to mail for one address."""

    #: Delivered; a success DSN comes back when ``NOTIFY=SUCCESS`` was asked.
    DELIVER = "deliver"
    #: Delivered, and the person presses the acknowledgement button a little later.
    ACKNOWLEDGE = "acknowledge"
    #: Delivered to someone on holiday: an RFC 3834 out-of-office reply comes back.
    AUTOREPLY = "autoreply"
    #: The mailbox does not exist: a failure DSN with ``5.1.1``.
    UNKNOWN = "unknown"
    #: The mailbox is over quota: a failure DSN with ``5.2.2``.
    FULL = "full"
    #: The relay answers ``450`` at ``RCPT`` every time; landed retries until its
    #: retry lifetime runs out and the delivery is ``expired``.
    DEFER = "defer"
    #: The relay accepts, then a ``delayed`` DSN (``4.4.1``) says the next hop is
    #: not answering; the success DSN comes only after the policy's deadline.
    LATE = "late"


@dataclass(frozen=True, slots=True)
class Resident:
    """Someone with a mailbox in the sandbox."""

    address: str
    name: str
    behaviour: Behaviour
    #: One line for the banner: what happens to their mail.
    story: str

    @property
    def mailbox(self) -> str:
        """``Name <address>``, for ``To``."""
        return f"{self.name} <{self.address}>"


RESIDENTS = (
    Resident("alice@corp.test", "Alice", Behaviour.ACKNOWLEDGE, "reads her mail and acknowledges"),
    Resident("bob@corp.test", "Bob", Behaviour.DELIVER, "gets his mail, never acknowledges"),
    Resident("carol@example.test", "Carol", Behaviour.AUTOREPLY, "is on holiday: out-of-office"),
    Resident("dave@corp.test", "Dave", Behaviour.UNKNOWN, "left the company: 5.1.1 unknown user"),
    Resident("erin@example.test", "Erin", Behaviour.FULL, "has a full mailbox: 5.2.2"),
    Resident("frank@example.test", "Frank", Behaviour.DEFER, "his domain defers (450), expires"),
    Resident("grace@example.test", "Grace", Behaviour.LATE, "delayed DSN, delivered late"),
    Resident(ONCALL, "On-call", Behaviour.DELIVER, "is told when an incident is not acknowledged"),
)
_BY_ADDRESS = {r.address: r for r in RESIDENTS}


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def is_internal(address: str) -> bool:
    return domain_of(address) == INTERNAL_DOMAIN


def behaviour_for(address: str) -> Behaviour | None:
    """What the sandbox does with mail for ``address``; None: not a sandbox address."""
    address = address.strip().strip("<>").lower()
    local, _, domain = address.rpartition("@")
    if domain not in DOMAINS or not local:
        return None
    resident = _BY_ADDRESS.get(address)
    if resident is not None:
        return resident.behaviour
    _, plus, tag = local.partition("+")
    if plus:
        try:
            return Behaviour(tag)
        except ValueError:
            pass
    return Behaviour.DELIVER


@dataclass(frozen=True, slots=True)
class Timing:
    """How long after the relay accepted a message each follow-up happens, in seconds."""

    #: Success and failure DSNs.
    dsn: float = 2.0
    #: The ``delayed`` DSN of a ``late`` mailbox.
    delay_dsn: float = 3.0
    #: The success DSN of a ``late`` mailbox: after the demo's 30 s deadline,
    #: so its alert opens and is then resolved by the late evidence.
    late_delivery: float = 50.0
    #: The out-of-office reply.
    autoreply: float = 4.0
    #: A person pressing the acknowledgement button.
    acknowledge: float = 8.0


@dataclass(frozen=True, slots=True)
class Send:
    """One notification the demo sends, ``at`` seconds after it starts."""

    at: float
    topic: str
    cls: str
    to: tuple[str, ...]
    subject: str
    text: str


def _to(*addresses: str) -> tuple[str, ...]:
    return tuple(_BY_ADDRESS[a].mailbox for a in addresses)


SCRIPT = (
    Send(
        0,
        "INC-1042",
        "incident",
        _to("alice@corp.test", "bob@corp.test", "dave@corp.test"),
        "Payments API: error rate above 5%",
        "The payments API has answered 5xx to 7% of requests for 5 minutes.\n"
        "Please acknowledge that you have seen this incident.",
    ),
    Send(
        0,
        "CHG-207",
        "change",
        _to("alice@corp.test", "erin@example.test", "frank@example.test", "grace@example.test"),
        "Database maintenance tonight, 22:00-23:00 UTC",
        "db-3 will be read-only during the window. No action is needed.",
    ),
    Send(
        0,
        "TCK-5521",
        "ticket",
        _to("carol@example.test", "bob@corp.test"),
        "Your access request was approved",
        "Access to the reporting workspace was granted.",
    ),
    Send(
        20,
        "INC-1042",
        "incident",
        _to("alice@corp.test", "bob@corp.test", "dave@corp.test"),
        "Update: payments API mitigated, error rate back under 1%",
        "Traffic was moved to the standby cluster. The incident stays open until\n"
        "the root cause is known.",
    ),
)


def policies(
    deadline_ack: float = 45, deadline: float = 30, escalate_after: float = 10
) -> list[dict[str, Any]]:
    """The demo's policies (``[[policies]]`` tables), with deadlines short enough
    that alerts open within a minute."""
    return [
        {
            "name": "incident-ack",
            "classes": ["incident"],
            "recipients": [f"*@{INTERNAL_DOMAIN}"],
            "required": "acknowledged",
            "deadline": f"{deadline_ack:g}s",
            "steps": [{"after": f"{escalate_after:g}s", "action": "notify", "to": ONCALL}],
        },
        {
            "name": "internal",
            "recipients": [f"*@{INTERNAL_DOMAIN}"],
            "required": "delivered",
            "deadline": f"{deadline:g}s",
        },
        {"name": "external", "required": "accepted", "deadline": f"{deadline:g}s"},
    ]
