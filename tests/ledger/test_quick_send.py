"""Redis commands of a deferred / leases store are written without a task each (issue 13: redis-py's
``wait_for`` around every write cost one task per command on Python 3.11), and a write the server does
not take still fails within ``socket_timeout`` (the connection is dropped; the next command reconnects)."""

from __future__ import annotations

import asyncio
import os
import signal
from decimal import Decimal

import pytest
import redis.exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis

from router.ledger import BudgetScope, Window, store_from_url
from router.ledger.quick_send import quick_send_class
from router.testing.redis_server import RedisServer
from tests.fixtures_redis import need_redis_server

pytestmark = pytest.mark.redis_server
D = Decimal
B = BudgetScope("tenant:quick", Window.parse("rolling:24h"), D("100"))


async def test_a_deferred_stores_redis_commands_start_no_task(redis_server, unique_prefix, tmp_path):
    store = store_from_url(f"{redis_server.url}?settle=deferred&settle_log={tmp_path}&flush_ms=600000", prefix=unique_prefix)
    assert (await store.reserve("warm", [B], D("1"), 60)).granted  # connects (redis-py's own path)
    loop = asyncio.get_running_loop()
    started: list[str] = []

    def factory(loop, coro, **kwargs):  # noqa: ANN001, ANN202
        started.append(getattr(coro, "__qualname__", "?"))
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        for i in range(5):
            assert (await store.reserve(f"r{i}", [B], D("1"), 60)).granted  # one script call each
            assert await store.settle(f"r{i}", D("0.5"))
            assert await store.flush() == 1  # a settle batch and a replication read
        assert (await store.snapshot([B], [], [])).spend[B.id] == D("3.5")  # 0.5 x 5 + the 1.00 hold
    finally:
        loop.set_task_factory(None)
    assert [name for name in started if "send" in name.lower()] == []
    await store.close()


async def test_a_write_the_server_does_not_take_times_out_and_the_next_command_reconnects(tmp_path):
    need_redis_server()
    with RedisServer() as server:
        pool = BlockingConnectionPool.from_url(server.url, max_connections=4, timeout=5, socket_timeout=0.5)
        pool.connection_class = quick_send_class(pool.connection_class)
        client = Redis.from_pool(pool)
        assert await client.ping()
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)  # connections stay open; nothing is read any more
        try:
            with pytest.raises(rexc.TimeoutError):
                await client.set("big", b"x" * (64 << 20))  # more than the socket buffers take
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert await client.set("small", b"1")
        assert await client.get("small") == b"1"
        await client.aclose()


async def test_a_callers_own_client_keeps_its_connection_class_unless_quick_send_is_asked(redis_server, unique_prefix, tmp_path):
    """``DeferredRedisStore(client)`` must not change a client the caller may share with other code; the
    store URLs (whose client is the store's own) and ``quick_send=True`` do swap the class."""
    from router.ledger.deferred import DeferredRedisStore

    shared = Redis.from_url(redis_server.url)
    original = shared.connection_pool.connection_class
    store = DeferredRedisStore(shared, prefix=unique_prefix, settle_log_dir=str(tmp_path / "a"))
    assert shared.connection_pool.connection_class is original
    assert (await store.reserve("mine", [B], D("1"), 60)).granted and await store.settle("mine", D("1"))
    await store.flush()
    assert (await store.snapshot([B], [], [])).spend[B.id] == D("1")
    await store.close()

    opted = Redis.from_url(redis_server.url)
    other = DeferredRedisStore(opted, prefix=unique_prefix, settle_log_dir=str(tmp_path / "b"), quick_send=True)
    assert opted.connection_pool.connection_class is quick_send_class(original)
    await other.close()

    from_url = store_from_url(f"{redis_server.url}?settle=deferred&settle_log={tmp_path / 'c'}", prefix=unique_prefix)
    assert from_url.client.connection_pool.connection_class is quick_send_class(original)  # type: ignore[attr-defined]
    await from_url.close()
