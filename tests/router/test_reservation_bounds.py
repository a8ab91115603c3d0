"""Issue 11 items 4 and 6: a bill never passes its reservation for a reason the router could know.

Through litellm's real Vertex code against the loopback stub. Grounding is reserved in full (never counting
on a free pool whose room the decision read from a snapshot), per-query grounding is reserved for the
policy's ``grounding.expected_queries``, and an overrun names its real cause.

Hand-computed prices (seed 000): Gemini 2.5 Flash $0.30 in / $2.50 out per 1M, Google Search grounding
$35 per 1,000 grounded prompts past 1,500 a day (shared Flash pool); Gemini 3 Flash $0.50 / $3 per 1M,
$14 per 1,000 search queries past 5,000 a month; Claude Haiku 4.5 $1 / $5 per 1M, web search $10 per 1,000.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from router import BudgetExceededError, RouterMetrics

pytestmark = pytest.mark.litellm

HELLO = [{"role": "user", "content": "What changed in the quarterly report? Cite sources."}]


def write_policy(tmp_path: Path, model: str, limit: str = "100", grounding: str = "") -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"""\
version: 1
candidates: [{{model: {model}}}]
profiles:
  p: {{objective: cheapest}}
default_profile: p
budgets:
  - name: cap
    scope: global
    window: calendar:month@UTC
    limit_usd: "{limit}"
{grounding}""",
        encoding="utf-8",
    )
    return str(path)


async def spend(r) -> Decimal:
    store = r.store()
    budgets = [info.budget for info in await store.list_scopes()]
    snap = await store.snapshot(budgets, [], [])
    return sum((snap.spend.get(b.id, Decimal(0)) for b in budgets), Decimal(0))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis_server)])
def ledger(request: pytest.FixtureRequest) -> dict[str, str]:
    """Router store options: the memory ledger, or a real redis-server (where decisions read a snapshot
    cached for up to snapshot_max_age_s (0.05 s by default), the stale view of the pool the issue found)."""
    if request.param == "memory":
        return {"store": "memory://"}
    server = request.getfixturevalue("redis_server")
    if not server.ping():
        server.start()
    return {"store": server.url, "key_prefix": "bounds" + uuid.uuid4().hex[:10]}


def overruns(metrics: RouterMetrics) -> float:
    for line in metrics.render().decode().splitlines():
        if line.startswith("router_reservation_overruns_total "):
            return float(line.split()[1])
    raise AssertionError("router_reservation_overruns_total not exported")


async def test_the_last_free_grounding_unit_raced_by_two_requests_stays_within_both_reservations(stub_router, vertex_stub, tmp_path, ledger):
    """Both requests see one free unit left; the pool grants it to one, the other is billed $35 / 1,000.
    Before: each reserved $0.0008 (grounding assumed free) and one was billed $0.03555."""
    metrics = RouterMetrics()
    r = stub_router(write_policy(tmp_path, "gemini-2.5-flash"), metrics=metrics, **ledger)
    await r.store().consume(r.compiled.quota_pool("gemini-2x-flash-search-daily"), 1_499, "earlier-traffic")
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100}, grounding_urls=2, latency_s=0.2)
    responses = await asyncio.gather(*(r.acomplete(HELLO, max_tokens=200, prompt_tokens=1_000, grounding=True) for _ in range(2)))
    records = [resp.routing for resp in responses]
    # 1,000 x $0.30 + 200 x $2.50 per 1M + one grounded prompt at $35 / 1,000 = $0.0358
    assert [rec.attempts[-1].reserved_usd for rec in records] == [Decimal("0.0358")] * 2
    # free: 1,000 x $0.30 + 100 x $2.50 per 1M = $0.00055; paid: + $0.035
    assert sorted(rec.cost_usd for rec in records) == [Decimal("0.00055"), Decimal("0.03555")]
    assert sorted((rec.grounding_free_units, rec.grounding_billable_units) for rec in records) == [(0, 1), (1, 0)]
    assert all(rec.cost_usd <= rec.attempts[-1].reserved_usd for rec in records)
    assert not any("reserved" in w for rec in records for w in rec.warnings)
    assert overruns(metrics) == 0
    assert await spend(r) == Decimal("0.036100")


async def test_a_cap_holds_when_the_free_pool_fills_between_snapshot_and_settlement(stub_router, vertex_stub, tmp_path, ledger):
    """A $0.01 cap: the pool shows one free unit, but a grounded request may be billed $0.03555. The
    reservation includes the grounding, so the cap denies instead of being overshot (before: $0.0361 spent)."""
    r = stub_router(write_policy(tmp_path, "gemini-2.5-flash", limit="0.01"), **ledger)
    await r.store().consume(r.compiled.quota_pool("gemini-2x-flash-search-daily"), 1_499, "earlier-traffic")
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100}, grounding_urls=2, latency_s=0.2)
    results = await asyncio.gather(
        *(r.acomplete(HELLO, max_tokens=200, prompt_tokens=1_000, grounding=True) for _ in range(2)), return_exceptions=True
    )
    assert all(isinstance(result, BudgetExceededError) for result in results)
    assert await spend(r) <= Decimal("0.01")
    assert vertex_stub.model_requests() == []


async def test_grounding_the_pool_covers_is_reserved_in_full_and_settled_free(stub_router, vertex_stub, tmp_path):
    r = stub_router(write_policy(tmp_path, "gemini-2.5-flash"))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100}, grounding_urls=2)
    record = (await r.acomplete(HELLO, max_tokens=200, prompt_tokens=1_000, grounding=True)).routing
    assert record.attempts[-1].reserved_usd == Decimal("0.0358")
    assert record.cost_usd == Decimal("0.00055") and (record.grounding_free_units, record.grounding_billable_units) == (1, 0)
    assert await spend(r) == Decimal("0.00055")  # the hold was settled to the exact bill


async def test_gemini_3_reserves_the_policys_expected_search_queries(stub_router, vertex_stub, tmp_path):
    """grounding.expected_queries: 3 -> three queries at $14 / 1,000 in the bound (before: always 4)."""
    r = stub_router(write_policy(tmp_path, "gemini-3-flash-preview", grounding="grounding: {expected_queries: 3}\n"))
    vertex_stub.script("gemini-3-flash", usage={"input_tokens": 1_000, "output_tokens": 100}, search_queries=["a", "b", "c"])
    record = (await r.acomplete(HELLO, max_tokens=200, prompt_tokens=1_000, grounding=True)).routing
    # 1,000 x $0.50 + 200 x $3 per 1M + 3 x $0.014
    assert record.attempts[-1].reserved_usd == Decimal("0.0431")
    assert record.decision["upper_bound_cost_usd"] == "0.0431"  # explain shows the same bound
    assert record.cost_usd == Decimal("0.0008") and record.grounding_free_units == 3  # in the monthly free pool


async def test_claude_web_search_reserves_the_policys_expected_searches(stub_router, vertex_stub, tmp_path):
    r = stub_router(write_policy(tmp_path, "claude-haiku-4-5", grounding="grounding: {expected_queries: 2}\n"))
    vertex_stub.script("claude-haiku-4-5", usage={"input_tokens": 1_000, "output_tokens": 100}, web_searches=2)
    record = (await r.acomplete(HELLO, max_tokens=200, prompt_tokens=1_000, grounding="web_search")).routing
    # 1,000 x $1 + 200 x $5 per 1M + 2 x $0.010
    assert record.attempts[-1].reserved_usd == Decimal("0.022")
    assert record.decision["upper_bound_cost_usd"] == "0.022"
    # 1,000 x $1 + 100 x $5 per 1M + 2 searches x $0.010
    assert record.cost_usd == Decimal("0.0215")


@pytest.mark.reservation_overrun
async def test_more_searches_than_expected_is_the_named_cause_not_the_prompt(stub_router, vertex_stub, tmp_path):
    """How many searches a model runs is not known before it answers: the one overrun the router cannot
    prevent with an exact prompt_tokens. The warning names it (before: it blamed the prompt estimate)."""
    metrics = RouterMetrics()
    r = stub_router(write_policy(tmp_path, "claude-haiku-4-5"), metrics=metrics)  # expected_queries: 1 (default)
    vertex_stub.script("claude-haiku-4-5", usage={"input_tokens": 1_000, "output_tokens": 100}, web_searches=5)
    record = (await r.acomplete(HELLO, max_tokens=200, prompt_tokens=1_000, grounding="web_search")).routing
    assert record.attempts[-1].reserved_usd == Decimal("0.012")  # 1,000 x $1 + 200 x $5 per 1M + $0.010
    assert record.cost_usd == Decimal("0.0515")  # 1,000 x $1 + 100 x $5 per 1M + 5 x $0.010
    (warning,) = [w for w in record.warnings if "reserved" in w]
    assert "ran 5 billable web searches, more than the 1 reserved (grounding.expected_queries)" in warning
    assert "prompt" not in warning
    assert overruns(metrics) == 1
    assert await spend(r) == Decimal("0.0515")  # booked in full


@pytest.mark.reservation_overrun
async def test_an_estimated_prompt_that_was_low_is_named_as_such(stub_router, vertex_stub, tmp_path):
    r = stub_router(write_policy(tmp_path, "gemini-2.5-flash"))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 50_000, "output_tokens": 10})
    record = (await r.acomplete(HELLO, max_tokens=10)).routing
    (warning,) = [w for w in record.warnings if "reserved" in w]
    assert "the prompt estimate was low" in warning and "the provider counted 50,000" in warning and "pass prompt_tokens" in warning


@pytest.mark.parametrize(
    ("cache_control", "usage", "reserved", "billed"),
    [
        # 10,000 x $6 (1-hour writes) + 500 x $15 per 1M; billed 10,000 x $6 + 100 x $15
        ({"type": "ephemeral", "ttl": "1h"}, {"cache_write_1h_tokens": 10_000}, "0.0675", "0.0615"),
        # 10,000 x $3.75 (5-minute writes) + 500 x $15 per 1M; billed 10,000 x $3.75 + 100 x $15
        ({"type": "ephemeral"}, {"cache_write_5m_tokens": 10_000}, "0.045", "0.039"),
        # no cache marks: the input rate, 10,000 x $3 + 500 x $15 per 1M; billed 10,000 x $3 + 100 x $15
        (None, {}, "0.0375", "0.0315"),
    ],
)
async def test_a_prompt_marked_for_caching_reserves_the_cache_write_rate(stub_router, vertex_stub, tmp_path, cache_control, usage, reserved, billed):
    """Claude bills cache writes at 1.25x / 2x the input rate; the request says it may write (cache_control),
    so the router knows before sending. Before: reserved at the input rate, billed above it."""
    r = stub_router(write_policy(tmp_path, "claude-sonnet-4-5"))
    vertex_stub.script("claude-sonnet-4-5", usage={"input_tokens": 10_000, "output_tokens": 100, **usage})
    part = {"type": "text", "text": "The whole handbook ... " * 20}
    if cache_control is not None:
        part["cache_control"] = cache_control
    messages = [{"role": "user", "content": [part, {"type": "text", "text": "Summarise chapter 3."}]}]
    record = (await r.acomplete(messages, max_tokens=500, prompt_tokens=10_000)).routing
    assert record.attempts[-1].reserved_usd == Decimal(reserved)
    assert record.cost_usd == Decimal(billed)
