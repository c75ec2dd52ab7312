"""Agreement of ``landed.parse`` with the bounce corpus manifest.

One implementation, used by ``bench/parse_corpus.py`` and by the corpus test.
The rules (see ``../shared/corpus/bounces/README.md``):

* expected records are compared with ours in order (record *i* with record *i*);
* recipients only where the manifest has one; Sisimai's placeholder for a
  missing recipient (``...@libsisimai.org.invalid``) counts as "none";
* status exactly, except for Sisimai pseudo codes (``X.0.9NN``, newer
  ``X.9.NNN``): those mean "no code in the email", so only the class is compared;
* emails whose ``expected`` is ``null`` have no ground truth and are skipped.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from landed.parse import Report, parse

__all__ = [
    "Agreement",
    "Row",
    "compare",
    "corpus_dir",
    "load_manifest",
    "pseudo_status",
    "status_agrees",
]

_REPO = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path:
    """The bounce corpus: ``$LANDED_CORPUS_DIR`` or ``../shared/corpus`` from the repo root."""
    base = os.environ.get("LANDED_CORPUS_DIR")
    root = Path(base) if base else _REPO / ".." / "shared" / "corpus"
    return (root / "bounces" / "public").resolve()


@dataclass(frozen=True, slots=True)
class Row:
    """One manifest line."""

    file: str
    path: Path
    kind: str
    source_mta: str
    expected: list[dict[str, object]] | None
    #: Sisimai 5.1.0p3's records for the email, as the manifest gives them.
    sisimai_v5: list[dict[str, object]] | None = None


def load_manifest(directory: Path | None = None) -> list[Row]:
    """The manifest rows of the public corpus."""
    base = directory or corpus_dir()
    rows: list[Row] = []
    with (base / "manifest.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            data = json.loads(line)
            rows.append(
                Row(
                    file=data["file"],
                    path=base / data["file"],
                    kind=data["kind"],
                    source_mta=data["source_mta"] or "(none)",
                    expected=data["expected"],
                    sisimai_v5=data.get("sisimai_v5"),
                )
            )
    return rows


def pseudo_status(code: str) -> bool:
    """Whether ``code`` is a Sisimai pseudo code: X.0.9NN or X.9.NNN."""
    pieces = code.split(".")
    if len(pieces) != 3:
        return False
    return (pieces[1] == "0" and len(pieces[2]) == 3 and pieces[2].startswith("9")) or pieces[
        1
    ] == "9"


def status_agrees(expected: str, ours: str) -> bool:
    """The status comparison rule."""
    if pseudo_status(expected):
        return ours[:1] == expected[:1]
    return ours == expected


def _expected_recipient(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if value.endswith("@libsisimai.org.invalid"):
        return ""
    return value.lower()


@dataclass(slots=True)
class Tally:
    """Counts for one group of records."""

    records: int = 0
    reason: int = 0
    status: int = 0
    both: int = 0
    recipient_total: int = 0
    recipient: int = 0

    def add(self, other: Tally) -> None:
        """Add ``other`` into this tally."""
        self.records += other.records
        self.reason += other.reason
        self.status += other.status
        self.both += other.both
        self.recipient_total += other.recipient_total
        self.recipient += other.recipient


@dataclass(slots=True)
class Agreement:
    """The result of comparing the whole corpus."""

    total: Tally = field(default_factory=Tally)
    by_source: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    emails: int = 0
    emails_right: int = 0
    kind_total: int = 0
    kind_right: int = 0
    misses: list[tuple[str, int, str, str, str, str]] = field(default_factory=list)

    @property
    def reason_rate(self) -> float:
        """Share of expected records with the right reason."""
        return self.total.reason / self.total.records if self.total.records else 0.0

    @property
    def status_rate(self) -> float:
        """Share of expected records with the right status."""
        return self.total.status / self.total.records if self.total.records else 0.0

    @property
    def recipient_rate(self) -> float:
        """Share of expected recipients found at the right position."""
        t = self.total
        return t.recipient / t.recipient_total if t.recipient_total else 0.0


def compare_one(row: Row, report: Report, agreement: Agreement) -> None:
    """Add one email's comparison to ``agreement``."""
    agreement.kind_total += 1
    if report.kind == row.kind:
        agreement.kind_right += 1
    if row.expected is None:
        return
    agreement.emails += 1
    ours = report.recipients
    tally = Tally()
    all_right = bool(ours) if row.expected else not ours
    for index, expected in enumerate(row.expected):
        mine = ours[index] if index < len(ours) else None
        e_reason = str(expected.get("reason") or "")
        e_status = str(expected.get("status") or "")
        m_reason = mine.reason if mine else "(none)"
        m_status = mine.status if mine else ""
        tally.records += 1
        reason_ok = m_reason == e_reason
        status_ok = mine is not None and status_agrees(e_status, m_status)
        tally.reason += reason_ok
        tally.status += status_ok
        tally.both += reason_ok and status_ok
        e_rcpt = _expected_recipient(expected.get("recipient"))
        if e_rcpt is not None:
            tally.recipient_total += 1
            m_rcpt = (mine.recipient or "") if mine else None
            tally.recipient += m_rcpt == e_rcpt
        agreement.confusion[(e_reason, m_reason)] += 1
        if not (reason_ok and status_ok):
            all_right = False
            agreement.misses.append((row.file, index + 1, e_reason, m_reason, e_status, m_status))
    agreement.emails_right += all_right
    agreement.total.add(tally)
    agreement.by_source[row.source_mta].add(tally)


def compare(rows: Iterable[Row], reports: Iterator[Report] | None = None) -> Agreement:
    """Parse every row's email (or take ``reports`` in the same order) and compare."""
    agreement = Agreement()
    for row in rows:
        report = next(reports) if reports is not None else parse(row.path.read_bytes())
        compare_one(row, report, agreement)
    return agreement


def compare_reference(rows: Iterable[Row]) -> Tally:
    """Sisimai 5.1.0p3's agreement (the manifest's ``sisimai_v5``), by the same rules."""
    tally = Tally()
    for row in rows:
        if row.expected is None:
            continue
        theirs = row.sisimai_v5 or []
        for index, expected in enumerate(row.expected):
            record = theirs[index] if index < len(theirs) else None
            tally.records += 1
            if record is None:
                continue
            reason_ok = str(record.get("reason") or "") == str(expected.get("reason") or "")
            status_ok = status_agrees(
                str(expected.get("status") or ""), str(record.get("status") or "")
            )
            tally.reason += reason_ok
            tally.status += status_ok
            tally.both += reason_ok and status_ok
    return tally
