"""When the deferred flusher talks to Redis (issue 13, leases=on at low rates): a settle is sent once the
oldest pending settle is ``flush_ms`` old, also when the flusher was idle, with everything logged
meanwhile in the same script call; a settle batch's reply carries the budgets' drain flags, so a process
that settles stops granting from a slice another process asked back without polling for the flag.

Amounts by hand: nano-USD = USD * 10^9."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from decimal import Decimal

import pytest
import redis

from router.ledger import BudgetScope, Window, store_from_url

pytestmark = pytest.mark.redis_server
D = Decimal
B = BudgetScope("tenant:sched", Window.parse("rolling:24h"), D("100"))


async def _landed(plain, want: Decimal, within_s: float) -> bool:  # noqa: ANN001
    """Whether ``plain`` (another process's view) sees spend ``want`` within ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await plain.spend(B) == want:
            return True
        await asyncio.sleep(0.01)
    return await plain.spend(B) == want


async def test_settles_after_an_idle_spell_are_sent_together_after_flush_ms(redis_server, unique_prefix, tmp_path):
    store = store_from_url(f"{redis_server.url}?settle=deferred&settle_log={tmp_path}&flush_ms=200", prefix=unique_prefix)
    plain = store_from_url(redis_server.url, prefix=unique_prefix)
    batches: list[int] = []
    settle_batch = store._settle_batch

    async def counting(entries, now):  # noqa: ANN001, ANN202
        batches.append(len(entries))
        return await settle_batch(entries, now)

    store._settle_batch = counting
    for rid in ("a", "b", "c"):
        assert (await store.reserve(rid, [B], D("1"), 60)).granted
    assert await store.settle("a", D("0.25"))
    assert await _landed(plain, D("0.25"), 10)
    # the flusher is idle now (nothing pending, nothing unconfirmed: its next look is the 5 s orphan scan);
    # two settles logged back to back still leave after flush_ms, in ONE script call
    assert await store.settle("b", D("0.125"))
    assert await store.settle("c", D("0.0625"))
    assert await _landed(plain, D("0.4375"), 2.5)  # well before the idle wait would have ended
    assert batches == [1, 2]
    for _ in range(500):  # confirmed (no replica: by the next replication read) and dropped from the log
        if store.backlog() == 0:
            break
        await asyncio.sleep(0.01)
    assert store.backlog() == 0
    await store.close()
    await plain.close()


async def test_a_settle_batch_reply_stops_local_grants_from_a_slice_another_process_needs(redis_server, unique_prefix, tmp_path):
    """A's slice holds capacity B needs: B's request is denied for now and asks the holders to drain. A's
    next settle batch reads the drain flag in its reply, so A grants nothing more from the slice (its next
    reservation goes to Redis, giving the slice's free part back) although A's own poll of the flag is 30 s
    away; B is then granted. Nothing overshoots the cap."""
    cap = BudgetScope("tenant:drain", Window.parse("rolling:24h"), D("1"))
    client = redis.Redis(port=redis_server.port)
    a = store_from_url(f"{redis_server.url}?leases=on&settle_log={tmp_path / 'a'}&flush_ms=600000", prefix=unique_prefix)
    a.sizing = dataclasses.replace(a.sizing, poll_s=30.0, idle_s=3600.0)  # A's keeper never polls in this test
    b = store_from_url(f"{redis_server.url}?leases=on&settle_log={tmp_path / 'b'}&flush_ms=600000&drain_wait_ms=20000", prefix=unique_prefix)
    plain = store_from_url(redis_server.url, prefix=unique_prefix)
    local = []
    for i in range(60):  # demand grows until A grants from a slice
        before = a.local_grants
        assert (await a.reserve(f"a{i}", [cap], D("0.01"), 60)).granted
        if a.local_grants > before:
            local.append(f"a{i}")
        else:
            assert await a.settle(f"a{i}", D("0.01"))
    assert len(local) >= 2
    await a.flush()
    free = a._leases[cap.id].free  # A's unused part of its slice
    assert free > 0
    seen = (await plain.snapshot([cap], [], [])).spend[cap.id]  # settled + holds + A's whole slice
    need = D(1) - seen + D(free // 2) / 10**9  # fits only with half of A's free part back
    waiting = asyncio.ensure_future(b.reserve("b-big", [cap], need, 60))
    flag = f"{{{unique_prefix}}}:ld:{cap.id}"
    for _ in range(500):  # B was denied for now and asked the slice holders to drain
        if client.exists(flag) or waiting.done():
            break
        await asyncio.sleep(0.01)
    assert not waiting.done() and client.exists(flag)
    assert await a.settle(local[0], D("0.01"))
    await a.flush(confirm=False)  # one settle batch: its reply carries the drain flag
    grants = a.local_grants
    assert (await a.reserve("a-next", [cap], D("0.000000001"), 60)).granted
    assert a.local_grants == grants  # not from the slice: decided by Redis, with the free part given back
    assert (await asyncio.wait_for(waiting, 20)).granted
    assert (await plain.snapshot([cap], [], [])).spend[cap.id] <= D(1)
    for store in (a, b, plain):
        await store.close()
