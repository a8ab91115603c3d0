"""Routing overhead per call, side by side with LiteLLM's Router.

Overhead = (time of a call through the routing layer) - (time of a plain ``litellm.acompletion`` with the
same ``mock_response`` in the same run), so litellm's own per-call cost cancels out. Measured:

* this Router (decision + reserve + settle + adapter) on the memory store and on a real redis-server;
* LiteLLM's ``Router`` with ``simple-shuffle`` and with ``usage-based-routing-v2`` on the same Redis;

sequentially and at 50 concurrent calls. Prints a markdown table (p50 / p99 added overhead in ms, calls/s).

    python bench/overhead.py [--calls 2000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MESSAGES = [{"role": "user", "content": "Summarise the quarterly report in three bullet points."}]
MOCK = "Revenue grew; costs fell; outlook stable."
MODEL = "vertex_ai/gemini-2.5-flash"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(make_call, calls: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            t0 = time.perf_counter()
            await make_call()
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    return latencies, calls / (time.perf_counter() - start)


def bench_policy(path: Path) -> Path:
    path.write_text(
        """version: 1
candidates:
  - {model: gemini-2.5-flash}
  - {model: gemini-2.5-flash-lite}
  - {model: gemini-2.0-flash}
profiles:
  default: {objective: cheapest}
default_profile: default
budgets:
  - name: global-daily
    scope: global
    window: calendar:day@UTC
    limit_usd: "100000"
  - name: per-tenant
    scope: tenant
    window: rolling:24h
    limit_usd: "100000"
""",
        encoding="utf-8",
    )
    return path


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    import litellm

    from router import Router
    from router.testing.redis_server import RedisServer

    litellm.suppress_debug_info = True
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "router-bench"
    tmp.mkdir(exist_ok=True)
    policy = bench_policy(tmp / "bench-policy.yaml")
    server = RedisServer()
    server.start()
    try:
        redis_url = server.url
        ours_mem = Router(policy=str(policy), store="memory://")
        ours_redis = Router(policy=str(policy), store=redis_url)
        ll_shuffle = litellm.Router(
            model_list=[{"model_name": "m", "litellm_params": {"model": MODEL, "mock_response": MOCK}}],
            routing_strategy="simple-shuffle",
        )
        ll_usage = litellm.Router(
            model_list=[{"model_name": "m", "litellm_params": {"model": MODEL, "mock_response": MOCK, "tpm": 10**9, "rpm": 10**9}}],
            routing_strategy="usage-based-routing-v2",
            redis_host="127.0.0.1",
            redis_port=server.port,
        )

        async def plain() -> None:
            await litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response=MOCK)

        async def ours(router: Router) -> None:
            await router.acomplete(MESSAGES, tenant="bench", max_tokens=256, mock_response=MOCK)

        layers = {
            "vertex-policy-router (memory store)": lambda: ours(ours_mem),
            "vertex-policy-router (real Redis)": lambda: ours(ours_redis),
            "LiteLLM Router simple-shuffle": lambda: ll_shuffle.acompletion(model="m", messages=MESSAGES),
            "LiteLLM Router usage-based-routing-v2 (Redis)": lambda: ll_usage.acompletion(model="m", messages=MESSAGES),
        }
        for make in (plain, *layers.values()):  # warm up every path (imports, connections, scripts)
            await timed(make, 50, 10)

        rows = []
        for concurrency in (1, args.concurrency):
            base, _ = await timed(plain, args.calls, concurrency)
            base_p50, base_p99 = pct(base, 0.5), pct(base, 0.99)
            for name, make in layers.items():
                lat, rate = await timed(make, args.calls, concurrency)
                rows.append((name, concurrency, (pct(lat, 0.5) - base_p50) * 1000, (pct(lat, 0.99) - base_p99) * 1000, rate))
            rows.append(("plain litellm.acompletion (baseline)", concurrency, base_p50 * 1000, base_p99 * 1000, None))
        print("| layer | concurrency | p50 added overhead (ms) | p99 added overhead (ms) | calls/s |")
        print("|---|---|---|---|---|")
        for name, conc, p50, p99, rate in rows:
            if rate is None:
                print(f"| {name} | {conc} | {p50:.3f} (absolute) | {p99:.3f} (absolute) | |")
            else:
                print(f"| {name} | {conc} | {p50:.3f} | {p99:.3f} | {rate:,.0f} |")
        await ours_redis.aclose()
        await ours_mem.aclose()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
