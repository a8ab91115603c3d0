"""The request path where a plausible bug loses money or leaks a hold (issue 12's surviving mutations):
cancelled calls, billing errors, streams that fail before their first chunk or are closed by the caller,
downgraded priority traffic and the policy's retry_on. Router + router.testing.MockTransport + the memory
ledger; each test asserts the ledger afterwards: what is settled, and that no hold is left behind.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from router import Router, TransportError
from router.catalog import load_catalog
from router.errors import UsageError
from router.ledger.memory import MemoryStore
from router.testing import MockTransport

REPO = Path(__file__).resolve().parents[2]
HELLO = [{"role": "user", "content": "hello"}]
D = Decimal


def policy(candidates: str, extra: str = "") -> str:
    return f"""\
version: 1
candidates: [{candidates}]
profiles: {{p: {{objective: cheapest}}}}
default_profile: p
budgets:
  - {{name: month, scope: global, window: calendar:month@UTC, limit_usd: "10"}}
{extra}"""


class Ledger(MemoryStore):
    """The memory ledger, remembering every hold it granted; ``fail_on`` makes one operation raise."""

    def __init__(self, fail_on: str | None = None, error: BaseException | None = None) -> None:
        super().__init__()
        self.reserved: dict[str, Decimal] = {}
        self.fail_on, self.error = fail_on, error

    async def reserve(self, reservation_id, budgets, amount, ttl_s):  # type: ignore[override]
        self.budgets = list(budgets)
        self.reserved[reservation_id] = amount
        return await super().reserve(reservation_id, budgets, amount, ttl_s)

    async def consume(self, pool, units, request_id):  # type: ignore[override]
        if self.fail_on == "consume":
            raise self.error or RuntimeError("ledger failure while billing")
        return await super().consume(pool, units, request_id)

    async def settled(self) -> Decimal:
        return await self.spend(self.budgets[0])

    async def settled_and_held(self) -> Decimal:
        return (await self.snapshot(self.budgets, [], [])).spend[self.budgets[0].id]


async def drain(stream) -> list:
    return [chunk async for chunk in stream]


# ---------------------------------------------------------------------- cancellation
class BlockingTransport(MockTransport):
    """Never answers: ``started`` is set once the call is in flight."""

    def __init__(self) -> None:
        super().__init__(lightweight=True)
        self.started = asyncio.Event()

    async def send(self, spec, settings=None):  # type: ignore[override]
        self.started.set()
        await asyncio.Event().wait()


async def test_a_call_cancelled_in_flight_releases_its_hold():
    store, transport = Ledger(), BlockingTransport()
    r = Router(policy("{model: gemini-2.5-flash-lite}"), store=store, transport=transport, watch_policy=False)
    task = asyncio.create_task(r.acomplete(HELLO, max_tokens=100))
    await transport.started.wait()
    assert await store.settled_and_held() > 0  # held while the call is in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.settled_and_held() == 0  # cancelled: nothing billed, nothing left held
    await r.aclose()


# ---------------------------------------------------------------------- billing errors never lose spend
async def test_a_billing_error_settles_the_reserved_upper_bound():
    store, transport = Ledger(), MockTransport(lightweight=True)
    # the provider reports more cached tokens than prompt tokens: our cost engine refuses the usage
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 10, "cached_input_tokens": 50, "output_tokens": 5})
    r = Router(policy("{model: gemini-2.5-flash-lite}"), store=store, transport=transport, watch_policy=False)
    with pytest.raises(UsageError):
        await r.acomplete(HELLO, max_tokens=100)
    (upper,) = store.reserved.values()
    assert upper > 0
    assert await store.settled() == upper  # settled at what was reserved, not released
    assert await store.settled_and_held() == upper  # and nothing else is still held


async def test_a_stream_whose_usage_cannot_be_billed_is_billed_the_upper_bound_never_zero():
    store, transport = Ledger(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 10, "cached_input_tokens": 50, "output_tokens": 5})
    r = Router(policy("{model: gemini-2.5-flash-lite}"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, stream=True)
    assert await drain(stream)
    (upper,) = store.reserved.values()
    assert stream.routing.cost_usd == upper > 0
    assert any("billed at the reserved upper bound" in w for w in stream.routing.warnings)
    assert await store.settled() == upper and await store.settled_and_held() == upper


@pytest.mark.parametrize("error", [RuntimeError("ledger failure while billing"), asyncio.CancelledError()])
async def test_a_stream_interrupted_while_billing_settles_the_upper_bound(error):
    store, transport = Ledger(fail_on="consume", error=error), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 10, "output_tokens": 5, "grounding_web_urls": 2})
    r = Router(policy("{model: gemini-2.5-flash-lite}"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, grounding=True, stream=True)
    with pytest.raises(type(error)):
        await drain(stream)
    (upper,) = store.reserved.values()
    assert await store.settled() == upper > 0
    assert await store.settled_and_held() == upper


async def test_a_call_interrupted_while_billing_settles_the_upper_bound():
    store, transport = Ledger(fail_on="consume"), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 10, "output_tokens": 5, "grounding_web_urls": 2})
    r = Router(policy("{model: gemini-2.5-flash-lite}"), store=store, transport=transport, watch_policy=False)
    with pytest.raises(RuntimeError):
        await r.acomplete(HELLO, max_tokens=100, grounding=True)
    (upper,) = store.reserved.values()
    assert await store.settled() == upper > 0
    assert await store.settled_and_held() == upper


# ---------------------------------------------------------------------- streams
async def test_a_stream_failing_before_its_first_chunk_releases_its_hold():
    store, transport = Ledger(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", error="bad_request")
    r = Router(policy("{model: gemini-2.5-flash-lite}"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, stream=True)
    with pytest.raises(TransportError):
        await drain(stream)
    assert store.reserved and await store.settled_and_held() == 0


async def test_a_stream_failing_before_its_first_chunk_falls_back_and_bills_only_the_answer():
    store, transport = Ledger(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash", usage={"input_tokens": 1000, "output_tokens": 100})
    transport.script("gemini-2.5-flash-lite", error="server_error")
    r = Router(policy("{model: gemini-2.5-flash-lite}, {model: gemini-2.5-flash}"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=200, stream=True, prompt_tokens=1000)
    await drain(stream)
    assert [(a.model, a.outcome) for a in stream.routing.attempts] == [("gemini-2.5-flash-lite", "server_error"), ("gemini-2.5-flash", "ok")]
    # gemini-2.5-flash (seed 000): 1,000 x $0.30 + 100 x $2.50, per 1M = 0.0003 + 0.00025
    assert await store.settled() == await store.settled_and_held() == D("0.00055")


class ClosingTransport(MockTransport):
    """Counts how often the provider's stream is closed."""

    def __init__(self) -> None:
        super().__init__(lightweight=True)
        self.closed = 0

    def stream(self, spec, settings=None):  # type: ignore[override]
        upstream = super().stream(spec, settings)
        original = upstream.aclose

        async def aclose() -> None:
            self.closed += 1
            await original()

        upstream.aclose = aclose
        return upstream


async def test_a_stream_closed_by_the_caller_is_closed_upstream_and_billed():
    store, transport = Ledger(), ClosingTransport()
    transport.script("gemini-2.5-flash-lite", text="x" * 400, stream_chunks=4, usage={"input_tokens": 1000, "output_tokens": 100})
    r = Router(policy("{model: gemini-2.5-flash-lite}"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=200, stream=True, prompt_tokens=1000)
    async for _ in stream:
        break
    await stream.aclose()
    assert transport.closed >= 1  # the provider stops generating output nobody reads
    assert stream.routing.attempts[0].outcome == "interrupted"
    # what was produced is billed, never $0, and nothing stays held
    assert await store.settled() == await store.settled_and_held() == stream.routing.cost_usd > 0


# ---------------------------------------------------------------------- priority ramp: billed traffic only
@pytest.mark.parametrize("traffic,ramp_tokens", [("ON_DEMAND", 0), ("ON_DEMAND_PRIORITY", 11_000)])
async def test_only_traffic_billed_as_priority_counts_in_the_ramp(traffic, ramp_tokens):
    store, transport = Ledger(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash", usage={"input_tokens": 10_000, "output_tokens": 1_000, "traffic_type": traffic})
    catalog = load_catalog(overlays=[REPO / "tests" / "data" / "priority_overlay.yaml"])
    r = Router(policy("{model: gemini-2.5-flash, priority: true}", "priority: {max_tokens_per_minute: 1000000}\n"),
               catalog=catalog, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=1_000, latency_sensitive=True, prompt_tokens=10_000)).routing
    assert transport.calls[-1].priority  # sent as priority; the provider says how it was served
    assert (await store.ramp_usage("flash")).tokens_last_minute == ramp_tokens
    # standard: 10,000 x $0.30 + 1,000 x $2.50 per 1M (seed 000); priority: the test overlay's 0.60 / 5.00
    assert record.cost_usd == (D("0.0055") if traffic == "ON_DEMAND" else D("0.011"))



@pytest.mark.parametrize("traffic,ramp_tokens", [("ON_DEMAND", 0), ("ON_DEMAND_PRIORITY", 11_000)])
async def test_only_traffic_billed_as_priority_counts_in_the_ramp_of_a_grounded_request(traffic, ramp_tokens):
    # grounded requests take the itemised bill path (not the integer shortcut): the ramp rule must hold there too
    store, transport = Ledger(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash", usage={"input_tokens": 10_000, "output_tokens": 1_000, "traffic_type": traffic,
                                                "grounding_web_urls": 0})
    catalog = load_catalog(overlays=[REPO / "tests" / "data" / "priority_overlay.yaml"])
    r = Router(policy("{model: gemini-2.5-flash, priority: true}", "priority: {max_tokens_per_minute: 1000000}\n"),
               catalog=catalog, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=1_000, latency_sensitive=True, prompt_tokens=10_000, grounding=True)).routing
    assert transport.calls[-1].priority
    assert (await store.ramp_usage("flash")).tokens_last_minute == ramp_tokens
    # no web grounding URL: no grounding charge; standard 10,000 x $0.30 + 1,000 x $2.50 per 1M, priority 0.60 / 5.00
    assert record.cost_usd == (D("0.0055") if traffic == "ON_DEMAND" else D("0.011"))

# ---------------------------------------------------------------------- retry_on
async def test_a_failure_kind_outside_retry_on_is_not_retried():
    store, transport = Ledger(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", error="server_error")
    text = policy("{model: gemini-2.5-flash-lite}, {model: gemini-2.5-flash}", "fallbacks: {max: 1, retry_on: [rate_limited]}\n")
    r = Router(text, store=store, transport=transport, watch_policy=False)
    with pytest.raises(TransportError) as info:
        await r.acomplete(HELLO, max_tokens=100)
    assert [a.model for a in info.value.attempts] == ["gemini-2.5-flash-lite"]
    assert len(transport.calls) == 1 and await store.settled_and_held() == 0


@pytest.mark.parametrize("kind", ["bad_request", "auth"])
def test_retry_on_refuses_kinds_that_are_never_retryable(kind):
    """A bad request or bad credentials would fail on every candidate: the policy cannot ask to retry them
    (so the Router's own intersection with the retryable kinds is a second line of defence)."""
    from router.errors import PolicyError

    with pytest.raises(PolicyError, match="retry_on"):
        Router(policy("{model: gemini-2.5-flash-lite}", f"fallbacks: {{retry_on: [rate_limited, {kind}]}}\n"), transport=MockTransport(lightweight=True), watch_policy=False)
