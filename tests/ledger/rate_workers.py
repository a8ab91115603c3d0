"""Worker processes for the rate pool test on real Redis (top-level functions: started with ``spawn``)."""

from __future__ import annotations

import asyncio


def take_many(url: str, prefix: str, worker: int, n: int, barrier, results) -> None:  # noqa: ANN001
    """Take ``n`` requests from the shared Count Tokens pool of one project, concurrently."""
    from router.ledger import count_tokens_pool, store_from_url

    pool = count_tokens_pool("shared-project")

    async def main() -> int:
        store = store_from_url(url, prefix=prefix)
        try:
            await store.take_rate(pool, 0)  # connect before the start line
            barrier.wait()
            got = await asyncio.gather(*(store.take_rate(pool) for _ in range(n)))
        finally:
            await store.close()
        return sum(1 for g in got if g.granted)

    results.put((worker, asyncio.run(main())))
