"""The request path where the full broad-profile mutmut run of ``router/_client.py`` found no test, in the call
and stream paths (``_complete``, ``_stream``, ``_settle_stream``, ``_settle_attempt``, ``_check_bound``, ...)
and the module-level helpers: which prompt-caching marks a request makes (they decide the rate its prompt is
reserved at), a transport stream without ``aclose`` closed by its consumer, the "billed > reserved" warning
of a stream.

Router + ``router.testing.MockTransport`` (lightweight) + the memory ledger. Prices by hand (seed 000):
Gemini 2.5 Flash-Lite $0.10 in / $0.40 out per 1M tokens; Claude Sonnet 4 $3 in / $15 out per 1M, prompt
cache writes $3.75 (5 minutes) / $6 (1 hour) per 1M.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from router import Router
from router.ledger.memory import MemoryStore
from router.testing import MockTransport
from tests.router.test_request_path_sample import HELLO, policy, spend_and_holds

D = Decimal


def _overrun_warnings(record) -> list[str]:
    return [w for w in record.warnings if w.startswith("billed $")]


# ---------------------------------------------------------------------- prompt-caching marks: the reserved rate
def _claude(store: MemoryStore) -> tuple[Router, MockTransport]:
    transport = MockTransport(lightweight=True)
    transport.script("claude-sonnet-4", usage={"input_tokens": 1_000, "cache_write_1h_tokens": 1_000, "output_tokens": 10})
    return Router(policy("claude-sonnet-4"), store=store, transport=transport, watch_policy=False), transport


ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}
FIVE_MINUTES = {"type": "ephemeral"}


@pytest.mark.parametrize(
    "messages",
    [
        # a 1 h mark, then a 5 min one: the prompt may still be written to the 1 h cache
        [{"role": "user", "content": [{"type": "text", "text": "handbook", "cache_control": ONE_HOUR},
                                      {"type": "text", "text": "chapter 3", "cache_control": FIVE_MINUTES}]}],
        [{"role": "system", "content": [{"type": "text", "text": "handbook", "cache_control": ONE_HOUR}]},
         {"role": "user", "content": [{"type": "text", "text": "chapter 3", "cache_control": FIVE_MINUTES}]}],
        # the mark on the message itself (litellm moves it onto the content)
        [{"role": "user", "content": "handbook, chapter 3", "cache_control": ONE_HOUR}],
    ],
    ids=["1h-then-5m-parts", "1h-then-5m-messages", "message-level-mark"],
)
async def test_a_prompt_marked_for_one_hour_caching_anywhere_is_reserved_at_the_one_hour_write_rate(messages):
    """Claude bills 1 h cache writes at $6 per 1M (2x input): a request that marks any part for 1 h caching
    reserves its whole 1,000-token prompt at that rate, 1,000 x $6 + 100 x $15 per 1M = $0.0075, whatever
    marks come after it or whether the mark is on the message or its content. The provider writes the 1,000
    tokens to the 1 h cache: billed 1,000 x $6 + 10 x $15 per 1M = $0.00615, within the hold (a 5 min or
    input-rate reservation, $0.00525 / $0.0045, would be passed)."""
    store = MemoryStore()
    r, transport = _claude(store)
    record = (await r.acomplete(messages, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.0075"), D("0.00615"))
    assert _overrun_warnings(record) == []
    assert await spend_and_holds(store) == (D("0.00615"), D("0.00615"))
    await r.aclose()


async def test_a_content_part_that_is_not_a_dict_is_passed_on_and_billed():
    """A content list may hold a part the router cannot read as a dict (a bare string): it is no cache mark and
    no capability, the request is sent as it is and billed 1,000 x $0.10 + 10 x $0.40 per 1M = $0.000104."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    messages = [{"role": "user", "content": ["hello", {"type": "text", "text": "world"}]}]
    record = (await r.acomplete(messages, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00014"), D("0.000104"))
    assert transport.calls[-1].messages == messages
    assert await spend_and_holds(store) == (D("0.000104"), D("0.000104"))
    await r.aclose()


# ---------------------------------------------------------------------- streams
@pytest.mark.reservation_overrun  # deliberate: the streamed usage has more output than max_tokens
async def test_a_stream_billed_past_its_reservation_is_served_booked_and_names_its_cause():
    """A stream produces 150 output tokens against max_tokens=100: billed 1,000 x $0.10 + 150 x $0.40 per 1M =
    $0.00016 above the $0.00014 reserved. The consumer gets every chunk (no error), the ledger books the full
    bill, and the record's warning names the cause."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 150})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    assert [chunk async for chunk in stream]
    record = stream.routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00014"), D("0.00016"))
    assert _overrun_warnings(record) == [
        "billed $0.00016 > reserved $0.00014: the model produced 150 output tokens (thinking included), more than "
        "max_tokens=100; the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.00016"), D("0.00016"))
    await r.aclose()


class _NoCloseStream:
    """A custom transport's stream without ``aclose`` (chunks and the usage of what was produced only)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._inner.__anext__()

    def final_usage(self):
        return self._inner.final_usage()


class _NoCloseTransport(MockTransport):
    def stream(self, spec, settings=None):
        return _NoCloseStream(super().stream(spec, settings))


async def test_a_stream_without_aclose_closed_by_its_consumer_settles_what_was_produced():
    """The consumer reads the first chunk ("abcd" of 12 characters in 3 chunks) and closes the stream: the
    router cannot close a transport stream that has no ``aclose``, and still settles what was produced, the
    1,000-token prompt and 4 characters = 1 output token: 1,000 x $0.10 + 1 x $0.40 per 1M = $0.0001004, with
    no hold left (the $0.00014 reservation is settled, not leaked until its TTL)."""
    store, transport = MemoryStore(), _NoCloseTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="abcdefghijkl", stream_chunks=3, usage={"input_tokens": 1_000, "output_tokens": 3})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    record = stream.routing
    assert (record.attempts[-1].outcome, record.attempts[-1].reserved_usd, record.cost_usd) == ("interrupted", D("0.00014"), D("0.0001004"))
    assert await spend_and_holds(store) == (D("0.0001004"), D("0.0001004"))
    await r.aclose()


def test_a_synchronous_stream_closed_by_its_consumer_settles_what_was_produced_at_once():
    """``Router.complete(..., stream=True)``: the consumer reads the first chunk ("abcd" of 12 characters in 3
    chunks) and calls ``close()``. The stream is closed there and then (not when it is garbage-collected): the
    1,000-token prompt and 4 characters = 1 output token are billed, 1,000 x $0.10 + 1 x $0.40 per 1M =
    $0.0001004, and the $0.00014 hold is settled, none left held; the record says the stream was cut."""
    import asyncio

    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="abcdefghijkl", stream_chunks=3, usage={"input_tokens": 1_000, "output_tokens": 3})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    try:
        stream = r.complete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
        next(iter(stream))
        stream.close()
        assert asyncio.run(spend_and_holds(store)) == (D("0.0001004"), D("0.0001004"))
        record = stream.routing
        assert (record.attempts[-1].outcome, record.cost_usd) == ("interrupted", D("0.0001004"))
    finally:
        r.close()


# ---------------------------------------------------------------------- streams: failures, cuts, cancellation
RETRY_ON_RATE_LIMITS_ONLY = """\
version: 1
candidates: [{model: gemini-2.5-flash-lite}, {model: gemini-2.5-flash}]
profiles: {p: {objective: cheapest}}
default_profile: p
fallbacks: {max: 1, retry_on: [rate_limited]}
budgets:
  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "10"}
"""


async def test_a_stream_failure_outside_the_policys_retry_on_is_not_retried_and_names_its_attempts():
    """The policy falls back on rate limits only: a 500 before Flash-Lite's first chunk ends the stream with a
    TransportError whose ``attempts`` list that one attempt; Flash is never sent, nothing is billed or held."""
    from router import TransportError

    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", error="server_error")
    r = Router(RETRY_ON_RATE_LIMITS_ONLY, store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    with pytest.raises(TransportError, match="gemini-2.5-flash-lite: mock server_error") as info:
        async for _ in stream:
            pass
    assert [(a.model, a.outcome) for a in info.value.attempts] == [("gemini-2.5-flash-lite", "server_error")]
    assert [spec.model_id for spec in transport.calls] == ["gemini-2.5-flash-lite"]
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()


async def test_a_stream_cut_by_the_provider_after_its_first_chunk_is_billed_for_it_and_says_why():
    """The provider cuts the stream after its first chunk ("abcd"): the consumer's iteration ends, the attempt
    is recorded "interrupted" with the provider's error as its detail, and what was produced is billed and
    settled: 1,000 x $0.10 + 1 x $0.40 per 1M = $0.0001004."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="abcdefghijkl", stream_chunks=3, cut_stream_after=1, usage={"input_tokens": 1_000, "output_tokens": 3})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    assert len([chunk async for chunk in stream]) == 1
    attempt = stream.routing.attempts[-1]
    assert (attempt.outcome, attempt.detail) == ("interrupted", "mock stream of gemini-2.5-flash-lite cut after 1 chunks")
    assert stream.routing.cost_usd == D("0.0001004")
    assert await spend_and_holds(store) == (D("0.0001004"), D("0.0001004"))
    await r.aclose()


async def test_a_stream_cancelled_before_its_first_chunk_releases_its_hold():
    """The consumer's task is cancelled while the model has not sent anything yet: the $0.00014 hold is
    released at once (nothing was produced, nothing is billed), not left to expire with its TTL."""
    import asyncio

    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", latency_s=30, usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    for _ in range(1_000):
        await asyncio.sleep(0.001)
        if len(transport.calls) == 1:
            break
    assert await spend_and_holds(store) == (D(0), D("0.00014"))  # held while the model is silent
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()


class _AnswerCompleteStream:
    """A custom transport's stream that says when its answer is complete (every text chunk delivered) but has
    no ``drain`` to read the usage chunk that follows."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._inner.__anext__()

    @property
    def answer_complete(self) -> bool:
        return self._inner._index >= len(self._inner._pieces)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def final_usage(self):
        return self._inner.final_usage()


class _AnswerCompleteTransport(MockTransport):
    def stream(self, spec, settings=None):
        return _AnswerCompleteStream(super().stream(spec, settings))


async def test_a_whole_answer_closed_before_its_usage_chunk_without_drain_is_still_settled():
    """The consumer reads the whole answer (3 chunks, 12 characters) and closes before the usage chunk; the
    stream says the answer was complete but cannot drain: the router settles its estimate of what was produced,
    the 1,000-token prompt + 3 output tokens = 1,000 x $0.10 + 3 x $0.40 per 1M = $0.0001012, no hold left."""
    store, transport = MemoryStore(), _AnswerCompleteTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="abcdefghijkl", stream_chunks=3, usage={"input_tokens": 1_000, "output_tokens": 3})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 3:
            break
    await stream.aclose()
    assert stream.routing.cost_usd == D("0.0001012")
    assert await spend_and_holds(store) == (D("0.0001012"), D("0.0001012"))
    await r.aclose()


class _EmptyStream:
    """A custom transport's stream that ends at once (the provider sent no chunk), reporting the prompt only."""

    def __aiter__(self):
        return self

    async def __anext__(self):
        raise StopAsyncIteration

    async def aclose(self) -> None:
        pass

    def final_usage(self):
        from router._transport.types import ProviderUsage

        return ProviderUsage(input_tokens=1_000, output_tokens=0, complete=False)


class _EmptyStreamTransport(MockTransport):
    def stream(self, spec, settings=None):
        super().stream(spec, settings)  # logged in calls
        return _EmptyStream()


async def test_a_stream_that_sends_no_chunk_still_carries_its_routing_record_and_bill():
    """The provider ends the stream without a chunk: the consumer sees no chunk, and ``routing`` still says which
    model served it and the bill, the 1,000-token prompt: 1,000 x $0.10 per 1M = $0.0001, settled."""
    store, transport = MemoryStore(), _EmptyStreamTransport(lightweight=True)
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    assert [chunk async for chunk in stream] == []
    assert (stream.routing.model, stream.routing.cost_usd) == ("gemini-2.5-flash-lite", D("0.0001"))
    assert await spend_and_holds(store) == (D("0.0001"), D("0.0001"))
    await r.aclose()


async def test_every_candidate_denied_on_a_stream_is_a_budget_error_counted_denied():
    """$0.0001 cannot hold the stream's $0.00014: with metrics on, the consumer gets the budget error (not a
    crash of the metrics) and the request counts as "denied" for its tenant; nothing is sent or held."""
    from router import BudgetExceededError, RouterMetrics
    from tests.router.test_request_path_sample import metric

    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    r = Router(policy("gemini-2.5-flash-lite", limit="0.0001"), store=store, transport=transport, watch_policy=False, metrics=metrics)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, tenant="acme", stream=True)
    with pytest.raises(BudgetExceededError, match="every candidate's reservation was denied"):
        async for _ in stream:
            pass
    assert metric(metrics, "router_requests_total{") == [
        'router_requests_total{model="-",outcome="denied",rule="-",tenant="acme"} 1.0'
    ]
    assert transport.calls == []
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()


# ---------------------------------------------------------------------- Provisioned Throughput: saturated at claim time
def _two_subscriptions(tmp_path):
    """PT_POLICY with a second subscription (Gemini 3 Flash, given 2.0 Flash's burndown rates by a catalog copy)
    as in test_request_path_sample's saturated-at-claim-time test: (policy text, catalog root)."""
    from tests.catalog_copies import catalog_with_gemini_3_flash_burndown
    from tests.router.test_request_path_sample import PT_POLICY

    root = catalog_with_gemini_3_flash_burndown(tmp_path)
    text = PT_POLICY.replace(
        "    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n",
        "    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n"
        "    - {model: gemini-3-flash-preview, region: global, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n",
    ).replace("  - {model: gemini-2.0-flash, location: us-central1}\n",
              "  - {model: gemini-2.0-flash, location: us-central1}\n  - {model: gemini-3-flash-preview, location: global}\n",
    ).replace("fallbacks: 0", "fallbacks: 1")
    return text, root


async def test_a_stream_whose_provisioned_only_primary_is_saturated_at_claim_time_falls_back(tmp_path):
    """The streamed twin of the call test: another request fills Gemini 3 Flash's window (100,000 of 100,800)
    before this stream claims its 33,000 tokens; after the 0.2 s wait it is still saturated (recorded
    "pt_saturated"), so the stream goes on to 2.0 Flash, served by its Provisioned Throughput at $0."""
    import datetime as dt

    from router import RouterMetrics
    from tests.router.test_request_path_sample import _RacedPtLedger

    text, root = _two_subscriptions(tmp_path)
    store, transport = _RacedPtLedger(), MockTransport(lightweight=True)
    for model in ("gemini-2.0-flash", "gemini-3-flash-preview"):
        transport.script(model, usage={"input_tokens": 1_000, "output_tokens": 8_000, "traffic_type": "PROVISIONED_THROUGHPUT"})
    r = Router(text, catalog=root, store=store, transport=transport, watch_policy=False, metrics=RouterMetrics())
    stream = await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=dt.date(2026, 11, 3), tenant="acme", stream=True)
    assert [chunk async for chunk in stream]
    record = stream.routing
    assert [(a.model, a.outcome) for a in record.attempts] == [("gemini-3-flash-preview", "pt_saturated"), ("gemini-2.0-flash", "ok")]
    assert (record.model, record.traffic_type, record.cost_usd) == ("gemini-2.0-flash", "PROVISIONED_THROUGHPUT", D(0))
    assert [(c.model_id, c.location) for c in transport.calls] == [("gemini-2.0-flash", "us-central1")]
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()


async def test_a_saturated_primary_then_a_failed_fallback_is_a_transport_error_not_a_refusal(tmp_path):
    """Gemini 3 Flash is saturated at claim time ("pt_saturated"), its fallback 2.0 Flash answers 500 (retryable,
    but it is the last candidate): a call was sent and failed, so the caller gets a TransportError listing both
    attempts (a refusal is only for calls where every candidate was saturated); nothing billed or held."""
    import datetime as dt

    from router import TransportError
    from tests.router.test_request_path_sample import _RacedPtLedger

    text, root = _two_subscriptions(tmp_path)
    store, transport = _RacedPtLedger(), MockTransport(lightweight=True)
    transport.script("gemini-2.0-flash", error="server_error")
    r = Router(text, catalog=root, store=store, transport=transport, watch_policy=False)
    with pytest.raises(TransportError, match="every attempt failed: gemini-3-flash-preview: pt_saturated; gemini-2.0-flash: server_error"):
        await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=dt.date(2026, 11, 3), tenant="acme")
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()


async def test_a_stream_whose_prompt_is_marked_for_one_hour_caching_reserves_the_one_hour_write_rate():
    """The streamed twin of the call test: a part marked for 1 h caching reserves the 1,000-token prompt at
    Claude's $6 per 1M write rate, 1,000 x $6 + 100 x $15 per 1M = $0.0075 (not $0.0045 at the input rate);
    the stream writes it to the cache and is billed 1,000 x $6 + 10 x $15 per 1M = $0.00615, within the hold."""
    store = MemoryStore()
    r, _ = _claude(store)
    messages = [{"role": "user", "content": [{"type": "text", "text": "handbook", "cache_control": ONE_HOUR}]}]
    stream = await r.acomplete(messages, max_tokens=100, prompt_tokens=1_000, stream=True)
    assert [chunk async for chunk in stream]
    record = stream.routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.0075"), D("0.00615"))
    assert _overrun_warnings(record) == []
    assert await spend_and_holds(store) == (D("0.00615"), D("0.00615"))
    await r.aclose()


class _DrainOnlyStream(_AnswerCompleteStream):
    """A custom transport's stream with ``drain`` (reads what is left) but no ``answer_complete``."""

    answer_complete = property()  # no getter: reading it raises AttributeError, as if the attribute were absent

    async def drain(self) -> None:
        async for _ in self._inner:
            pass


class _DrainOnlyTransport(MockTransport):
    def stream(self, spec, settings=None):
        return _DrainOnlyStream(super().stream(spec, settings))


async def test_a_stream_that_cannot_say_its_answer_is_complete_is_not_drained_when_closed_early():
    """The consumer stops after the first chunk ("abcd") of an answer whose stream cannot say whether it is
    complete: the router does not read the rest (the model is stopped, the rest is not billed); the attempt is
    "interrupted" and billed for what was produced, 1,000 x $0.10 + 1 x $0.40 per 1M = $0.0001004."""
    store, transport = MemoryStore(), _DrainOnlyTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="abcdefghijkl", stream_chunks=3, usage={"input_tokens": 1_000, "output_tokens": 3})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    assert (stream.routing.attempts[-1].outcome, stream.routing.cost_usd) == ("interrupted", D("0.0001004"))
    assert await spend_and_holds(store) == (D("0.0001004"), D("0.0001004"))
    await r.aclose()


# ---------------------------------------------------------------------- the request log's time; a Router used after aclose
async def test_the_request_log_stamps_each_served_request_with_its_utc_time(tmp_path):
    """``request_log``: each served request's line carries when it was served as an ISO time with its UTC offset
    (``router replay`` windows and days are UTC, whatever the host's time zone), within the call's own span."""
    import datetime as dt
    import json

    log = tmp_path / "requests.jsonl"
    transport = MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite"), transport=transport, watch_policy=False, request_log=str(log))
    before = dt.datetime.now(dt.timezone.utc)
    await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    after = dt.datetime.now(dt.timezone.utc)
    (line,) = log.read_text().splitlines()
    at = dt.datetime.fromisoformat(json.loads(line)["at"])
    assert at.utcoffset() == dt.timedelta(0)
    assert before <= at <= after
    await r.aclose()


async def test_a_router_closed_with_aclose_serves_again_on_a_fresh_memory_ledger():
    """``aclose()`` closes this event loop's stores; a Router used again afterwards (a test suite's next event
    loop) opens a fresh ``memory://`` ledger and serves and bills as before ($0.000104 a call)."""
    transport = MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite"), transport=transport, watch_policy=False)
    first = r.store()
    assert (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing.cost_usd == D("0.000104")
    await r.aclose()
    assert (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing.cost_usd == D("0.000104")
    assert r.store() is not first
    assert await spend_and_holds(r.store()) == (D("0.000104"), D("0.000104"))
    await r.aclose()


# ---------------------------------------------------------------------- what the record says of each attempt
async def test_the_record_lists_each_attempt_with_its_location_hold_settlement_and_why_it_was_denied():
    """FLASH_THEN_LITE on a ledger another request raced: the record lists the denied Flash attempt (where it
    would have gone, the $0.00055 it asked to hold, nothing settled, the budget that refused it) and the served
    Flash-Lite attempt (held $0.00014, settled $0.000104 = 1,000 x $0.10 + 10 x $0.40 per 1M)."""
    from router._routing import Attempt
    from tests.router.test_request_path_sample import FLASH_THEN_LITE, _RacedLedger

    store, transport = _RacedLedger(), MockTransport(lightweight=True)
    transport.script("gemini-2.5", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(FLASH_THEN_LITE, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=100)).routing
    assert record.attempts == [
        Attempt("gemini-2.5-flash", "global", "denied", D("0.00055"), D(0), "budget global|calendar:month@UTC"),
        Attempt("gemini-2.5-flash-lite", "global", "ok", D("0.00014"), D("0.000104"), ""),
    ]
    assert [(c.model_id, c.location) for c in transport.calls] == [("gemini-2.5-flash-lite", "global")]
    await r.aclose()


async def test_every_candidate_denied_names_the_budget_that_refused():
    """$0.0001 cannot hold the call's $0.00014: the BudgetExceededError names the budget scope that would overflow."""
    from router import BudgetExceededError

    store = MemoryStore()
    r = Router(policy("gemini-2.5-flash-lite", limit="0.0001"), store=store, transport=MockTransport(lightweight=True), watch_policy=False)
    with pytest.raises(BudgetExceededError) as info:
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert info.value.scope == "global|calendar:month@UTC"
    assert str(info.value) == "every candidate's reservation was denied (budget global|calendar:month@UTC would overflow)"
    await r.aclose()


async def test_a_bill_equal_to_its_reservation_is_no_overrun():
    """The provider bills exactly what was reserved, the 1,000-token prompt and all max_tokens=100 of output:
    1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014 = the hold. No "billed > reserved" warning, no overrun counted."""
    from router import RouterMetrics
    from tests.router.test_request_path_sample import metric

    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 100})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False, metrics=metrics)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00014"), D("0.00014"))
    assert record.warnings == []
    assert metric(metrics, "router_reservation_overruns_total ") == ["router_reservation_overruns_total 0.0"]
    await r.aclose()


# ---------------------------------------------------------------------- the request log: what is served, and only that
def _log_lines(path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_the_request_log_has_served_and_cut_requests_and_no_failed_or_denied_ones(tmp_path):
    """``router replay`` re-decides served traffic: the log gets a line for a served call ($0.0001012) and for a
    stream the provider cut (it was served and billed, $0.0001004), and none for a call that failed (500 on its
    only candidate) or whose every reservation was denied (nothing was served)."""
    from router import BudgetExceededError, TransportError

    log = tmp_path / "requests.jsonl"
    transport = MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="abcdefghijkl", stream_chunks=3, usage={"input_tokens": 1_000, "output_tokens": 3})
    r = Router(policy("gemini-2.5-flash-lite", limit="0.0003"), transport=transport, watch_policy=False, request_log=str(log))
    await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, request_id="served")
    transport.script("gemini-2.5-flash-lite", error="server_error", error_times=1)
    with pytest.raises(TransportError):
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, request_id="failed")
    transport.script("gemini-2.5-flash-lite", text="abcdefghijkl", stream_chunks=3, cut_stream_after=1, usage={"input_tokens": 1_000, "output_tokens": 3})
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, request_id="cut", stream=True)
    assert len([chunk async for chunk in stream]) == 1
    # $0.0001012 + $0.0001004 spent of $0.0003: the next $0.00014 hold does not fit
    with pytest.raises(BudgetExceededError):
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, request_id="denied")
    assert [(line["request_id"], line["model"]) for line in _log_lines(log)] == [
        ("served", "gemini-2.5-flash-lite"), ("cut", "gemini-2.5-flash-lite")]
    await r.aclose()


async def test_a_request_log_that_cannot_be_written_leaves_the_call_served_with_a_warning(tmp_path):
    """The log path became a directory: the call is still served and billed ($0.000104) and its record says the
    log line was not written, and why."""
    log = tmp_path / "requests.jsonl"
    transport = MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite"), transport=transport, watch_policy=False, request_log=str(log))
    log.mkdir()
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert record.cost_usd == D("0.000104")
    assert record.warnings == ["request log not written: Is a directory"]
    await r.aclose()


# ---------------------------------------------------------------------- the bounds of a timeout
@pytest.mark.parametrize("value", [True, 0, -1, 0.0])
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused(value):
    with pytest.raises(ValueError, match=r"Router\(request_timeout_s=...\) must be a positive number of seconds up to 7 days"):
        Router(policy("gemini-2.5-flash-lite"), transport=MockTransport(lightweight=True), watch_policy=False, request_timeout_s=value)


async def test_a_sub_second_timeout_is_accepted_and_sets_the_holds_ttl():
    """``request_timeout_s=0.5``: valid; a call's hold lives 0.5 + 30 s (the margin to bill and settle)."""
    r = Router(policy("gemini-2.5-flash-lite"), transport=MockTransport(lightweight=True), watch_policy=False, request_timeout_s=0.5)
    assert r.hold_ttl_s() == 30.5
    transport = MockTransport(lightweight=True)
    r2 = Router(policy("gemini-2.5-flash-lite"), transport=transport, watch_policy=False)
    await r2.acomplete(HELLO, max_tokens=100, timeout=0.5)
    assert transport.calls[-1].timeout_s == 0.5
    await r.aclose()
    await r2.aclose()


# ---------------------------------------------------------------------- the caller's messages are passed on as they are
async def test_a_list_of_messages_reaches_the_model_as_the_same_list():
    """The router passes the caller's list on as it is (no copy per call): the transport gets that very object."""
    transport = MockTransport(lightweight=True)
    r = Router(policy("gemini-2.5-flash-lite"), transport=transport, watch_policy=False)
    messages = [{"role": "user", "content": "hello"}]
    await r.acomplete(messages, max_tokens=100)
    assert transport.calls[-1].messages is messages
    await r.aclose()


async def test_a_call_whose_usage_has_no_catalog_price_is_billed_its_reservation():
    """The call twin of the stream test: Gemini has no cache-write price, so the call is billed what was
    reserved, 1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014 (never nothing), booked with nothing left held."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10, "cache_write_5m_tokens": 100})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd, record.attempts[-1].settled_usd) == (D("0.00014"),) * 3
    assert any(w.startswith("billed at the reserved upper bound: no price for 'cache_write_5m'") for w in record.warnings)
    assert await spend_and_holds(store) == (D("0.00014"), D("0.00014"))
    await r.aclose()
