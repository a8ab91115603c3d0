"""``Router.complete()`` end to end: litellm's real Vertex code against the loopback stub, our cost engine,
the memory ledger. Every test checks what a platform team relies on: the bill equals our cost engine on
the provider's usage, the ledger holds exactly that, and failed attempts cost nothing."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from litellm import ModelResponse

import router as router_pkg
from router import BudgetExceededError, Router, TransportError
from router.catalog import load_catalog

pytestmark = pytest.mark.litellm

REPO = Path(__file__).resolve().parents[2]
PRIORITY_OVERLAY = REPO / "tests" / "data" / "priority_overlay.yaml"
HELLO = [{"role": "user", "content": "Summarise the quarterly report in three bullet points."}]


def policy(candidates: str, objective: str = "cheapest", extra: str = "") -> str:
    if not candidates.startswith("{"):
        candidates = ", ".join(f"{{model: {m.strip()}}}" for m in candidates.split(","))
    return f"""\
version: 1
candidates: [{candidates}]
profiles:
  p: {{objective: {objective}}}
default_profile: p
budgets:
  - name: global-month
    scope: global
    window: calendar:month@UTC
    limit_usd: "100"
{extra}"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


async def spend_of(r: Router) -> dict[str, Decimal]:
    """Spend (settled + held) of every budget the ledger knows."""
    store = r.store()
    budgets = [info.budget for info in await store.list_scopes()]
    snap = await store.snapshot(budgets, [], [])
    return {b.id: snap.spend.get(b.id, Decimal(0)) for b in budgets}


async def test_gemini_bill_is_our_cost_engine_on_the_provider_usage(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 12_000, "cached_tokens": 2_000, "output_tokens": 300, "thinking_tokens": 700})
    response = await r.acomplete(HELLO, max_tokens=2_000, prompt_tokens=12_000)
    assert isinstance(response, ModelResponse) and response.choices[0].message.content
    record = response.routing
    cost = Decimal("0.00556")  # seed 000: 10,000 x 0.30 + 2,000 cached x 0.03 + (300 + 700 thinking) x 2.50, per 1M
    assert record.cost_usd == cost
    assert {line["dimension"] for line in record.cost_lines} == {"input", "cached_input", "output"}
    assert await spend_of(r) == {"global|calendar:month@UTC": cost}
    assert record.policy_version and record.decision["model"] == "gemini-2.5-flash"


async def test_claude_cache_writes_and_hits_are_billed_at_their_own_rates(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("claude-sonnet-4-5")))
    vertex_stub.script(
        "claude-sonnet-4-5",
        usage={"input_tokens": 10_000, "cache_write_5m_tokens": 2_000, "cache_write_1h_tokens": 1_000, "cached_tokens": 3_000, "output_tokens": 100},
    )
    record = (await r.acomplete(HELLO, max_tokens=500, prompt_tokens=10_000)).routing
    # seed 000, Claude Sonnet 4.5 per 1M: 4,000 plain x $3 + 2,000 5-min writes x $3.75 + 1,000 1-h writes x $6
    # + 3,000 cache hits x $0.30 + 100 out x $15 = 12,000 + 7,500 + 6,000 + 900 + 1,500
    assert record.cost_usd == Decimal("0.0279")
    assert vertex_stub.model_requests()[-1].api == "anthropic"


async def test_partner_maas_model_through_the_openai_endpoint(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("deepseek-v3.2")))
    vertex_stub.script("deepseek", usage={"input_tokens": 5_000, "output_tokens": 1_000})
    record = (await r.acomplete(HELLO, max_tokens=1_000, prompt_tokens=5_000)).routing
    assert record.cost_usd == Decimal("0.00448")  # seed 000, DeepSeek-V3.2: 5,000 x $0.56 + 1,000 x $1.68, per 1M
    assert vertex_stub.model_requests()[-1].path.endswith("/endpoints/openapi/chat/completions")


async def test_long_context_usage_bills_every_token_at_the_long_rate(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-pro")))
    vertex_stub.script("gemini-2.5-pro", usage={"input_tokens": 250_000, "output_tokens": 1_000})
    record = (await r.acomplete(HELLO, max_tokens=1_000, prompt_tokens=250_000)).routing
    assert record.cost_usd == Decimal("0.64")  # 250,000 x $2.50 + 1,000 x $15, per 1M
    assert {line["dimension"] for line in record.cost_lines} == {"input_long", "output_long"}


async def test_grounding_counts_only_with_web_urls_and_bills_past_the_free_pool(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100}, grounding_urls=2)
    first = (await r.acomplete(HELLO, max_tokens=200, grounding=True, prompt_tokens=1_000)).routing
    assert (first.grounding_free_units, first.grounding_billable_units) == (1, 0)
    assert "googleSearch" in str(vertex_stub.model_requests()[-1].body.get("tools"))
    # Grounding that found no web source is not billed and uses no quota (seed 000).
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100}, grounding_urls=0)
    none = (await r.acomplete(HELLO, max_tokens=200, grounding=True, prompt_tokens=1_000)).routing
    assert (none.grounding_free_units, none.grounding_billable_units) == (0, 0)
    # Fill the shared Flash pool to its 1,500 daily grounded prompts: the next one is billed $35 / 1,000.
    pool = r.compiled.quota_pool("gemini-2x-flash-search-daily")
    await r.store().consume(pool, 1_499, "someone-else")
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100}, grounding_urls=3)
    paid = (await r.acomplete(HELLO, max_tokens=200, grounding=True, prompt_tokens=1_000)).routing
    assert (paid.grounding_free_units, paid.grounding_billable_units) == (0, 1)
    assert paid.cost_usd == Decimal("0.03555")  # 1,000 x $0.30 + 100 x $2.50 per 1M = $0.00055, + $35 / 1,000 prompts


async def test_gemini_3_grounding_counts_search_queries_in_the_monthly_pool(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-3-flash-preview")))
    vertex_stub.script("gemini-3-flash", usage={"input_tokens": 1_000, "output_tokens": 100}, search_queries=["a", "b", "c"])
    record = (await r.acomplete(HELLO, max_tokens=200, grounding=True, prompt_tokens=1_000)).routing
    assert (record.grounding_free_units, record.grounding_billable_units) == (3, 0)
    usage = await r.store().pool_usage(r.compiled.quota_pool("gemini-3-search-monthly"))
    assert usage.used == 3


@pytest.fixture
def priced_router(stub_router, tmp_path):
    catalog = load_catalog(overlays=[PRIORITY_OVERLAY])
    text = policy("{model: gemini-2.5-flash, priority: true}", extra="priority: {max_tokens_per_minute: 1000000}\n")
    return stub_router(write(tmp_path, text), catalog=catalog), catalog


async def test_priority_is_sent_on_the_global_endpoint_and_billed_at_priority_rates(priced_router, vertex_stub):
    r, catalog = priced_router
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 10_000, "output_tokens": 1_000}, traffic_type="auto")
    record = (await r.acomplete(HELLO, max_tokens=1_000, latency_sensitive=True, prompt_tokens=10_000)).routing
    sent = vertex_stub.model_requests()[-1]
    assert sent.headers.get("x-vertex-ai-llm-shared-request-type") == "priority"
    assert "/locations/global/" in sent.path
    assert record.traffic_type == "ON_DEMAND_PRIORITY"
    assert record.cost_usd == Decimal("0.011")  # test rates: 10,000 x 0.60 + 1,000 x 5.00, per 1M
    assert {line["dimension"] for line in record.cost_lines} == {"priority_input", "priority_output"}


async def test_a_downgraded_priority_request_is_billed_standard(priced_router, vertex_stub):
    r, _ = priced_router
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 10_000, "output_tokens": 1_000}, traffic_type="ON_DEMAND")
    record = (await r.acomplete(HELLO, max_tokens=1_000, latency_sensitive=True, prompt_tokens=10_000)).routing
    assert vertex_stub.model_requests()[-1].headers.get("x-vertex-ai-llm-shared-request-type") == "priority"
    assert record.traffic_type == "ON_DEMAND"
    assert record.cost_usd == Decimal("0.0055")  # seed 000 standard: 10,000 x $0.30 + 1,000 x $2.50, per 1M


async def test_without_a_priority_price_the_request_goes_standard(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("{model: gemini-2.5-flash, priority: true}")))
    record = (await r.acomplete(HELLO, max_tokens=100, latency_sensitive=True)).routing
    assert "x-vertex-ai-llm-shared-request-type" not in vertex_stub.model_requests()[-1].headers
    assert any("no Priority PayGo price" in note for note in record.decision["notes"])


@pytest.mark.parametrize("error", ["rate_limited", "server_error", "unavailable", "context_overflow"])
async def test_fallback_on_retryable_errors_bills_only_the_successful_attempt(stub_router, vertex_stub, tmp_path, error):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash-lite, gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 2_000, "output_tokens": 100})
    vertex_stub.script("gemini-2.5-flash-lite", error=error)  # the latest matching script wins
    record = (await r.acomplete(HELLO, max_tokens=200, prompt_tokens=2_000)).routing
    assert [a.model for a in record.attempts] == ["gemini-2.5-flash-lite", "gemini-2.5-flash"]
    assert record.attempts[0].outcome in {"rate_limited", "server_error", "context_overflow"}
    assert record.attempts[0].settled_usd == 0 and record.attempts[0].reserved_usd > 0
    cost = Decimal("0.00085")  # seed 000: 2,000 x $0.30 + 100 x $2.50, per 1M
    assert record.cost_usd == cost
    assert await spend_of(r) == {"global|calendar:month@UTC": cost}  # the failed attempt's hold was released


async def test_a_timeout_falls_back(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash-lite, gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash-lite", latency_s=3)
    record = (await r.acomplete(HELLO, max_tokens=200, timeout=0.5)).routing
    assert [a.outcome for a in record.attempts] == ["timeout", "ok"]


async def test_a_non_retryable_error_raises_and_costs_nothing(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash-lite, gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash-lite", error="bad_request")
    with pytest.raises(TransportError) as info:
        await r.acomplete(HELLO, max_tokens=200)
    assert [a.outcome for a in info.value.attempts] == ["bad_request"]
    assert set((await spend_of(r)).values()) == {Decimal(0)}


async def test_every_attempt_failing_raises_with_each_outcome(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash-lite, gemini-2.5-flash")))
    vertex_stub.script("gemini", error="server_error")
    with pytest.raises(TransportError) as info:
        await r.acomplete(HELLO, max_tokens=200)
    assert [a.outcome for a in info.value.attempts] == ["server_error", "server_error"]
    assert set((await spend_of(r)).values()) == {Decimal(0)}


async def test_a_budget_that_cannot_hold_the_upper_bound_refuses_before_calling(stub_router, vertex_stub, tmp_path):
    text = policy("gemini-2.5-pro").replace('limit_usd: "100"', 'limit_usd: "0.001"')
    r = stub_router(write(tmp_path, text))
    with pytest.raises(BudgetExceededError) as info:
        await r.acomplete(HELLO, max_tokens=8_000)
    assert info.value.scope.startswith("global")
    assert vertex_stub.model_requests() == []


async def test_async_stream_settles_from_the_final_usage_chunk(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 4_000, "output_tokens": 250, "thinking_tokens": 50}, stream_chunks=5)
    stream = await r.acomplete(HELLO, max_tokens=500, stream=True, prompt_tokens=4_000)
    text = "".join([(c.choices[0].delta.content or "") async for c in stream if c.choices])
    assert text
    cost = Decimal("0.00195")  # seed 000: 4,000 x $0.30 + (250 + 50 thinking) x $2.50, per 1M
    assert stream.routing.cost_usd == cost and stream.routing.attempts[-1].outcome == "ok"
    assert await spend_of(r) == {"global|calendar:month@UTC": cost}


async def test_claude_stream_settles_exactly(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("claude-haiku-4-5")))
    vertex_stub.script("claude-haiku-4-5", usage={"input_tokens": 3_000, "output_tokens": 400})
    stream = await r.acomplete(HELLO, max_tokens=500, stream=True, prompt_tokens=3_000)
    async for _ in stream:
        pass
    assert stream.routing.cost_usd == Decimal("0.005")  # seed 000, Claude Haiku 4.5: 3,000 x $1 + 400 x $5, per 1M


def test_sync_complete_and_sync_stream(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100})
    response = r.complete(HELLO, max_tokens=200, prompt_tokens=1_000)
    assert response.routing.cost_usd == Decimal("0.00055")  # seed 000: 1,000 x $0.30 + 100 x $2.50, per 1M
    chunks = list(r.complete(HELLO, max_tokens=200, stream=True, prompt_tokens=1_000))
    assert chunks


async def test_a_stream_closed_early_by_the_consumer_is_settled_for_what_was_produced(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", text="word " * 200, stream_chunks=10, chunk_delay_s=0.02)
    stream = await r.acomplete(HELLO, max_tokens=1_000, stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    record = stream.routing
    assert record.attempts[-1].outcome == "interrupted"
    assert record.cost_usd > 0
    assert sum((await spend_of(r)).values()) == record.cost_usd


async def test_concurrent_calls_leave_exactly_their_sum_in_the_ledger(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash-lite")))
    vertex_stub.script("gemini-2.5-flash-lite", usage={"input_tokens": 777, "output_tokens": 33})
    records = [resp.routing for resp in await asyncio.gather(*(r.acomplete(HELLO, max_tokens=100, tenant=f"t{i % 3}", prompt_tokens=777) for i in range(30)))]
    assert len({rec.request_id for rec in records}) == 30
    assert sum(rec.cost_usd for rec in records) == (await spend_of(r))["global|calendar:month@UTC"]


def test_module_level_complete_reads_the_environment(vertex_router_kwargs, vertex_stub, tmp_path, monkeypatch):
    from router._default import reset_default_router

    monkeypatch.setenv("ROUTER_POLICY", write(tmp_path, policy("gemini-2.5-flash")))
    monkeypatch.setenv("ROUTER_STORE", "memory://")
    monkeypatch.setenv("VERTEXAI_PROJECT", vertex_router_kwargs["vertex_project"])
    monkeypatch.setenv("VERTEXAI_LOCATION", vertex_router_kwargs["vertex_location"])
    monkeypatch.setenv("VERTEXAI_CREDENTIALS", vertex_router_kwargs["vertex_credentials"])
    monkeypatch.setenv("VERTEXAI_API_BASE", vertex_router_kwargs["api_base"])
    reset_default_router()
    try:
        response = router_pkg.complete(HELLO, max_tokens=100)
        assert response.routing.model == "gemini-2.5-flash"
    finally:
        from router._default import default_router

        default_router().close()
        reset_default_router()


@pytest.mark.reservation_overrun
async def test_a_bill_above_its_reservation_is_recorded_in_full_and_flagged(stub_router, vertex_stub, tmp_path):
    """A deliberately wrong ``prompt_tokens`` (the one overrun the suite allows): the ledger still books the
    whole bill, and the warning names the cause."""
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 50_000, "output_tokens": 10})
    record = (await r.acomplete(HELLO, max_tokens=10, prompt_tokens=20)).routing
    assert record.cost_usd > record.attempts[-1].reserved_usd
    assert any("provider counted 50,000 prompt tokens, more than the prompt_tokens=20 passed" in w for w in record.warnings)
    assert await spend_of(r) == {"global|calendar:month@UTC": record.cost_usd}


def test_explain_shows_the_decision_the_call_makes(stub_router, vertex_stub, tmp_path):
    r = stub_router(str(REPO / "policies" / "demo.yaml"), watch_policy=False)
    attrs = dict(tenant="acme", app="analytics", task="analysis", max_tokens=4_000, prompt_tokens=60_000)
    explained = r.explain(HELLO, **attrs)
    decided = r.complete(HELLO, **attrs).routing.decision
    for key in ("model", "location", "rule", "profile", "fallbacks", "choices", "budgets", "actions"):
        assert explained[key] == decided[key], key


async def test_requests_carry_vertex_labels_and_batch_eligible_ones_bill_online(stub_router, vertex_stub, tmp_path):
    text = """\
version: 1
candidates: [{model: gemini-2.5-flash, batch: true}]
profiles: {p: {objective: cheapest, batch: true}}
default_profile: p
"""
    r = stub_router(write(tmp_path, text))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 10_000, "output_tokens": 1_000})
    record = (await r.acomplete(HELLO, max_tokens=1_000, tenant="Acme Corp", app="search", prompt_tokens=10_000)).routing
    assert record.decision["batch"] is True
    labels = vertex_stub.model_requests()[-1].body["labels"]
    assert labels == {"router-tenant": "acme_corp", "router-app": "search", "router-batch-eligible": "true"}
    # Sent online, so billed at the online rates ($0.30 / $2.50), not the batch ones.
    assert record.cost_usd == Decimal("0.0055")
    assert any("batch-eligible" in w for w in record.warnings)


async def test_a_reused_request_id_still_books_every_call(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100})
    first = (await r.acomplete(HELLO, max_tokens=100, request_id="dup", prompt_tokens=1_000)).routing
    second = (await r.acomplete(HELLO, max_tokens=100, request_id="dup", prompt_tokens=1_000)).routing
    assert await spend_of(r) == {"global|calendar:month@UTC": first.cost_usd + second.cost_usd}


async def test_a_consumer_stopping_at_finish_reason_is_billed_the_provider_usage(stub_router, vertex_stub, tmp_path):
    """A very common pattern: break on the chunk with finish_reason. The usage chunk after it is still read."""
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 10_000, "cached_tokens": 8_000, "output_tokens": 300, "thinking_tokens": 5_000})
    stream = await r.acomplete(HELLO, max_tokens=6_000, stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].finish_reason:
            break
    await stream.aclose()
    cost = Decimal("0.01409")  # seed 000: 2,000 x $0.30 + 8,000 cached x $0.03 + (300 + 5,000 thinking) x $2.50, per 1M
    assert stream.routing.cost_usd == cost
    assert stream.routing.attempts[-1].outcome == "ok"
    assert await spend_of(r) == {"global|calendar:month@UTC": cost}


async def test_fallbacks_follow_the_policy_retry_on(stub_router, vertex_stub, tmp_path):
    text = policy("gemini-2.5-flash-lite, gemini-2.5-flash", extra="fallbacks: {retry_on: [rate_limited]}\n")
    r = stub_router(write(tmp_path, text))
    vertex_stub.script("gemini-2.5-flash-lite", error="server_error")
    with pytest.raises(TransportError) as info:
        await r.acomplete(HELLO, max_tokens=100)
    assert [a.outcome for a in info.value.attempts] == ["server_error"]
    assert [req.path.rsplit("/", 1)[-1] for req in vertex_stub.model_requests()] == ["gemini-2.5-flash-lite:generateContent"]


async def test_a_stream_that_cannot_be_built_releases_its_reservation(stub_router, vertex_stub, tmp_path):
    """Grounding on your own data is priced but litellm cannot send it: the error leaves nothing held."""
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    with pytest.raises(ValueError):
        stream = await r.acomplete(HELLO, max_tokens=100, stream=True, grounding="your_data")
        async for _ in stream:
            pass
    assert set((await spend_of(r)).values()) == {Decimal(0)}


async def test_maps_grounding_counts_every_request_in_the_maps_pool(stub_router, vertex_stub, tmp_path):
    """Maps bills a request that ran a Maps query; the response does not say so reliably, so each counts."""
    r = stub_router(write(tmp_path, policy("gemini-2.5-flash")))
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100}, grounding_urls=0)
    record = (await r.acomplete(HELLO, max_tokens=100, grounding="google_maps")).routing
    assert (record.grounding_free_units, record.grounding_billable_units) == (1, 0)
    assert "googleMaps" in str(vertex_stub.model_requests()[-1].body.get("tools"))
    maps = await r.store().pool_usage(r.compiled.quota_pool("gemini-2x-flash-maps-daily"))
    search = await r.store().pool_usage(r.compiled.quota_pool("gemini-2x-flash-search-daily"))
    assert (maps.used, search.used) == (1, 0)
