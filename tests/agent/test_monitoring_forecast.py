"""Trends (acceptance 3 of issue 18): a steady rise is forecast within 20 % of the
truth; noise around a flat line raises nothing. The history goes through the real
owner-only SQLite file the agent keeps."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np

from agent.monitoring.forecast import DAY, MIN_CONFIDENCE, forecast_crossing, theil_sen
from agent.monitoring.history import MeasurementHistory

GIB = 1024**3
NOW = 1_800_000_000.0


def hourly(days: float) -> np.ndarray:
    return NOW - np.arange(int(days * 24), -1, -1) * 3600.0


def stored(
    tmp_path: Path, times: np.ndarray, values: np.ndarray
) -> tuple[list[float], list[float]]:
    with MeasurementHistory(tmp_path / "state") as history:
        for at, value in zip(times, values, strict=True):
            history.add("disk-system", float(at), float(value), 100.0 * GIB)
        return history.series("disk-system", NOW - 7 * DAY)


def test_a_steady_rise_is_forecast_within_20_percent(tmp_path: Path) -> None:
    rng = np.random.default_rng(18)
    times = hourly(7)
    growth = 1.5 * GIB / DAY  # 1.5 GiB a day
    used = 80 * GIB + growth * (times - NOW) + rng.normal(0, 0.2 * GIB, len(times))
    # A few wild points (a big download deleted an hour later) must not bend the line.
    used[::37] += 8 * GIB
    truth = (100 * GIB - 80 * GIB) / growth / DAY  # 13.3 days
    forecast = forecast_crossing(*stored(tmp_path, times, used), 100 * GIB, NOW, horizon_days=30)
    assert forecast is not None
    assert abs(forecast.days - truth) <= 0.2 * truth, (forecast.days, truth)
    assert forecast.days_low <= forecast.days <= forecast.days_high
    assert forecast.confidence >= MIN_CONFIDENCE


def test_several_rates_all_within_20_percent() -> None:
    rng = np.random.default_rng(7)
    for per_day, start in ((0.5, 90.0), (3.0, 50.0), (10.0, 20.0)):
        times = hourly(5)
        used = start + per_day * (times - NOW) / DAY + rng.normal(0, per_day / 4, len(times))
        truth = (100.0 - start) / per_day
        forecast = forecast_crossing(times, used, 100.0, NOW, horizon_days=60)
        assert forecast is not None, per_day
        assert abs(forecast.days - truth) <= 0.2 * truth, (per_day, forecast.days, truth)


def test_a_noisy_flat_history_raises_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    times = hourly(7)
    used = 80 * GIB + rng.normal(0, 5 * GIB, len(times))  # loud noise, no trend
    series = stored(tmp_path, times, used)
    assert forecast_crossing(*series, 100 * GIB, NOW, horizon_days=30) is None
    trend = theil_sen(*series)
    assert trend is not None and trend.confidence < MIN_CONFIDENCE


def test_a_slow_rise_beyond_the_horizon_raises_nothing() -> None:
    times = hourly(7)
    used = 50.0 + 0.5 * (times - NOW) / DAY  # 100 days to full
    assert forecast_crossing(times, used, 100.0, NOW, horizon_days=14) is None
    assert forecast_crossing(times, used, 100.0, NOW, horizon_days=120) is not None


def test_too_little_history_raises_nothing() -> None:
    times = NOW - np.arange(5, -1, -1) * 60.0  # six points over five minutes
    used = 50.0 + (times - NOW)
    assert forecast_crossing(times, used, 100.0, NOW, horizon_days=14) is None
    assert theil_sen([NOW, NOW], [1.0, 2.0]) is None


def test_the_history_file_is_the_owners_alone(tmp_path: Path) -> None:
    with MeasurementHistory(tmp_path / "state") as history:
        history.add("memory", NOW, 42.0, 90.0)
        assert history.series("memory", NOW - 1) == ([NOW], [42.0])
        # Old rows go as new ones come.
        history.add("memory", NOW + 40 * DAY, 43.0, 90.0)
        assert history.series("memory", 0) == ([NOW + 40 * DAY], [43.0])
        path = history.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
