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
