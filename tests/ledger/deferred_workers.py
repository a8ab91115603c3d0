"""Worker processes for the deferred-settlement and lease tests (top-level functions: started with ``spawn``)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal


def settle_and_hang(url: str, prefix: str, bills: list[str], ready) -> None:  # noqa: ANN001
    """Reserve and settle every bill (settles acknowledged, none flushed: the URL's flush interval is long),
    say so, then hang until killed."""
    from router.ledger import BudgetScope, Window, store_from_url

    budget = BudgetScope("tenant:killed", Window.parse("rolling:24h"), Decimal("1000"))

    async def main() -> None:
        store = store_from_url(url, prefix=prefix)
        for i, bill in enumerate(bills):
            r = await store.reserve(f"k-{i}", [budget], Decimal("1"), 2.0)
            assert r.granted
            assert await store.settle(f"k-{i}", Decimal(bill))
        ready.set()
        while True:
            await asyncio.sleep(3600)

    asyncio.run(main())
    time.sleep(3600)  # pragma: no cover


def contend_with_leases(url: str, prefix: str, cap: str, amount: str, worker: int, streams: int, barrier, results) -> None:  # noqa: ANN001
    """``streams`` concurrent reserve -> settle loops against one capped budget, each until its first
    denial; reports (worker, granted count, granted nano, reservations granted from slices)."""
    import random

    from router.ledger import BudgetScope, Window, store_from_url

    budget = BudgetScope("tenant:contended", Window.parse("rolling:1h"), Decimal(cap))
    wide = BudgetScope("global", Window.parse("calendar:day@Europe/Paris"), Decimal("1000000"))
    rng = random.Random(worker)
    bill = Decimal(amount)

    async def stream(store, s: int) -> int:  # noqa: ANN001
        granted = 0
        while True:
            rid = f"w{worker}-{s}-{granted}"
            r = await store.reserve(rid, [wide, budget], bill, 30)
            if not r.granted:
                assert r.denied_scope == budget.id, r
                return granted
            granted += 1
            if rng.random() < 0.5:
                await asyncio.sleep(rng.random() * 0.005)
            assert await store.settle(rid, bill)

    async def main() -> tuple[int, int]:
        store = store_from_url(url, prefix=prefix)
        try:
            await store.snapshot([], [], [])  # connect before the start line
            barrier.wait()
            got = await asyncio.gather(*(stream(store, s) for s in range(streams)))
            local = store.local_grants
        finally:
            await store.close()
        return sum(got), local

    count, local = asyncio.run(main())
    results.put((worker, count, local))
