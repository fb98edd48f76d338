"""Scale-out: relay nodes that share a Redis and pass each session to the node holding it.

Every node uses the same store (PostgreSQL, or one SQLite file on one host) and the
same Redis. A session lives on exactly one node, its *owner*: the node where its
first end claimed the nameplate. A claim reaching another node is passed through
to the owner over an internal WebSocket (the edge node proxies it), so clients need
nothing but the load balancer's address, and no load-balancer affinity is needed.

Rules::

    membership   a node writes node:<id> = its node URL, expiring after
                 heartbeat_ttl, refreshed every heartbeat_interval, and lists its id
                 in the set ``nodes``. A draining node also writes draining:<id>:
                 still alive and holding its sessions, but no new session is routed
                 to it. A node whose key lapsed (crashed, partitioned) or that deleted
                 it (stopped) is not a member.
    lost nodes   a node lists its paired sessions in sessions:<id>. Every node
                 checks the member list each heartbeat_ttl; the sessions of a node
                 whose key lapsed are recorded as ended in the store ("the relay
                 node holding the session was lost"), once, by whoever sees it first.
    ownership    owner:<session id> = node id, set by the first claim of a waiting
                 session, for the nameplate's remaining life (one atomic script:
                 keep a live owner, else take it). Claims of unknown, expired or
                 used nameplates are judged where they arrive: no routing needed.
    joins        agent claims per client IP are limited cluster-wide (a sliding
                 window in Redis), at the node the client reached, before routing.
    routing      a claim for a session owned elsewhere is proxied: the edge node
                 opens owner-URL/v1/session with the node headers below, replays
                 the claim and forwards every message both ways, untouched. The
                 owner judges the claim as if the client were local.
    resume       a paired session is listed in sessions:<holder id>; a ``resume``
                 reaching another node is proxied to the holder the same way (also
                 while the holder drains). A session held by a lost node cannot be
                 resumed: the claim is judged here and refused as not resumable.
    node hops    an upgrade carrying X-Puente-Node-Secret must carry the cluster
                 secret (else 403); then X-Puente-Client-IP names the client (for
                 rate limits and logs) and the claim is judged locally, never
                 routed again. The secret is made once and kept in Redis: whoever
                 can read Redis is inside the cluster's trust boundary.
    control      ending a session through the REST API on any node is published
                 on the control channel; the node holding its connections ends them.
    devices      an enrolled device's WebSocket lives on one node; news about
                 devices cross on the device channel (relay.devices handles them):
                 ``tell`` asks the node holding a device's connection to pass it
                 one message (an unattended request): the first node holding one
                 claims the reply key (SET NX) and pushes "sent" or "failed" on
                 it; the asking node waits a few seconds, then takes the device
                 as offline. ``wake`` says an alert action is owed (the node
                 delivering alerts looks at once); ``forgotten`` that a device was
                 unenrolled (its connections elsewhere close).
    failures     Redis unreachable: claims that need routing are refused with
                 "shutdown" (try again), paired sessions go on. An owner that
                 cannot be reached: the claim is refused the same way. Losing a
                 node ends the sessions with a connection on it, and only those.

Keys live under ``puente:`` in one Redis database (not Redis Cluster: the ownership
script reads a key it is not given).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import ssl as ssl_module
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from protocol import envelope
from protocol.envelope import ErrorCode

from .errors import ConfigError, RedisUnavailable
from .http import ForwardingConnection, send_now

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .http import RelayConnection

logger = logging.getLogger("relay.cluster")

PREFIX = "puente:"
SECRET_KEY = PREFIX + "cluster-secret"
CONTROL_CHANNEL = PREFIX + "control"
DEVICE_CHANNEL = PREFIX + "device-news"
NODES_KEY = PREFIX + "nodes"


#: Headers of a node-to-node hop.
NODE_HEADER = "X-Puente-Node"
SECRET_HEADER = "X-Puente-Node-Secret"
CLIENT_IP_HEADER = "X-Puente-Client-IP"

# Keep a live owner, else take ownership. KEYS[1] owner key; ARGV: my id, ttl ms,
# node key prefix. Returns {owner id, owner URL}; the URL is "" when the owner is me.
_OWNER_SCRIPT = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then
  local url = redis.call('GET', ARGV[3] .. owner)
  if url and redis.call('EXISTS', ARGV[4] .. owner) == 0 then return {owner, url} end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {ARGV[1], ''}
"""

# Sliding window, same rule as relay.ratelimit: events at or before now - window are
# forgotten; refused attempts are not recorded. KEYS[1] set; ARGV: now, window, limit, id.
_JOIN_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""

# Which live node holds a paired session: "" if this node, its URL, or nil if none.
# ARGV: nodes set, sessions prefix, node prefix, session id, my id.
_HOLDER_SCRIPT = """
for _, id in ipairs(redis.call('SMEMBERS', ARGV[1])) do
  if redis.call('SISMEMBER', ARGV[2] .. id, ARGV[4]) == 1 then
    if id == ARGV[5] then return '' end
    return redis.call('GET', ARGV[3] .. id)
  end
end
return false
"""

# Claim a lost node's session list once: rename it away so only one janitor gets it.
# KEYS[1] node key, KEYS[2] its sessions set, KEYS[3] the janitor's scratch key.
_CLAIM_LOST_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
redis.call('SREM', ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 0 then return {} end
redis.call('RENAME', KEYS[2], KEYS[3])
local ids = redis.call('SMEMBERS', KEYS[3])
redis.call('DEL', KEYS[3])
return ids
"""


class ClusterNode:
    """This relay's membership of a cluster, its routing and its node-to-node hops.

    ``on_end(session_id, reason)`` is called when any node ends a session through
    the API; the relay ends it if it holds its connections.
    """

    def __init__(
        self,
        redis_url: str,
        node_url: str,
        *,
        on_end: Callable[[str, str], object],
        on_lost: Callable[[list[str]], object],
        heartbeat_interval: float = 2.0,
        heartbeat_ttl: float = 6.0,
        joins_per_ip_per_minute: int = 20,
        connect_settings: dict[str, Any] | None = None,
    ) -> None:
        try:
            from redis.asyncio import Redis
        except ImportError as exc:  # pragma: no cover - the redis extra is missing
            raise ConfigError(
                "--redis needs the redis package; install puente with the 'redis' extra "
                "(pip install 'puente[redis]')."
            ) from exc
        self.node_id = f"{socket.gethostname()}-{secrets.token_hex(4)}"
        self.node_url = node_url.rstrip("/")
        self._redis_url = redis_url
        self._redis: Redis = Redis.from_url(
            redis_url, socket_connect_timeout=5, socket_timeout=5, health_check_interval=10
        )
        self._on_end = on_end
        self._on_lost = on_lost
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_ttl_ms = int(heartbeat_ttl * 1000)
        self._joins_limit = joins_per_ip_per_minute
        self._connect_settings = connect_settings or {}
        self._owner_script = self._redis.register_script(_OWNER_SCRIPT)
        self._join_script = self._redis.register_script(_JOIN_SCRIPT)
        self._claim_lost_script = self._redis.register_script(_CLAIM_LOST_SCRIPT)
        self._holder_script = self._redis.register_script(_HOLDER_SCRIPT)
        self._secret = ""
        self._member = False
        self._draining = False
        self._tasks: list[asyncio.Task[None]] = []
        self._join_ids = 0
        #: Connections this node currently passes on to other nodes.
        self.proxied = 0
        #: Called with each message of the device channel (set by relay.devices).
        self.on_device_message: Callable[[dict[str, Any]], object] | None = None

    # ------------------------------------------------------------------
    # Life
    # ------------------------------------------------------------------

    async def start(self) -> None:
        """Reach Redis, learn the cluster secret, join and listen for control messages."""
        try:
            await self._redis.ping()
            await self._redis.set(SECRET_KEY, secrets.token_urlsafe(32), nx=True)
            secret = await self._redis.get(SECRET_KEY)
        except Exception as exc:
            await self._redis.aclose()
            raise ConfigError(
                f"Cannot reach Redis at {_safe_url(self._redis_url)} ({exc}); check --redis "
                "(PUENTE_REDIS_URL) and that Redis is running."
            ) from exc
        self._secret = secret.decode() if isinstance(secret, bytes) else str(secret)
        await self._heartbeat_once()
        self._member = True
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name="puente-cluster-heartbeat"),
            asyncio.create_task(self._control_loop(), name="puente-cluster-control"),
            asyncio.create_task(self._janitor_loop(), name="puente-cluster-janitor"),
        ]
        logger.info("joined cluster node=%s url=%s", self.node_id, self.node_url)

    async def drain(self) -> None:
        """Stay alive but take nothing new: waiting sessions' next claims go elsewhere."""
        self._draining = True
        with contextlib.suppress(Exception):
            await self._heartbeat_once()
        logger.info("draining: no new sessions routed to node=%s", self.node_id)

    async def close(self) -> None:
        """Leave the cluster (its sessions were finished by the relay) and close Redis."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._member:
            self._member = False
            with contextlib.suppress(Exception):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.delete(
                        self._node_key(self.node_id),
                        self._sessions_key(self.node_id),
                        f"{PREFIX}draining:{self.node_id}",
                    )
                    pipe.srem(NODES_KEY, self.node_id)
                    await pipe.execute()
            logger.info("left cluster node=%s", self.node_id)
        await self._redis.aclose()

    async def track(self, session_id: str) -> None:
        """Note a paired session held here (so it is cleaned up if this node is lost)."""
        with contextlib.suppress(Exception):
            await self._redis.sadd(self._sessions_key(self.node_id), session_id)

    async def untrack(self, session_id: str) -> None:
        with contextlib.suppress(Exception):
            await self._redis.srem(self._sessions_key(self.node_id), session_id)

    # ------------------------------------------------------------------
    # Enrolled devices' presence (relay.presence writes it once a pass)
    # ------------------------------------------------------------------

    def _devices_key(self, node_id: str) -> str:
        return f"{PREFIX}devices:{node_id}"

    async def publish_devices(
        self, heard: dict[str, float], gone: list[str], lifetime: float
    ) -> None:
        """Note the devices heard from on this node (id -> when) and those gone; the
        node's list lives ``lifetime`` seconds past the last pass, so a lost node's
        devices drop out by themselves."""
        key = self._devices_key(self.node_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            if heard:
                pipe.hset(key, mapping={d: repr(seen) for d, seen in heard.items()})
            if gone:
                pipe.hdel(key, *gone)
            pipe.pexpire(key, int(lifetime * 1000))
            await pipe.execute()

    async def unpublish_devices(self) -> None:
        await self._redis.delete(self._devices_key(self.node_id))

    async def devices_elsewhere(self) -> dict[str, float]:
        """Devices online on the other live nodes: id -> when last heard from."""
        found: dict[str, float] = {}
        for raw in await self._redis.smembers(NODES_KEY):
            node_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            if node_id == self.node_id or not await self._redis.exists(self._node_key(node_id)):
                continue
            for device, seen in (await self._redis.hgetall(self._devices_key(node_id))).items():
                name = device.decode() if isinstance(device, bytes) else str(device)
                found[name] = max(found.get(name, 0.0), float(seen))
        return found

    async def publish_device_message(self, message: dict[str, Any]) -> None:
        """Say ``message`` to every node's devices (see ``devices`` in the module doc)."""
        try:
            await self._redis.publish(DEVICE_CHANNEL, json.dumps({**message, "node": self.node_id}))
        except Exception as exc:
            logger.warning("could not publish device news (%s); Redis unreachable", exc)

    async def tell_device(self, device_id: str, text: str, timeout: float) -> bool:
        """Pass ``text`` to ``device_id`` through the node holding its connection; True
        once that node says it sent it, False if none did within ``timeout`` seconds."""
        reply = f"{PREFIX}device-reply:{secrets.token_hex(12)}"
        message = {"kind": "tell", "device_id": device_id, "text": text, "reply": reply}
        try:
            await self._redis.publish(DEVICE_CHANNEL, json.dumps({**message, "node": self.node_id}))
            answer = await self._redis.blpop([reply], timeout=timeout)
        except Exception as exc:
            raise RedisUnavailable(str(exc)) from exc
        if answer is None:
            return False
        value = answer[1].decode() if isinstance(answer[1], bytes) else str(answer[1])
        return value == "sent"

    async def claim_reply(self, reply: str) -> bool:
        """Whether this node is the one to answer ``reply`` (the first to ask)."""
        if not reply.startswith(f"{PREFIX}device-reply:"):
            return False
        try:
            return bool(await self._redis.set(reply + ":by", self.node_id, nx=True, ex=60))
        except Exception:
            return False

    async def reply(self, reply: str, sent: bool) -> None:
        with contextlib.suppress(Exception):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(reply, "sent" if sent else "failed")
                pipe.expire(reply, 60)
                await pipe.execute()

    # ------------------------------------------------------------------
    # Routing
    # ------------------------------------------------------------------

    async def allow_join(self, ip: str, now: float) -> bool:
        """Count one agent claim from ``ip`` cluster-wide; False when over the limit."""
        self._join_ids += 1
        try:
            allowed = await self._join_script(
                keys=[f"{PREFIX}joins:{ip}"],
                args=[now, 60.0, self._joins_limit, f"{self.node_id}:{self._join_ids}"],
            )
        except Exception as exc:
            raise RedisUnavailable(str(exc)) from exc
        return bool(allowed)

    async def owner_of(self, session_id: str, ttl: float) -> str | None:
        """Where a waiting session lives: None if here (now owned here), else the owner's URL."""
        try:
            owner, url = await self._owner_script(
                keys=[f"{PREFIX}owner:{session_id}"],
                args=[
                    self.node_id,
                    max(1000, int(ttl * 1000)),
                    PREFIX + "node:",
                    PREFIX + "draining:",
                ],
            )
        except Exception as exc:
            raise RedisUnavailable(str(exc)) from exc
        url = url.decode() if isinstance(url, bytes) else str(url)
        return url or None

    async def holder_of(self, session_id: str) -> str | None:
        """The URL of the other live node holding a paired session, or None (here or nowhere)."""
        try:
            url = await self._holder_script(
                keys=[],
                args=[NODES_KEY, PREFIX + "sessions:", PREFIX + "node:", session_id, self.node_id],
            )
        except Exception as exc:
            raise RedisUnavailable(str(exc)) from exc
        if url is None:
            return None
        url = url.decode() if isinstance(url, bytes) else str(url)
        return url or None

    async def publish_end(self, session_id: str, reason: str) -> None:
        """Tell every node to end this session's connections."""
        message = json.dumps({"session_id": session_id, "reason": reason, "node": self.node_id})
        try:
            await self._redis.publish(CONTROL_CHANNEL, message)
        except Exception:
            logger.warning("could not publish the end of session=%s; Redis unreachable", session_id)

    # ------------------------------------------------------------------
    # Node hops
    # ------------------------------------------------------------------

    def verify_hop(self, headers: Headers) -> str | None:
        """The client IP a node hop vouches for, or None if the hop is not authentic."""
        presented = headers.get(SECRET_HEADER, "")
        if len(headers.get_all(SECRET_HEADER)) != 1 or not self._secret:
            return None
        if not hmac.compare_digest(presented.encode(), self._secret.encode()):
            return None
        try:
            return str(ipaddress.ip_address(headers.get(CLIENT_IP_HEADER, "")))
        except ValueError:
            return None

    async def proxy(
        self,
        client: RelayConnection,
        owner_url: str,
        claim_text: str,
        ip: str,
        authorization: str | None,
    ) -> None:
        """Pass ``client`` to the owner node: replay its claim, forward both ways until either ends.

        If the owner cannot be reached the client is told to try again ("shutdown").
        """
        headers = {NODE_HEADER: self.node_id, SECRET_HEADER: self._secret, CLIENT_IP_HEADER: ip}
        if authorization:
            headers["Authorization"] = authorization
        url = owner_url + envelope.WS_PATH
        try:
            upstream = await connect(
                url,
                additional_headers=headers,
                create_connection=HopConnection,
                compression=None,
                ssl=ssl_module.create_default_context() if url.startswith("wss://") else None,
                **self._connect_settings,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            code = ErrorCode.SHUTDOWN
            if isinstance(exc, InvalidStatus) and exc.response.status_code == 401:
                code = ErrorCode.UNAUTHORIZED
            logger.warning("owner node unreachable url=%s (%s); claim refused", owner_url, exc)
            with contextlib.suppress(ConnectionClosed):
                await client.send(envelope.error(code))
            return
        self.proxied += 1
        logger.info("connection passed to node url=%s ip=%s", owner_url, ip)
        assert isinstance(upstream, HopConnection)  # create_connection guarantees it
        # Messages cross as they are parsed, text and binary alike so that neither
        # overtakes the other (a "paired" before the first record, an "end" after the
        # last); the copying tasks below only carry fragmented messages, if any.
        client.forward_binary = functools.partial(send_now, client, upstream)
        client.forward_text = functools.partial(send_now, client, upstream, text=True)
        upstream.forward_binary = functools.partial(send_now, upstream, client)
        upstream.forward_text = functools.partial(send_now, upstream, client, text=True)
        try:
            await upstream.send(claim_text)
            await _forward_both_ways(client, upstream)
        except ConnectionClosed:
            pass
        finally:
            self.proxied -= 1
            await upstream.close()

    # ------------------------------------------------------------------
    # Background
    # ------------------------------------------------------------------

    def _node_key(self, node_id: str) -> str:
        return f"{PREFIX}node:{node_id}"

    def _sessions_key(self, node_id: str) -> str:
        return f"{PREFIX}sessions:{node_id}"

    async def _heartbeat_once(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._node_key(self.node_id), self.node_url, px=self._heartbeat_ttl_ms)
            if self._draining:
                pipe.set(f"{PREFIX}draining:{self.node_id}", 1, px=self._heartbeat_ttl_ms)
            # Listed again each time: a node that stalled past its timeout and was
            # collected as lost becomes a member again when it recovers.
            pipe.sadd(NODES_KEY, self.node_id)
            await pipe.execute()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            try:
                await self._heartbeat_once()
            except Exception as exc:
                logger.warning("cluster heartbeat failed (%s); retrying", exc)

    async def _janitor_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_ttl_ms / 1000)
            try:
                await self.collect_lost_nodes()
            except Exception as exc:
                logger.warning("checking for lost nodes failed (%s); retrying", exc)

    async def collect_lost_nodes(self) -> None:
        """Hand the sessions of nodes whose heartbeat lapsed to ``on_lost``, once each."""
        for raw in await self._redis.smembers(NODES_KEY):
            node_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            if node_id == self.node_id:
                continue
            ids = await self._claim_lost_script(
                keys=[
                    self._node_key(node_id),
                    self._sessions_key(node_id),
                    f"{PREFIX}lost:{node_id}:{self.node_id}",
                ],
                args=[NODES_KEY, node_id],
            )
            sessions = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
            if sessions or not await self._redis.exists(self._node_key(node_id)):
                logger.warning("node lost node=%s sessions=%d", node_id, len(sessions))
            if sessions:
                self._on_lost(sessions)

    async def _control_loop(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CONTROL_CHANNEL, DEVICE_CHANNEL)
                    async for item in pubsub.listen():
                        if item.get("type") != "message":
                            continue
                        channel = item.get("channel")
                        if isinstance(channel, bytes):
                            channel = channel.decode()
                        if channel == DEVICE_CHANNEL:
                            self._device_news(item["data"])
                        else:
                            self._control(item["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("cluster control channel lost (%s); resubscribing", exc)
                await asyncio.sleep(1.0)

    def _device_news(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            logger.warning("ignored a malformed device message")
            return
        if self.on_device_message is not None:
            self.on_device_message(message)

    def _control(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            session_id, reason = str(message["session_id"]), str(message["reason"])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed control message")
            return
        self._on_end(session_id, reason)


class HopConnection(ForwardingConnection, ClientConnection):
    """The edge node's connection to the node holding a session."""


async def _forward_both_ways(client: RelayConnection, upstream: ClientConnection) -> None:
    """Copy messages client→upstream and upstream→client until one side closes."""

    async def copy(source: Any, sink: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in source:
                await sink.send(message)

    tasks = [
        asyncio.create_task(copy(client, upstream)),
        asyncio.create_task(copy(upstream, client)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _safe_url(url: str) -> str:
    """A Redis URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}"
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def default_node_url(scheme: str, host: str, port: int) -> str:
    """How other nodes reach this one when --node-url is not given.

    A wildcard listening address says nothing about how to reach the node, so the
    host name is used (in Kubernetes and compose it resolves to the pod/container).
    """
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
