"""pytest plugin: a throwaway real redis-server, and the ``store`` fixture that runs one ledger suite over
every backend (memory, fakeredis, a real redis-server).

Without a ``redis-server`` binary, tests that need it are skipped, except under ``CI=true`` where a
missing binary is an error (CI must test on real Redis).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from router.testing.redis_server import RedisServer, find_redis_server

#: ``+deferred``: the same backend with deferred settlement (``?settle=deferred``, a settle log per test);
#: ``+leases``: with budget leases too (``?leases=on``).
BACKENDS = ["memory", "fakeredis", "redis", "fakeredis+deferred", "redis+deferred", "fakeredis+leases", "redis+leases"]


class FakeClock:
    """An injectable store clock (epoch seconds) that tests move by hand."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, when: float) -> None:
        self.now = float(when)


def need_redis_server() -> None:
    """Skip without a redis-server binary, except in CI (``CI=true``), where its absence is a failure."""
    if find_redis_server() is None:
        if os.environ.get("CI", "").lower() == "true":
            raise RuntimeError("redis-server is required in CI (CI=true) but was not found on this machine")
        pytest.skip("redis-server not installed")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session (skipped, or an error in CI, without the binary)."""
    need_redis_server()
    server = RedisServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock for stores (starts at a fixed instant)."""
    return FakeClock()


@pytest.fixture
def unique_prefix() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh store on each backend (the real server is flushed first)."""
    backend, _, mode = request.param.partition("+")
    query = ""
    if mode:
        log_dir = request.getfixturevalue("tmp_path") / "settles"
        query = f"?settle=deferred&settle_log={log_dir}" + ("&leases=on" if mode == "leases" else "")
    if backend == "memory":
        return "memory://"
    if backend == "fakeredis":
        return f"fakeredis://{uuid.uuid4().hex}{query}"
    server = request.getfixturevalue("redis_server")
    if not server.ping():
        server.start()
    import redis

    redis.Redis(port=server.port).flushall()
    return server.url + query


@pytest.fixture
async def store(store_url: str, clock: FakeClock, unique_prefix: str) -> AsyncIterator[object]:
    """A ledger store on each backend (memory, fakeredis, real redis) driven by the ``clock`` fixture."""
    from router.ledger import store_from_url

    s = store_from_url(store_url, prefix=unique_prefix, clock=clock)
    try:
        yield s
    finally:
        await s.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the real-redis parametrisations with ``redis_server`` so ``-m 'not redis_server'`` works."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and str(callspec.params.get("store_url")).startswith("redis"):
            item.add_marker(pytest.mark.redis_server)
