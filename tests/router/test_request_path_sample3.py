"""The request path where the third broad-profile mutmut sample of ``router/_client.py`` (80 mutants, seed 47)
found no test: a streamed primary denied at reserve time (the stream falls back like a call), the outcome metric of
a stream failure the policy does not retry, the operation label of a ledger error while refreshing the gauges, a
plain-text request that asks for tools, a response object that refuses new attributes, and the cause the "billed >
reserved" warning names when the prompt size came from Count Tokens.

Router + ``router.testing.MockTransport`` (lightweight) + the memory ledger, and for Count Tokens the litellm
transport against ``VertexStub``. Prices by hand (seed 000): Gemini 2.5 Flash-Lite $0.10 in / $0.40 out per 1M
tokens, Gemini 2.5 Flash $0.30 / $2.50, Gemini 2.5 Pro $1.25 / $10 (prompts up to 200,000 tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from router import Router, RouterMetrics, TransportError
from router._transport.types import CallResult, CallSpec
from router.errors import StoreError
from router.ledger.memory import MemoryStore
from router.testing import MockTransport
from tests.router.test_request_path_sample import HELLO, _RacedLedger, metric, policy, spend_and_holds

D = Decimal

FLASH_THEN_LITE = """\
version: 1
candidates: [{model: gemini-2.5-flash}, {model: gemini-2.5-flash-lite}]
profiles: {p: {objective: best_quality, fallbacks: 1}}
default_profile: p
budgets:
  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "0.001"}
"""


# ---------------------------------------------------------------------- a streamed primary denied at reserve time
async def test_a_stream_whose_primary_is_denied_at_reserve_time_falls_back_to_a_candidate_that_fits():
    """$0.001 budget; best_quality picks 2.5 Flash (reserves 1,000 x $0.30 + 100 x $2.50 per 1M = $0.00055), but
    another request took $0.0008 meanwhile: Flash is denied, the stream goes on to Flash-Lite ($0.00014 fits),
    which streams and is billed 1,000 x $0.10 + 10 x $0.40 per 1M = $0.000104."""
    store, transport = _RacedLedger(), MockTransport(lightweight=True)
    transport.script("gemini-2.5", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(FLASH_THEN_LITE, store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=100, stream=True)
    assert [chunk async for chunk in stream]
    record = stream.routing
    assert [(a.model, a.outcome, a.reserved_usd) for a in record.attempts] == [
        ("gemini-2.5-flash", "denied", D("0.00055")), ("gemini-2.5-flash-lite", "ok", D("0.00014"))]
    assert (record.model, record.cost_usd) == ("gemini-2.5-flash-lite", D("0.000104"))
    assert [spec.model_id for spec in transport.calls] == ["gemini-2.5-flash-lite"]
    assert await spend_and_holds(store) == (D("0.000104"), D("0.000904"))  # + the other request's hold
    await r.aclose()


# ---------------------------------------------------------------------- a stream failure that is not retried
async def test_a_stream_failure_the_policy_does_not_retry_is_counted_failed():
    """A 403 (auth) before the first chunk is not retried: the consumer gets the TransportError, the hold is
    released (nothing billed or held) and the request counts as "failed" for its tenant."""
    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    transport.script("gemini-2.5-flash-lite", error="auth")
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False, metrics=metrics)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, tenant="acme", stream=True)
    with pytest.raises(TransportError, match="gemini-2.5-flash-lite: mock auth"):
        async for _ in stream:
            pass
    assert await spend_and_holds(store) == (D(0), D(0))
    assert metric(metrics, "router_requests_total{") == [
        'router_requests_total{model="-",outcome="failed",rule="-",tenant="acme"} 1.0'
    ]
    await r.aclose()


# ---------------------------------------------------------------------- the gauges' refresh on a failing ledger
async def test_a_ledger_error_while_refreshing_the_gauges_is_counted_under_refresh_metrics():
    """The ledger cannot list its budgets: refresh_metrics does not raise, and router_store_errors_total counts
    the failure under operation="refresh_metrics" (the label the alert reads)."""

    class _BrokenListing(MemoryStore):
        async def list_scopes(self):  # type: ignore[override]
            raise StoreError("ledger down")

    metrics = RouterMetrics()
    r = Router(policy("gemini-2.5-flash-lite"), store=_BrokenListing(), transport=MockTransport(lightweight=True),
               watch_policy=False, metrics=metrics)
    await r.refresh_metrics()
    assert metric(metrics, "router_store_errors_total{") == ['router_store_errors_total{operation="refresh_metrics"} 1.0']
    await r.aclose()


# ---------------------------------------------------------------------- a plain-text request that needs tools
async def test_a_plain_text_request_with_tools_goes_to_a_model_that_has_tools():
    """Mistral OCR ($0.0005 / $0.0005 per 1M) is the cheapest candidate but has no tools: a plain "hello" with a
    tool declaration is served by Flash-Lite, reserved 1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014 and billed
    1,000 x $0.10 + 10 x $0.40 per 1M = $0.000104."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router("""\
version: 1
candidates: [{model: mistral-ocr-2505, location: us-central1}, {model: gemini-2.5-flash-lite}]
profiles: {p: {objective: cheapest}}
default_profile: p
budgets:
  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "10"}
""", store=store, transport=transport, watch_policy=False)
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, tools=tools)).routing
    assert (record.model, record.attempts[-1].reserved_usd, record.cost_usd) == ("gemini-2.5-flash-lite", D("0.00014"), D("0.000104"))
    assert [spec.model_id for spec in transport.calls] == ["gemini-2.5-flash-lite"]
    assert transport.calls[-1].params["tools"] == tools  # passed on to the model
    assert await spend_and_holds(store) == (D("0.000104"), D("0.000104"))
    await r.aclose()


# ---------------------------------------------------------------------- a response that refuses new attributes
@dataclass(frozen=True)
class _FrozenResponse:
    """A custom transport's response type that refuses ``response.routing = ...`` (FrozenInstanceError)."""

    text: str


class _FrozenResponses(MockTransport):
    """MockTransport whose successful calls answer with a frozen dataclass instead of a response object."""

    async def send(self, spec: CallSpec, settings=None) -> CallResult:  # type: ignore[override]
        result = await super().send(spec, settings)
        return CallResult(response=_FrozenResponse("mock reply"), usage=result.usage)


async def test_a_response_that_refuses_attributes_still_carries_its_routing_record():
    """The bill of a call whose response type is frozen (1,000 x $0.10 + 10 x $0.40 per 1M = $0.000104) is booked
    and the record is still attached to the response the caller gets."""
    store, transport = MemoryStore(), _FrozenResponses(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    response = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert isinstance(response, _FrozenResponse)
    assert (response.routing.model, response.routing.cost_usd) == ("gemini-2.5-flash-lite", D("0.000104"))
    assert await spend_and_holds(store) == (D("0.000104"), D("0.000104"))
    await r.aclose()
