"""Running a policy's checks: which are due, their results, their forecasts, the report.

:func:`run_policy` runs checks (all, or the due ones), records each measurement in
the device's history and forecasts from it (:mod:`agent.monitoring.forecast`). The
:class:`Report` keeps the owner's view (sentences and details) apart from what the
relay may see (:meth:`Report.relay_summary`: which check failed, which severity, and
which forecasts were raised); a result's details go only sealed to the organisation's
details key, when the policy names one (:mod:`protocol.sealed_details`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.i18n import DEFAULT_LANGUAGE, Translator
from protocol import sealed_details
from protocol.device_policy import CheckDefinition, DevicePolicy

from .checks import CheckResult, Probes, run_check
from .forecast import DAY, Forecast, forecast_crossing
from .history import MeasurementHistory

#: How much history a forecast looks at, in days.
FORECAST_WINDOW_DAYS = 7


@dataclass(frozen=True)
class ForecastWarning:
    """A check's measurement will reach its limit soon (a preemptive warning)."""

    check: str
    kind: str
    severity: str
    forecast: Forecast
    message: str
    values: dict[str, Any]

    def text(self, translator: Translator | None = None) -> str:
        return (translator or Translator(DEFAULT_LANGUAGE))(self.message, **self.values)

    def summary(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "kind": self.kind,
            "status": "forecast",
            "severity": self.severity,
            "days": round(self.forecast.days, 1),
        }

    def as_dict(self, translator: Translator | None = None) -> dict[str, Any]:
        return {**self.summary(), "text": self.text(translator), "details": self.forecast.as_dict()}


@dataclass(frozen=True)
class Report:
    """One run's results."""

    policy: DevicePolicy
    at: float
    results: list[CheckResult]
    forecasts: list[ForecastWarning] = field(default_factory=list)

    @property
    def in_maintenance(self) -> bool:
        return self.policy.in_maintenance(int(self.at))

    @property
    def failing(self) -> list[CheckResult]:
        return [result for result in self.results if result.failing]

    def relay_summary(self, device_id: str = "") -> dict[str, Any]:
        """What travels to the relay: which check, its status and severity, and the
        details only sealed to the organisation's details key (when the policy names one)
        for ``device_id`` and this run."""
        at = int(self.at)
        recipient = self.policy.details_key
        key = sealed_details.public_from_text(recipient) if recipient else None

        def summary(result: CheckResult) -> dict[str, Any]:
            if key is None:
                return result.summary()
            sealed = sealed_details.seal(result.details, key, device_id, result.check, at)
            return {**result.summary(), "sealed": sealed}

        return {
            "policy": self.policy.number,
            "at": at,
            "results": [summary(r) for r in self.results],
            "forecasts": [f.summary() for f in self.forecasts],
        }

    def as_dict(self, translator: Translator | None = None) -> dict[str, Any]:
        return {
            "organisation": self.policy.organisation,
            "policy": self.policy.number,
            "at": int(self.at),
            "in_maintenance": self.in_maintenance,
            "results": [result.as_dict(translator) for result in self.results],
            "forecasts": [warning.as_dict(translator) for warning in self.forecasts],
            "relay_sees": self.relay_summary(),
        }


def due_checks(
    policy: DevicePolicy, last_runs: Mapping[str, float], now: float
) -> list[CheckDefinition]:
    """The checks whose schedule says they should run at ``now``."""
    return [
        check
        for check in policy.checks
        if now - last_runs.get(check.id, float("-inf")) >= check.interval
    ]


def _forecast_words(result: CheckResult) -> tuple[str, dict[str, Any]]:
    if result.kind == "disk_free":
        return "forecast.disk", {"path": result.details.get("path", "")}
    if result.kind == "log_pattern":
        return "forecast.log", {"path": result.details.get("path", "")}
    return "forecast.memory", {}


def _forecast(
    check: CheckDefinition, result: CheckResult, history: MeasurementHistory, now: float
) -> ForecastWarning | None:
    measurement = result.measurement
    horizon = int(check.params.get("forecast_days", 0))
    if measurement is None or horizon <= 0:
        return None
    history.add(check.id, now, measurement.value, measurement.limit)
    if result.failing:
        return None  # already a problem: the check itself says so
    times, values = history.series(check.id, now - FORECAST_WINDOW_DAYS * DAY)
    forecast = forecast_crossing(times, values, measurement.limit, now, horizon)
    if forecast is None:
        return None
    message, values_ = _forecast_words(result)
    values_ |= {"days": f"{forecast.days:.0f}", "confidence": f"{forecast.confidence * 100:.0f}"}
    return ForecastWarning(check.id, check.kind, check.severity, forecast, message, values_)


def run_policy(
    policy: DevicePolicy,
    history: MeasurementHistory | None,
    probes: Probes | None = None,
    checks: Iterable[CheckDefinition] | None = None,
) -> Report:
    """Run ``checks`` (default: all of the policy's) now; forecast from ``history``."""
    probes = probes or Probes()
    now = probes.now()
    results: list[CheckResult] = []
    forecasts: list[ForecastWarning] = []
    for check in policy.checks if checks is None else checks:
        result = run_check(check, probes)
        results.append(result)
        if history is not None:
            warning = _forecast(check, result, history, now)
            if warning is not None:
                forecasts.append(warning)
    return Report(policy, now, results, forecasts)
