"""parse() never raises, whatever the bytes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from landed.parse import Report, parse

SAMPLES = sorted((Path(__file__).resolve().parent / "samples").glob("*.eml"))
_SEEDS = [p.read_bytes() for p in SAMPLES]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes(raw: bytes) -> None:
    assert isinstance(parse(raw), Report)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_SEEDS),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=200),
    st.binary(max_size=64),
)
def test_mutated_samples(seed: bytes, at: int, cut: int, insert: bytes) -> None:
    at %= len(seed) + 1
    mutated = seed[:at] + insert + seed[at + cut :]
    assert isinstance(parse(mutated), Report)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_random_text(text: str) -> None:
    assert isinstance(parse(text.encode("utf-8", "surrogatepass")), Report)
