"""Accuracy and speed of ``landed.parse`` on the public bounce corpus, against Sisimai.

    .venv/bin/python bench/parse_corpus.py            # accuracy + speed
    .venv/bin/python bench/parse_corpus.py --no-speed --misses

Accuracy: agreement with ``manifest.jsonl`` (recipient, reason, status; overall
and per source MTA; a confusion table of reasons), with the comparison rules
of ``bench/corpus_compare.py``.

Speed: emails per second of landed and of Sisimai (Debian ``libsisimai-perl``,
driven by ``bench/sisimai_rate.pl``) on the same files, in the same run, on one
core (``taskset -c 0`` when available):

* whole process: start the interpreter, load the parser, read and parse every
  file once (CPU time of the process, median of ``--runs``);
* steady state: files already in memory, one warm-up round, then the corpus
  parsed ``--repeat`` times, each round timed (CPU time); best round of all
  ``--runs`` trials, and the median round.

The two parsers are measured alternately, CPU time rather than wall time: on a
machine shared with other work, wall time measures the neighbours. Python runs
with bytecode caches (in a directory under the temp dir), as an installed
program does, even where ``PYTHONDONTWRITEBYTECODE`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus_compare import (
    Agreement,
    Tally,
    compare,
    compare_reference,
    corpus_dir,
    load_manifest,
)

_HERE = Path(__file__).resolve().parent
_WHOLE = """
import sys
from landed.parse import parse
for path in sys.argv[1:]:
    with open(path, "rb") as handle:
        parse(handle.read())
"""
_STEADY = """
import json, sys, time
from landed.parse import parse
repeat = int(sys.argv[1])
texts = []
for path in sys.argv[2:]:
    with open(path, "rb") as handle:
        texts.append(handle.read())
records = sum(len(parse(t).recipients) for t in texts)  # warm-up round
rounds = []
for _ in range(repeat):
    started = time.process_time()
    for text in texts:
        parse(text)
    rounds.append(time.process_time() - started)
print(json.dumps({"emails": len(texts), "rounds": rounds, "records": records}))
"""


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f}%" if whole else "    -"


def print_accuracy(agreement: Agreement, *, misses: bool, reference: Tally | None = None) -> None:
    """Overall and per-source agreement, and the confusion table."""
    total = agreement.total
    print("== Accuracy on the public corpus (records compared in order with the manifest)")
    print(f"   corpus: {corpus_dir()}")
    print(f"   emails with ground truth: {agreement.emails}, expected records: {total.records}")
    print(
        f"   reason    {_pct(total.reason, total.records)}  "
        f"({total.reason}/{total.records})   goal >= 97%"
    )
    print(
        f"   status    {_pct(total.status, total.records)}  "
        f"({total.status}/{total.records})   goal >= 97%"
    )
    print(f"   both      {_pct(total.both, total.records)}  ({total.both}/{total.records})")
    print(
        f"   recipient {_pct(total.recipient, total.recipient_total)}  "
        f"({total.recipient}/{total.recipient_total} records with an expected recipient)"
    )
    print(f"   emails fully right {_pct(agreement.emails_right, agreement.emails)}")
    print(
        f"   kind (all {agreement.kind_total} emails) "
        f"{_pct(agreement.kind_right, agreement.kind_total)}"
    )
    if reference is not None and reference.records:
        print(
            "   reference, Sisimai 5.1.0p3 (manifest's sisimai_v5) on the same records: "
            f"reason {_pct(reference.reason, reference.records)}, "
            f"status {_pct(reference.status, reference.records)}"
        )
    print()
    print("== Per source MTA (records, recipient, reason, status)")
    print(f"   {'source_mta':<24}{'recs':>5}{'rcpt':>8}{'reason':>8}{'status':>8}")
    for source, tally in sorted(
        agreement.by_source.items(), key=lambda kv: (-kv[1].records, kv[0])
    ):
        print(
            f"   {source:<24}{tally.records:>5}{_pct(tally.recipient, tally.recipient_total):>8}"
            f"{_pct(tally.reason, tally.records):>8}{_pct(tally.status, tally.records):>8}"
        )
    print()
    print("== Confusion of reasons (expected: right/total; wrong answers as ours x count)")
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for (expected, ours), count in agreement.confusion.items():
        rows[expected][ours] += count
    for expected in sorted(rows, key=lambda r: -sum(rows[r].values())):
        answers = rows[expected]
        right = answers.get(expected, 0)
        wrong = ", ".join(f"{o} x{c}" for o, c in answers.most_common() if o != expected)
        print(f"   {expected:<16}{right:>4}/{sum(answers.values()):<4} {wrong}")
    if misses:
        print()
        print("== Records not right (file, index, expected reason, ours, expected status, ours)")
        for miss in agreement.misses:
            print("  ", *miss)
    print()


def _taskset(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") else []


def _python_env() -> dict[str, str]:
    """The environment for the Python runs: bytecode caches allowed.

    With ``PYTHONDONTWRITEBYTECODE`` set (as in some sandboxes) every process
    would compile every module from source, which no installed program does;
    the caches go to a directory of their own under the temp dir, not into
    the source tree. The first (untimed) run fills it.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "landed-bench-pycache")
    return env


def _whole_cpu(command: list[str], env: dict[str, str] | None = None) -> float:
    """CPU seconds (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _rounds(command: list[str], env: dict[str, str] | None = None) -> list[float]:
    """CPU seconds of each steady-state round over the corpus."""
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return [float(x) for x in json.loads(done.stdout.strip().splitlines()[-1])["rounds"]]


class _Timing:
    """CPU times of one parser: whole-process runs and steady-state rounds."""

    def __init__(self) -> None:
        self.whole: list[float] = []
        self.rounds: list[float] = []

    def rates(self, count: int) -> tuple[float, float, float]:
        """(whole process: median, steady state: best round, steady state: median round)."""
        return (
            count / statistics.median(self.whole),
            count / min(self.rounds),
            count / statistics.median(self.rounds),
        )


def print_speed(files: list[str], *, runs: int, repeat: int, sisimai: bool, core: int = 0) -> None:
    """Emails per second, landed and Sisimai, whole process and steady state.

    Times are CPU times (user + system) of the measured process, pinned to one
    core: wall-clock times on a shared machine mostly measure the neighbours.
    The two parsers are run alternately (``runs`` trials each) so that both
    see the same conditions; steady state takes the best round of all trials
    (the least disturbed one), whole process the median run.
    """
    pin = _taskset(core)
    count = len(files)
    where = f"one core (taskset -c {core})" if pin else "taskset not found, not pinned"
    print(f"== Speed: {count} emails, {where}, CPU time")
    python = [*pin, sys.executable]
    perl: list[str] = []
    version = ""
    if sisimai:
        probe = (
            subprocess.run(
                ["perl", "-MSisimai", "-e", "print $Sisimai::VERSION"],
                capture_output=True,
                text=True,
            )
            if shutil.which("perl")
            else None
        )
        if probe is None or probe.returncode != 0:
            print("   sisimai: not installed (apt-get install -y libsisimai-perl)")
        else:
            version = probe.stdout.strip()
            perl = [*pin, "perl", str(_HERE / "sisimai_rate.pl")]
    ours, theirs = _Timing(), _Timing()
    env = _python_env()
    subprocess.run([*python, "-c", _WHOLE, *files[:1]], check=True, env=env)  # fill the caches
    for _ in range(runs):
        ours.whole.append(_whole_cpu([*python, "-c", _WHOLE, *files], env))
        ours.rounds.extend(_rounds([*python, "-c", _STEADY, str(repeat), *files], env))
        if perl:
            theirs.whole.append(_whole_cpu([*perl, "--repeat", "1", *files]))
            theirs.rounds.extend(_rounds([*perl, "--repeat", str(repeat), *files]))
    trials = f"{runs} runs; {runs} x {repeat} rounds"
    rows = [("landed", ours)] + ([(f"sisimai {version}", theirs)] if perl else [])
    print(f"   {'':18} {'whole process':>14} {'steady (best)':>14} {'steady (median)':>16}")
    rates: dict[str, tuple[float, float, float]] = {}
    for name, timing in rows:
        rates[name] = timing.rates(count)
        whole, best, median = rates[name]
        print(f"   {name:18} {whole:10.0f} e/s {best:10.0f} e/s {median:12.0f} e/s")
    print(f"   ({trials}, interleaved)")
    if perl:
        (w1, b1, m1), (w2, b2, m2) = rates["landed"], rates[f"sisimai {version}"]
        print(
            f"   ratio landed/sisimai: whole process {w1 / w2:.2f}x, "
            f"steady state {b1 / b2:.2f}x (median rounds {m1 / m2:.2f}x)"
            "   goal >= 3x steady state"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-speed", action="store_true", help="accuracy only")
    parser.add_argument("--no-accuracy", action="store_true", help="speed only")
    parser.add_argument("--no-sisimai", action="store_true", help="do not time Sisimai")
    parser.add_argument("--misses", action="store_true", help="list every record not right")
    parser.add_argument("--runs", type=int, default=3, help="trials of each measurement")
    parser.add_argument("--repeat", type=int, default=5, help="steady-state rounds per trial")
    parser.add_argument("--core", type=int, default=0, help="the CPU core to pin both to")
    args = parser.parse_args(argv)
    base = corpus_dir()
    if not (base / "manifest.jsonl").exists():
        print(f"corpus not found at {base} (set LANDED_CORPUS_DIR)", file=sys.stderr)
        return 2
    rows = load_manifest(base)
    if not args.no_accuracy:
        print_accuracy(compare(rows), misses=args.misses, reference=compare_reference(rows))
    if not args.no_speed:
        files = sorted(str(row.path) for row in rows)
        print_speed(
            files,
            runs=args.runs,
            repeat=args.repeat,
            sisimai=not args.no_sisimai,
            core=args.core,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
