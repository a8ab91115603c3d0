"""The proxy plugin's engine side (``ProxyRouting``) called directly with the proxy's data shapes:
the request body the pre-call hook receives and the ``kwargs`` litellm hands to the logging events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router._client import Router
from router.integrations.litellm_proxy import ATTEMPT_KEY, ProxyRouting
from router.ledger import BudgetScope, Window

from tests.proxy.policy import POLICY


def _routing(tmp_path, limit: str = "10") -> ProxyRouting:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("LIMIT", limit), encoding="utf-8")
    router = Router(
        str(path),
        store="memory://",
        watch_policy=False,
        vertex_project="proj",
        vertex_location="us-central1",
        vertex_credentials="/tmp/sa.json",
        api_base="http://127.0.0.1:9",
    )
    return ProxyRouting(router=router)


def _body(**extra):
    return {
        "model": "router",
        "messages": [{"role": "user", "content": "hello " * 50}],
        "max_tokens": 100,
        "user": "acme",
        "metadata": {"app": "web"},
        **extra,
    }


async def _held(routing: ProxyRouting, tenant: str) -> Decimal:
    budget = BudgetScope(f"tenant:{tenant}", Window.parse("calendar:month@UTC"), Decimal("10"))
    snap = await routing.router.store().snapshot([budget], (), ())
    return snap.spend.get(budget.id, Decimal(0))


def test_only_aliases_and_chat_completions_are_routed():
    routing = ProxyRouting(router=object(), aliases="router,auto")
    assert routing.wants({"model": "router", "messages": []}, "acompletion")
    assert routing.wants({"model": "auto", "messages": []}, "completion")
    assert not routing.wants({"model": "gpt-4o", "messages": []}, "acompletion")
    assert not routing.wants({"model": "router", "input": "x"}, "aembedding")
    assert ProxyRouting(router=object(), aliases="*").wants({"model": "gpt-4o", "messages": []}, "acompletion")


async def test_pre_call_rewrites_to_the_chosen_deployment_and_reserves(tmp_path):
    routing = _routing(tmp_path)
    data = _body(metadata={"tenant": "acme", "tags": ["team=ml"]}, max_completion_tokens=100)
    data.pop("max_tokens")
    await routing.route(data)
    assert data["model"].startswith("router/gemini-2.5-flash-lite@")
    [entry] = data["user_config"]["model_list"]
    assert entry["model_name"] == data["model"]
    params = entry["litellm_params"]
    assert params["model"] == "vertex_ai/gemini-2.5-flash-lite"
    assert params["vertex_project"] == "proj" and params["api_base"] == "http://127.0.0.1:9"
    assert params["vertex_location"] == data["metadata"]["router_location"]
    assert data["max_tokens"] == 100 and "max_completion_tokens" not in data
    assert data["metadata"]["router_model"] == "gemini-2.5-flash-lite"
    assert data["metadata"]["router_rule"] == "acme"
    assert await _held(routing, "acme") == Decimal(data["metadata"]["router_reserved_usd"]) > 0


async def test_success_settles_our_bill_and_failure_releases(tmp_path):
    routing = _routing(tmp_path)
    data = _body()
    await routing.route(data)
    kwargs = {"litellm_params": {"metadata": dict(data["metadata"])}, "litellm_call_id": "x"}
    response = {"usage": {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280}}
    cost = await routing.settle(kwargs, response)
    expected = Decimal("0.000152")  # seed 000, Gemini 2.5 Flash-Lite: 1,200 x $0.1 + 80 x $0.4, per 1M
    assert cost == expected
    assert await _held(routing, "acme") == expected
    assert await routing.settle(kwargs, response) is None  # a repeated event is a no-op

    failed = _body()
    await routing.route(failed)
    assert await _held(routing, "acme") > expected
    assert await routing.release({"litellm_params": {"metadata": failed["metadata"]}})
    assert await _held(routing, "acme") == expected
    assert not await routing.release(attempt_id=failed["metadata"][ATTEMPT_KEY])


async def test_every_reservation_denied_is_a_budget_exceeded_400(tmp_path):
    routing = _routing(tmp_path, limit="0.0000001")
    with pytest.raises(Exception) as info:
        await routing.route(_body())
    # LiteLLM's own budget error shape: OpenAI SDKs retry a 429, never a 400.
    assert (info.value.code, info.value.type) == ("400", "budget_exceeded")
    assert "budget tenant:acme|calendar:month@UTC" in info.value.message
