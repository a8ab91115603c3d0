"""``store_from_url``: a ledger store from a URL.

=================================  ==========================================================
``memory://``                      :class:`MemoryStore` (in-process; prefix and failure mode unused)
``fakeredis://[NAME]``             :class:`RedisStore` on an in-process fakeredis server (one per
                                   NAME, shared by every store opened with that URL; for tests/demos)
``redis://HOST:PORT/DB``           :class:`RedisStore` on standalone Redis (``unix://`` too)
``rediss://...``                   the same over TLS (redis-py URL options such as
                                   ``ssl_cert_reqs`` / ``ssl_ca_certs`` apply)
``redis+cluster://H1:P1,H2:P2``    :class:`RedisStore` on Redis Cluster (``rediss+cluster://`` for
                                   TLS); each HOST:PORT is a seed node (one reachable seed is enough,
                                   the others are discovered)
=================================  ==========================================================

Ledger options in the URL's query string (taken out before the URL reaches redis-py), for every Redis
scheme (see README, "Ledger off the request path"):

=========================  =====================================================================
``settle=deferred``        :class:`~router.ledger.deferred.DeferredRedisStore`: settles are logged
                           locally and applied to Redis in batches by a background flusher
``flush_ms=N``             with ``settle=deferred``: batch interval in ms (default 20)
``close_ms=N``             with ``settle=deferred``: ``close()`` waits at most N ms for Redis (default 3000)
``fsync=batch|always``     with ``settle=deferred``: fsync per batch (default) or per settle
``settle_log=DIR``         with ``settle=deferred``: the settle log directory
``leases=on``              budget leases (implies ``settle=deferred``): reservations are granted
                           from a slice of each budget this process leased, at memory speed
``lease_horizon_ms=N``     a slice is about N ms of this process's recent demand (default 500)
``lease_share=N``          a slice is at most 1/N of what is free in the budget (default 8)
``lease_min=N``            no slice smaller than N requests (default 4): none near the limit
``lease_ttl_ms=N``         a slice outlives the longest hold it covers by N ms (default 30000)
``lease_idle_ms=N``        an unused slice is given back after N ms (default 1000)
``drain_wait_ms=N``        a request denied while others' slices would fit it waits up to N ms for
                           them to be given back (default 2000)
=========================  =====================================================================

Redis clients get ``socket_connect_timeout=1`` s and ``socket_timeout=5`` s unless the URL says otherwise,
and retry a failed command once right away (a pooled connection killed by a server restart reconnects).
Standalone clients use a blocking pool of at most 64 connections (``?max_connections=N`` in the URL to
change it): more concurrent calls wait for a free connection (up to 10 s) instead of failing.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from router.ledger.base import Clock, Store
from router.ledger.memory import MemoryStore
from router.ledger.redis_store import RedisStore

_FAKE_SERVERS: dict[str, Any] = {}
_FAKE_LOCK = threading.Lock()


def _fake_server(name: str) -> Any:
    import fakeredis

    with _FAKE_LOCK:
        server = _FAKE_SERVERS.get(name)
        if server is None:
            server = _FAKE_SERVERS[name] = fakeredis.FakeServer(version=7)
        return server


def _client_options() -> dict[str, Any]:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return {"socket_connect_timeout": 1.0, "socket_timeout": 5.0, "retry": Retry(NoBackoff(), 1)}


def store_from_url(
    url: str,
    *,
    prefix: str = "router",
    failure_mode: str = "fail_closed",
    journal_path: str | None = None,
    clock: Clock | None = None,
) -> Store:
    """Open the ledger store that ``url`` names (see the module docstring for the schemes).

    ``prefix``: the key prefix and Cluster hash tag (``{prefix}``); ``failure_mode``: ``fail_closed``
    (raise :class:`~router.errors.StoreUnavailableError` when Redis is unreachable) or ``fail_open``
    (serve and journal to ``journal_path``); ``clock``: epoch seconds, for tests.
    """
    if isinstance(url, str) and "?" in url:
        url, ledger_options = _ledger_options(url)
    else:
        ledger_options = {}
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"ledger store URL {url!r}: expected memory://, fakeredis://, redis://, rediss:// or redis+cluster://")
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    options: dict[str, Any] = {"url": url, "prefix": prefix, "failure_mode": failure_mode, "journal_path": journal_path, "clock": clock}
    if scheme == "memory":
        return MemoryStore(clock)
    if scheme == "fakeredis":
        import fakeredis

        client = fakeredis.FakeAsyncRedis(server=_fake_server(rest.strip("/") or "default"))
        return _redis_store(client, options, ledger_options)
    if scheme in ("redis", "rediss", "unix"):
        from redis.asyncio import BlockingConnectionPool, Redis

        pool = BlockingConnectionPool.from_url(url, max_connections=64, timeout=10, **_client_options())
        return _redis_store(Redis.from_pool(pool), options, ledger_options)
    if scheme in ("redis+cluster", "rediss+cluster"):
        return _redis_store(_cluster_client(scheme.replace("+cluster", ""), rest, url), options, ledger_options)
    raise ValueError(f"ledger store URL {url!r}: unknown scheme {scheme!r} (memory, fakeredis, redis, rediss, redis+cluster)")


#: Query parameters of a ledger URL that configure the store (not redis-py).
LEDGER_OPTIONS = ("settle", "flush_ms", "close_ms", "fsync", "settle_log", "leases", "lease_horizon_ms", "lease_share", "lease_min", "lease_ttl_ms",
                  "lease_idle_ms", "drain_wait_ms")
_LEASE_KNOBS = {"lease_horizon_ms": "horizon_s", "lease_share": "share", "lease_min": "min_requests", "lease_ttl_ms": "ttl_s",
                "lease_idle_ms": "idle_s", "drain_wait_ms": "drain_wait_s"}


def _ledger_options(url: str) -> tuple[str, dict[str, str]]:
    """Split the ledger's own options out of a URL's query string."""
    parts = urlsplit(url)
    kept, ours = [], {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in LEDGER_OPTIONS:
            ours[name] = value
        else:
            kept.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), ours


def _redis_store(client: Any, options: dict[str, Any], ledger: dict[str, str]) -> Store:
    """A RedisStore, or with ``settle=deferred`` / ``leases=on`` a DeferredRedisStore, on ``client``."""
    settle = ledger.get("settle", "sync")
    leases = ledger.get("leases", "off")
    url = options["url"]
    if settle not in ("sync", "deferred"):
        raise ValueError(f"ledger store URL {url!r}: settle must be sync or deferred, not {settle!r}")
    if leases not in ("on", "off"):
        raise ValueError(f"ledger store URL {url!r}: leases must be on or off, not {leases!r}")
    lease_knobs = {k: v for k, v in ledger.items() if k in _LEASE_KNOBS}
    if lease_knobs and leases != "on":
        raise ValueError(f"ledger store URL {url!r}: {', '.join(sorted(lease_knobs))} only apply with leases=on")
    if settle == "sync" and leases == "off":
        unused = sorted(set(ledger) - {"settle", "leases"})
        if unused:
            raise ValueError(f"ledger store URL {url!r}: {', '.join(unused)} only apply with settle=deferred")
        return RedisStore(client, **options)
    from router.ledger.deferred import DeferredRedisStore

    extra: dict[str, Any] = {}
    if "flush_ms" in ledger:
        try:
            extra["flush_interval_s"] = int(ledger["flush_ms"]) / 1000
        except ValueError:
            raise ValueError(f"ledger store URL {url!r}: flush_ms must be an integer number of milliseconds, not {ledger['flush_ms']!r}") from None
    if "close_ms" in ledger:
        try:
            extra["close_timeout_s"] = int(ledger["close_ms"]) / 1000
        except ValueError:
            raise ValueError(f"ledger store URL {url!r}: close_ms must be an integer number of milliseconds, not {ledger['close_ms']!r}") from None
    if "fsync" in ledger:
        extra["fsync"] = ledger["fsync"]
    if "settle_log" in ledger:
        extra["settle_log_dir"] = ledger["settle_log"]
    if leases == "on":
        from router.ledger.leases import LeaseSizing

        sizing: dict[str, Any] = {}
        for name, value in lease_knobs.items():
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"ledger store URL {url!r}: {name} must be an integer, not {value!r}") from None
            sizing[_LEASE_KNOBS[name]] = number / 1000 if name.endswith("_ms") else number
        extra["leases"] = LeaseSizing(**sizing)
    return DeferredRedisStore(client, **options, **extra, quick_send=True)  # the client is the store's own


def _cluster_client(scheme: str, rest: str, url: str) -> Any:
    """A RedisCluster client seeded with every ``HOST:PORT`` of ``rest`` (comma-separated)."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    parts = urlsplit(scheme + "://" + rest)
    netloc = parts.netloc
    auth, _, hosts = netloc.rpartition("@")
    seeds = [h for h in hosts.split(",") if h]
    if not seeds:
        raise ValueError(f"ledger store URL {url!r}: no cluster seed node (redis+cluster://HOST:PORT[,HOST:PORT...])")
    first = urlunsplit(parts._replace(netloc=(auth + "@" if auth else "") + seeds[0]))
    if len(seeds) == 1:
        return RedisCluster.from_url(first, **_client_options())
    nodes = []
    for seed in seeds:
        host, _, port = seed.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"ledger store URL {url!r}: cluster seed {seed!r} is not HOST:PORT")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    # from_url parses credentials, TLS and options from the first seed; every seed is a startup node.
    return RedisCluster.from_url(first, startup_nodes=nodes, **_client_options())
