"""Property tests of the evidence fold: order-independent, duplicate-proof, monotonic."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from landed.domain import Fact, Level, Outcome, fold

facts = st.builds(
    Fact,
    level=st.one_of(st.none(), st.sampled_from(list(Level))),
    outcome=st.one_of(st.none(), st.sampled_from(list(Outcome))),
)
fact_lists = st.lists(facts, max_size=12)


@given(fact_lists, st.randoms())
def test_order_does_not_matter(items: list[Fact], rnd: object) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert fold(shuffled) == fold(items)


@given(fact_lists, st.lists(st.integers(min_value=0, max_value=11), max_size=6))
def test_duplicates_do_not_matter(items: list[Fact], picks: list[int]) -> None:
    extra = [items[i % len(items)] for i in picks] if items else []
    assert fold(items + extra) == fold(items)


@given(fact_lists, facts)
def test_level_never_goes_down(items: list[Fact], more: Fact) -> None:
    assert fold([*items, more]).level.rank >= fold(items).level.rank


@given(fact_lists, facts)
def test_final_outcomes_stick(items: list[Fact], more: Fact) -> None:
    before = fold(items).outcome
    after = fold([*items, more]).outcome
    if before is not None and before.final:
        assert after is not None and after.final


@given(fact_lists)
def test_level_is_the_highest_proven(items: list[Fact]) -> None:
    proven = [f.level.rank for f in items if f.level is not None]
    assert fold(items).level.rank == max(proven, default=0)


def test_nothing_known_is_queued() -> None:
    assert fold([]).level is Level.QUEUED
    assert fold([]).outcome is None


def test_relay_4xx_then_250_is_no_longer_deferred() -> None:
    deferred = Fact(None, Outcome.DEFERRED)
    submitted = Fact(Level.SUBMITTED, None)
    assert fold([deferred]).outcome is Outcome.DEFERRED
    assert fold([deferred, submitted]).outcome is None
    assert fold([submitted, deferred]).outcome is None


def test_delay_dsn_stands_until_later_proof() -> None:
    submitted = Fact(Level.SUBMITTED, None)
    delay_dsn = Fact(Level.SUBMITTED, Outcome.DEFERRED)
    delivered = Fact(Level.DELIVERED, None)
    assert fold([submitted, delay_dsn]).outcome is Outcome.DEFERRED
    verdict = fold([submitted, delay_dsn, delivered])
    assert verdict.level is Level.DELIVERED and verdict.outcome is None


def test_bounce_sticks_and_most_severe_final_wins() -> None:
    submitted = Fact(Level.SUBMITTED, None)
    bounced = Fact(None, Outcome.BOUNCED)
    complained = Fact(Level.DELIVERED, Outcome.COMPLAINED)
    assert fold([submitted, bounced]).outcome is Outcome.BOUNCED
    assert fold([bounced, complained]).outcome is Outcome.COMPLAINED
    assert fold([bounced, complained]).level is Level.DELIVERED


def test_expired_outranks_deferred_but_yields_to_proof() -> None:
    deferred = Fact(None, Outcome.DEFERRED)
    expired = Fact(None, Outcome.EXPIRED)
    assert fold([deferred, expired]).outcome is Outcome.EXPIRED
    assert fold([deferred, expired, Fact(Level.ACCEPTED, None)]).outcome is None
