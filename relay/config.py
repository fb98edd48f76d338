"""The settings of one relay (:class:`RelayConfig`); ``puente-relay serve`` fills them
from its flags and ``PUENTE_*`` variables (:mod:`relay.cli`)."""

from __future__ import annotations

import dataclasses
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol import envelope

from .connectors import Connector
from .outbox import DeliverySettings

logger = logging.getLogger("relay.server")


@dataclass
class RelayConfig:
    """Settings of one relay. Durations are seconds; times come from ``clock``.

    ``clock`` is the wall clock (``time.time``) used for expiry, idleness, rate
    limits and stored times; tests pass a fake one. ``housekeeping_interval`` is
    how often (in real time) expiry and idleness are checked against ``clock``.
    """

    #: Directory of the SQLite store (unused with database_url).
    data_dir: str | Path | None
    host: str = "127.0.0.1"
    port: int = 8765
    nameplate_ttl: float = 600.0
    idle_timeout: float = 1800.0
    max_message_size: int = envelope.MAX_RECORD_SIZE + 4096
    joins_per_ip_per_minute: int = 20
    claims_per_nameplate: int = 5
    max_connections: int = 10000
    allowed_origins: tuple[str, ...] = ()
    #: Reverse proxies (IP addresses) whose ``X-Forwarded-For`` names the real client.
    #: Empty: trust none, so a client cannot pick its own address for the rate limits.
    trusted_proxies: tuple[str, ...] = ()
    public_url: str | None = None
    clock: Callable[[], float] = time.time
    claim_timeout: float = 10.0
    open_timeout: float = 10.0
    close_timeout: float = 5.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    housekeeping_interval: float = 1.0
    #: Seconds a paired session waits for an end whose connection dropped (0: no resume).
    resume_grace: float = 60.0
    #: Frames buffered per connection before reading pauses (TCP backpressure).
    max_queue: int = 4
    #: Bytes buffered per connection before a send waits for the network.
    write_limit: int = 64 * 1024
    #: Help desks that get session events (relay.connectors), through the outbox.
    connectors: tuple[Connector, ...] = ()
    #: Pacing of deliveries to the connectors (timeouts, backoff).
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    #: Where customers download the agent, shown on the join page (optional).
    agent_download_url: str | None = None
    #: A download whose client reads nothing for this many seconds is dropped.
    download_stall_timeout: float = 60.0
    #: Bytes per second all agent downloads together may take (relay.downloads).
    download_rate: float = 64e6
    # --- production settings (issue 7) ---
    #: PEM certificate (chain) and key: serve wss:// and https:// (relay.tls).
    tls_cert: str | Path | None = None
    tls_key: str | Path | None = None
    #: Bearer token for GET /metrics; None: metrics for direct loopback clients only.
    metrics_token: str | None = None
    #: On shutdown, let paired sessions go on for up to this many seconds.
    drain_timeout: float = 0.0
    #: PostgreSQL URL for the store; None: SQLite in data_dir.
    database_url: str | None = None
    #: Redis URL shared by the nodes of a cluster; None: a single relay.
    redis_url: str | None = None
    #: How other nodes reach this one (default: scheme://HOST:PORT, host name if wildcard).
    node_url: str | None = None
    cluster_heartbeat_interval: float = 2.0
    cluster_heartbeat_ttl: float = 6.0
    # --- limits against abuse (issue 15) ---
    #: Upgraded connections one client address may hold (None: a tenth of max_connections).
    max_connections_per_ip: int | None = None
    #: Connections one address may have open before their HTTP request is complete
    #: (each is closed after open_timeout anyway); over it, new ones are closed at once.
    max_half_open_per_ip: int = 64
    #: Connections, from all addresses together, accepted and not yet upgraded (the
    #: HTTP handshake, REST answers, downloads, held long-polls); over it, new ones get
    #: 503 and are closed at once. None: a tenth of max_connections, at least 64.
    max_handshakes: int | None = None
    #: Bytes waiting to be sent to one connection past which it is closed: a peer that
    #: does not read (its pongs included) cannot grow the relay's memory.
    max_send_buffer: int = 4 * 1024 * 1024
    #: Sessions one technician token may create in a minute (POST /api/sessions).
    sessions_per_token_per_minute: int = 30

    @property
    def connections_per_ip(self) -> int:
        """The effective per-address share of max_connections."""
        if self.max_connections_per_ip is not None:
            return self.max_connections_per_ip
        return max(1, self.max_connections // 10)

    @property
    def handshake_budget(self) -> int:
        """The effective max_handshakes."""
        if self.max_handshakes is not None:
            return self.max_handshakes
        return max(64, self.max_connections // 10)

    def websocket_limits(self) -> dict[str, Any]:
        """The WebSocket limits this relay applies, for its connections to other nodes."""
        return {
            "max_size": self.max_message_size,
            "max_queue": self.max_queue,
            "write_limit": self.write_limit,
            "open_timeout": self.open_timeout,
            "close_timeout": self.close_timeout,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
        }


#: Descriptors kept free for the store, logs, TLS files and /healthz when connections
#: are at their cap.
RESERVED_FILES = 64


def open_files_needed(config: RelayConfig) -> int:
    """Descriptors the relay needs at its caps: max_connections upgraded connections,
    max_handshakes not yet upgraded (relay.admission), and RESERVED_FILES."""
    return config.max_connections + config.handshake_budget + RESERVED_FILES


def raise_open_file_limit(config: RelayConfig) -> int:
    """Raise this process's soft open-file limit towards :func:`open_files_needed`, up
    to the hard limit (the operator's ceiling: systemd's LimitNOFILE=, docker's
    --ulimit nofile=, ulimit -Hn; never raised here). Never lowers it; the limit reached.

    10,000 enrolled devices at the default max_connections need 11,064 descriptors
    (1,000 handshakes, 64 reserved), far more than the usual soft limit of 1,024."""
    needed = open_files_needed(config)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return int(soft)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target <= soft:
        return int(soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    logger.info("open-file limit raised from %d to %d (needed: %d)", soft, target, needed)
    return int(target)


def fit_open_file_limit(config: RelayConfig) -> RelayConfig:
    """``config`` with max_connections (and, if need be, max_handshakes) lowered to fit
    the open-file limit (ulimit -n), so that the relay refuses with 503 before accept()
    runs out of descriptors. The relay first raises its limit as far as it may
    (:func:`raise_open_file_limit`). The returned config names max_handshakes outright."""
    raise_open_file_limit(config)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    handshakes = config.handshake_budget
    if soft == resource.RLIM_INFINITY or open_files_needed(config) <= soft:
        return dataclasses.replace(config, max_handshakes=handshakes)
    available = max(2, soft - RESERVED_FILES)
    # Handshakes keep their budget unless it would take over half of what is left.
    handshakes = min(handshakes, available // 2)
    fits = available - handshakes
    logger.warning(
        "max_connections lowered from %d to %d (max_handshakes %d) to fit the open-file "
        "limit %d; raise ulimit -n (LimitNOFILE=) to accept more",
        config.max_connections,
        fits,
        handshakes,
        soft,
    )
    return dataclasses.replace(config, max_connections=fits, max_handshakes=handshakes)
