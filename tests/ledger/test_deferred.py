"""Deferred settlement (``?settle=deferred``) on a real redis-server: settles leave the request path, are
applied in batches (one script call each), kept in the local settle log until Redis confirmed them
(replicas included), and a process killed with unflushed settles loses nothing and counts nothing twice."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from router.errors import StoreUnavailableError
from router.ledger import BudgetScope, Window, store_from_url
from router.testing.redis_server import RedisServer
from tests.fixtures_redis import need_redis_server
from tests.ledger import deferred_workers

pytestmark = pytest.mark.redis_server
D = Decimal
B = BudgetScope("tenant:acme", Window.parse("rolling:24h"), D("100"))


def _url(server: RedisServer, log_dir: Path, flush_ms: int = 20) -> str:
    return f"{server.url}?settle=deferred&settle_log={log_dir}&flush_ms={flush_ms}"


def _evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0)) - int(stats.get("rejected_calls", 0))  # NOSCRIPT retries


async def test_settle_returns_before_redis_and_lands_in_one_batch(redis_server, unique_prefix, tmp_path):
    client = redis.Redis(port=redis_server.port)
    store = store_from_url(_url(redis_server, tmp_path, flush_ms=60_000), prefix=unique_prefix)
    plain = store_from_url(redis_server.url, prefix=unique_prefix)  # another process's view
    bills = [D("0.000000001") * (i + 1) for i in range(100)]
    for i in range(100):
        assert (await store.reserve(f"r{i}", [B], D("0.5"), 60)).granted
    before = _evalsha_calls(client)
    for i, bill in enumerate(bills):
        assert await store.settle(f"r{i}", bill) is True
        assert await store.settle(f"r{i}", bill) is False  # idempotent before it even reached Redis
    assert _evalsha_calls(client) == before  # nothing went to Redis on the request path
    assert await plain.spend(B) == 0  # not flushed yet: others still see the holds...
    assert (await plain.snapshot([B], [], [])).spend[B.id] == D(50)  # ...which cover every bill
    assert store.backlog() == 100 and store.settle_log.backlog() == 100
    before = _evalsha_calls(client)
    assert await store.flush() == 100
    assert _evalsha_calls(client) == before + 1  # 100 settles, ONE script call
    assert await plain.spend(B) == sum(bills) == D("0.00000505")
    assert (await plain.snapshot([B], [], [])).spend[B.id] == sum(bills)  # holds gone
    assert store.backlog() == 0  # no replica: the primary's reply confirms
    await store.close()
    await plain.close()
    assert list(tmp_path.iterdir()) == []  # a clean close leaves no log behind


async def test_the_flusher_applies_settles_within_the_interval(redis_server, unique_prefix, tmp_path):
    store = store_from_url(_url(redis_server, tmp_path, flush_ms=20), prefix=unique_prefix)
    plain = store_from_url(redis_server.url, prefix=unique_prefix)
    assert (await store.reserve("r", [B], D("1"), 60)).granted
    assert await store.settle("r", D("0.25"))
    for _ in range(200):  # no flush() call: the background flusher does it
        if await plain.spend(B) == D("0.25"):
            break
        await asyncio.sleep(0.01)
    assert await plain.spend(B) == D("0.25")
    await store.close()
    await plain.close()


async def test_a_bill_above_its_hold_settles_synchronously(redis_server, unique_prefix, tmp_path):
    store = store_from_url(_url(redis_server, tmp_path, flush_ms=60_000), prefix=unique_prefix)
    plain = store_from_url(redis_server.url, prefix=unique_prefix)
    assert (await store.reserve("r", [B], D("0.1"), 60)).granted
    assert await store.settle("r", D("0.3"))
    assert await plain.spend(B) == D("0.3")  # booked in full at once, nothing deferred
    assert store.backlog() == 0
    await store.close()
    await plain.close()


async def test_settles_survive_redis_going_away(unique_prefix, tmp_path):
    need_redis_server()
    with RedisServer(extra_args=("--appendonly", "yes", "--appendfsync", "always")) as server:
        store = store_from_url(_url(server, tmp_path, flush_ms=60_000), prefix=unique_prefix)
        for i in range(10):
            assert (await store.reserve(f"r{i}", [B], D("1"), 60)).granted
        server.stop()
        for i in range(10):
            assert await store.settle(f"r{i}", D("0.5"))  # acknowledged: logged locally
        with pytest.raises(StoreUnavailableError):
            await store.flush()
        assert store.backlog() == 10
        server.start()
        assert await store.spend(B) == D(5)  # applied on the first read, exactly once
        await store.flush()
        assert await store.spend(B) == D(5)
        await store.close()


async def test_settles_stay_logged_until_the_replica_acknowledges(unique_prefix, tmp_path):
    """Entries leave the log only once the replica acknowledged them; when the primary loses what it had
    applied (restarted without data: a new replication id), the logged entries are applied again."""
    need_redis_server()
    with RedisServer() as server, RedisServer(extra_args=("--replicaof", "127.0.0.1", "1")) as replica:
        client = redis.Redis(port=server.port)
        redis.Redis(port=replica.port).replicaof("127.0.0.1", server.port)
        for _ in range(200):
            if client.info("replication").get("slave0", {}).get("state") == "online":
                break
            await asyncio.sleep(0.05)
        store = store_from_url(_url(server, tmp_path, flush_ms=60_000), prefix=unique_prefix)
        for i in range(5):
            assert (await store.reserve(f"r{i}", [B], D("1"), 60)).granted
            assert await store.settle(f"r{i}", D("0.2"))
        replica.process.send_signal(signal.SIGSTOP)  # the replica stops acknowledging
        try:
            await store.flush()
            assert await store.spend(B) == D(1)
            assert store.backlog() == 5  # applied by the primary, not acknowledged by the replica: kept
            await asyncio.sleep(1.2)
            await store.flush()
            assert store.backlog() == 5
            await asyncio.to_thread(server.restart)  # the primary loses everything it had applied
            await store.flush()
            assert await store.spend(B) == D(1)  # new replication id: the logged entries were applied again
        finally:
            replica.process.send_signal(signal.SIGCONT)
        for _ in range(100):  # replicas acknowledge about once a second
            await store.flush()
            if store.backlog() == 0:
                break
            await asyncio.sleep(0.05)
        assert store.backlog() == 0
        await store.close()


@pytest.mark.slow
def test_sigkill_with_unflushed_settles_loses_nothing(redis_server, unique_prefix, tmp_path):
    """A process with acknowledged but unflushed settles is killed; the next process adopts its settle
    log: spend equals the sum of the bills, once, and the log is gone."""
    redis.Redis(port=redis_server.port).flushall()
    bills = [f"0.{i:03d}000007" for i in range(1, 41)]
    url = _url(redis_server, tmp_path / "log", flush_ms=600_000)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=deferred_workers.settle_and_hang, args=(url, unique_prefix, bills, ready))
    proc.start()
    try:
        assert ready.wait(60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    finally:
        if proc.is_alive():
            proc.kill()
    budget = BudgetScope("tenant:killed", Window.parse("rolling:24h"), D("1000"))
    expected = sum(D(b) for b in bills)

    async def check() -> None:
        plain = store_from_url(redis_server.url, prefix=unique_prefix)
        assert await plain.spend(budget) == 0  # nothing had reached Redis
        assert (await plain.snapshot([budget], [], [])).spend[budget.id] == D(40)  # only the holds
        heir = store_from_url(url, prefix=unique_prefix)
        assert await heir.spend(budget) == expected  # the dead process's log was adopted and applied
        await heir.close()
        again = store_from_url(url, prefix=unique_prefix)
        assert await again.spend(budget) == expected  # nothing counted twice
        await asyncio.sleep(2.1)  # the holds' TTL (2 s)
        assert (await plain.snapshot([budget], [], [])).spend[budget.id] == expected
        await again.close()
        await plain.close()

    asyncio.run(check())
    assert not [p for p in (tmp_path / "log").iterdir()]


async def test_concurrent_reservations_are_group_committed_in_arrival_order(redis_server, unique_prefix, tmp_path):
    """Reservations that reach Redis while a call is in flight go together in one script call, each decided
    in arrival order exactly as if alone (here by hand: limit 1)."""
    client = redis.Redis(port=redis_server.port)
    store = store_from_url(_url(redis_server, tmp_path), prefix=unique_prefix)
    b = BudgetScope("tenant:gc", Window.parse("rolling:1h"), D("1"))
    assert (await store.reserve("warm", [b], D("0.000000001"), 60)).granted  # scripts loaded, connected
    amounts = ["0.3", "0.5", "0.4", "0.1", "0.2", "0.099999999", "0.000000001"]
    # running total: 0.3 ok, 0.8 ok, 1.2 no, 0.9 ok, 1.1 no, 0.999999999 ok, 1.000000000 no (warm holds 1 nano)
    expected = [True, True, False, True, False, True, False]
    before = _evalsha_calls(client)
    results = await asyncio.gather(*(store.reserve(f"g{i}", [b], D(a), 60) for i, a in enumerate(amounts)))
    assert [r.granted for r in results] == expected
    assert all(r.denied_scope == b.id for r in results if not r.granted)
    assert _evalsha_calls(client) - before == 1  # seven reservations, one script call
    await store.close()
