"""The pure vocabulary and rules of landed: no I/O, no database."""

from __future__ import annotations

from landed.domain.enums import Attribution, EvidenceSource, Level, Outcome
from landed.domain.evidence import Fact, Verdict, fold

__all__ = ["Attribution", "EvidenceSource", "Fact", "Level", "Outcome", "Verdict", "fold"]
