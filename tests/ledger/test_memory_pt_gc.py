"""The memory store's periodic clean-up keeps a Provisioned Throughput counter while its window still holds
tokens, and forgets it once they aged out (issue 12: mutants of ``MemoryStore._gc`` survived). The window
is 30 one-second buckets (router.ledger.capacity)."""

from __future__ import annotations

from decimal import Decimal

from router.ledger import BudgetScope, Window, store_from_url
from tests.fixtures_redis import FakeClock

KEY = "gemini-2.0-flash@us-central1"
B = BudgetScope("tenant:gc", Window.parse("rolling:1h"), Decimal("10"))


async def test_a_clean_up_keeps_a_live_capacity_counter_and_drops_an_aged_one():
    clock = FakeClock(1_750_000_000.0)
    store = store_from_url("memory://", clock=clock)
    assert (await store.pt_claim(KEY, 1000, 5000)).granted
    clock.advance(2)
    assert (await store.reserve("r1", [B], Decimal("1"), 60)).granted  # runs the clean-up (2 s later)
    assert await store.pt_usage([KEY]) == {KEY: 1000}  # still in the 30 s window
    denied = await store.pt_claim(KEY, 4001, 5000)
    assert (denied.granted, denied.used) == (False, 1000)  # 1,000 + 4,001 > 5,000
    assert (await store.pt_claim(KEY, 4000, 5000)).granted  # exactly the capacity
    clock.advance(29)  # the first claim's bucket (t) left the window; the second's (t + 2 s) is still in it
    assert (await store.reserve("r2", [B], Decimal("1"), 60)).granted
    assert await store.pt_usage([KEY]) == {KEY: 4000}
    clock.advance(2)  # every bucket aged out
    assert (await store.reserve("r3", [B], Decimal("1"), 60)).granted
    assert await store.pt_usage([KEY]) == {KEY: 0}
    assert (await store.pt_claim(KEY, 5000, 5000)).granted  # the whole capacity again
    await store.close()
