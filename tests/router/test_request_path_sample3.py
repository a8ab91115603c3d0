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

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest

from router import Router, RouterMetrics, TransportError
from router._transport.count_tokens import TokenCount
from router._transport.types import CallResult, CallSpec
from router.errors import StoreError
from router.ledger.memory import MemoryStore
from router.testing import MockTransport
from tests.router.test_request_path_sample import (
    FLASH_THEN_LITE,
    HELLO,
    PT_POLICY,
    _RacedLedger,
    assert_raced_primary_fell_back_to_lite,
    metric,
    policy,
    spend_and_holds,
)

D = Decimal


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
    await assert_raced_primary_fell_back_to_lite(record, transport, store)
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


# ---------------------------------------------------------------------- the overrun cause of a counted prompt
class _CountingTransport(MockTransport):
    """MockTransport with a Count Tokens answer: every prompt counts 12 tokens."""

    async def count_tokens(self, spec: CallSpec, settings=None) -> TokenCount:
        return TokenCount(12, spec.vertex_model)


@pytest.mark.reservation_overrun  # deliberate: the provider bills more prompt tokens than were counted
async def test_an_overrun_past_a_counted_prompt_names_count_tokens_as_its_cause():
    """settings.count_tokens: always; Count Tokens says 12 tokens: reserved 12 x $0.10 + 100 x $0.40 per 1M =
    $0.0000412. The provider bills 1,000 prompt tokens (+ 10 out): $0.000104, booked in full; the warning names
    the Count Tokens count as the cause (not a low estimate, not the caller's prompt_tokens)."""
    store, transport = MemoryStore(), _CountingTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    text = policy("gemini-2.5-flash-lite") + "settings: {count_tokens: always}\n"
    r = Router(text, store=store, transport=transport, watch_policy=False, vertex_project="router-test")
    record = (await r.acomplete(HELLO, max_tokens=100)).routing
    assert record.decision["prompt_size"]["source"] == "count_tokens"
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.0000412"), D("0.000104"))
    assert [w for w in record.warnings if w.startswith("billed $")] == [
        "billed $0.000104 > reserved $0.0000412: the provider billed 1,000 prompt tokens, more than the 12 Count "
        "Tokens counted (a fallback to a model of another tokenizer family, or tool declarations); the ledger "
        "recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.000104"), D("0.000104"))
    await r.aclose()


# ---------------------------------------------------------------------- the overrun cause of a PT spill
@pytest.mark.reservation_overrun  # deliberate: the fourth answer has more output than max_tokens
async def test_an_overrun_reserved_as_paygo_does_not_blame_provisioned_throughput():
    """provisioned: first, one GSU of Gemini 2.0 Flash ($0.15 / $0.60 per 1M): three requests of 1,000 + 8,000 x 4
    = 33,000 burndown-adjusted tokens fill the 100,800-token window and are served by PT at $0. The fourth has no
    room at its decision, so it is reserved as PayGo: 1,000 x $0.15 + 8,000 x $0.60 per 1M = $0.00495. It runs
    on PayGo with 9,000 output tokens: billed $0.00015 + 9,000 x $0.60 per 1M = $0.00555, booked in full. The
    warning names the output as the one cause: no PT was counted on for this request, so none was lost."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.0-flash", usage={"input_tokens": 1_000, "output_tokens": 8_000, "traffic_type": "PROVISIONED_THROUGHPUT"})
    r = Router(PT_POLICY.replace("mode: only", "mode: first"), store=store, transport=transport, watch_policy=False)
    day = dt.date(2026, 11, 3)
    for _ in range(3):
        served = await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=day)
        assert (served.routing.traffic_type, served.routing.cost_usd) == ("PROVISIONED_THROUGHPUT", D(0))
    transport.script("gemini-2.0-flash", usage={"input_tokens": 1_000, "output_tokens": 9_000, "traffic_type": "ON_DEMAND"})
    record = (await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=day)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd, record.provisioned["traffic"]) == (D("0.00495"), D("0.00555"), "spilled")
    assert [w for w in record.warnings if w.startswith("billed $")] == [
        "billed $0.00555 > reserved $0.00495: the model produced 9,000 output tokens (thinking included), more than "
        "max_tokens=8,000; the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.00555"), D("0.00555"))
    await r.aclose()


# ---------------------------------------------------------------------- messages given as a one-shot iterable
async def test_messages_given_as_an_iterator_reach_the_model_whole():
    """The messages are read more than once (sizing and capabilities, then the call): a one-shot iterator is
    taken as a list first, so the model gets the whole prompt and the call is billed 1,000 x $0.10 + 10 x $0.40
    per 1M = $0.000104."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(iter(HELLO), max_tokens=100, prompt_tokens=1_000)).routing
    assert list(transport.calls[-1].messages) == HELLO
    assert record.cost_usd == D("0.000104")
    assert await spend_and_holds(store) == (D("0.000104"), D("0.000104"))
    await r.aclose()
