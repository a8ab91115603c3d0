"""Latency of the decision engine: ``CompiledPolicy.decide`` over the bundled 46-model catalog.

Each scenario compiles a policy once, warms up, then times ``decide`` call by call
(``time.perf_counter_ns``) and reports p50 / p99 / mean in microseconds as a markdown table.
Target: p50 < 50 µs for a 40+ model catalog.

    python bench/decide.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import platform
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.catalog import default_catalog  # noqa: E402
from router.policy import RequestFeatures, StateSnapshot, compile_policy, load_policy  # noqa: E402

DAY = dt.date(2026, 11, 2)

WHOLE_CATALOG = """
version: 1
profiles:
  cheap:
    objective: cheapest
    constraints: {min_quality: 30, exclude_lifecycles: [deprecated]}
  best:
    objective: {type: weighted, quality_weight: 1, cost_weight: 0.5}
default_profile: cheap
rules:
  - {name: acme, when: {tenant: acme}, profile: best}
budgets:
  - scope: tenant
    window: calendar:month@UTC
    limit_usd: 100
    actions:
      - {at_percent: 80, switch_profile: cheap}
      - {at_percent: 100, max_output_usd_per_mtok: "1"}
  - {scope: global, window: rolling:24h, limit_usd: 5000}
"""


def scenarios(catalog):
    def c(text=None, path=None):
        src = (ROOT / "policies" / path) if path else text
        return compile_policy(load_policy(src, catalog), catalog)

    whole = c(WHOLE_CATALOG)
    spend = StateSnapshot(spend={"tenant:acme": Decimal("85")})
    yield "whole catalog, cheapest (46 candidates)", whole, RequestFeatures(tenant="globex", prompt_tokens=1200, max_tokens=512, at=DAY), StateSnapshot.empty()
    yield "whole catalog, weighted, budget at 85 % (2 budgets)", whole, RequestFeatures(tenant="acme", prompt_tokens=1200, max_tokens=512, at=DAY), spend
    yield "whole catalog, 300K prompt + vision", whole, RequestFeatures(tenant="globex", prompt_tokens=300_000, max_tokens=2048, required_capabilities=frozenset({"vision"}), at=DAY), StateSnapshot.empty()
    yield "cost-first.yaml", c(path="cost-first.yaml"), RequestFeatures(prompt_tokens=800, max_tokens=400, at=DAY), StateSnapshot.empty()
    yield "balanced.yaml, latency-sensitive (priority)", c(path="balanced.yaml"), RequestFeatures(prompt_tokens=300, max_tokens=200, latency_sensitive=True, at=DAY), StateSnapshot.empty()
    yield "grounding-aware.yaml, flash pool empty", c(path="grounding-aware.yaml"), RequestFeatures(prompt_tokens=500, max_tokens=300, grounding="google_search", at=DAY), StateSnapshot(pools={"gemini-2x-flash-search-daily": 1500})
    yield "eu-only.yaml", c(path="eu-only.yaml"), RequestFeatures(prompt_tokens=2000, max_tokens=500, at=DAY), StateSnapshot.empty()
    yield "demo.yaml, acme at 90 %", c(path="demo.yaml"), RequestFeatures(tenant="acme", prompt_tokens=60_000, max_tokens=4000, at=DAY), StateSnapshot(spend={"tenant:acme": Decimal("0.68")})


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    catalog = default_catalog()
    assert len(catalog) >= 40, len(catalog)
    print(f"decide() latency, {len(catalog)}-model catalog, {args.calls:,} calls per scenario, Python {platform.python_version()} on {platform.machine()}\n")
    print("| scenario | candidates | p50 (µs) | p99 (µs) | mean (µs) | decision |")
    print("|---|---:|---:|---:|---:|---|")
    p50s = []
    for label, compiled, features, state in scenarios(catalog):
        decide = compiled.decide
        for _ in range(2000):
            decide(features, state)
        times = []
        gc.disable()
        try:
            for _ in range(args.calls):
                t0 = time.perf_counter_ns()
                decide(features, state)
                times.append(time.perf_counter_ns() - t0)
        finally:
            gc.enable()
        d = decide(features, state)
        n = len(compiled.profiles[d.profile].cands)
        p50s.append(pct(times, 0.5))
        print(f"| {label} | {n} | {pct(times, 0.5):.1f} | {pct(times, 0.99):.1f} | {statistics.fmean(times) / 1000:.1f} | {d.primary.model} ({d.profile}) |")
    print(f"\nworst p50: {max(p50s):.1f} µs (target < 50 µs)")


if __name__ == "__main__":
    main()
