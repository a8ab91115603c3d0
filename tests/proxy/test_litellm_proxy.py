"""The LiteLLM proxy plugin, end to end: a real ``litellm`` proxy process on loopback loads
``router.integrations.litellm_proxy.handler`` from its config (the two documented lines, no model
list), routes to the loopback Vertex stub, and settles the exact bill in a real Redis ledger."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.litellm, pytest.mark.redis_server]

from tests.proxy.policy import POLICY as _POLICY
from tests.proxy.proxy_process import CONFIG, ledger_spend, running_proxy

POLICY = _POLICY.replace("LIMIT", "10")

#: The same two lines in a proxy that already serves a model list of its own.
CONFIG_WITH_MODEL_LIST = CONFIG + """\
model_list:
  - model_name: other-model
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: sk-unused
      api_base: http://127.0.0.1:9
"""

MASTER_KEY = "sk-router-proxy-test-" + uuid.uuid4().hex


@pytest.fixture(params=[CONFIG, CONFIG_WITH_MODEL_LIST], ids=["two-lines", "with-model-list"])
def proxy(request, tmp_path, redis_server, vertex_stub_server):
    with running_proxy(tmp_path, request.param, POLICY, redis_server, vertex_stub_server, MASTER_KEY) as running:
        yield running


async def test_proxy_routes_reserves_and_settles(proxy):
    import httpx

    stub = proxy["stub"]
    stub.script("gemini-2.5-flash", usage={"input_tokens": 1200, "output_tokens": 80}, traffic_type="ON_DEMAND")
    body = {
        "model": "router",
        "messages": [{"role": "user", "content": "Say hello to the proxy."}],
        "max_tokens": 256,
        "user": "acme",
        "metadata": {"app": "proxy-test"},
    }
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{proxy['url']}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{proxy['log'].read_text(errors='replace')[-3000:]}"
    payload = response.json()
    assert payload["choices"][0]["message"]["content"]
    assert payload["usage"]["prompt_tokens"] == 1200

    # The policy's rule for tenant acme chose gemini-2.5-flash-lite, and that is what Vertex was asked for.
    calls = stub.model_requests()
    assert [c.model for c in calls] == ["gemini-2.5-flash-lite"], [(c.model, c.path) for c in calls]
    call = calls[0]
    assert call.api == "gemini" and call.project == "router-stub-project"
    config = call.body.get("generationConfig") or {}
    assert config.get("maxOutputTokens", config.get("max_output_tokens")) == 256, call.body  # the reserved bound

    # The ledger holds exactly our cost engine's bill for the stub's usage (settled after the response).
    expected = Decimal("0.000152")  # seed 000, Gemini 2.5 Flash-Lite: 1,200 x $0.1 + 80 x $0.4, per 1M
    spent = Decimal(0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spent = await ledger_spend(proxy, "tenant:acme")
        if spent:
            break
        time.sleep(0.1)
    assert spent == expected, proxy["log"].read_text(errors="replace")[-3000:]

    # A streamed call is settled from its final usage chunk.
    stub.script("gemini-2.5-flash-lite", usage={"input_tokens": 900, "output_tokens": 40}, traffic_type="ON_DEMAND")
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream(
            "POST", f"{proxy['url']}/v1/chat/completions", json={**body, "stream": True}, headers={"Authorization": f"Bearer {MASTER_KEY}"}
        ) as streamed:
            assert streamed.status_code == 200
            lines = [line async for line in streamed.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and len(lines) > 2
    assert stub.model_requests()[-1].stream and stub.model_requests()[-1].model == "gemini-2.5-flash-lite"
    second = Decimal("0.000106")  # 900 x $0.1 + 40 x $0.4, per 1M
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spent = await ledger_spend(proxy, "tenant:acme")
        if spent != expected:
            break
        time.sleep(0.1)
    assert spent == expected + second, proxy["log"].read_text(errors="replace")[-3000:]
    expected += second

    # Another tenant gets the default profile; a failed call is released, never billed.
    stub.script("gemini-2.5-flash", error="bad_request")
    body2 = {**body, "user": "globex"}
    async with httpx.AsyncClient(timeout=30) as client:
        failed = await client.post(f"{proxy['url']}/v1/chat/completions", json=body2, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert failed.status_code == 400, failed.text
    assert stub.model_requests()[-1].model == "gemini-2.5-flash"
    held = Decimal(-1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the failure event releases the hold asynchronously
        held = await ledger_spend(proxy, "tenant:globex", with_holds=True)
        if held == 0:
            break
        time.sleep(0.1)
    assert held == 0
    assert await ledger_spend(proxy, "tenant:globex") == 0
    assert await ledger_spend(proxy, "tenant:acme") == expected
