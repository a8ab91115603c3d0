"""Budget leases: a reserve batch's reply that reports a slice size from BEFORE a settle batch shrank
the slice must never be taken as current (the settled bills would be granted again: the cap was
overshot under heavy load, when a settle batch's reply overtook a reserve batch's reply)."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import pytest

from router.ledger import BudgetScope, Window, store_from_url

pytestmark = pytest.mark.redis_server
D = Decimal


def test_settle_batch_during_reserve_reply_does_not_overshoot(redis_server, unique_prefix, tmp_path):
    budget = BudgetScope("tenant:order", Window.parse("rolling:1h"), D("1.000000007"))
    url = f"{redis_server.url}?leases=on&settle_log={tmp_path}&flush_ms=600000"

    async def main() -> None:
        store = store_from_url(url, prefix=unique_prefix)
        try:
            # 20 concurrent reservations: one batch, enough demand for a slice
            first = await asyncio.gather(*(store.reserve(f"a{i}", [budget], D("0.01"), 30) for i in range(20)))
            assert all(r.granted for r in first)
            for i in range(20):
                assert await store.settle(f"a{i}", D("0.01"))
            await store.flush(confirm=False)
            assert (await store.reserve("local", [budget], D("0.01"), 30)).granted
            assert store.local_grants == 1  # granted from the slice
            assert await store.settle("local", D("0.01"))  # logged: shrinks the slice once applied

            real_run = store._run
            flushed = asyncio.Event()

            async def slow_reply(name, keys, args):  # noqa: ANN001, ANN202
                out = await real_run(name, keys, args)
                if name == "reserve_batch":  # the reply is processed late (a busy event loop)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(flushed.wait(), 0.3)
                return out

            async def flush_meanwhile() -> None:
                await asyncio.sleep(0)
                await store.flush(confirm=False)
                flushed.set()

            store._run = slow_reply  # type: ignore[method-assign]
            big, _ = await asyncio.gather(store.reserve("big", [budget], D("0.5"), 30), flush_meanwhile())
            store._run = real_run  # type: ignore[method-assign]
            assert big.granted
            assert await store.settle("big", D("0.5"))
            granted = 0
            while (await store.reserve(f"b{granted}", [budget], D("0.01"), 30)).granted:
                assert await store.settle(f"b{granted}", D("0.01"))
                granted += 1
            # 1.00 - 0.20 - 0.01 - 0.50 = 0.29 left: exactly 29 more bills of 0.01, not one more
            assert granted == 29
            assert await store.spend(budget) == D("1.00")
        finally:
            await store.close()
        plain = store_from_url(redis_server.url, prefix=unique_prefix)
        assert await plain.spend(budget) == D("1.00")
        await plain.close()

    asyncio.run(main())
