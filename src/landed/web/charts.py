"""Server-rendered SVG charts for the dashboard: the level funnel and evidence
latency over time. Pure: figures in, markup out (every text is escaped), so
the dashboard needs no JavaScript.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape

from landed.domain import Level, Outcome

#: One colour per level, readable on white and distinct for colour-blind readers
#: (Okabe-Ito palette, https://jfly.uni-koeln.de/color/).
LEVEL_COLOURS = {
    Level.QUEUED.value: "#999999",
    Level.SUBMITTED.value: "#56B4E9",
    Level.ACCEPTED.value: "#0072B2",
    Level.DELIVERED.value: "#009E73",
    Level.SEEN.value: "#E69F00",
    Level.ACKNOWLEDGED.value: "#CC79A7",
}
_OUTCOME_COLOUR = "#D55E00"


@dataclass(frozen=True, slots=True)
class FunnelStep:
    label: str
    count: int
    colour: str


def funnel(counts: Mapping[tuple[str, str | None], int]) -> list[FunnelStep]:
    """Deliveries that reached at least each level, then each negative outcome."""
    by_level: dict[str, int] = defaultdict(int)
    by_outcome: dict[str, int] = defaultdict(int)
    for (level, outcome), n in counts.items():
        by_level[level] += n
        if outcome:
            by_outcome[outcome] += n
    steps = []
    ladder = [level.value for level in Level]
    for i, level in enumerate(ladder):
        reached = sum(by_level[higher] for higher in ladder[i:])
        steps.append(FunnelStep(f"≥ {level}", reached, LEVEL_COLOURS[level]))
    steps += [
        FunnelStep(outcome.value, by_outcome[outcome.value], _OUTCOME_COLOUR)
        for outcome in Outcome
        if by_outcome[outcome.value]
    ]
    return steps


def funnel_svg(steps: Sequence[FunnelStep], *, width: int = 640) -> str:
    """Horizontal bars, one per step, labelled with the count."""
    bar, gap, label_w = 22, 6, 130
    height = len(steps) * (bar + gap) + gap
    top = max((s.count for s in steps), default=0) or 1
    parts = [_open(width, height, "Deliveries by level reached and by outcome")]
    for i, step in enumerate(steps):
        y = gap + i * (bar + gap)
        w = (width - label_w - 60) * step.count / top
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar * 0.7:.1f}" text-anchor="end" '
            f'class="axis">{escape(step.label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar}" fill="{step.colour}">'
            f"<title>{escape(step.label)}: {step.count}</title></rect>"
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar * 0.7:.1f}" class="value">'
            f"{step.count}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class LatencySeries:
    level: str
    #: (day, median seconds, 90th percentile seconds, how many deliveries)
    points: tuple[tuple[date, float, float, int], ...]


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank)."""
    if not values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(values)))
    return values[rank - 1]


def latency_series(points: Iterable[tuple[datetime, str, float]]) -> list[LatencySeries]:
    """Median and 90th percentile per day (of the delivery's creation) and level."""
    buckets: dict[tuple[str, date], list[float]] = defaultdict(list)
    for created, level, seconds in points:
        if level == Level.QUEUED.value:
            continue
        buckets[(level, created.date())].append(seconds)
    series = []
    for level in Level:
        days = sorted(day for lvl, day in buckets if lvl == level.value)
        if not days:
            continue
        rows = []
        for day in days:
            values = sorted(buckets[(level.value, day)])
            rows.append((day, quantile(values, 0.5), quantile(values, 0.9), len(values)))
        series.append(LatencySeries(level.value, tuple(rows)))
    return series


#: Latency axis ticks, in seconds: 1s 10s 1m 5m 15m 1h 6h 1d 1w.
_TICKS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0, 604800.0)


def _fmt_seconds(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            value = seconds / size
            return (
                f"{value:.0f}{unit}" if value >= 10 or value.is_integer() else f"{value:.1f}{unit}"
            )
    return f"{seconds:.0f}s"


def latency_svg(series: Sequence[LatencySeries], *, width: int = 640, height: int = 260) -> str:
    """Median latency per day and level on a logarithmic time axis (p90 in the tooltip)."""
    left, right, top, bottom = 56, 124, 12, 28
    days = sorted({p[0] for s in series for p in s.points})
    values = [max(1.0, p[1]) for s in series for p in s.points]
    parts = [_open(width, height, "Median time from notify to first evidence, per day")]
    if not days:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="axis">'
            "no evidence in this period</text></svg>"
        )
        return "".join(parts)
    # Ticks at times people think in; the axis spans the ticks around the data.
    below = [t for t in _TICKS if t <= min(values)] or [_TICKS[0]]
    above = [t for t in _TICKS if t >= max(values)] or [_TICKS[-1]]
    ticks = [t for t in _TICKS if below[-1] <= t <= above[0]]
    if len(ticks) == 1:
        ticks = [ticks[0], _TICKS[min(_TICKS.index(ticks[0]) + 1, len(_TICKS) - 1)]]
    lo, hi = math.log10(ticks[0]), math.log10(ticks[-1])
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(day: date) -> float:
        if len(days) == 1:
            return left + plot_w / 2
        return left + plot_w * days.index(day) / (len(days) - 1)

    def y(seconds: float) -> float:
        return top + plot_h * (1 - (math.log10(max(1.0, seconds)) - lo) / (hi - lo))

    for tick in ticks:
        ty = y(tick)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" class="axis">'
            f"{_fmt_seconds(tick)}</text>"
        )
    step = max(1, len(days) // 6)
    for day in days[::step]:
        parts.append(
            f'<text x="{x(day):.1f}" y="{height - 8}" text-anchor="middle" class="axis">'
            f"{day:%m-%d}</text>"
        )
    for i, s in enumerate(series):
        colour = LEVEL_COLOURS.get(s.level, "#333333")
        coords = " ".join(f"{x(d):.1f},{y(median):.1f}" for d, median, _p90, _n in s.points)
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for d, median, p90, n in s.points:
            parts.append(
                f'<circle cx="{x(d):.1f}" cy="{y(median):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(s.level)} {d}: median {_fmt_seconds(median)}, "
                f"p90 {_fmt_seconds(p90)}, {n} deliveries</title></circle>"
            )
        ly = top + 14 + i * 18
        parts.append(
            f'<rect x="{width - right + 10}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{width - right + 26}" y="{ly}" class="axis">{escape(s.level)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'class="chart"><title>{escape(title)}</title>'
    )
