"""Ledger latency and throughput: reserve + settle on a real redis-server this script starts itself.

Measures, for one budget scope and for three (global + tenant + app, rolling and calendar windows):

* sequential reserve+settle latency p50 / p99 (ms) and operations per second;
* throughput at 64 concurrent reserve+settle cycles on one event loop;
* the in-process memory store, for reference.

* the same on Redis with deferred settlement (``?settle=deferred``) and with budget leases
  (``?leases=on``: reservations granted from this process's slices);
* the staleness bound: how long after ``settle`` returns another store (another process) sees the bill
  in ``spend`` (deferred settlement, default 20 ms flush interval).

Prints markdown tables. Target: reserve+settle p50 <= 0.25 ms on loopback; staleness <= 100 ms.

    python bench/ledger.py [--cycles 5000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.ledger import BudgetScope, Window, store_from_url  # noqa: E402
from router.testing.redis_server import RedisServer  # noqa: E402

ONE = [BudgetScope("global", Window.parse("rolling:24h"), Decimal("1000000"))]
THREE = ONE + [
    BudgetScope("tenant:acme", Window.parse("calendar:month@America/Los_Angeles"), Decimal("1000000")),
    BudgetScope("app:search", Window.parse("rolling:1h"), Decimal("1000000")),
]
AMOUNT, ACTUAL = Decimal("0.0123"), Decimal("0.004567891")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sequential(store, budgets, cycles: int) -> tuple[list[float], float]:  # noqa: ANN001
    tag = uuid.uuid4().hex[:8]
    for i in range(200):  # warm-up: connections, scripts loaded
        await store.reserve(f"w{tag}{i}", budgets, AMOUNT, 60)
        await store.settle(f"w{tag}{i}", ACTUAL)
    latencies = []
    start = time.perf_counter()
    for i in range(cycles):
        t0 = time.perf_counter()
        r = await store.reserve(f"s{tag}{i}", budgets, AMOUNT, 60)
        await store.settle(f"s{tag}{i}", ACTUAL)
        latencies.append((time.perf_counter() - t0) * 1000)
        assert r.granted
    return latencies, cycles / (time.perf_counter() - start)


async def concurrent(store, budgets, cycles: int, concurrency: int) -> float:  # noqa: ANN001
    tag = uuid.uuid4().hex[:8]
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await store.reserve(f"c{tag}{i}", budgets, AMOUNT, 60)
            await store.settle(f"c{tag}{i}", ACTUAL)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(cycles)))
    return cycles / (time.perf_counter() - start)


async def run(url: str, cycles: int, concurrency: int, name: str | None = None) -> list[tuple[str, str, float, float, float, float]]:
    rows = []
    store = store_from_url(url, prefix="bench" + uuid.uuid4().hex[:6])
    try:
        for label, budgets in (("1 scope", ONE), ("3 scopes", THREE)):
            lat, seq_ops = await sequential(store, budgets, cycles)
            conc_ops = await concurrent(store, budgets, cycles, concurrency)
            rows.append((name or url.split("://")[0], label, statistics.median(lat), pct(lat, 0.99), seq_ops, conc_ops))
    finally:
        await store.close()
    return rows


async def staleness(server_url: str, log_dir: str, samples: int) -> list[float]:
    """Milliseconds from ``settle`` returning on a deferred store to another store seeing it in ``spend``."""
    prefix = "stale" + uuid.uuid4().hex[:6]
    writer = store_from_url(f"{server_url}?settle=deferred&settle_log={log_dir}", prefix=prefix)
    reader = store_from_url(server_url, prefix=prefix)
    lags = []
    try:
        seen = await reader.spend(ONE[0])
        for i in range(samples):
            assert (await writer.reserve(f"s{i}", ONE, AMOUNT, 60)).granted
            await asyncio.sleep(0.003)  # let the previous flush finish: each sample starts from a quiet flusher
            start = time.perf_counter()
            await writer.settle(f"s{i}", ACTUAL)
            while (now := await reader.spend(ONE[0])) == seen:
                pass
            lags.append((time.perf_counter() - start) * 1000)
            seen = now
    finally:
        await writer.close()
        await reader.close()
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--staleness-samples", type=int, default=300)
    opts = parser.parse_args()
    import os
    import tempfile

    rows = asyncio.run(run("memory://", opts.cycles, opts.concurrency))
    with RedisServer() as server, tempfile.TemporaryDirectory() as logs:
        rows += asyncio.run(run(server.url, opts.cycles, opts.concurrency))
        rows += asyncio.run(run(f"{server.url}?settle=deferred&settle_log={logs}/d", opts.cycles, opts.concurrency, "redis, settle=deferred"))
        rows += asyncio.run(run(f"{server.url}?leases=on&settle_log={logs}/l", opts.cycles, opts.concurrency, "redis, leases=on"))
        lags = asyncio.run(staleness(server.url, f"{logs}/s", opts.staleness_samples))
    try:
        import hiredis  # noqa: F401

        parser_name = "hiredis"
    except ImportError:
        parser_name = "pure-Python parser"
    print(f"reserve+settle, {opts.cycles} cycles, Python {sys.version.split()[0]}, redis-py {__import__('redis').__version__} ({parser_name})\n")
    print(f"| store | budgets | p50 ms | p99 ms | sequential cycles/s | cycles/s at {opts.concurrency} concurrent |")
    print("|---|---|---:|---:|---:|---:|")
    for store, label, p50, p99, seq, conc in rows:
        print(f"| {store} | {label} | {p50:.3f} | {p99:.3f} | {seq:,.0f} | {conc:,.0f} |")
    print(f"\nstaleness (settle=deferred, flush every 20 ms): another store sees a settled bill after "
          f"p50 {statistics.median(lags):.1f} ms, p99 {pct(lags, 0.99):.1f} ms, max {max(lags):.1f} ms ({len(lags)} samples)")
    print(f"load average while measuring: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
