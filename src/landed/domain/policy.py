"""Policies: what proof each delivery needs, by when, and what to do when it is missing.

A policy is chosen per delivery by notification class and recipient address
(shell-style patterns, first match wins, in the order configured). Everything
here is pure: the reconciler feeds it the delivery's level, outcome and the
clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase

from landed.domain.enums import Level, Outcome

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.I)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float) -> timedelta:
    """``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` as a timedelta."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 2h, 1d)")
        seconds = float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


class Action(StrEnum):
    """What an escalation step does."""

    #: Send the notification to the same recipient again, in the same thread.
    RESEND = "resend"
    #: Send it to the recipient's fallback address (``fallbacks`` in the config).
    FALLBACK = "fallback"
    #: Tell someone else (the owner, on-call) that this delivery is not proven.
    NOTIFY = "notify"
    #: POST the alert to a URL (HMAC-signed JSON).
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class Step:
    """One escalation step, run ``after`` the alert opened."""

    after: timedelta
    action: Action
    #: For ``notify``: the address told.
    to: str | None = None
    #: For ``webhook``: the URL called.
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """The proof a delivery needs, by when, and the steps when it is missing."""

    name: str
    required: Level
    deadline: timedelta
    classes: tuple[str, ...] = ("*",)
    recipients: tuple[str, ...] = ("*",)
    steps: tuple[Step, ...] = ()
    #: Ask for replies to reach landed (``Reply-To: reply+TOKEN@bounce domain``).
    request_reply: bool = False
    #: Ask for read receipts (``Disposition-Notification-To``: the VERP address).
    request_mdn: bool = False
    #: Hard bounces and complaints under this policy suppress the address.
    suppress: bool = True

    def matches(self, cls: str, address: str) -> bool:
        address = address.lower()
        return any(fnmatchcase(cls, p) for p in self.classes) and any(
            fnmatchcase(address, p.lower()) for p in self.recipients
        )


#: Used when no configured policy matches: accepted within 30 minutes. Large
#: providers send no success DSNs, so "accepted" (a relayed DSN, a direct-MX
#: 250, an ESP "delivered" event) is the most that can be asked of any address.
FALLBACK_POLICY = Policy(name="default", required=Level.ACCEPTED, deadline=timedelta(minutes=30))


def choose(policies: Sequence[Policy], cls: str, address: str) -> Policy:
    """The first policy that matches, else :data:`FALLBACK_POLICY`."""
    for policy in policies:
        if policy.matches(cls, address):
            return policy
    return FALLBACK_POLICY


class State(StrEnum):
    """A delivery's standing under its policy."""

    #: Not proven yet, deadline not reached.
    PENDING = "pending"
    #: Proven to the required level, with no negative outcome.
    MET = "met"
    #: Bounced, complained about, suppressed, rejected, or past its deadline.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Judgement:
    state: State
    #: Why it failed: the outcome (``bounced``...) or ``expired`` for a missed deadline.
    reason: str | None = None
    #: When to look again if nothing changes (the deadline, while pending).
    recheck_at: datetime | None = None


_FAILING = (Outcome.BOUNCED, Outcome.COMPLAINED, Outcome.SUPPRESSED, Outcome.REJECTED)
# The verdicts that carry no time, made once: the reconciler judges a thousand
# deliveries a tick, and a frozen dataclass costs a microsecond to make.
_MET = Judgement(State.MET)
_FAILED = {o: Judgement(State.FAILED, o.value) for o in (*_FAILING, Outcome.EXPIRED)}
_RANK = {level: level.rank for level in Level}


def judge(
    level: Level, outcome: Outcome | None, required: Level, deadline_at: datetime, now: datetime
) -> Judgement:
    """The verdict on one delivery under its policy at ``now``.

    A final negative outcome fails a delivery whatever its level (a complaint
    arrives after delivery). Otherwise reaching the required level is success,
    even after the deadline, so late evidence turns a failure back into success.
    """
    if outcome in _FAILING:
        return _FAILED[outcome]
    if _RANK[level] >= _RANK[required]:
        return _MET
    if outcome is Outcome.EXPIRED or now >= deadline_at:
        return _FAILED[Outcome.EXPIRED]
    return Judgement(State.PENDING, recheck_at=deadline_at)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Where an open alert stands in its policy's steps."""

    steps: tuple[Step, ...] = field(default_factory=tuple)

    def next_step(self, done: int, opened_at: datetime) -> tuple[int, datetime] | None:
        """The index and time of the next step after ``done`` steps, if any."""
        if done >= len(self.steps):
            return None
        return done, opened_at + self.steps[done].after
