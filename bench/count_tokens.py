"""What Count Tokens costs a request: the ``near_limits`` check on ordinary requests, and a count.

Side by side, each through a Router on the memory store calling the loopback Vertex stub with litellm's
real Vertex code (so the numbers include litellm, the stub's HTTP and the token grant cached):

* short requests (a 2K-character chat): ``count_tokens: never`` vs ``near_limits`` -- the check runs, no
  count is made (asserted), so the difference is the check's cost (also timed alone, in microseconds);
* requests near a tier boundary (190K-token estimate on Gemini 2.5 Pro): ``never`` (the estimate path)
  vs ``near_limits`` with a count per call (distinct prompts, no cache hits) vs ``near_limits`` served
  from the count cache (the same prompt again).

    python bench/count_tokens.py [--calls 200]

Prints a markdown table (p50 / p99 ms per call, counts made). Not a test: timings go here, not in tests/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POLICY = """version: 1
settings:
  count_tokens: {mode}
profiles:
  a:
    candidates:
      - model: gemini-2.5-pro
        location: us-central1
default_profile: a
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(router, messages_for, calls: int) -> list[float]:
    out = []
    for i in range(calls):
        messages = messages_for(i)
        t0 = time.perf_counter()
        await router.acomplete(messages, max_tokens=256)
        out.append(time.perf_counter() - t0)
    return out


def check_cost(calls: int) -> float:
    """Microseconds per ``count_trigger`` on a short request (the whole near_limits cost when no count is made)."""
    from router.catalog import default_catalog
    from router.policy import RequestFeatures, StateSnapshot, compile_policy, load_policy
    from router.policy.counting import count_trigger

    catalog = default_catalog()
    compiled = compile_policy(load_policy((ROOT / "policies" / "balanced.yaml").read_text(encoding="utf-8"), catalog), catalog)
    features = RequestFeatures(tenant="acme", prompt_tokens=600, max_tokens=512)
    state = StateSnapshot()
    assert count_trigger(compiled, features, state) is None
    n = calls * 100
    t0 = time.perf_counter()
    for _ in range(n):
        count_trigger(compiled, features, state)
    return (time.perf_counter() - t0) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    from router import Router
    from router.testing.vertex_stub import VertexStub, vertex_settings_for

    folder = Path(tempfile.mkdtemp(prefix="bench-count-"))
    rows = []
    with VertexStub() as stub:
        settings = vertex_settings_for(stub, folder)
        kwargs = dict(vertex_project=settings.vertex_project, vertex_location=settings.vertex_location, vertex_credentials=settings.vertex_credentials, api_base=settings.api_base, watch_policy=False)
        routers = {mode: Router(POLICY.format(mode=mode), **kwargs) for mode in ("never", "near_limits")}
        stub.script("gemini-2.5-pro", usage={"input_tokens": 600, "output_tokens": 20}, text="ok")
        stub.script_count("gemini-2.5-pro", total_tokens=195_000)
        short = lambda i: [{"role": "user", "content": f"request {i}: " + "Summarise the quarterly report. " * 64}]  # noqa: E731
        long_text = "abcd" * (190_000 - 7)
        distinct = lambda i: [{"role": "user", "content": f"{i:08d}" + long_text[8:]}]  # noqa: E731
        same = lambda i: [{"role": "user", "content": long_text}]  # noqa: E731
        for router in routers.values():  # warm up: token grant, litellm import, connections
            await run(router, short, 5)
        scenarios = [
            ("short request (2K chars)", "never", short),
            ("short request (2K chars)", "near_limits", short),
            ("190K-token estimate, near the 200K boundary", "never", distinct),
            ("190K-token estimate, near the 200K boundary", "near_limits", distinct),
            ("190K-token estimate, the same prompt again (cache hit)", "near_limits", same),
        ]
        for label, mode, messages_for in scenarios:
            router = routers[mode]
            before = len(stub.count_requests())
            calls = args.calls if "short" in label else max(10, args.calls // 10)
            if "cache" in label:
                await run(router, same, 1)
                before = len(stub.count_requests())
            latencies = await run(router, messages_for, calls)
            counts = len(stub.count_requests()) - before
            if "short" in label:
                assert counts == 0, "near_limits counted a short request"
            rows.append((label, mode, calls, pct(latencies, 0.5) * 1e3, pct(latencies, 0.99) * 1e3, counts))
        for router in routers.values():
            await router.aclose()
    micro = check_cost(args.calls)
    print(f"Count Tokens cost per call, memory store, loopback stub through litellm, Python {sys.version.split()[0]}\n")
    print("| request | count_tokens | calls | p50 ms | p99 ms | counts made |")
    print("|---|---|---:|---:|---:|---:|")
    for label, mode, calls, p50, p99, counts in rows:
        print(f"| {label} | {mode} | {calls} | {p50:.3f} | {p99:.3f} | {counts} |")
    print(f"\nnear_limits check alone on a short request (balanced.yaml): {micro:.2f} µs per request, no count made")


if __name__ == "__main__":
    asyncio.run(main())
