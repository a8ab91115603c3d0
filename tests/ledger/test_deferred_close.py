"""``close()`` of a store with deferred settlement is bounded (issue 13): with Redis down or not answering it
returns within ``close_ms`` (plus at most ``POOL_CLOSE_S`` for the connection pool) instead of waiting out
socket timeouts and retries, and the settles it could not apply stay in the settle log: the next process
replays them, each booked exactly once (real redis-server).

Amounts by hand: 10 reservations settled at 0.5 USD each = 5 USD."""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal

import pytest

from router.ledger import BudgetScope, Window, store_from_url
from router.ledger.deferred import POOL_CLOSE_S
from router.testing.redis_server import RedisServer
from tests.fixtures_redis import need_redis_server

pytestmark = pytest.mark.redis_server
D = Decimal
B = BudgetScope("tenant:closing", Window.parse("rolling:24h"), D("100"))


async def _settle_ten(store) -> None:  # noqa: ANN001
    for i in range(10):
        assert (await store.reserve(f"c{i}", [B], D("1"), 60)).granted
    for i in range(10):
        assert await store.settle(f"c{i}", D("0.5"))  # acknowledged: in the settle log, not in Redis


@pytest.mark.parametrize("options", ["settle=deferred", "leases=on"])
async def test_close_with_redis_not_answering_returns_within_the_bound(unique_prefix, tmp_path, options):
    """The server is frozen (SIGSTOP: connections open, no replies; socket_timeout is 5 s and a failed
    command is retried once): close() still returns within close_ms + POOL_CLOSE_S, the log keeps every
    settle, and once the server is back the next process books them exactly once."""
    need_redis_server()
    with RedisServer() as server:
        url = f"{server.url}?{options}&settle_log={tmp_path}&flush_ms=600000&close_ms=300"
        store = store_from_url(url, prefix=unique_prefix)
        await _settle_ten(store)
        assert store.backlog() == 10
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            await store.close()
            elapsed = time.monotonic() - started
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert elapsed < 0.3 + POOL_CLOSE_S + 1.5  # far below one socket timeout (5 s)
        assert sum(len(p.read_text().splitlines()) for p in tmp_path.glob("*.jsonl")) == 10  # all kept
        heir = store_from_url(f"{server.url}?settle=deferred&settle_log={tmp_path}&flush_ms=600000", prefix=unique_prefix)
        plain = store_from_url(server.url, prefix=unique_prefix)
        assert await heir.spend(B) == D("5")  # the closed store's log, adopted and applied
        await heir.flush()
        assert await plain.spend(B) == D("5")  # once: 10 x 0.5
        await heir.close()
        assert await plain.spend(B) == D("5")
        await plain.close()


async def test_close_with_redis_down_returns_and_a_restart_replays_once(unique_prefix, tmp_path):
    """The server is stopped (connections refused): close() returns within the bound; the server restarts
    with its data (append-only file) and the next process replays the log: 5 USD, not 0 and not 10."""
    need_redis_server()
    with RedisServer(extra_args=("--appendonly", "yes", "--appendfsync", "always")) as server:
        url = f"{server.url}?leases=on&settle_log={tmp_path}&flush_ms=600000&close_ms=300"
        store = store_from_url(url, prefix=unique_prefix)
        await _settle_ten(store)
        server.stop()
        started = time.monotonic()
        await store.close()
        assert time.monotonic() - started < 0.3 + POOL_CLOSE_S + 1.5
        assert sum(len(p.read_text().splitlines()) for p in tmp_path.glob("*.jsonl")) == 10
        server.start()
        heir = store_from_url(f"{server.url}?settle=deferred&settle_log={tmp_path}", prefix=unique_prefix)
        plain = store_from_url(server.url, prefix=unique_prefix)
        assert await heir.spend(B) == D("5")
        await heir.close()  # confirmed: the adopted log is removed
        assert not list(tmp_path.glob("*.jsonl"))
        assert await plain.spend(B) == D("5")
        await plain.close()


def test_close_ms_must_be_milliseconds():
    with pytest.raises(ValueError, match="close_ms must be an integer number of milliseconds"):
        store_from_url("redis://127.0.0.1:1/0?settle=deferred&close_ms=soon")
    with pytest.raises(ValueError, match="only apply with settle=deferred"):
        store_from_url("redis://127.0.0.1:1/0?close_ms=100")
