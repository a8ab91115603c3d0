"""The in-process ledger's periodic clean-up (router/ledger/memory.py ``_gc``, run by an operation at least a
second of store clock after the last one) must keep what is still current: a quota pool's use in the last hour
of its period, the budgets ``router spend`` lists and when each was last seen, today's rate-limit outcomes.

Written to kill mutmut survivors of memory.py (issue 12); expected values are hand-computed literals.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from router.ledger import Consumed, MemoryStore, QuotaPool, count_tokens_pool
from tests.ledger.helpers import at, budget

D = Decimal
T0 = 1_800_000_000.0


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_clean_up_in_the_last_hour_of_the_day_keeps_the_days_free_units_used() -> None:
    pool = QuotaPool("grounding-daily", 10, "day", "UTC")
    clock = _Clock(at("2026-05-01T00:00:00"))
    store = MemoryStore(clock=clock)
    assert await store.consume(pool, 6, "q1") == Consumed(6, 0)
    clock.now = at("2026-05-01T23:30:00")  # a clean-up runs: the period ends in 30 minutes
    assert await store.consume(pool, 6, "q2") == Consumed(4, 2)
    usage = await store.pool_usage(pool)
    assert (usage.pool_id, usage.used, usage.free_units) == ("grounding-daily", 12, 10)
    assert usage.resets_at == dt.datetime(2026, 5, 2, tzinfo=dt.timezone.utc)


async def test_a_clean_up_keeps_the_budgets_listed_with_when_they_were_last_seen() -> None:
    clock = _Clock(T0)
    store = MemoryStore(clock=clock)
    first, second = budget("tenant:a", "rolling:1h", "5"), budget("tenant:b", "calendar:day", "7")
    assert (await store.reserve("r1", [first], D("1"), 60)).granted
    clock.now = T0 + 2  # the next reserve runs a clean-up
    assert (await store.reserve("r2", [second], D("1"), 60)).granted
    listed = [(s.budget, s.last_seen) for s in await store.list_scopes()]
    utc = dt.timezone.utc
    assert listed == [(first, dt.datetime.fromtimestamp(T0, utc)), (second, dt.datetime.fromtimestamp(T0 + 2, utc))]


async def test_todays_rate_outcomes_survive_a_clean_up_and_add_up_over_the_day() -> None:
    clock = _Clock(at("2026-05-01T00:00:00"))
    store = MemoryStore(clock=clock)
    pool = count_tokens_pool("proj-a")
    assert await store.rate_outcomes(pool, "counted") == {"counted": 1}
    clock.now += 2  # the take below runs a clean-up
    assert (await store.take_rate(pool)).granted
    assert await store.rate_outcomes(pool, "counted") == {"counted": 2}
    clock.now = at("2026-05-01T23:59:59.999")
    assert (await store.take_rate(pool)).granted
    assert await store.rate_outcomes(pool, "cache_hit") == {"counted": 2, "cache_hit": 1}
    clock.now = at("2026-05-02T00:00:00")  # a new UTC day
    assert await store.rate_outcomes(pool) == {}
