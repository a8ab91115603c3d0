"""Budget leases (``?leases=on``) on a real redis-server: reservations granted from per-process slices
never overshoot a cap and never strand capacity; a killed process's slices expire and its logged settles
are replayed once."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import time
from decimal import Decimal

import pytest
import redis

from router.ledger import BudgetScope, Window, store_from_url
from tests.ledger import deferred_workers

pytestmark = pytest.mark.redis_server
D = Decimal


@pytest.mark.slow
def test_contention_with_leases_grants_exactly_what_fits(redis_server, unique_prefix, tmp_path):
    """8 processes x 200 concurrent reserve/settle streams against one cap: exactly floor(cap / amount)
    reservations are granted (no slice strands capacity), 0 nano-USD overshoot, and most reservations
    were granted from slices (no round trip)."""
    redis.Redis(port=redis_server.port).flushall()
    cap, amount = "60.000000007", "0.01"
    url = f"{redis_server.url}?leases=on&settle_log={tmp_path}"
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=deferred_workers.contend_with_leases, args=(url, unique_prefix, cap, amount, w, 200, barrier, results)) for w in range(8)]
    for p in procs:
        p.start()
    got = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    granted = sum(count for _, count, _ in got)
    assert granted == 6000  # floor(60.000000007 / 0.01)
    assert sum(local for _, _, local in got) > granted // 2  # leases did the work

    async def check() -> None:
        store = store_from_url(redis_server.url, prefix=unique_prefix)
        b = BudgetScope("tenant:contended", Window.parse("rolling:1h"), D(cap))
        assert await store.spend(b) == D("60.00")  # every grant settled, exactly once: 0 overshoot
        assert (await store.snapshot([b], [], [])).spend[b.id] == D("60.00")  # no hold or slice left behind
        await store.close()

    asyncio.run(check())


@pytest.mark.slow
def test_sigkill_with_slices_and_unflushed_settles(redis_server, unique_prefix, tmp_path):
    """A process holding slices and unflushed settles is killed: its slices expire like holds, the next
    process replays its settle log, spend equals the sum of the bills (nothing lost, nothing twice)."""
    redis.Redis(port=redis_server.port).flushall()
    bills = [f"0.{i:03d}000007" for i in range(1, 41)]
    url = f"{redis_server.url}?leases=on&settle_log={tmp_path / 'log'}&flush_ms=600000&lease_ttl_ms=500"
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
        held = (await plain.snapshot([budget], [], [])).spend[budget.id]
        assert await plain.spend(budget) == 0 and held > 0  # nothing flushed; holds and slices still held
        heir = store_from_url(url, prefix=unique_prefix)
        assert await heir.spend(budget) == expected  # the dead process's log was adopted and applied
        await heir.close()
        time.sleep(2.6)  # the holds' TTL (2 s) + the slices' extra life (0.5 s)
        assert (await plain.snapshot([budget], [], [])).spend[budget.id] == expected  # slices expired
        again = store_from_url(url, prefix=unique_prefix)
        assert await again.spend(budget) == expected  # nothing counted twice
        await again.close()
        await plain.close()

    asyncio.run(check())
    assert not list((tmp_path / "log").iterdir())
