"""The router's own CPU per call: ``Router.acomplete`` on the memory store with ``MockTransport(lightweight=True)``
(no litellm, no I/O), so what is measured is decision + reserve + bill + settle + the glue around them.

    python bench/router_cpu.py [--calls 20000] [--profile]     # --profile: cProfile's top functions

Prints the CPU time per call (``time.process_time``, median of rounds), the garbage collector's share, and
the number of Python function calls per request (cProfile's count: the same on a busy or a quiet machine).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from overhead import MESSAGES, bench_policy  # noqa: E402


async def run(calls: int, rounds: int, profile: bool) -> None:
    from router import Router
    from router.testing import MockTransport

    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "router-bench"
    tmp.mkdir(exist_ok=True)
    router = Router(policy=str(bench_policy(tmp / "cpu-policy.yaml")), store="memory://", transport=MockTransport(lightweight=True), watch_policy=False)
    for _ in range(500):  # warm up: imports, compiled rates, caches
        await router.acomplete(MESSAGES, tenant="bench", max_tokens=256)
    per_call: list[float] = []
    gc_share: list[float] = []
    gc_time = [0.0]
    started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            gc_time[0] += time.perf_counter() - started.pop()

    gc.callbacks.append(on_gc)
    profiler = cProfile.Profile() if profile else None
    try:
        for _ in range(rounds):
            gc_time[0] = 0.0
            if profiler:
                profiler.enable()
            t0 = time.process_time()
            for _ in range(calls):
                await router.acomplete(MESSAGES, tenant="bench", max_tokens=256)
            spent = time.process_time() - t0
            if profiler:
                profiler.disable()
            per_call.append(spent / calls)
            gc_share.append(gc_time[0] / spent if spent else 0.0)
    finally:
        gc.callbacks.remove(on_gc)
    counter = cProfile.Profile()  # function calls per request: a noise-free proxy of the work done
    counter.enable()
    for _ in range(200):
        await router.acomplete(MESSAGES, tenant="bench", max_tokens=256)
    counter.disable()
    calls_per_request = pstats.Stats(counter).total_calls / 200  # type: ignore[attr-defined]
    await router.aclose()
    print(f"Python function calls per request: {calls_per_request:.0f}")
    print(f"router CPU per call (memory store, MockTransport(lightweight=True)): {statistics.median(per_call) * 1e6:.1f} µs "
          f"(rounds: {', '.join(f'{v * 1e6:.1f}' for v in per_call)}); GC {statistics.median(gc_share) * 100:.1f} % of it")
    if profiler:
        pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime")).print_stats(int(os.environ.get("TOP", "35")))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.rounds, args.profile))


if __name__ == "__main__":
    main()
