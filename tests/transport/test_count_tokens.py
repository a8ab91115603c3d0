"""Count Tokens through the Router: litellm's real Vertex code for the calls, the loopback stub for
the calls and for Gemini ``:countTokens`` / Claude ``count-tokens:rawPredict`` (seed 002).

Prices by hand from seed 000: Gemini 2.5 Pro $1.25 / $10 per 1M input / output tokens, and $2.50 / $15
for every token of a request whose input exceeds 200,000 tokens; Gemini 2.5 Flash $0.30 / $2.50;
Claude Sonnet 4.5 $3 / $15 (>= 200K: $6 / $22.50).
"""

from __future__ import annotations

import base64
import subprocess
import sys
from decimal import Decimal

import pytest

pytestmark = pytest.mark.litellm

D = Decimal

PRO_ONLY = """\
version: 1
settings:
  count_tokens: {mode}
profiles:
  a:
    candidates:
      - model: gemini-2.5-pro
        location: us-central1
    objective: cheapest
default_profile: a
"""

PRO_THEN_CLAUDE = """\
version: 1
profiles:
  a:
    candidates:
      - model: gemini-2.5-pro
        location: us-central1
      - model: claude-sonnet-4-5
        location: us-east5
    objective: cheapest
    fallbacks: 1
default_profile: a
"""

FLASH = """\
version: 1
profiles:
  a:
    candidates:
      - model: gemini-2.5-flash
        location: us-central1
default_profile: a
"""


def prompt_of(estimate: int) -> list[dict[str, str]]:
    """One user message the local estimate puts at ``estimate`` tokens: ceil(chars / 4) + 4 + 3."""
    return [{"role": "user", "content": "abcd" * (estimate - 7)}]


@pytest.fixture
def make(stub_router, tmp_path):
    def build(text: str, **kwargs):
        path = tmp_path / "policy.yaml"
        path.write_text(text, encoding="utf-8")
        kwargs.setdefault("count_tokens_timeout_s", 10)  # a loaded test machine must not turn a count into a fallback
        return stub_router(str(path), watch_policy=False, **kwargs)

    return build


async def test_a_count_above_the_boundary_is_decided_and_reserved_at_the_long_context_price(make, vertex_stub):
    router = make(PRO_ONLY.format(mode="near_limits"))
    vertex_stub.script_count("gemini-2.5-pro", total_tokens=210_000)
    vertex_stub.script("gemini-2.5-pro", usage={"input_tokens": 210_000, "output_tokens": 100})
    response = await router.acomplete(prompt_of(190_000), max_tokens=1000)
    record = response.routing
    size = record.decision["prompt_size"]
    assert size["source"] == "count_tokens" and size["tokens"] == 210_000 and size["estimate"] == 190_000
    assert "long-context boundary" in size["reason"] and size["count_model"] == "gemini-2.5-pro"
    # 210,000 x $2.50/1M + 1,000 x $15/1M: all tokens at the long-context rate
    assert record.attempts[0].reserved_usd == D("0.54")
    assert record.decision["upper_bound_cost_usd"] == "0.54"
    # expected: 210,000 x 2.5/1M + 500 (half of max_tokens) x 15/1M
    assert record.decision["estimated_cost_usd"] == "0.5325"
    assert record.cost_usd == D("0.5265")  # 210,000 x 2.5/1M + 100 x 15/1M
    counts = vertex_stub.count_requests()
    assert len(counts) == 1 and counts[0].path.endswith("/publishers/google/models/gemini-2.5-pro:countTokens")
    assert counts[0].body["contents"][0]["parts"][0]["text"].startswith("abcd")
    assert counts[0].headers["authorization"].startswith("Bearer ya29.stub-")
    assert not record.warnings


async def test_a_count_below_the_boundary_is_reserved_at_the_standard_price(make, vertex_stub):
    router = make(PRO_ONLY.format(mode="near_limits"))
    vertex_stub.script_count("gemini-2.5-pro", total_tokens=190_000)
    vertex_stub.script("gemini-2.5-pro", usage={"input_tokens": 190_000, "output_tokens": 100})
    response = await router.acomplete(prompt_of(210_000), max_tokens=1000)
    record = response.routing
    assert record.decision["prompt_size"]["tokens"] == 190_000
    assert record.attempts[0].reserved_usd == D("0.2475")  # 190,000 x 1.25/1M + 1,000 x 10/1M
    assert record.cost_usd == D("0.2385")  # 190,000 x 1.25/1M + 100 x 10/1M


@pytest.mark.reservation_overrun  # count_tokens: never keeps a low estimate: the one cause the router is told not to look at
async def test_never_keeps_the_estimate_and_sends_no_count(make, vertex_stub):
    router = make(PRO_ONLY.format(mode="never"))
    vertex_stub.script("gemini-2.5-pro", usage={"input_tokens": 210_000, "output_tokens": 100})
    response = await router.acomplete(prompt_of(190_000), max_tokens=1000)
    size = response.routing.decision["prompt_size"]
    assert size == {**size, "source": "estimate", "tokens": 190_000, "margin_percent": "0", "fallback": None}
    assert response.routing.attempts[0].reserved_usd == D("0.2475")  # 190,000 x 1.25/1M + 1,000 x 10/1M
    assert vertex_stub.count_requests() == []
    assert any("prompt estimate was low" in w for w in response.routing.warnings)  # billed 0.5265 > 0.2475


async def test_a_short_request_is_not_counted_and_a_caller_count_wins(make, vertex_stub):
    router = make(PRO_ONLY.format(mode="near_limits"))
    response = await router.acomplete([{"role": "user", "content": "hello"}], max_tokens=100)
    assert response.routing.decision["prompt_size"]["source"] == "estimate"
    assert response.routing.decision["prompt_size"]["reason"] is None
    response = await router.acomplete(prompt_of(190_000), max_tokens=100, prompt_tokens=195_000)
    assert response.routing.decision["prompt_size"] == {**response.routing.decision["prompt_size"], "source": "caller", "tokens": 195_000}
    assert vertex_stub.count_requests() == []
    assert router.prompt_counter.stats == {"counted": 0, "cache_hit": 0, "fallback": 0, "unsupported": 0}


async def test_always_counts_every_request_once(make, vertex_stub):
    router = make(PRO_ONLY.format(mode="always"))
    vertex_stub.script_count("gemini-2.5-pro", total_tokens=12)
    response = await router.acomplete([{"role": "user", "content": "hello"}], max_tokens=100)
    assert response.routing.decision["prompt_size"]["tokens"] == 12
    assert response.routing.decision["prompt_size"]["reason"] == "settings.count_tokens: always"
    assert len(vertex_stub.count_requests()) == 1


def _pdf_message() -> list[dict]:
    pdf = base64.b64encode(b"%PDF-1.4 " + b"x" * 3000).decode("ascii")
    return [
        {"role": "system", "content": "You summarise documents."},
        {"role": "user", "content": [
            {"type": "text", "text": "Summarise this report."},
            {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}"}},
        ]},
    ]


async def test_a_pdf_part_is_reserved_from_the_count(make, vertex_stub):
    router = make(FLASH)
    vertex_stub.script_count("gemini-2.5-flash", total_tokens=50_000)
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 50_000, "output_tokens": 200})
    response = await router.acomplete(_pdf_message(), max_tokens=2000)
    record = response.routing
    size = record.decision["prompt_size"]
    assert size["source"] == "count_tokens" and size["tokens"] == 50_000
    assert "non-text parts (pdf)" in size["reason"]
    assert record.attempts[0].reserved_usd == D("0.02")  # 50,000 x 0.30/1M + 2,000 x 2.50/1M
    assert record.cost_usd == D("0.0155")  # 50,000 x 0.30/1M + 200 x 2.50/1M
    body = vertex_stub.count_requests()[0].body
    assert body["systemInstruction"] == {"parts": [{"text": "You summarise documents."}]}
    assert body["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "application/pdf"


async def test_claude_is_counted_on_its_count_tokens_endpoint(make, vertex_stub):
    router = make(PRO_THEN_CLAUDE.replace("      - model: gemini-2.5-pro\n        location: us-central1\n", ""))
    vertex_stub.script_count("claude-sonnet-4-5", total_tokens=205_000)
    vertex_stub.script("claude", usage={"input_tokens": 205_000, "output_tokens": 100})
    response = await router.acomplete(prompt_of(190_000), max_tokens=1000)
    record = response.routing
    assert record.decision["prompt_size"]["tokens"] == 205_000
    # >= 200K on Sonnet 4.5: 205,000 x $6/1M + 1,000 x $22.50/1M
    assert record.attempts[0].reserved_usd == D("1.2525")
    (count,) = vertex_stub.count_requests()
    assert count.path.endswith("/publishers/anthropic/models/count-tokens:rawPredict")
    assert count.body["model"] == "claude-sonnet-4-5" and count.body["messages"][0]["role"] == "user"


@pytest.mark.parametrize("failure", [{"error": "server_error"}, {"error": "unavailable"}, {"error": "rate_limited"}, {"latency_s": 1.5}])
async def test_a_count_outage_falls_back_to_the_estimate_plus_the_margin(make, vertex_stub, failure):
    router = make(PRO_ONLY.format(mode="near_limits"), count_tokens_timeout_s=0.5)
    vertex_stub.script_count("gemini-2.5-pro", total_tokens=1, **failure)
    vertex_stub.script("gemini-2.5-pro", usage={"input_tokens": 190_000, "output_tokens": 100})
    response = await router.acomplete(prompt_of(190_000), max_tokens=1000)
    record = response.routing
    size = record.decision["prompt_size"]
    # 190,000 + 25 % = 237,500 tokens, above 200K: 237,500 x 2.5/1M + 1,000 x 15/1M
    assert size["source"] == "estimate" and size["tokens"] == 237_500 and size["margin_percent"] == "25"
    assert size["fallback"].startswith("Count Tokens")
    assert record.attempts[0].reserved_usd == D("0.60875")
    assert [a.outcome for a in record.attempts] == ["ok"]
    assert record.cost_usd == D("0.2385")  # billed from usage: 190,000 x 1.25/1M + 100 x 10/1M
    assert router.prompt_counter.stats["fallback"] == 1


async def test_an_exhausted_pool_falls_back_without_asking(make, vertex_stub):
    from router.ledger import count_tokens_pool

    router = make(PRO_ONLY.format(mode="near_limits"))
    vertex_stub.script("gemini-2.5-pro", usage={"input_tokens": 190_000, "output_tokens": 100})
    pool = count_tokens_pool("router-stub-project")
    assert (await router.store().take_rate(pool, 3000)).granted  # the minute's 3,000 are gone
    response = await router.acomplete(prompt_of(190_000), max_tokens=1000)
    size = response.routing.decision["prompt_size"]
    assert size["tokens"] == 237_500 and "quota spent (3,000 of 3,000" in size["fallback"]
    assert vertex_stub.count_requests() == []


async def test_a_fallback_attempt_and_a_retry_reuse_the_count(make, vertex_stub):
    router = make(PRO_THEN_CLAUDE)
    vertex_stub.script_count("gemini-2.5-pro", total_tokens=210_000)
    vertex_stub.script("gemini-2.5-pro", error="rate_limited")
    vertex_stub.script("claude", usage={"input_tokens": 209_000, "output_tokens": 100})
    messages = prompt_of(190_000)
    response = await router.acomplete(messages, max_tokens=1000)
    record = response.routing
    assert [a.outcome for a in record.attempts] == ["rate_limited", "ok"]
    # the fallback is reserved from the same count: >= 200K on Sonnet 4.5, 210,000 x 6/1M + 1,000 x 22.5/1M
    assert record.attempts[1].reserved_usd == D("1.2825")
    again = await router.acomplete(messages, max_tokens=1000)  # the application retries the request
    assert again.routing.decision["prompt_size"]["cached"] is True
    assert len(vertex_stub.count_requests()) == 1
    assert router.prompt_counter.stats["counted"] == 1 and router.prompt_counter.stats["cache_hit"] == 1


async def test_explain_says_where_the_size_came_from_and_warms_the_cache(make, vertex_stub):
    router = make(PRO_ONLY.format(mode="near_limits"))
    vertex_stub.script_count("gemini-2.5-pro", total_tokens=210_000)
    vertex_stub.script("gemini-2.5-pro", usage={"input_tokens": 210_000, "output_tokens": 100})
    messages = prompt_of(190_000)
    explained = await router._explain(messages, {"max_tokens": 1000})
    assert explained["prompt_size"]["source"] == "count_tokens" and explained["request"]["prompt_tokens"] == 210_000
    assert explained["upper_bound_cost_usd"] == "0.54"
    response = await router.acomplete(messages, max_tokens=1000)
    assert response.routing.decision["prompt_size"]["cached"] is True
    assert len(vertex_stub.count_requests()) == 1


@pytest.mark.redis_server
async def test_the_pool_is_shared_with_another_process_on_real_redis(make, vertex_stub, redis_server, unique_prefix):
    """Another process spends the project's 3,000 counts of this minute: this Router falls back."""
    if not redis_server.ping():
        redis_server.start()
    code = (
        "import asyncio\n"
        "from router.ledger import count_tokens_pool, store_from_url\n"
        "async def main():\n"
        f"    store = store_from_url({redis_server.url!r}, prefix={unique_prefix!r})\n"
        "    took = await store.take_rate(count_tokens_pool('router-stub-project'), 3000)\n"
        "    await store.close()\n"
        "    assert took.granted\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    router = make(PRO_ONLY.format(mode="near_limits"), store=redis_server.url, key_prefix=unique_prefix)
    vertex_stub.script("gemini-2.5-pro", usage={"input_tokens": 190_000, "output_tokens": 100})
    response = await router.acomplete(prompt_of(190_000), max_tokens=1000)
    assert "quota spent" in response.routing.decision["prompt_size"]["fallback"]
    assert vertex_stub.count_requests() == []


async def test_metrics_and_the_ledger_show_counts_cache_hits_fallbacks_and_the_pool(make, vertex_stub):
    from router import RouterMetrics
    from router.ledger import count_tokens_pool

    metrics = RouterMetrics()
    router = make(PRO_ONLY.format(mode="near_limits"), metrics=metrics)
    vertex_stub.script_count("gemini-2.5-pro", total_tokens=210_000, error_times=None)
    vertex_stub.script("gemini-2.5-pro", usage={"input_tokens": 210_000, "output_tokens": 100})
    messages = prompt_of(190_000)
    await router.acomplete(messages, max_tokens=1000)  # counted
    await router.acomplete(messages, max_tokens=1000)  # cache hit
    vertex_stub.script_count("gemini-2.5-pro", error="server_error")
    await router.acomplete(prompt_of(189_000), max_tokens=1000)  # fallback
    await router.refresh_metrics()
    text = metrics.render().decode()
    for outcome in ("counted", "cache_hit", "fallback"):
        assert f'router_count_tokens_total{{outcome="{outcome}"}} 1.0' in text
    assert 'router_count_tokens_pool_used{pool="count_tokens.router-stub-project"} 2.0' in text  # two requests sent
    assert 'router_count_tokens_pool_remaining{pool="count_tokens.router-stub-project"} 2998.0' in text
    day = await router.store().rate_outcomes(count_tokens_pool("router-stub-project"))
    assert day == {"counted": 1, "cache_hit": 1, "fallback": 1}
