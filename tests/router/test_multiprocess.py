"""Several processes, one real redis-server, one Vertex stub: mixed traffic across Gemini, Claude and a
partner model leaves exactly the hand-computed bill in the shared ledger, and no budget overshoots."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from router.ledger import store_from_url

pytestmark = [pytest.mark.litellm, pytest.mark.redis_server, pytest.mark.slow]

POLICY = """\
version: 1
candidates: [{model: gemini-2.5-flash}, {model: claude-haiku-4-5}, {model: deepseek-v3.2}]
profiles:
  gemini: {candidates: [{model: gemini-2.5-flash}]}
  claude: {candidates: [{model: claude-haiku-4-5}]}
  partner: {candidates: [{model: deepseek-v3.2}]}
rules:
  - {name: a, when: {tenant: a}, profile: gemini}
  - {name: b, when: {tenant: b}, profile: claude}
default_profile: partner
budgets:
  - {name: all, scope: global, window: "calendar:month@UTC", limit_usd: "%(limit)s"}
"""

# Hand-computed from seed 000 (USD per 1M tokens):
#   gemini-2.5-flash  1,000 in x $0.30 + 200 out x $2.50   = $0.0008
#   claude-haiku-4-5  2,000 in x $1    + 100 out x $5      = $0.0025
#   deepseek-v3.2     3,000 in x $0.56 + 300 out x $1.68   = $0.002184
COST = {"a": Decimal("0.0008"), "b": Decimal("0.0025"), "c": Decimal("0.002184")}

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from router import Router, BudgetExceededError
    policy, store, prefix, project, location, creds, api_base, n, worker = sys.argv[1:10]
    r = Router(policy, store=store, key_prefix=prefix, vertex_project=project, vertex_location=location,
               vertex_credentials=creds, api_base=api_base, watch_policy=False)
    async def one(i):
        tenant = "abc"[(i + int(worker)) % 3]
        try:
            # prompt_tokens: the exact count (Count Tokens API) the reservation's upper bound uses
            resp = await r.acomplete([{"role": "user", "content": "hi"}], tenant=tenant, max_tokens=300, prompt_tokens=3000)
            return [tenant, str(resp.routing.cost_usd)]
        except BudgetExceededError:
            return [tenant, "denied"]
    async def main():
        out = await asyncio.gather(*(one(i) for i in range(int(n))))
        await r.aclose()
        print(json.dumps(out))
    asyncio.run(main())
    """
)


def _run_workers(tmp_path: Path, redis_url: str, kwargs: dict, limit: str, workers: int = 3, per_worker: int = 20) -> tuple[list, str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY % {"limit": limit})
    prefix = f"mp{uuid.uuid4().hex[:8]}"
    args = [str(policy), redis_url, prefix, kwargs["vertex_project"], kwargs["vertex_location"], kwargs["vertex_credentials"], kwargs["api_base"], str(per_worker)]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, *args, str(w)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(workers)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.extend(json.loads(out.strip().splitlines()[-1]))
    return results, prefix


async def _global_spend(redis_url: str, prefix: str) -> Decimal:
    store = store_from_url(redis_url, prefix=prefix)
    try:
        (info,) = await store.list_scopes()
        return await store.spend(info.budget)
    finally:
        await store.close()


def _script(stub) -> None:
    stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 200})
    stub.script("claude-haiku-4-5", usage={"input_tokens": 2_000, "output_tokens": 100})
    stub.script("deepseek", usage={"input_tokens": 3_000, "output_tokens": 300})


def test_mixed_traffic_from_three_processes_leaves_the_hand_computed_bill(tmp_path, redis_server, vertex_stub, vertex_router_kwargs):
    _script(vertex_stub)
    results, prefix = _run_workers(tmp_path, redis_server.url, vertex_router_kwargs, limit="100")
    assert len(results) == 60
    for tenant, cost in results:
        assert Decimal(cost) == COST[tenant]
    expected_total = sum(COST[tenant] for tenant, _ in results)
    assert asyncio.run(_global_spend(redis_server.url, prefix)) == expected_total


def test_a_shared_cap_is_never_exceeded_across_processes(tmp_path, redis_server, vertex_stub, vertex_router_kwargs):
    """A $0.05 cap and 60 requests worth about $0.11: some are denied, and the settled total never passes
    the cap (each reservation holds the request's upper bound, from the exact prompt count and max_tokens,
    so the cap binds before any overshoot)."""
    _script(vertex_stub)
    results, prefix = _run_workers(tmp_path, redis_server.url, vertex_router_kwargs, limit="0.05")
    served = [Decimal(cost) for _, cost in results if cost != "denied"]
    assert served and len(served) < len(results)
    total = asyncio.run(_global_spend(redis_server.url, prefix))
    assert total == sum(served)
    assert total <= Decimal("0.05")
