"""The memory store's running total of held nano-USD per budget always equals the sum of the live holds.

A model (a plain dict of the holds the test made, with their expiry) is driven with the store through
random reserve / settle / release / clock-advance sequences on the ``FakeClock``; after every step each
budget's held amount (snapshot spend minus settled spend), the store's grant decisions and its internal
running total must match the model's sum of live holds (not settled, not released, not expired).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.ledger import BudgetScope, Window
from router.ledger.memory import MemoryStore
from router.ledger.money import from_nano
from tests.fixtures_redis import FakeClock

NANO = 1_000_000_000
#: Calendar-month windows: the clock (mid-June 2025) never leaves the month, so settled spend is the sum of bills.
BUDGETS = [
    BudgetScope("global", Window.parse("calendar:month"), Decimal("0.00005")),
    BudgetScope("tenant:a", Window.parse("calendar:month@Europe/Paris"), Decimal("0.00002")),
    BudgetScope("app:x", Window.parse("calendar:month"), Decimal(1)),
]
LIMITS = {b.id: int(b.limit_usd * NANO) for b in BUDGETS}

reserve_op = st.tuples(st.just("reserve"), st.sets(st.integers(0, len(BUDGETS) - 1), min_size=1),
                       st.integers(0, 9_000), st.sampled_from([0.001, 0.5, 1, 3, 10]))
reuse_op = st.tuples(st.just("reuse"), st.integers(0, 50))
settle_op = st.tuples(st.just("settle"), st.integers(0, 50), st.integers(0, 12_000))
release_op = st.tuples(st.just("release"), st.integers(0, 50))
advance_op = st.tuples(st.just("advance"), st.sampled_from([0.0005, 0.001, 0.3, 0.999, 1, 1.5, 4]))
ops = st.lists(st.one_of(reserve_op, reuse_op, settle_op, release_op, advance_op), max_size=60)


async def _run(steps: list[tuple]) -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    made: list[tuple[str, tuple[str, ...], int, int]] = []  # (rid, budget ids, nano, expires_ms) of granted reservations
    live: dict[str, tuple[tuple[str, ...], int, int]] = {}  # rid -> (bids, nano, expires_ms): held, not settled/released
    settled = dict.fromkeys(LIMITS, 0)

    def now_ms() -> int:
        return int(clock.now * 1000)

    def held(bid: str) -> int:
        return sum(nano for bids, nano, exp in live.values() if bid in bids and exp > now_ms())

    for n, step in enumerate(steps):
        kind = step[0]
        if kind == "reserve":
            _, which, nano, ttl = step
            chosen = [BUDGETS[i] for i in sorted(which)]
            fits = all(settled[b.id] + held(b.id) + nano <= LIMITS[b.id] for b in chosen)
            rid = f"r{n}"
            result = await store.reserve(rid, chosen, from_nano(nano), ttl)
            assert result.granted is fits
            if fits:
                expires = now_ms() + int(Decimal(str(ttl)) * 1000)
                bids = tuple(b.id for b in chosen)
                made.append((rid, bids, nano, expires))
                live[rid] = (bids, nano, expires)
        elif kind == "reuse" and made:  # the same id again: idempotent, holds nothing more
            rid, bids, nano, _ = made[step[1] % len(made)]
            result = await store.reserve(rid, [b for b in BUDGETS if b.id in bids], Decimal(1), 5)
            assert result.granted and result.amount == from_nano(nano)
        elif kind == "settle" and made:
            rid, bids, _, _ = made[step[1] % len(made)]
            first = await store.settle(rid, from_nano(step[2]))
            if first:  # settle-after-expiry books too; only the first settle counts
                for bid in bids:
                    settled[bid] += step[2]
            live.pop(rid, None)
        elif kind == "release" and made:
            rid = made[step[1] % len(made)][0]
            await store.release(rid)
            live.pop(rid, None)
        elif kind == "advance":
            clock.advance(step[1])
        snap = await store.snapshot(BUDGETS, [], [])
        for b in BUDGETS:
            assert await store.spend(b) == from_nano(settled[b.id])
            assert snap.spend[b.id] == from_nano(settled[b.id] + held(b.id))
        for bid, holds in store._holds.items():  # the running total is exactly the sum of what it still lists
            assert holds.total == sum(nano for nano, _ in holds.by_rid.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_running_held_total_equals_sum_of_live_holds(steps):
    asyncio.run(_run(steps))


def test_expired_hold_leaves_the_total_and_a_late_settle_still_books():
    async def scenario() -> None:
        clock = FakeClock()
        store = MemoryStore(clock=clock)
        b = BUDGETS[2]
        assert (await store.reserve("a", [b], Decimal("0.4"), 1)).granted
        assert (await store.reserve("b", [b], Decimal("0.3"), 10)).granted
        clock.advance(1)  # "a" expires exactly now
        assert (await store.snapshot([b], [], [])).spend[b.id] == Decimal("0.3")
        assert (await store.reserve("c", [b], Decimal("0.7"), 10)).granted  # 0.3 + 0.7 = 1: fits exactly
        assert not (await store.reserve("d", [b], Decimal("0.000000001"), 10)).granted
        assert await store.settle("a", Decimal("0.1")) is True  # after its expiry: booked, no hold to drop
        assert (await store.snapshot([b], [], [])).spend[b.id] == Decimal("1.1")
        assert await store.release("b") is True
        assert (await store.snapshot([b], [], [])).spend[b.id] == Decimal("0.8")

    asyncio.run(scenario())
