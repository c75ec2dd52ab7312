"""Accuracy on the public bounce corpus (../shared/corpus), with the bench's comparison.

Skipped when the corpus is absent, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os

import pytest
from bench.corpus_compare import compare, corpus_dir, load_manifest

REASON_GOAL = 0.97
STATUS_GOAL = 0.97
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def agreement():  # type: ignore[no-untyped-def]
    base = corpus_dir()
    if not (base / "manifest.jsonl").exists():
        if IN_CI:
            pytest.fail(f"bounce corpus missing at {base} (set LANDED_CORPUS_DIR)")
        pytest.skip(f"bounce corpus not found at {base}")
    return compare(load_manifest(base))


def test_reason_accuracy(agreement) -> None:  # type: ignore[no-untyped-def]
    assert agreement.reason_rate >= REASON_GOAL, f"reason {agreement.reason_rate:.3f}"


def test_status_accuracy(agreement) -> None:  # type: ignore[no-untyped-def]
    assert agreement.status_rate >= STATUS_GOAL, f"status {agreement.status_rate:.3f}"


def test_every_corpus_email_parses(agreement) -> None:  # type: ignore[no-untyped-def]
    # compare() parsed all of them without raising; there is ground truth for most.
    assert agreement.emails > 500


def test_no_detector_raises_on_the_corpus() -> None:
    # parse() turns an internal error into a "not-bounce" report; the corpus
    # must not depend on that safety net.
    from landed.parse.pipeline import _parse

    base = corpus_dir()
    if not (base / "manifest.jsonl").exists():
        pytest.skip("bounce corpus not found")
    for row in load_manifest(base):
        _parse(row.path.read_bytes(), None)
