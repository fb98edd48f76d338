"""When will a measurement reach its limit? A robust straight line through its history.

The model, for the reader who has to trust it:

1. Take the history of one measurement (disk bytes used, memory percent in use,
   error lines in a log): ``(time, value)`` points, the last ``window`` days of them.
2. Fit a straight line by the **Theil–Sen estimator**: the slope is the median of the
   slopes between every pair of points, and the intercept the median of
   ``value - slope * time``. A median ignores up to 29 % of wild points (a big
   download deleted the next hour, a log rotated), where least squares would follow
   them; it needs no tuning and no distribution.
3. **Confidence** is how consistently the pairs agree on the direction: the share of
   pairwise slopes with the sign of the median slope (Kendall's view of a trend). A
   steady rise gives nearly 1.0; noise around a flat line gives about 0.5, however
   large the noise. A forecast needs at least :data:`MIN_CONFIDENCE`.
4. The line's value now, the limit and the slope give the time left:
   ``(limit - fitted_now) / slope``. The 25th and 75th percentile of the pairwise
   slopes give a range, shown with the estimate.
5. A warning is raised only if the line rises, the confidence is high enough, the
   history is long enough (:data:`MIN_POINTS` points over :data:`MIN_SPAN` seconds)
   and the limit is reached within the check's ``forecast_days``.

Pure: time comes in as numbers; numpy does the arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Fewest points a forecast looks at.
MIN_POINTS = 6
#: Shortest history a forecast looks at (seconds): a trend of minutes says nothing of days.
MIN_SPAN = 6 * 3600.0
#: Least share of pairwise slopes that must agree on the direction.
MIN_CONFIDENCE = 0.8
#: Most recent points used (keeps the pairwise slopes to ~125,000).
MAX_POINTS = 500
DAY = 86400.0


@dataclass(frozen=True)
class Forecast:
    """The limit is reached in about ``days`` (between ``days_low`` and ``days_high``)."""

    days: float
    days_low: float
    days_high: float
    confidence: float
    slope_per_day: float
    fitted_now: float
    limit: float
    points: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "days": round(self.days, 1),
            "days_low": round(self.days_low, 1),
            "days_high": round(self.days_high, 1),
            "confidence": round(self.confidence, 2),
            "slope_per_day": self.slope_per_day,
            "fitted_now": self.fitted_now,
            "limit": self.limit,
            "points": self.points,
        }


@dataclass(frozen=True)
class Trend:
    """A Theil–Sen line: ``value = intercept + slope * time`` (slope per second)."""

    slope: float
    intercept: float
    slope_low: float
    slope_high: float
    confidence: float


def theil_sen(times: Sequence[float], values: Sequence[float]) -> Trend | None:
    """The robust line through the points (rules 2 and 3), or None if fewer than two
    distinct times."""
    t = np.asarray(times, dtype=float)[-MAX_POINTS:]
    y = np.asarray(values, dtype=float)[-MAX_POINTS:]
    first, second = np.triu_indices(len(t), k=1)
    dt = t[second] - t[first]
    keep = dt != 0
    if not keep.any():
        return None
    slopes = (y[second] - y[first])[keep] / dt[keep]
    slope = float(np.median(slopes))
    intercept = float(np.median(y - slope * t))
    agree = 0
    if slope != 0:
        agree = int(np.count_nonzero(np.sign(slopes) == np.sign(slope)))
    low, high = np.percentile(slopes, [25, 75])
    return Trend(slope, intercept, float(low), float(high), agree / len(slopes))


def forecast_crossing(
    times: Sequence[float],
    values: Sequence[float],
    limit: float,
    now: float,
    horizon_days: float,
) -> Forecast | None:
    """A forecast if the measurement will reach ``limit`` within ``horizon_days``."""
    if len(times) < MIN_POINTS or horizon_days <= 0:
        return None
    if max(times) - min(times) < MIN_SPAN:
        return None
    trend = theil_sen(times, values)
    if trend is None or trend.slope <= 0 or trend.confidence < MIN_CONFIDENCE:
        return None
    fitted_now = trend.intercept + trend.slope * now
    left = max(0.0, limit - fitted_now)
    days = left / trend.slope / DAY
    if days > horizon_days:
        return None

    def days_at(slope: float) -> float:
        return left / slope / DAY if slope > 0 else float("inf")

    return Forecast(
        days=days,
        days_low=days_at(max(trend.slope_high, trend.slope)),
        days_high=days_at(min(trend.slope_low, trend.slope)),
        confidence=trend.confidence,
        slope_per_day=trend.slope * DAY,
        fitted_now=fitted_now,
        limit=limit,
        points=min(len(times), MAX_POINTS),
    )
