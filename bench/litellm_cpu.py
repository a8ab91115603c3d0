"""Where the Router's added CPU goes when it calls litellm: plain ``litellm.acompletion(mock_response=...)``
side by side with the same call through this Router, in one process, counting load-independent work.

Variants (each makes ``--calls`` sequential calls, after a warm-up):

* ``plain``: ``litellm.acompletion(model=..., messages=..., max_tokens=..., mock_response=...)`` (as bench/overhead.py);
* ``plain+ours``: ``litellm.acompletion`` with exactly the keyword arguments the Router's transport passed
  (captured from one routed call): what litellm does extra because of our kwargs, without the Router;
* ``memory``: this Router on the memory store;
* ``leases``: this Router on a real redis-server (router.testing's RedisServer) with ``?leases=on``.

    python bench/litellm_cpu.py [--calls 2000] [--only plain,memory] [--diff leases [--base memory]] [--top 40]

Per call it prints: CPU µs (``time.process_time``), Python function calls (cProfile's count), GC
collections (and GC time in µs, from ``gc.callbacks``), asyncio tasks created. ``--diff VARIANT`` prints the
functions VARIANT calls more often than ``plain`` (or ``--base``) (calls per call, cProfile), biggest first: the extra
litellm / asyncio work the Router causes.
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
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from overhead import MAX_TOKENS, MESSAGES, MOCK, MODEL, bench_policy  # noqa: E402

Call = Callable[[], Awaitable[object]]


class TaskCounter:
    """Counts the asyncio tasks created on the running loop (through its task factory)."""

    def __init__(self) -> None:
        self.count = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = loop.get_task_factory()

        def factory(loop: asyncio.AbstractEventLoop, coro, **kwargs):  # type: ignore[no-untyped-def]
            self.count += 1
            if previous is not None:
                return previous(loop, coro, **kwargs)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(factory)


async def measure(call: Call, calls: int, tasks: TaskCounter) -> dict[str, float]:
    gc_time = [0.0]
    started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            gc_time[0] += time.perf_counter() - started.pop()

    gc.collect()
    collections0 = sum(s["collections"] for s in gc.get_stats())
    tasks0 = tasks.count
    gc.callbacks.append(on_gc)
    try:
        t0 = time.process_time()
        for _ in range(calls):
            await call()
        cpu = time.process_time() - t0
    finally:
        gc.callbacks.remove(on_gc)
    collections = sum(s["collections"] for s in gc.get_stats()) - collections0
    return {"cpu_us": cpu / calls * 1e6, "gc": collections / calls, "gc_us": gc_time[0] / calls * 1e6, "tasks": (tasks.count - tasks0) / calls}


async def profile(call: Call, calls: int) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        await call()
    profiler.disable()
    return pstats.Stats(profiler)


def per_function(stats: pstats.Stats, calls: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for (file, line, name), (_cc, nc, _tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = file.split("site-packages/")[-1].split("/router/")[-1] if "/" in file else file
        out[f"{short}:{line}({name})"] = out.get(f"{short}:{line}({name})", 0) + nc / calls
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the CPU columns are medians over rounds)")
    parser.add_argument("--profile-calls", type=int, default=300)
    parser.add_argument("--only", default="plain,plain+ours,memory,leases")
    parser.add_argument("--diff", default="", help="variant whose extra function calls over plain to list")
    parser.add_argument("--base", default="plain", help="the variant --diff compares with (default plain)")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()

    import litellm

    from router import Router
    from router.testing.redis_server import RedisServer

    litellm.suppress_debug_info = True
    tasks = TaskCounter()
    tasks.install(asyncio.get_running_loop())
    tmp = Path(tempfile.mkdtemp(prefix="router-litellm-cpu-"))
    policy = str(bench_policy(tmp / "policy.yaml"))
    wanted = [v.strip() for v in args.only.split(",") if v.strip()]
    for extra in (args.diff, args.base if args.diff else ""):
        if extra and extra not in wanted:
            wanted.append(extra)
    server = RedisServer() if "leases" in wanted else None
    if server is not None:
        server.start()
    routers: list[Router] = []
    try:
        memory = Router(policy=policy, store="memory://", watch_policy=False)
        routers.append(memory)
        # the exact kwargs our transport passes to litellm, captured from one routed call
        captured: dict = {}
        await memory.acomplete(MESSAGES, tenant="bench", max_tokens=MAX_TOKENS, mock_response=MOCK)
        transport = memory.transport
        real = transport._acompletion

        async def spy(**kwargs):  # type: ignore[no-untyped-def]
            captured.update(kwargs)
            return await real(**kwargs)

        transport._acompletion = spy
        await memory.acomplete(MESSAGES, tenant="bench", max_tokens=MAX_TOKENS, mock_response=MOCK)
        transport._acompletion = real
        print(f"# our kwargs to litellm: {sorted(captured)}")

        variants: dict[str, Call] = {
            "plain": lambda: litellm.acompletion(model=MODEL, messages=MESSAGES, max_tokens=MAX_TOKENS, mock_response=MOCK),
            "plain+ours": lambda: litellm.acompletion(**captured),
            "memory": lambda: memory.acomplete(MESSAGES, tenant="bench", max_tokens=MAX_TOKENS, mock_response=MOCK),
        }
        if server is not None:
            leases = Router(policy=policy, store=f"{server.url}?leases=on&settle_log={tmp / 'settle-log'}", key_prefix="cpu-leases", watch_policy=False)
            routers.append(leases)
            variants["leases"] = lambda: leases.acomplete(MESSAGES, tenant="bench", max_tokens=MAX_TOKENS, mock_response=MOCK)
        variants = {k: v for k, v in variants.items() if k in wanted}
        for call in variants.values():  # warm up
            for _ in range(300):
                await call()
        print(f"# load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {args.calls} calls per variant")
        print("| variant | CPU µs/call | Python calls/call | GC collections/call | GC µs/call | tasks/call |")
        print("|---|---:|---:|---:|---:|---:|")
        functions: dict[str, dict[str, float]] = {}
        totals: dict[str, float] = {}
        for name, call in variants.items():
            stats = await profile(call, args.profile_calls)
            functions[name] = per_function(stats, args.profile_calls)
            totals[name] = stats.total_calls / args.profile_calls  # type: ignore[attr-defined]
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.rounds):  # interleaved, rotating order: load drifting during the run hits all alike
            for name in names[r % len(names) :] + names[: r % len(names)]:
                rounds[name].append(await measure(variants[name], args.calls, tasks))
        for name in names:
            m = {key: statistics.median(x[key] for x in rounds[name]) for key in rounds[name][0]}
            print(f"| {name} | {m['cpu_us']:.0f} | {totals[name]:.0f} | {m['gc']:.3f} | {m['gc_us']:.1f} | {m['tasks']:.2f} |", flush=True)
        if args.diff:
            base, other = functions[args.base], functions[args.diff]
            delta = {k: other.get(k, 0) - base.get(k, 0) for k in set(base) | set(other)}
            print(f"\n# functions {args.diff} calls more (or less) often than {args.base}, per call")
            for key, value in sorted(delta.items(), key=lambda kv: -abs(kv[1]))[: args.top]:
                if abs(value) >= 0.01:
                    print(f"{value:+8.2f}  {key}")
    finally:
        for router in routers:
            try:
                await router.aclose()
            except Exception:  # noqa: BLE001
                pass
        if server is not None:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
