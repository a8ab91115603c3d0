"""The Count Tokens rate pool (seed 002: 3,000 requests per minute): one contract on every backend
(memory, fakeredis, a real redis-server), and shared across processes on a real redis-server."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from router.ledger import RatePool, count_tokens_pool
from router.ledger.rate import COUNT_TOKENS_RPM
from tests.fixtures_redis import need_redis_server
from tests.ledger import rate_workers


def test_count_tokens_pool_is_the_seed_quota_per_project():
    pool = count_tokens_pool("my-project")
    assert pool.limit == COUNT_TOKENS_RPM == 3000
    assert pool.id == "count_tokens.my-project"
    assert count_tokens_pool("other").id != pool.id
    with pytest.raises(ValueError):
        RatePool("count_tokens.x", 0)
    with pytest.raises(ValueError):
        RatePool("bad id with spaces", 10)


async def test_takes_stop_at_the_limit_and_nothing_is_taken_when_denied(store):
    pool = RatePool("count_tokens.p1", 5)
    answers = [await store.take_rate(pool) for _ in range(7)]
    assert [a.granted for a in answers] == [True] * 5 + [False] * 2
    assert [a.used for a in answers] == [1, 2, 3, 4, 5, 5, 5]
    read = await store.take_rate(pool, 0)
    assert read.granted and read.used == 5 and read.remaining == 0
    # a take of several that would pass the limit takes none of them
    other = RatePool("count_tokens.p2", 5)
    assert (await store.take_rate(other, 4)).granted
    denied = await store.take_rate(other, 2)
    assert not denied.granted and denied.used == 4 and denied.remaining == 1
    assert (await store.take_rate(other, 1)).used == 5


async def test_no_60_second_interval_ever_holds_more_than_the_limit(store, clock):
    pool = RatePool("count_tokens.edge", 3)
    clock.set(1_750_000_000.999)  # the end of a second: the bucket edge a 60-bucket window gets wrong
    assert all([(await store.take_rate(pool)).granted for _ in range(3)])
    clock.advance(59.002)  # 59.002 s later (a new bucket 60 seconds on): still inside one minute
    assert not (await store.take_rate(pool)).granted
    clock.advance(1.0)  # 60.002 s after the first three: they are out of every 60-second interval now
    assert (await store.take_rate(pool)).granted
    assert (await store.take_rate(pool, 0)).used == 1


async def test_pools_are_separate_and_reads_do_not_take(store, clock):
    a, b = count_tokens_pool("proj-a", 2), count_tokens_pool("proj-b", 2)
    for _ in range(3):
        await store.take_rate(a, 0)
    assert (await store.take_rate(a)).granted and (await store.take_rate(a)).granted
    assert not (await store.take_rate(a)).granted
    assert (await store.take_rate(b)).granted
    clock.advance(61)
    assert (await store.take_rate(a, 0)).used == 0


async def test_bad_arguments_are_refused(store):
    with pytest.raises(ValueError):
        await store.take_rate(RatePool("count_tokens.x", 3), -1)
    with pytest.raises(TypeError):
        await store.take_rate("count_tokens.x")  # type: ignore[arg-type]


@pytest.mark.redis_server
@pytest.mark.slow
def test_the_pool_is_shared_by_processes_on_real_redis(redis_server, unique_prefix):
    """Four processes race for one 3,000/min pool: exactly 3,000 takes are granted in all."""
    need_redis_server()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [ctx.Process(target=rate_workers.take_many, args=(redis_server.url, unique_prefix, w, 1000, barrier, results)) for w in range(4)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sum(granted for _, granted in got) == COUNT_TOKENS_RPM
    assert all(granted > 0 for _, granted in got)  # every process drew from the one pool


async def test_outcomes_are_counted_per_pool_and_utc_day(store, clock):
    pool, other = count_tokens_pool("proj-a"), count_tokens_pool("proj-b")
    assert await store.rate_outcomes(pool) == {}
    for outcome in ("counted", "counted", "cache_hit", "fallback"):
        await store.rate_outcomes(pool, outcome)
    assert await store.rate_outcomes(pool) == {"counted": 2, "cache_hit": 1, "fallback": 1}
    assert await store.rate_outcomes(other, "unsupported") == {"unsupported": 1}
    with pytest.raises(ValueError):
        await store.rate_outcomes(pool, "guessed")
    clock.advance(86_400)
    assert await store.rate_outcomes(pool) == {}
