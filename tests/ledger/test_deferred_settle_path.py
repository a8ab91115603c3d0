"""The deferred settle path's cheap forms on a real redis-server (issue 13, the flusher's CPU): a settle is
logged as a line formatted directly (replayed exactly, quotes and backslashes in ids included), and with
leases a decision's snapshot is exact without waiting for the flusher when every pending settle is of a
reservation from this process's slices (a pending settle of a Redis hold is still applied first).

The line's format itself (byte for byte json.dumps's) is pinned in tests/ledger/test_wal_mutants.py.
Amounts by hand: nano-USD = USD * 10^9."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis

from router.ledger import BudgetScope, Window, store_from_url
from tests.fixtures_redis import FakeClock
from tests.ledger.test_deferred_fast import hand_over

pytestmark = pytest.mark.redis_server
D = Decimal
B = BudgetScope("tenant:path", Window.parse("rolling:24h"), D("100"))
DAY = BudgetScope("global", Window.parse("calendar:day@Europe/Paris"), D("1000"))


def _script_calls(client: redis.Redis) -> int:
    """How many script calls (EVALSHA) reached Redis."""
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_dead_processs_settles_with_quoted_ids_are_replayed_once(redis_server, unique_prefix, tmp_path):
    """Ids with a quote or a backslash go through json.dumps; the next process replays them exactly."""
    clock = FakeClock()
    url = f"{redis_server.url}?settle=deferred&settle_log={tmp_path / 'a'}&flush_ms=600000"
    first = store_from_url(url, prefix=unique_prefix, clock=clock)
    plain = store_from_url(redis_server.url, prefix=unique_prefix, clock=clock)
    bills = {'q"1': D("0.25"), "b\\2": D("0.5"), "plain-3": D("0.000000007")}
    for rid in bills:
        assert (await first.reserve(rid, [B, DAY], D("1"), 60)).granted
    for rid, bill in bills.items():
        assert await first.settle(rid, bill)
    # the process dies now: copy its unflushed log as a dead process's log
    dead = tmp_path / "b"
    hand_over(tmp_path / "a", dead)
    heir = store_from_url(f"{redis_server.url}?settle=deferred&settle_log={dead}&flush_ms=600000", prefix=unique_prefix, clock=clock)
    assert await heir.spend(B) == D("0.750000007")  # 0.25 + 0.5 + 0.000000007
    assert await heir.spend(DAY) == D("0.750000007")
    await first.flush()  # the first process's own copy is applied too: nothing counts twice
    assert await plain.spend(B) == D("0.750000007")
    assert (await plain.snapshot([B], [], [])).spend[B.id] == D("0.750000007")  # no hold left
    await heir.close()
    await first.close()
    await plain.close()


async def _with_slices(store, n: int, amount: str) -> list[str]:  # noqa: ANN001
    """Reserve until this store grants from its slices; returns the ids granted from slices."""
    local = []
    for i in range(n):
        before = store.local_grants
        assert (await store.reserve(f"s{i}", [B], D(amount), 60)).granted
        if store.local_grants > before:
            local.append(f"s{i}")
        else:
            assert await store.settle(f"s{i}", D(amount))  # a Redis hold: settled (and flushed below)
    await store.flush()
    return local


async def test_a_snapshot_is_exact_without_flushing_settles_from_slices(redis_server, unique_prefix, tmp_path):
    client = redis.Redis(port=redis_server.port)
    store = store_from_url(f"{redis_server.url}?leases=on&settle_log={tmp_path}&flush_ms=600000", prefix=unique_prefix)
    plain = store_from_url(redis_server.url, prefix=unique_prefix)
    local = await _with_slices(store, 40, "0.01")
    assert len(local) >= 10
    base = await plain.spend(B)  # the Redis holds settled at 0.01 each
    assert base == D("0.01") * (40 - len(local))
    for rid in local[:10]:
        assert await store.settle(rid, D("0.003"))  # from slices: logged, not applied
    assert store.backlog() == 10
    calls = _script_calls(client)
    snap = await store.snapshot([B], [], [])
    # this process's view: every bill plus the reservations it still holds, exactly (no flush needed)
    assert snap.spend[B.id] == base + D("0.003") * 10 + D("0.01") * (len(local) - 10)
    assert _script_calls(client) == calls + 1  # the snapshot read only
    assert store.backlog() == 10  # nothing was flushed
    # other processes see the slice (which still covers the unapplied bills): never less than the bills
    assert (await plain.snapshot([B], [], [])).spend[B.id] >= snap.spend[B.id]
    assert await store.flush() == 10
    assert (await store.snapshot([B], [], [])).spend[B.id] == snap.spend[B.id]  # the same after the flush
    await store.close()
    await plain.close()


async def test_a_snapshot_applies_a_pending_settle_of_a_redis_hold_first(redis_server, unique_prefix, tmp_path):
    store = store_from_url(f"{redis_server.url}?leases=on&settle_log={tmp_path}&flush_ms=600000", prefix=unique_prefix)
    assert (await store.reserve("first", [B], D("2"), 60)).granted  # no demand seen yet: a Redis hold
    assert store.local_grants == 0
    assert await store.settle("first", D("0.5"))  # pending: Redis still counts the 2.00 hold
    assert store.backlog() == 1
    plain = store_from_url(redis_server.url, prefix=unique_prefix)
    assert await plain.spend(B) == 0
    assert (await store.snapshot([B], [], [])).spend[B.id] == D("0.5")  # applied first: the bill, not the hold
    assert await plain.spend(B) == D("0.5")  # in Redis now
    await store.close()
    await plain.close()
