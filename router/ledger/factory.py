"""``store_from_url``: a ledger store from a URL.

=================================  ==========================================================
``memory://``                      :class:`MemoryStore` (in-process; prefix and failure mode unused)
``fakeredis://[NAME]``             :class:`RedisStore` on an in-process fakeredis server (one per
                                   NAME, shared by every store opened with that URL; for tests/demos)
``redis://HOST:PORT/DB``           :class:`RedisStore` on standalone Redis (``unix://`` too)
``rediss://...``                   the same over TLS (redis-py URL options such as
                                   ``ssl_cert_reqs`` / ``ssl_ca_certs`` apply)
``redis+cluster://HOST:PORT``      :class:`RedisStore` on Redis Cluster (``rediss+cluster://`` for
                                   TLS); HOST:PORT is any node, the others are discovered
=================================  ==========================================================

Redis clients get ``socket_connect_timeout=1`` s and ``socket_timeout=5`` s unless the URL says otherwise,
and retry a failed command once right away (a pooled connection killed by a server restart reconnects).
Standalone clients use a blocking pool of at most 64 connections (``?max_connections=N`` in the URL to
change it): more concurrent calls wait for a free connection (up to 10 s) instead of failing.
"""

from __future__ import annotations

import threading
from typing import Any

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
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"ledger store URL {url!r}: expected memory://, fakeredis://, redis://, rediss:// or redis+cluster://")
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    options = {"url": url, "prefix": prefix, "failure_mode": failure_mode, "journal_path": journal_path, "clock": clock}
    if scheme == "memory":
        return MemoryStore(clock)
    if scheme == "fakeredis":
        import fakeredis

        client = fakeredis.FakeAsyncRedis(server=_fake_server(rest.strip("/") or "default"))
        return RedisStore(client, **options)
    if scheme in ("redis", "rediss", "unix"):
        from redis.asyncio import BlockingConnectionPool, Redis

        pool = BlockingConnectionPool.from_url(url, max_connections=64, timeout=10, **_client_options())
        return RedisStore(Redis.from_pool(pool), **options)
    if scheme in ("redis+cluster", "rediss+cluster"):
        from redis.asyncio.cluster import RedisCluster

        plain = scheme.replace("+cluster", "") + "://" + rest
        return RedisStore(RedisCluster.from_url(plain, **_client_options()), **options)
    raise ValueError(f"ledger store URL {url!r}: unknown scheme {scheme!r} (memory, fakeredis, redis, rediss, redis+cluster)")
