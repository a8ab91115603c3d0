"""Process CPU per settled call with ``leases=on`` (budget leases + deferred settlement) on a real
redis-server, next to the memory store: what the settle flusher costs, without litellm.

    python bench/flusher_cpu.py [--calls 3000] [--rounds 5] [--concurrency 1,50] [--profile]

Every call is ``Router.acomplete`` with ``MockTransport(lightweight=True)`` (no litellm, no network
besides Redis). A round runs ``--calls`` calls (one at a time, or ``--concurrency`` at a time) and then
``flush()`` (so every settle of the round has reached Redis), and is timed with ``time.process_time``
(the whole process: the event loop thread and the fsync worker threads). Printed per store and
concurrency: the median CPU per call over rounds, and (load-independent) per call: Python function calls
(cProfile), Redis commands sent and arguments encoded by redis-py.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from overhead import MESSAGES, bench_policy  # noqa: E402


async def calls_at(router: object, calls: int, concurrency: int, gap_s: float = 0.0) -> None:
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await router.acomplete(MESSAGES, tenant="bench", max_tokens=256)  # type: ignore[attr-defined]
            if gap_s:
                await asyncio.sleep(gap_s)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    store = router.store()  # type: ignore[attr-defined]
    if hasattr(store, "flush"):
        await store.flush(confirm=True)


def print_diff(base: pstats.Stats, other: pstats.Stats, calls: int, top: int) -> None:
    """The functions whose own time per call grows most from ``base`` to ``other``."""
    a = base.stats  # type: ignore[attr-defined]
    b = other.stats  # type: ignore[attr-defined]
    rows = []
    for func in set(a) | set(b):
        (_, n0, t0, _, _), (_, n1, t1, _, _) = a.get(func, (0, 0, 0.0, 0, {})), b.get(func, (0, 0, 0.0, 0, {}))
        rows.append(((t1 - t0) / calls, n0 / calls, n1 / calls, func))
    if os.environ.get("DIFF_BY") == "calls":  # deterministic: the extra Python calls per call
        rows.sort(key=lambda r: (-(r[2] - r[1]), -r[0]))
    else:
        rows.sort(key=lambda r: (-r[0], -(r[2] - r[1])))
    print(f"   {'own µs/call':>11} {'calls/call':>10} {'(memory)':>9}  function")
    for dt, n0, n1, (file, line, name) in rows[:top]:
        print(f"   {dt * 1e6:+11.2f} {n1:10.2f} {n0:9.2f}  {Path(file).name}:{line}({name})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", default="1,50")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="each worker sleeps this long after each call "
                        "(paces the calls like a slower transport would: fewer settles per flush)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of the leases=on run")
    parser.add_argument("--diff", type=int, default=0, metavar="N", help="print the N functions whose own time per call "
                        "grows most from the memory store to leases=on (with calls per call in each; DIFF_BY=calls: "
                        "those called most more often)")
    args = parser.parse_args()

    from redis.asyncio.connection import AbstractConnection

    from router import Router
    from router.testing import MockTransport
    from router.testing.redis_server import RedisServer

    counts: Counter[str] = Counter()
    pack = AbstractConnection.pack_command

    def counting_pack(self: AbstractConnection, *a: object) -> object:
        counts["commands"] += 1
        counts["args"] += len(a)
        counts[str(a[0]).upper()] += 1
        return pack(self, *a)

    AbstractConnection.pack_command = counting_pack  # type: ignore[method-assign]
    to_executor = asyncio.BaseEventLoop.run_in_executor

    def counting_executor(self: asyncio.AbstractEventLoop, *a: object) -> object:
        counts["thread hops"] += 1
        return to_executor(self, *a)  # type: ignore[arg-type]

    asyncio.BaseEventLoop.run_in_executor = counting_executor  # type: ignore[method-assign,assignment]
    from router.ledger.file_thread import FileThread

    to_file_thread = FileThread.run

    def counting_file_thread(self: FileThread, call: object) -> object:  # the settle log's fsync hops
        counts["thread hops"] += 1
        return to_file_thread(self, call)  # type: ignore[arg-type]

    FileThread.run = counting_file_thread  # type: ignore[method-assign,assignment]
    tmp = Path(tempfile.mkdtemp(prefix="router-flusher-"))
    policy = str(bench_policy(tmp / "policy.yaml"))
    server = RedisServer()
    server.start()
    stores = {"memory": "memory://", "leases=on": f"{server.url}?leases=on&settle_log={tmp / 'settle-log'}"}
    print(f"# load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.calls} calls x {args.rounds} rounds, gap {args.gap_ms} ms")
    try:
        for conc in (int(c) for c in args.concurrency.split(",")):
            cpu: dict[str, float] = {}
            profiles: dict[str, pstats.Stats] = {}
            for name, url in stores.items():
                router = Router(policy=policy, store=url, transport=MockTransport(lightweight=True), key_prefix=f"fl{conc}", watch_policy=False)
                await calls_at(router, 500, conc, args.gap_ms / 1000)  # warm up: scripts, connections, slices
                per_call = []
                for _ in range(args.rounds):
                    t0 = time.process_time()
                    await calls_at(router, args.calls, conc, args.gap_ms / 1000)
                    per_call.append((time.process_time() - t0) / args.calls)
                counts.clear()
                profiler = cProfile.Profile()
                profiler.enable()
                await calls_at(router, args.calls, conc, args.gap_ms / 1000)
                profiler.disable()
                profiles[name] = pstats.Stats(profiler)
                fcalls = profiles[name].total_calls / args.calls  # type: ignore[attr-defined]
                await router.aclose()
                cpu[name] = statistics.median(per_call)
                print(
                    f"{name:>10} at {conc:>2} concurrent: CPU {cpu[name] * 1e6:7.1f} µs/call "
                    f"(rounds {', '.join(f'{v * 1e6:.0f}' for v in per_call)}); per call: {fcalls:6.1f} Python function calls, "
                    f"{counts['args'] / args.calls:.1f} encoded args; per 1000 calls: "
                    + ", ".join(f"{v * 1000 / args.calls:.0f} {k}" for k, v in sorted(counts.items()) if k not in ("args",)),
                    flush=True,
                )
                if args.profile and name != "memory":
                    stats = pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime"))
                    stats.print_stats(int(os.environ.get("TOP", "30")))
                    if os.environ.get("CALLERS"):
                        stats.print_callers(os.environ["CALLERS"])
            if args.diff:
                print_diff(profiles["memory"], profiles["leases=on"], args.calls, args.diff)
            print(f"   leases=on - memory at {conc} concurrent: {(cpu['leases=on'] - cpu['memory']) * 1e6:+.1f} µs CPU per call")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
