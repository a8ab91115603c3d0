"""Worker processes for the real-Redis ledger tests (top-level functions: started with ``spawn``)."""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal


def contend(url: str, prefix: str, cap: str, worker: int, n: int, barrier, results) -> None:  # noqa: ANN001
    """Fire ``n`` concurrent reserve -> settle cycles of random amounts against one capped budget."""
    from router.ledger import BudgetScope, Window, store_from_url

    budget = BudgetScope("tenant:contended", Window.parse("rolling:1h"), Decimal(cap))
    other = BudgetScope("global", Window.parse("calendar:day@Europe/Paris"), Decimal("1000000"))
    rng = random.Random(worker)

    async def one(store, i: int) -> int:  # noqa: ANN001
        amount_nano = rng.randint(1, 500_000_000)  # up to 0.5 USD, any nano
        amount = Decimal(amount_nano).scaleb(-9)
        r = await store.reserve(f"w{worker}-{i}", [other, budget], amount, 30)
        if not r.granted:
            assert r.denied_scope == budget.id
            return 0
        await asyncio.sleep(rng.random() * 0.01)
        await store.settle(f"w{worker}-{i}", amount)
        return amount_nano

    async def main() -> tuple[int, int]:
        store = store_from_url(url, prefix=prefix)
        try:
            await store.snapshot([], [], [])  # connect before the start line
            barrier.wait()
            got = await asyncio.gather(*(one(store, i) for i in range(n)))
        finally:
            await store.close()
        return sum(got), sum(1 for g in got if g)

    total, count = asyncio.run(main())
    results.put((worker, total, count))


def hold_and_hang(url: str, prefix: str, n: int, ttl_s: float, ready) -> None:  # noqa: ANN001
    """Reserve ``n`` holds, say so, then hang until killed."""
    from router.ledger import BudgetScope, Window, store_from_url

    budget = BudgetScope("tenant:victim", Window.parse("rolling:24h"), Decimal("10"))

    async def main() -> None:
        store = store_from_url(url, prefix=prefix)
        for i in range(n):
            r = await store.reserve(f"doomed-{i}", [budget], Decimal("1"), ttl_s)
            assert r.granted
        ready.set()
        while True:
            await asyncio.sleep(3600)

    asyncio.run(main())
    time.sleep(3600)  # pragma: no cover
