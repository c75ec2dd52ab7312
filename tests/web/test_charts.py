"""The dashboard's SVG charts (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from landed.web.charts import funnel, funnel_svg, latency_series, latency_svg, quantile

DAY = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_the_funnel_counts_deliveries_at_or_above_each_level() -> None:
    steps = funnel(
        {
            ("delivered", None): 5,
            ("submitted", "deferred"): 2,
            ("queued", "bounced"): 1,
            ("acknowledged", None): 1,
        }
    )
    counts = {s.label: s.count for s in steps}
    assert counts["≥ queued"] == 9 and counts["≥ submitted"] == 8
    assert counts["≥ accepted"] == 6 and counts["≥ delivered"] == 6
    assert counts["≥ seen"] == 1 and counts["≥ acknowledged"] == 1
    assert counts["deferred"] == 2 and counts["bounced"] == 1 and "expired" not in counts
    svg = funnel_svg(steps)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and ">9</text>" in svg


def test_latency_is_median_and_p90_per_day_and_level() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.9) == 4.0
    points = [(DAY, "delivered", float(s)) for s in (10, 20, 30, 40, 500)]
    points += [(DAY + timedelta(days=1), "delivered", 60.0), (DAY, "queued", 0.0)]
    points += [(DAY, "accepted", 5.0)]
    series = {s.level: s for s in latency_series(points)}
    assert set(series) == {"accepted", "delivered"}
    (first, second) = series["delivered"].points
    assert first == (DAY.date(), 30.0, 500.0, 5)
    assert second == ((DAY + timedelta(days=1)).date(), 60.0, 60.0, 1)
    svg = latency_svg(list(series.values()))
    assert svg.count("<polyline") == 2 and "median 30s, p90 8.3m, 5 deliveries" in svg
    assert ">1s</text>" in svg and ">1m</text>" in svg and ">5m</text>" not in svg


def test_an_empty_period_says_so() -> None:
    assert "no evidence in this period" in latency_svg([])
    assert "≥ queued" in funnel_svg(funnel({}))
