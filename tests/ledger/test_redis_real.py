"""Guarantees that only a real redis-server can show: contention across processes, a killed worker,
Redis going away under load (fail_open journal replay), fail_closed, NOSCRIPT recovery, bounded keys."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import signal
import time
from decimal import Decimal

import pytest
import redis

from router.errors import StoreUnavailableError
from router.ledger import BudgetScope, QuotaPool, Window, store_from_url
from tests.fixtures_redis import need_redis_server
from router.testing.redis_server import RedisServer, free_port
from tests.ledger import workers

pytestmark = pytest.mark.redis_server
D = Decimal


def _flush(server: RedisServer) -> redis.Redis:
    client = redis.Redis(port=server.port)
    client.flushall()
    return client


@pytest.mark.slow
def test_contention_across_processes_never_overshoots(redis_server, unique_prefix):
    """4 processes x 200 concurrent reservations of random amounts against one cap."""
    _flush(redis_server)
    cap = "25.000000007"
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=workers.contend, args=(redis_server.url, unique_prefix, cap, w, 200, barrier, results)) for w in range(4)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    granted_nano = sum(total for _, total, _ in got)
    assert sum(count for _, _, count in got) < 800  # the cap was actually contended

    async def check() -> None:
        store = store_from_url(redis_server.url, prefix=unique_prefix)
        b = BudgetScope("tenant:contended", Window.parse("rolling:1h"), D(cap))
        spent = await store.spend(b)
        assert spent <= D(cap)  # by zero cents
        assert spent == D(granted_nano).scaleb(-9)  # every granted reservation was settled, exactly
        assert (await store.snapshot([b], [], [])).spend[b.id] == spent  # no hold left behind
        assert D(cap) - spent < D("0.5")  # and the cap was nearly used up
        await store.close()

    asyncio.run(check())


@pytest.mark.slow
def test_killed_worker_leaks_nothing(redis_server, unique_prefix):
    _flush(redis_server)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=workers.hold_and_hang, args=(redis_server.url, unique_prefix, 5, 1.5, ready))
    proc.start()
    try:
        assert ready.wait(30)
        b = BudgetScope("tenant:victim", Window.parse("rolling:24h"), D("10"))

        async def held() -> Decimal:
            store = store_from_url(redis_server.url, prefix=unique_prefix)
            try:
                return (await store.snapshot([b], [], [])).spend[b.id]
            finally:
                await store.close()

        assert asyncio.run(held()) == D(5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        time.sleep(1.6)
        assert asyncio.run(held()) == 0

        async def refill() -> None:
            store = store_from_url(redis_server.url, prefix=unique_prefix)
            assert (await store.reserve("after", [b], D("10"), 60)).granted
            await store.close()

        asyncio.run(refill())
    finally:
        if proc.is_alive():
            proc.kill()


@pytest.mark.slow
async def test_fail_open_redis_stopped_mid_load_loses_nothing(tmp_path, unique_prefix):
    need_redis_server()
    journal = tmp_path / "journal.jsonl"
    # This server persists (AOF, fsync always) so a graceful restart keeps what Redis had.
    with RedisServer(extra_args=("--appendonly", "yes", "--appendfsync", "always")) as server:
        store = store_from_url(server.url, prefix=unique_prefix, failure_mode="fail_open", journal_path=str(journal))
        store.retry_interval_s = 0.05
        budgets = [BudgetScope("tenant:a", Window.parse("rolling:24h"), D("1000000")),
                   BudgetScope("global", Window.parse("calendar:month@America/Los_Angeles"), D("1000000"))]
        pool = QuotaPool("gemini-2x-flash-search-daily", 1500, "day")
        settled: list[Decimal] = []
        units: list[int] = []
        stop = asyncio.Event()
        rng = random.Random(7)

        async def worker(w: int) -> None:
            i = 0
            while not stop.is_set():
                rid = f"w{w}-{i}"
                amount = D(rng.randint(1, 10**9)).scaleb(-9)
                r = await store.reserve(rid, budgets, amount, 30)
                assert r.granted
                await asyncio.sleep(0.001)
                await store.settle(rid, amount)
                settled.append(amount)
                await store.consume(pool, 1, rid)
                units.append(1)
                await store.record_priority_tokens("flash", 10)
                i += 1

        tasks = [asyncio.create_task(worker(w)) for w in range(8)]
        await asyncio.sleep(0.3)
        before = len(settled)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(0.5)
        during = len(settled) - before
        assert store.journal.backlog() > 0 and during > 0  # served while Redis was down, journaled
        with pytest.raises(StoreUnavailableError):
            await store.spend(budgets[0])  # reads still say the truth: unavailable
        await asyncio.to_thread(server.start)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)
        await store.replay_journal()
        assert not journal.exists() and not list(tmp_path.glob(journal.name + ".replaying*"))
        for b in budgets:
            assert await store.spend(b) == sum(settled)
        assert (await store.pool_usage(pool)).used == len(units)
        assert await store.replay_journal() == 0
        await store.close()


async def test_fail_closed_names_the_url(unique_prefix):
    port = free_port()
    store = store_from_url(f"redis://:s3cret@127.0.0.1:{port}/0", prefix=unique_prefix)
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}") as info:
        await store.reserve("r", [BudgetScope("global", Window.parse("rolling:1h"), D(1))], D("0.1"), 60)
    assert "s3cret" not in str(info.value)
    for call in (store.settle("r", D(1)), store.snapshot([], [], ["flash"]), store.consume(QuotaPool("p", 1, "day"), 1, "r")):
        with pytest.raises(StoreUnavailableError):
            await call
    await store.close()


async def test_fail_closed_when_server_stops(unique_prefix):
    need_redis_server()
    with RedisServer() as server:
        store = store_from_url(server.url, prefix=unique_prefix)
        b = BudgetScope("global", Window.parse("rolling:1h"), D(1))
        assert (await store.reserve("r", [b], D("0.1"), 60)).granted
        server.kill()
        with pytest.raises(StoreUnavailableError, match=str(server.port)):
            await store.settle("r", D("0.1"))
        server.start()
        assert (await store.reserve("r2", [b], D("0.1"), 60)).granted  # reconnects on its own
        await store.close()


async def test_noscript_after_script_flush_is_recovered(redis_server, unique_prefix):
    client = _flush(redis_server)
    store = store_from_url(redis_server.url, prefix=unique_prefix)
    b = BudgetScope("global", Window.parse("rolling:1h"), D(1))
    assert (await store.reserve("a", [b], D("0.5"), 60)).granted
    client.script_flush()
    assert client.script_exists(store._scripts["reserve"].sha) == [False]
    assert (await store.reserve("b", [b], D("0.4"), 60)).granted
    assert not (await store.reserve("c", [b], D("0.4"), 60)).granted
    client.script_flush()
    assert await store.settle("a", D("0.5"))
    client.script_flush()
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.9")
    await store.close()


async def test_every_key_expires_on_its_own(redis_server, unique_prefix, clock):
    client = _flush(redis_server)
    store = store_from_url(redis_server.url, prefix=unique_prefix, clock=clock)
    budgets = [BudgetScope("global", Window.parse(w), D(100)) for w in ("rolling:1h", "rolling:24h", "rolling:7d", "rolling:30d", "calendar:day@Europe/Paris", "calendar:month")]
    for i in range(50):
        await store.reserve(f"r{i}", budgets, D("0.01"), 60)
        if i % 2:
            await store.settle(f"r{i}", D("0.01"))
        await store.consume(QuotaPool("p", 10, "day"), 1, f"r{i}")
        await store.record_priority_tokens("pro", 5)
        clock.advance(97)
    keys = list(client.scan_iter(match="{" + unique_prefix + "}:*"))
    assert keys and all(k.startswith(("{" + unique_prefix + "}:").encode()) for k in keys)
    ttls = {k: client.pttl(k) for k in keys}
    assert all(ttl > 0 for ttl in ttls.values()), [k for k, t in ttls.items() if t <= 0]
    # rolling hashes keep no more buckets than their window needs
    assert client.hlen("{" + unique_prefix + "}:r:global|rolling:1h") <= 61 + 2
    await store.close()


async def test_fail_open_replays_on_next_operation_and_idempotently(tmp_path, unique_prefix):
    need_redis_server()
    journal = tmp_path / "j.jsonl"
    with RedisServer(extra_args=("--appendonly", "yes", "--appendfsync", "always")) as server:
        store = store_from_url(server.url, prefix=unique_prefix, failure_mode="fail_open", journal_path=str(journal))
        store.retry_interval_s = 0.0
        b = BudgetScope("tenant:a", Window.parse("rolling:24h"), D("10"))
        pool = QuotaPool("pool", 2, "day")
        assert (await store.reserve("before", [b], D("1"), 60)).granted  # held in Redis
        server.stop()
        assert (await store.reserve("during", [b], D("100"), 60)).granted  # served without a hold
        assert await store.settle("before", D("0.5"))
        assert await store.settle("during", D("0.25"))
        assert await store.settle("ghost-of-nothing", D("9"))  # journaled; unattributable later
        assert (await store.consume(pool, 3, "g1")) .billable_units == 3  # billed in full while down
        await store.record_priority_tokens("flash", 77)
        snap = await store.snapshot([b], [pool], ["flash"])
        assert snap.spend[b.id] == 0  # serves, reads as zero
        # a replay attempt while down hands the journal over to a per-process .replaying.<id> file
        replaying = lambda: sorted(tmp_path.glob(journal.name + ".replaying*"))  # noqa: E731
        saved = "".join(p.read_text() for p in (*replaying(), journal) if p.exists())
        assert len(saved.splitlines()) == 5, saved
        server.start()
        assert (await store.reserve("after", [b], D("1"), 60)).granted  # triggers the replay first
        assert not journal.exists() and not replaying()
        assert await store.spend(b) == D("0.75")
        assert (await store.snapshot([b], [pool], ["flash"])).spend[b.id] == D("1.75")  # + the "after" hold
        assert (await store.pool_usage(pool)).used == 3
        assert (await store.ramp_usage("flash")).tokens_last_minute == 77
        assert "ghost-of-nothing" in journal.with_name(journal.name + ".unattributed").read_text()
        # a replay cut short before truncation is applied again: nothing counts twice
        journal.write_text(saved)
        store.journal.pending = True
        assert await store.replay_journal() == 5
        assert await store.spend(b) == D("0.75")
        assert (await store.pool_usage(pool)).used == 3
        assert (await store.ramp_usage("flash")).tokens_last_minute == 77
        await store.close()
