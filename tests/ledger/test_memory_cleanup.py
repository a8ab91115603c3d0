"""The memory store forgets a reservation record exactly when its idempotency window ends, and no earlier:
the clean-up pops due records from a heap instead of scanning every record kept for 48 h once a second
(with a day of traffic kept, the scan stalled every call that triggered it for the length of the scan)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.errors import StoreError
from router.ledger import MemoryStore, QuotaPool
from router.ledger.base import IDEMPOTENCY_TTL_MS, RECORD_GRACE_MS
from tests.fixtures_redis import FakeClock
from tests.ledger.helpers import budget

D = Decimal
T0 = 1_750_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


async def _tick(store: MemoryStore, clock: FakeClock, seconds: float) -> None:
    """Move the clock and run one operation (the clean-up runs inside operations, at most once a second)."""
    clock.advance(seconds)
    assert (await store.reserve(f"tick-{clock.now}", [budget("tenant:tick", limit="1000")], D("0.01"), 30)).granted


async def test_a_settled_record_outlives_its_held_grace_and_is_forgotten_after_the_idempotency_window(clock):
    store = MemoryStore(clock)
    b = budget(limit="10")
    assert (await store.reserve("r", [b], D("1"), 30)).granted
    clock.advance(10)
    assert await store.settle("r", D("0.5"))
    # the held record's own due time (reserve + ttl + grace) passes: the settled record is kept (extended)
    await _tick(store, clock, 30 + RECORD_GRACE_MS / 1000 - 10 + 5)
    assert await store.settle("r", D("0.5")) is False  # still known: a retried settle books nothing
    # one ms before the settle's window ends it is still known; past it, it is gone
    await _tick(store, clock, (10 + IDEMPOTENCY_TTL_MS / 1000) - (30 + RECORD_GRACE_MS / 1000 + 5) - 0.002)
    assert await store.settle("r", D("0.5")) is False
    await _tick(store, clock, 1.5)
    with pytest.raises(StoreError, match="unknown reservation"):
        await store.settle("r", D("0.5"))


async def test_a_released_record_keeps_the_longer_of_its_windows(clock):
    store = MemoryStore(clock)
    b = budget(limit="10")
    assert (await store.reserve("r", [b], D("1"), 30)).granted
    assert await store.release("r")
    await _tick(store, clock, IDEMPOTENCY_TTL_MS / 1000 - 1)
    assert await store.release("r") is False  # known, already released
    assert await store.settle("r", D("0.25"))  # a late settle after a release still books (the contract)
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.25")


async def test_an_unsettled_hold_expires_and_its_record_goes_after_the_grace(clock):
    store = MemoryStore(clock)
    b = budget(limit="10")
    assert (await store.reserve("r", [b], D("1"), 30)).granted
    await _tick(store, clock, 31)
    assert (await store.snapshot([b], [], [])).spend[b.id] == 0  # the hold expired
    await _tick(store, clock, RECORD_GRACE_MS / 1000 - 31 + 29.9)
    assert await store.settle("r", D("0.4"))  # within the grace: a late settle still books
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.4")


async def test_a_grounding_request_is_counted_once_for_its_idempotency_window(clock):
    store = MemoryStore(clock)
    pool = QuotaPool("flash-grounding", 10, "month", "UTC")
    assert (await store.consume(pool, 3, "q1")).free_units == 3
    await _tick(store, clock, 3600)
    assert (await store.consume(pool, 3, "q1")).free_units == 3  # the same request again: same answer
    assert (await store.pool_usage(pool)).used == 3
    many = [f"q-{i}" for i in range(50)]
    for rid in many:
        await store.consume(pool, 0, rid)
    await _tick(store, clock, IDEMPOTENCY_TTL_MS / 1000)
    assert len(store._pool_requests) == 0 and len(store._pool_request_due) == 0  # all forgotten, heap drained


async def test_a_record_whose_window_ends_exactly_at_a_clean_up_is_forgotten_then(clock):
    # reserve at T0 with a 30 s hold: the record is kept until T0 + 30 s + the 24 h grace, and the clean-up that
    # runs at exactly that millisecond forgets it (it is popped from the due heap then: one that kept it would
    # keep it for ever, and a settle days later would still book the expired hold)
    store = MemoryStore(clock)
    b = budget(limit="10")
    assert (await store.reserve("r", [b], D("1"), 30)).granted
    clock.set(T0 + 30 + RECORD_GRACE_MS / 1000)
    assert (await store.reserve("at-the-end", [budget("tenant:tick", limit="1000")], D("0.01"), 30)).granted  # runs the clean-up
    await _tick(store, clock, 3600)
    with pytest.raises(StoreError, match="unknown reservation"):
        await store.settle("r", D("0.5"))
    assert (await store.snapshot([b], [], [])).spend[b.id] == 0


async def test_an_unsettled_record_is_forgotten_once_its_grace_ends(clock):
    # a 30 s hold never settled: its record lives 30 s + the 24 h grace, then a settle is refused (nothing books
    # a hold that old); clean-ups ran all along, so one that dropped the record's due entry early shows here
    store = MemoryStore(clock)
    b = budget(limit="10")
    assert (await store.reserve("r", [b], D("1"), 30)).granted
    for _ in range(3):
        await _tick(store, clock, 8 * 3600)  # 24 h in clean-ups
    await _tick(store, clock, 30 + 1.5)  # past the end of the grace
    with pytest.raises(StoreError, match="unknown reservation"):
        await store.settle("r", D("0.5"))
    assert (await store.snapshot([b], [], [])).spend[b.id] == 0
