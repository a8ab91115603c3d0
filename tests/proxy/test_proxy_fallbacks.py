"""The LiteLLM proxy plugin at full strength, against a real proxy process, the Vertex stub and a real
redis-server: the policy's fallbacks are walked inside the proxy (each attempt reserved, a failed one released
and never billed), the response names the model that served, and a budget refusal looks like LiteLLM's own."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal

import pytest

from router.integrations.litellm_proxy import budget_refusal_retry_after
from router.ledger import BudgetScope, Window
from tests.proxy.proxy_process import CONFIG, ledger_spend, running_proxy

MASTER_KEY = "sk-router-fallback-test-" + uuid.uuid4().hex

POLICY = """\
version: 1
candidates:
  - model: gemini-2.5-flash-lite
  - model: gemini-2.5-flash
profiles:
  cheap:
    objective: cheapest
default_profile: cheap
fallbacks:
  max: 1
  retry_on: [rate_limited, server_error]
budgets:
  - name: tenant-monthly
    scope: tenant
    window: calendar:month@UTC
    limit_usd: "LIMIT"
"""


async def _post(proxy: dict, body: dict):
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(f"{proxy['url']}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"})


BODY = {"model": "router", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 200, "user": "acme"}


@pytest.mark.slow
@pytest.mark.litellm
@pytest.mark.redis_server
async def test_a_429_falls_back_inside_the_proxy_and_only_the_served_attempt_is_billed(tmp_path, redis_server, vertex_stub_server):
    with running_proxy(tmp_path, CONFIG, POLICY.replace("LIMIT", "10"), redis_server, vertex_stub_server, MASTER_KEY) as proxy:
        stub = proxy["stub"]
        # (A script matches every model whose name contains it, the latest first: flash-lite's comes last.)
        stub.script("gemini-2.5-flash", usage={"input_tokens": 1200, "output_tokens": 80}, traffic_type="ON_DEMAND")
        stub.script("gemini-2.5-flash-lite", error="rate_limited", error_times=1)
        response = await _post(proxy, BODY)
        log = proxy["log"].read_text(errors="replace")[-4000:]
        assert response.status_code == 200, f"{response.text}\n{log}"
        # Vertex saw the cheapest candidate first (429), then the policy's fallback.
        assert [c.model for c in stub.model_requests()] == ["gemini-2.5-flash-lite", "gemini-2.5-flash"], log
        # The response names the model that served, not the alias.
        assert response.json()["model"] == "gemini-2.5-flash"
        # gemini-2.5-flash (seed 000): 1,200 x $0.30/1M + 80 x $2.50/1M = $0.00036 + $0.0002 = $0.00056.
        expected = Decimal("0.00056")
        held = settled = Decimal(-1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # settled by the success event, in the background
            settled = await ledger_spend(proxy, "tenant:acme", with_holds=False)
            held = await ledger_spend(proxy, "tenant:acme", with_holds=True)
            if settled == expected and held == expected:
                break
            time.sleep(0.1)
        # Billed once, for the served attempt; the 429's hold is released (nothing else held).
        assert (settled, held) == (expected, expected), log


@pytest.mark.slow
@pytest.mark.litellm
@pytest.mark.redis_server
async def test_over_budget_is_refused_like_litellm_budgets_not_as_a_retryable_429(tmp_path, redis_server, vertex_stub_server):
    with running_proxy(tmp_path, CONFIG, POLICY.replace("LIMIT", "0.0000001"), redis_server, vertex_stub_server, MASTER_KEY) as proxy:
        response = await _post(proxy, BODY)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "budget_exceeded" and error["code"] == "400"
        assert "tenant:acme|calendar:month@UTC" in error["message"]
        # A monthly window does not reset within the hour (except in a month's last hour): no Retry-After.
        now = dt.datetime.now(dt.timezone.utc)
        month = BudgetScope("tenant:acme", Window.parse("calendar:month@UTC"), Decimal("1"))
        assert ("retry-after" in response.headers) == (budget_refusal_retry_after(month, now) is not None)
        assert proxy["stub"].model_requests() == []  # nothing was sent to Vertex


def test_retry_after_only_when_the_window_resets_within_the_hour():
    day = BudgetScope("tenant:a", Window.parse("calendar:day@UTC"), Decimal("1"))
    month = BudgetScope("tenant:a", Window.parse("calendar:month@UTC"), Decimal("1"))
    rolling = BudgetScope("tenant:a", Window.parse("rolling:1h"), Decimal("1"))
    late = dt.datetime(2026, 11, 30, 23, 15, tzinfo=dt.timezone.utc)
    assert budget_refusal_retry_after(day, late) == 45 * 60 + 1
    assert budget_refusal_retry_after(month, late) == 45 * 60 + 1  # the month ends at midnight too
    early = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)
    assert budget_refusal_retry_after(day, early) is None  # 14 hours away: no promise to retry soon
    assert budget_refusal_retry_after(rolling, late) is None  # a rolling window has no reset moment
