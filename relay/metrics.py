"""Prometheus metrics of the relay, served at ``GET /metrics``.

A tiny writer of the Prometheus text exposition format (version 0.0.4): counters,
gauges read at scrape time, and one histogram. The relay's hot path only adds to
plain attributes (``child.value += n``), so counting costs no more than a dict lookup.

The metrics (all of this node only; sum them across nodes in Prometheus)::

    puente_sessions_waiting                      gauge    sessions with one end here, the other not yet
    puente_sessions_active                       gauge    paired sessions forwarding through this node
    puente_connections_open                      gauge    WebSocket connections open on this node
    puente_connections_proxied                   gauge    connections this node passes to another node
    puente_pairings_failed_total                 counter  sessions burnt by an end (wrong code, failed
                                                          key confirmation)
    puente_joins_refused_total{reason}           counter  upgrades and claims refused; reason is the
                                                          envelope error code or the HTTP refusal code
    puente_bytes_forwarded_total{direction}      counter  ciphertext forwarded, agent_to_technician or
                                                          technician_to_agent
    puente_forwarding_latency_seconds            histogram  from the relay parsing a message to
                                                          handing it to the peer (a slow reader shows
                                                          as paused reading, not here)
    puente_webhook_backlog                       gauge    help-desk events not yet delivered

Who may read them (deny by default; rules in :func:`authorize`): with a metrics token
configured (``--metrics-token`` / ``PUENTE_METRICS_TOKEN``) anyone presenting
``Authorization: Bearer TOKEN``; without one, only a client on the relay's own
machine that connects directly (loopback, not through a proxy).
"""

from __future__ import annotations

import bisect
import hmac
import http
import ipaddress
import math
from collections.abc import Callable, Iterable, Sequence

from websockets.datastructures import Headers
from websockets.http11 import Response

from .errors import HeaderError
from .http import bearer_token, error_response

#: Content type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets (seconds): fine below 20 ms, where the relay's latency goal lies.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _escape(text: str, quote: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape(v, quote=True)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text

    def header(self) -> list[str]:
        return [
            f"# HELP {self.name} {_escape(self.help, quote=False)}",
            f"# TYPE {self.name} {self.kind}",
        ]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Value:
    """One labelled series of a counter; add to :attr:`value`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


class Counter(_Metric):
    """A monotonically increasing count, optionally split by labels."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        help_text: str,
        label_names: Sequence[str] = (),
        known: Iterable[Sequence[str]] = (),
    ) -> None:
        super().__init__(name, help_text)
        self.label_names = tuple(label_names)
        self._series: dict[tuple[str, ...], Value] = {}
        for values in known:  # listed at zero from the start, so rates work from the first scrape
            self.labels(*values)
        if not self.label_names:
            self.labels()

    def labels(self, *values: str) -> Value:
        """The series for these label values (created at zero on first use)."""
        key = tuple(values)
        series = self._series.get(key)
        if series is None:
            if len(key) != len(self.label_names):
                raise ValueError(f"{self.name} takes labels {self.label_names}")
            series = self._series[key] = Value()
        return series

    def inc(self, amount: float = 1.0) -> None:
        """Add to the unlabelled series."""
        self.labels().value += amount

    def samples(self) -> list[str]:
        return [
            f"{self.name}{_labels(self.label_names, key)} {_number(series.value)}"
            for key, series in sorted(self._series.items())
        ]


class Gauge(_Metric):
    """A value read from ``read()`` at scrape time."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text)
        self.read = read

    def samples(self) -> list[str]:
        return [f"{self.name} {_number(self.read())}"]


class Histogram(_Metric):
    """Observations counted into fixed buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help_text)
        self.bounds = tuple(sorted(buckets))
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def samples(self) -> list[str]:
        lines = []
        cumulative = 0
        for bound, count in zip((*self.bounds, math.inf), self._counts, strict=True):
            cumulative += count
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {cumulative}')
        lines.append(f"{self.name}_sum {_number(self.sum)}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class RelayMetrics:
    """Every metric of one relay node. Gauges read the running relay through callables."""

    def __init__(
        self,
        sessions_waiting: Callable[[], float],
        sessions_active: Callable[[], float],
        connections_open: Callable[[], float],
        connections_proxied: Callable[[], float] = lambda: 0,
        webhook_backlog: Callable[[], float] = lambda: 0,
    ) -> None:
        self.pairings_failed = Counter(
            "puente_pairings_failed_total",
            "Sessions burnt by an end after a failed pairing (wrong code or failed key confirmation).",
        )
        self.joins_refused = Counter(
            "puente_joins_refused_total",
            "WebSocket upgrades and nameplate claims the relay refused, by reason.",
            ("reason",),
        )
        self.bytes_forwarded = Counter(
            "puente_bytes_forwarded_total",
            "Ciphertext bytes forwarded between paired ends, by direction.",
            ("direction",),
            known=(("agent_to_technician",), ("technician_to_agent",)),
        )
        self.forwarding_latency = Histogram(
            "puente_forwarding_latency_seconds",
            "Time from the relay parsing a message to handing it to the peer's connection.",
            LATENCY_BUCKETS,
        )
        self.webhook_backlog = Gauge(
            "puente_webhook_backlog",
            "Outbox rows (one per help-desk event and connector) not delivered yet.",
            webhook_backlog,
        )
        self._metrics: list[_Metric] = [
            Gauge(
                "puente_sessions_waiting",
                "Sessions with one end connected to this node, waiting for the other.",
                sessions_waiting,
            ),
            Gauge(
                "puente_sessions_active",
                "Paired sessions forwarding through this node.",
                sessions_active,
            ),
            Gauge(
                "puente_connections_open",
                "WebSocket connections open on this node.",
                connections_open,
            ),
            Gauge(
                "puente_connections_proxied",
                "Connections this node passes on to the node holding their session.",
                connections_proxied,
            ),
            self.pairings_failed,
            self.joins_refused,
            self.bytes_forwarded,
            self.forwarding_latency,
            self.webhook_backlog,
        ]

    def render(self) -> str:
        """All metrics in the text exposition format."""
        lines: list[str] = []
        for metric in self._metrics:
            lines += metric.header()
            lines += metric.samples()
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Access to /metrics
# ---------------------------------------------------------------------------


def authorize(
    headers: Headers, peer: str, trusted_proxies: Sequence[str], metrics_token: str | None
) -> Response | None:
    """Refuse a scrape with an HTTP error, or return None to serve it.

    * A metrics token is configured: the request must carry it as a bearer token
      (401 otherwise), wherever it comes from.
    * No token: only a loopback TCP peer that is not a trusted proxy and sends no
      ``X-Forwarded-For`` / ``Forwarded`` header may read (403 otherwise), so a
      reverse proxy on the same machine never exposes metrics to the internet.
    """
    if metrics_token:
        try:
            presented = bearer_token(headers) or ""
        except HeaderError:
            presented = ""
        if hmac.compare_digest(presented.encode(), metrics_token.encode()):
            return None
        return error_response(
            http.HTTPStatus.UNAUTHORIZED,
            "unauthorized",
            "Metrics need 'Authorization: Bearer TOKEN' with the relay's metrics token "
            "(PUENTE_METRICS_TOKEN).",
            (("WWW-Authenticate", 'Bearer realm="puente-relay metrics"'),),
        )
    forwarded = "X-Forwarded-For" in headers or "Forwarded" in headers
    if _is_loopback(peer) and peer not in trusted_proxies and not forwarded:
        return None
    return error_response(
        http.HTTPStatus.FORBIDDEN,
        "forbidden",
        "Metrics are served only to this machine; set PUENTE_METRICS_TOKEN to let a "
        "Prometheus elsewhere scrape them.",
    )


def metrics_response(text: str) -> Response:
    body = text.encode()
    headers = Headers(
        [
            ("Connection", "close"),
            ("Content-Type", CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(http.HTTPStatus.OK.value, http.HTTPStatus.OK.phrase, headers, body)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
