"""Ledger latency and throughput: reserve + settle on a real redis-server this script starts itself.

Measures, for one budget scope and for three (global + tenant + app, rolling and calendar windows):

* sequential reserve+settle latency p50 / p99 (ms) and operations per second;
* throughput at 64 concurrent reserve+settle cycles on one event loop;
* the in-process memory store, for reference.

Prints a markdown table. Target: reserve+settle p50 <= 0.25 ms on loopback.

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


async def run(url: str, cycles: int, concurrency: int) -> list[tuple[str, str, float, float, float, float]]:
    rows = []
    store = store_from_url(url, prefix="bench" + uuid.uuid4().hex[:6])
    try:
        for label, budgets in (("1 scope", ONE), ("3 scopes", THREE)):
            lat, seq_ops = await sequential(store, budgets, cycles)
            conc_ops = await concurrent(store, budgets, cycles, concurrency)
            rows.append((url.split("://")[0], label, statistics.median(lat), pct(lat, 0.99), seq_ops, conc_ops))
    finally:
        await store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    opts = parser.parse_args()
    rows = asyncio.run(run("memory://", opts.cycles, opts.concurrency))
    with RedisServer() as server:
        rows += asyncio.run(run(server.url, opts.cycles, opts.concurrency))
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


if __name__ == "__main__":
    main()
