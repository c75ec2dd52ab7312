"""Folding a delivery's evidence into its level and outcome.

The fold is a pure function of the *set* of facts: evidence can arrive late,
twice or out of order, and the verdict must not depend on which. It is built
from a join over a small summary (a semilattice: associative, commutative,
idempotent), so folding in any order, with any duplicates, gives one answer.

Rules:

* The level is the highest level any fact proves (``queued`` with no proof).
  Adding evidence never lowers it.
* Final outcomes (``complained > bounced > rejected > suppressed``) stick once
  seen; the most severe wins.
* ``deferred`` and ``expired`` are provisional: each fact that carries one also
  says how far the delivery had got when it was observed (its ``level``; a
  relay's 4xx proves nothing, a delay DSN proves ``submitted``). A provisional
  outcome stands only while no fact proves a level beyond the highest level at
  which it was observed. A 451 followed by a 250 is no longer deferred; a delay
  DSN followed by a success DSN is no longer deferred; a delay DSN on its own is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from landed.domain.enums import Level, Outcome

_FINAL_SEVERITY = (Outcome.SUPPRESSED, Outcome.REJECTED, Outcome.BOUNCED, Outcome.COMPLAINED)
#: The ladder by rank (iterating the enum anew for each fold was most of its cost).
_LEVELS = tuple(Level)


@dataclass(frozen=True, slots=True)
class Fact:
    """What one piece of evidence says, for the fold: the level it proves and
    the outcome it reports, either of which may be absent."""

    level: Level | None = None
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A delivery's level and outcome."""

    level: Level
    outcome: Outcome | None


@dataclass(frozen=True, slots=True)
class _Summary:
    level: int = 0
    final: int = -1  # index into _FINAL_SEVERITY
    # For each provisional outcome: the highest level rank at which it was seen, or -1.
    deferred_at: int = -1
    expired_at: int = -1

    def join(self, other: _Summary) -> _Summary:
        return _Summary(
            level=max(self.level, other.level),
            final=max(self.final, other.final),
            deferred_at=max(self.deferred_at, other.deferred_at),
            expired_at=max(self.expired_at, other.expired_at),
        )


def _summarize(fact: Fact) -> _Summary:
    level = fact.level.rank if fact.level is not None else 0
    outcome = fact.outcome
    if outcome is None:
        return _Summary(level=level)
    if outcome.final:
        return _Summary(level=level, final=_FINAL_SEVERITY.index(outcome))
    if outcome is Outcome.DEFERRED:
        return _Summary(level=level, deferred_at=level)
    return _Summary(level=level, expired_at=level)


def fold(facts: Iterable[Fact]) -> Verdict:
    """The verdict on a delivery given every fact known about it."""
    summary = _Summary()
    for fact in facts:
        summary = summary.join(_summarize(fact))
    level = _LEVELS[summary.level]
    if summary.final >= 0:
        return Verdict(level, _FINAL_SEVERITY[summary.final])
    # Expired outranks deferred: it is the later, more serious state of the same trouble.
    if summary.expired_at >= summary.level:
        return Verdict(level, Outcome.EXPIRED)
    if summary.deferred_at >= summary.level:
        return Verdict(level, Outcome.DEFERRED)
    return Verdict(level, None)
