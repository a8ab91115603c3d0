"""The request path where the full broad-profile mutmut run of ``router/_client.py`` found no test (outside the
call / stream / settle methods): every cause the "billed > reserved" warning can name (and that it names only
the causes that happened), the gauges ``refresh_metrics`` sets (and the label a failing ledger is counted
under), and what ``Router.explain`` reads before it decides (spend, Provisioned Throughput use, the caller's
prompt size).

Router + ``router.testing.MockTransport`` (lightweight) + the memory ledger. Prices by hand (seed 000), per 1M
tokens: Gemini 2.5 Flash-Lite $0.10 in ($0.30 audio in) / $0.40 out, Gemini 2.5 Flash $0.30 / $2.50 (thinking
at the output rate), Claude Sonnet 4 $3 in / $15 out (5-minute cache writes $3.75), Claude Haiku 4.5 $1 / $5
(web search $10 per 1,000 searches), Gemini 2.0 Flash $0.15 / $0.60.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest

from router import Router, RouterMetrics
from router._transport.count_tokens import TokenCount
from router._transport.types import CallSpec
from router.errors import StoreError
from router.ledger.memory import MemoryStore
from router.testing import MockTransport
from tests.router.test_request_path_sample import HELLO, PT_POLICY, metric, policy, spend_and_holds

D = Decimal


def _overrun_warnings(record) -> list[str]:
    return [w for w in record.warnings if w.startswith("billed $")]


# ---------------------------------------------------------------------- the "billed > reserved" warning's causes
@pytest.mark.reservation_overrun  # deliberate: unmarked prompt written to the 5-minute cache
async def test_cache_writes_of_an_unmarked_prompt_are_the_one_cause_of_an_overrun():
    """No part of the prompt is marked for caching: it is reserved at the input rate, 1,000 x $3 + 100 x $15 per
    1M = $0.0045. The provider writes the 1,000 tokens to the 5-minute cache ($3.75) and produces exactly
    max_tokens=100: billed $0.00375 + $0.0015 = $0.00525, booked in full. The cache writes are the one cause (the
    output, exactly max_tokens, is not one)."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("claude-sonnet-4", usage={"input_tokens": 1_000, "cache_write_5m_tokens": 1_000, "output_tokens": 100})
    r = Router(policy("claude-sonnet-4"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.0045"), D("0.00525"))
    assert _overrun_warnings(record) == [
        "billed $0.00525 > reserved $0.0045: prompt cache writes are billed above the rate reserved (mark cached "
        "parts with cache_control, and its ttl); the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.00525"), D("0.00525"))
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: the scripted usage has more output than max_tokens
async def test_five_minute_cache_writes_the_request_marked_are_not_an_overrun_cause():
    """The prompt marks a part for (5-minute) caching: the 1,000-token prompt is reserved at the 5-minute write
    rate, 1,000 x $3.75 + 100 x $15 per 1M = $0.00525. The provider writes the 1,000 tokens (as reserved) but
    produces 150 output tokens: billed $0.00375 + 150 x $15 per 1M = $0.006; only the output is named."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("claude-sonnet-4", usage={"input_tokens": 1_000, "cache_write_5m_tokens": 1_000, "output_tokens": 150})
    r = Router(policy("claude-sonnet-4"), store=store, transport=transport, watch_policy=False)
    messages = [{"role": "user", "content": [{"type": "text", "text": "hello", "cache_control": {"type": "ephemeral"}}]}]
    record = (await r.acomplete(messages, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00525"), D("0.006"))
    assert _overrun_warnings(record) == [
        "billed $0.006 > reserved $0.00525: the model produced 150 output tokens (thinking included), more than "
        "max_tokens=100; the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.006"), D("0.006"))
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: output + thinking pass max_tokens
async def test_thinking_tokens_count_with_the_output_against_max_tokens():
    """80 output + 70 thinking tokens against max_tokens=100 (each alone within it): reserved 1,000 x $0.30 +
    100 x $2.50 per 1M = $0.00055, billed $0.0003 + 150 x $2.50 per 1M = $0.000675; the cause names the 150
    tokens produced, thinking included."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 80, "thinking_tokens": 70})
    r = Router(policy("gemini-2.5-flash"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00055"), D("0.000675"))
    assert _overrun_warnings(record) == [
        "billed $0.000675 > reserved $0.00055: the model produced 150 output tokens (thinking included), more than "
        "max_tokens=100; the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.000675"), D("0.000675"))
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: the caller's prompt_tokens is too low
async def test_a_low_caller_prompt_with_output_at_max_tokens_names_only_the_prompt():
    """prompt_tokens=1,000 but the provider counts 2,000; the output is exactly max_tokens=100 (not a cause):
    reserved 1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014, billed $0.0002 + $0.00004 = $0.00024."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 2_000, "output_tokens": 100})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00014"), D("0.00024"))
    assert _overrun_warnings(record) == [
        "billed $0.00024 > reserved $0.00014: the provider counted 2,000 prompt tokens, more than the "
        "prompt_tokens=1,000 passed with the request; the ledger recorded the full amount"
    ]
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: the provider reports audio the text prompt did not announce
async def test_an_overrun_of_no_known_cause_names_the_unreserved_dimension():
    """A text request whose 1,000 prompt tokens the provider bills as audio ($0.30 instead of $0.10): reserved
    1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014, billed 1,000 x $0.30 + 100 x $0.40 = $0.00034. No prompt,
    output, cache, search or PT cause applies: the warning says a priced dimension was not reserved."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "audio_input_tokens": 1_000, "output_tokens": 100})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00014"), D("0.00034"))
    assert _overrun_warnings(record) == [
        "billed $0.00034 > reserved $0.00014: a priced dimension of the usage that the reservation did not "
        "include; the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.00034"), D("0.00034"))
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: more searches than grounding.expected_queries
async def test_more_web_searches_than_reserved_are_named_in_full():
    """Claude Haiku 4.5 with web search, expected_queries 1 (the default): reserved 1,000 x $1 + 200 x $5 per 1M
    + 1 x $0.010 = $0.012; the model runs 5 searches: billed $0.001 + 100 x $5 per 1M + 5 x $0.010 = $0.0515."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("claude-haiku-4-5", usage={"input_tokens": 1_000, "output_tokens": 100, "web_searches": 5})
    r = Router(policy("claude-haiku-4-5"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=200, prompt_tokens=1_000, grounding="web_search")).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.012"), D("0.0515"))
    assert _overrun_warnings(record) == [
        "billed $0.0515 > reserved $0.012: the model ran 5 billable web searches, more than the 1 reserved "
        "(grounding.expected_queries): how many searches a model runs is not known before it answers; the ledger "
        "recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.0515"), D("0.0515"))
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: Vertex serves a PT-covered request on PayGo
async def test_a_request_pt_was_to_serve_that_vertex_spilled_names_the_spill():
    """provisioned: first, one GSU of Gemini 2.0 Flash with room: the request is covered by PT, so $0 is reserved
    for its tokens. Vertex answers it on PayGo (ON_DEMAND): billed 1,000 x $0.15 + 100 x $0.60 per 1M =
    $0.00021, booked in full; the warning names the spill as the one cause."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.0-flash", usage={"input_tokens": 1_000, "output_tokens": 100, "traffic_type": "ON_DEMAND"})
    r = Router(PT_POLICY.replace("mode: only", "mode: first"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=dt.date(2026, 11, 3))).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd, record.provisioned["traffic"]) == (D(0), D("0.00021"), "spilled")
    assert _overrun_warnings(record) == [
        "billed $0.00021 > reserved $0: Provisioned Throughput gemini-2.0-flash@us-central1 was to serve it ($0 "
        "reserved for its tokens) but Vertex spilled it to PayGo (the project's PT was used by traffic this router "
        "does not count, or Vertex's window differs); the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.00021"), D("0.00021"))
    await r.aclose()


# ---------------------------------------------------------------------- the gauges refresh_metrics sets
NEVER_COUNT = "settings: {count_tokens: never}\n"


async def test_a_ledger_without_a_journal_shows_no_backlog_and_no_count_pool_when_counting_is_off():
    """The memory ledger journals nothing: router_journal_backlog is 0 (not a phantom event waiting for
    Redis). settings.count_tokens: never: the Count Tokens pool is never read, so it has no gauge."""
    metrics = RouterMetrics()
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=MemoryStore(), transport=MockTransport(lightweight=True),
               watch_policy=False, metrics=metrics)
    await r.refresh_metrics()
    assert metric(metrics, "router_journal_backlog ") == ["router_journal_backlog 0.0"]
    assert metric(metrics, "router_count_tokens_pool") == []
    assert metric(metrics, "router_store_errors_total{") == []
    await r.aclose()


async def test_a_ledger_error_reading_the_count_tokens_pool_is_counted_under_refresh_metrics():
    """settings.count_tokens: always; the ledger fails when the Count Tokens pool is read: refresh_metrics
    does not raise, the pool has no gauge, and the failure is counted under operation="refresh_metrics"."""

    class _BrokenRate(MemoryStore):
        async def take_rate(self, pool, n):  # type: ignore[override]
            raise StoreError("ledger down")

    metrics = RouterMetrics()
    r = Router(policy("gemini-2.5-flash-lite") + "settings: {count_tokens: always}\n", store=_BrokenRate(),
               transport=MockTransport(lightweight=True), watch_policy=False, metrics=metrics, vertex_project="router-test")
    await r.refresh_metrics()
    assert metric(metrics, "router_store_errors_total{") == ['router_store_errors_total{operation="refresh_metrics"} 1.0']
    assert metric(metrics, "router_count_tokens_pool") == []
    await r.aclose()


async def test_a_ledger_error_reading_provisioned_throughput_use_is_counted_under_refresh_metrics():
    """A policy with a PT subscription; the ledger fails when PT use is read: refresh_metrics does not raise,
    and the failure is counted under operation="refresh_metrics" (the budgets' gauges are still set)."""

    class _BrokenPt(MemoryStore):
        async def pt_usage(self, keys):  # type: ignore[override]
            raise StoreError("ledger down")

    metrics = RouterMetrics()
    r = Router(PT_POLICY + NEVER_COUNT, store=_BrokenPt(), transport=MockTransport(lightweight=True), watch_policy=False, metrics=metrics)
    await r.refresh_metrics()
    assert metric(metrics, "router_store_errors_total{") == ['router_store_errors_total{operation="refresh_metrics"} 1.0']
    await r.aclose()


# ---------------------------------------------------------------------- what explain reads before it decides
async def test_explain_shows_the_spend_already_booked():
    """One call booked 1,000 x $0.10 + 10 x $0.40 per 1M = $0.000104: explain's budget status shows it."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    explained = await r._explain(HELLO, {"max_tokens": 100, "prompt_tokens": 1_000})
    assert [(s["budget"], s["spend_usd"]) for s in explained["budget_status"]] == [("month", "0.000104")]
    await r.aclose()


async def test_explain_sees_the_provisioned_throughput_already_used():
    """provisioned: first, one GSU of Gemini 2.0 Flash (100,800 burndown-adjusted tokens in the 30 s window).
    Before any request, explain says PT covers a 1,000 + 8,000 x 4 = 33,000-token request at $0. After three
    such requests were served by PT (99,000 used), it sees 1,800 of headroom: the request would spill, and
    its bound is the PayGo one, 1,000 x $0.15 + 8,000 x $0.60 per 1M = $0.00495."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.0-flash", usage={"input_tokens": 1_000, "output_tokens": 8_000, "traffic_type": "PROVISIONED_THROUGHPUT"})
    r = Router(PT_POLICY.replace("mode: only", "mode: first") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    ask = {"prompt_tokens": 1_000, "max_tokens": 8_000, "at": dt.date(2026, 11, 3)}
    before = await r._explain(HELLO, dict(ask))
    assert (before["provisioned"]["headroom"], before["provisioned"]["covered"], before["upper_bound_cost_usd"]) == (100_800, True, "0")
    for _ in range(3):
        await r.acomplete(HELLO, **ask)
    after = await r._explain(HELLO, dict(ask))
    assert (after["provisioned"]["headroom"], after["provisioned"]["covered"], after["upper_bound_cost_usd"]) == (1_800, False, "0.00495")
    await r.aclose()


class _CountingTransport(MockTransport):
    """MockTransport with a Count Tokens answer (every prompt counts 12 tokens) that remembers each count."""

    counted = 0

    async def count_tokens(self, spec: CallSpec, settings=None) -> TokenCount:
        self.counted += 1
        return TokenCount(12, spec.vertex_model)


async def test_explain_keeps_the_callers_prompt_tokens_under_count_tokens_always():
    """settings.count_tokens: always counts only estimated prompts: with prompt_tokens=1,000 given, explain
    neither counts nor replaces it; the bound is 1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014. Without it, the
    prompt is counted (12 tokens: 12 x $0.10 + 100 x $0.40 per 1M = $0.0000412)."""
    transport = _CountingTransport(lightweight=True)
    r = Router(policy("gemini-2.5-flash-lite") + "settings: {count_tokens: always}\n", store=MemoryStore(), transport=transport,
               watch_policy=False, vertex_project="router-test")
    given = await r._explain(HELLO, {"max_tokens": 100, "prompt_tokens": 1_000})
    assert (given["prompt_size"]["source"], given["request"]["prompt_tokens"], given["upper_bound_cost_usd"]) == ("caller", 1_000, "0.00014")
    assert transport.counted == 0
    counted = await r._explain(HELLO, {"max_tokens": 100})
    assert (counted["prompt_size"]["source"], counted["request"]["prompt_tokens"], counted["upper_bound_cost_usd"]) == ("count_tokens", 12, "0.0000412")
    assert transport.counted == 1
    await r.aclose()


# ---------------------------------------------------------------------- the synchronous stream
def test_a_sync_stream_read_to_the_end_is_billed_and_recorded():
    """Router.complete(stream=True) from synchronous code: every chunk, then ``routing`` is the record of the
    call, billed 1,000 x $0.10 + 10 x $0.40 per 1M = $0.000104 and settled (no hold left)."""

    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    stream = r.complete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "mock reply"
    assert (stream.routing.model, stream.routing.cost_usd) == ("gemini-2.5-flash-lite", D("0.000104"))
    assert r._sync.run(spend_and_holds(store)) == (D("0.000104"), D("0.000104"))
    r.close()


def test_a_sync_stream_closed_early_is_settled_and_its_hold_released():
    """The consumer reads one chunk of a 10-chunk answer and closes the stream: the attempt ends "interrupted",
    billed for the prompt and the output produced so far (1,000 x $0.10 + 1 token x $0.40 per 1M =
    $0.0001004, 4 characters at about 4 a token), and the hold of the rest is released at once."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="abcd" * 10, stream_chunks=10, usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    stream = r.complete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    assert next(stream).choices[0].delta.content == "abcd"
    stream.close()
    record = stream.routing
    assert (record.attempts[-1].outcome, record.cost_usd) == ("interrupted", D("0.0001004"))
    assert r._sync.run(spend_and_holds(store)) == (D("0.0001004"), D("0.0001004"))
    r.close()


# ---------------------------------------------------------------------- policies shared through the ledger
SHARED_FIRST = "a" * 12
SHARED_SECOND = "b" * 12


async def _publish(store: MemoryStore, version: str, text: str) -> None:
    assert await store.publish_policy("main", version, text) is True


async def test_a_shared_policy_is_read_from_the_ledger_at_most_once_per_watch_interval():
    """watch_interval_s=3600: a version published after the first call is not adopted by the next calls of the
    same hour (the ledger is not read on every request); the calls stay on Flash-Lite, each billed 1,000 x
    $0.10 + 10 x $0.40 per 1M = $0.000104."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    await _publish(store, SHARED_FIRST, policy("gemini-2.5-flash-lite"))
    transport.script("gemini-2.5", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router("store:main", store=store, transport=transport, watch_interval_s=3600)
    first = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    await _publish(store, SHARED_SECOND, policy("gemini-2.5-flash"))
    later = [await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000) for _ in range(2)]
    assert [c.routing.model for c in (first, *later)] == ["gemini-2.5-flash-lite"] * 3
    assert r.policy_version == SHARED_FIRST
    assert await spend_and_holds(store) == (D("0.000312"), D("0.000312"))
    await r.aclose()


async def test_a_shared_policy_name_with_nothing_published_refuses_the_call():
    """policy="store:main" and no version published: the call is refused with a PolicyError that says how to
    publish one; nothing is sent, billed or held."""
    from router.errors import PolicyError

    store, transport = MemoryStore(), MockTransport(lightweight=True)
    r = Router("store:main", store=store, transport=transport)
    with pytest.raises(PolicyError) as info:
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert str(info.value) == (
        "store:main:1:1: no policy published under this name: run `router policy publish FILE --store URL --name NAME`"
    )
    assert transport.calls == []
    await r.aclose()


class _ExpiredText(MemoryStore):
    """A ledger whose text of version "b" * 12 has expired (its version is still the published one)."""

    async def policy_text(self, name, version):  # type: ignore[override]
        return None if version == SHARED_SECOND else await super().policy_text(name, version)


async def test_a_shared_version_whose_text_expired_is_refused():
    """Nothing serving yet: the published version's text is gone, so the call is refused with a PolicyError
    naming the version; nothing is sent."""
    from router.errors import PolicyError

    store, transport = _ExpiredText(), MockTransport(lightweight=True)
    await _publish(store, SHARED_SECOND, policy("gemini-2.5-flash"))
    r = Router("store:main", store=store, transport=transport)
    with pytest.raises(PolicyError) as info:
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert str(info.value) == f"store:main@{SHARED_SECOND}:1:1: the published text is gone (expired from the ledger)"
    assert transport.calls == []
    await r.aclose()


async def test_a_newer_shared_version_whose_text_expired_keeps_the_serving_one():
    """Serving "a" * 12 (Flash-Lite); "b" * 12 is published but its text has expired: the next call is still
    served by Flash-Lite (1,000 x $0.10 + 10 x $0.40 per 1M = $0.000104 each) and the reload alert is set."""
    store, transport, metrics = _ExpiredText(), MockTransport(lightweight=True), RouterMetrics()
    await _publish(store, SHARED_FIRST, policy("gemini-2.5-flash-lite"))
    transport.script("gemini-2.5", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router("store:main", store=store, transport=transport, watch_interval_s=0.05, metrics=metrics)
    await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    await _publish(store, SHARED_SECOND, policy("gemini-2.5-flash"))
    await asyncio.sleep(0.1)
    second = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert (second.routing.model, r.policy_version) == ("gemini-2.5-flash-lite", SHARED_FIRST)
    assert metric(metrics, "router_policy_reload_failing ") == ["router_policy_reload_failing 1.0"]
    assert metric(metrics, 'router_policy_reloads_total{result="error"}') == ['router_policy_reloads_total{result="error"} 1.0']
    assert await spend_and_holds(store) == (D("0.000208"), D("0.000208"))
    await r.aclose()


async def test_the_alert_of_a_refused_shared_version_is_cleared_once():
    """A refused version, then the serving one re-published: the alert is cleared with one "ok" reload; later
    checks of the same serving version count no further reloads."""
    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    await _publish(store, SHARED_FIRST, policy("gemini-2.5-flash-lite"))
    transport.script("gemini-2.5", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router("store:main", store=store, transport=transport, watch_interval_s=0.05, metrics=metrics)
    await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    await _publish(store, "c" * 12, policy("gemini-2.5-flash") + "oops: [\n")
    await asyncio.sleep(0.1)
    await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert metric(metrics, "router_policy_reload_failing ") == ["router_policy_reload_failing 1.0"]
    await _publish(store, SHARED_FIRST, policy("gemini-2.5-flash-lite"))
    for _ in range(3):
        await asyncio.sleep(0.1)
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert metric(metrics, "router_policy_reload_failing ") == ["router_policy_reload_failing 0.0"]
    assert metric(metrics, 'router_policy_reloads_total{result="ok"}') == ['router_policy_reloads_total{result="ok"} 2.0']
    await r.aclose()


# ---------------------------------------------------------------------- what a failed attempt records
async def test_a_failed_attempt_records_the_providers_error():
    """The first candidate answers 429, the fallback serves: the routing record keeps the failed attempt's
    kind and the provider's message (what an operator reads to see why the fallback was used)."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 10})
    transport.script("gemini-2.5-flash-lite", error="rate_limited")
    # (the later script wins for Flash-Lite, whose id also contains "gemini-2.5-flash")
    text = (
        "version: 1\ncandidates: [{model: gemini-2.5-flash-lite}, {model: gemini-2.5-flash}]\n"
        "profiles: {p: {objective: cheapest, fallbacks: 1}}\ndefault_profile: p\n"
        'budgets:\n  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "10"}\n'
    )
    r = Router(text + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert [(a.model, a.outcome, a.detail) for a in record.attempts[:1]] == [
        ("gemini-2.5-flash-lite", "rate_limited", "mock rate_limited for gemini-2.5-flash-lite")
    ]
    # the fallback: 1,000 x $0.30 + 10 x $2.50 per 1M
    assert (record.model, record.cost_usd) == ("gemini-2.5-flash", D("0.000325"))
    await r.aclose()


async def test_a_stream_refused_before_any_attempt_has_no_routing_record():
    """Every candidate's reservation denied: the stream raises the budget error and ``routing`` stays None
    (no record was made: callers test it against None)."""
    from router import BudgetExceededError

    store, transport = MemoryStore(), MockTransport(lightweight=True)
    r = Router(policy("gemini-2.5-flash-lite", limit="0.0001"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    assert stream.routing is None
    with pytest.raises(BudgetExceededError):
        async for _ in stream:
            pass
    assert stream.routing is None
    await r.aclose()


# ---------------------------------------------------------------------- grounded calls: the engine's bill
async def test_a_grounded_call_bills_audio_prompt_tokens_at_the_audio_rate():
    """A Google-Search-grounded call (billed by the cost engine, not the integer fast path) whose 1,000-token
    prompt is audio: 1,000 x $0.30 + 10 x $0.40 per 1M = $0.000304 (no web URL in the answer: no grounded prompt
    billed), booked in full; the itemised lines add up to it."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "audio_input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, grounding="google_search")).routing
    assert record.cost_usd == D("0.000304")
    assert sum(D(line["amount_usd"]) for line in record.cost_lines) == D("0.000304")
    assert await spend_and_holds(store) == (D("0.000304"), D("0.000304"))
    await r.aclose()


async def test_a_grounded_call_bills_one_hour_cache_writes_at_their_rate():
    """Claude Sonnet 4 with web search (billed by the cost engine), the prompt marked for 1 h caching: 1,000
    tokens written to the 1 h cache at $6 + 10 x $15 per 1M + 1 search x $0.010 = $0.01615, booked in full
    (reserved 1,000 x $6 + 100 x $15 per 1M + $0.010 = $0.0175)."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("claude-sonnet-4", usage={"input_tokens": 1_000, "cache_write_1h_tokens": 1_000, "output_tokens": 10, "web_searches": 1})
    r = Router(policy("claude-sonnet-4") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    messages = [{"role": "user", "content": [{"type": "text", "text": "hello", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]
    record = (await r.acomplete(messages, max_tokens=100, prompt_tokens=1_000, grounding="web_search")).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.0175"), D("0.01615"))
    assert await spend_and_holds(store) == (D("0.01615"), D("0.01615"))
    await r.aclose()


# ---------------------------------------------------------------------- the ledger's failures and denials, counted
async def test_a_ledger_error_reading_the_decisions_state_is_counted_under_snapshot():
    """The ledger fails when the decision reads its state: the caller gets the StoreError, nothing is sent, and
    router_store_errors_total counts it under operation="snapshot" (the label the alert reads)."""

    class _BrokenSnapshot(MemoryStore):
        async def snapshot(self, budgets, pools, families):  # type: ignore[override]
            raise StoreError("ledger down")

    metrics, transport = RouterMetrics(), MockTransport(lightweight=True)
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=_BrokenSnapshot(), transport=transport, watch_policy=False, metrics=metrics)
    with pytest.raises(StoreError, match="ledger down"):
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert metric(metrics, "router_store_errors_total{") == ['router_store_errors_total{operation="snapshot"} 1.0']
    assert transport.calls == []
    await r.aclose()


async def test_a_denied_reservation_is_counted_under_its_scope_and_a_granted_one_is_not():
    """A $0.0002 budget: the first call's $0.00014 (1,000 x $0.10 + 100 x $0.40 per 1M) is granted (no denial
    counted) and billed $0.000104 (10 output tokens); the second's $0.00014 would bring it to $0.000244: denied,
    counted under the budget's scope, and nothing is billed for it."""
    from router import BudgetExceededError

    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite", limit="0.0002") + NEVER_COUNT, store=store, transport=transport, watch_policy=False, metrics=metrics)
    await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert metric(metrics, "router_reservation_denials_total{") == []
    with pytest.raises(BudgetExceededError):
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert metric(metrics, "router_reservation_denials_total{") == ['router_reservation_denials_total{scope="global|calendar:month@UTC"} 1.0']
    assert await spend_and_holds(store) == (D("0.000104"), D("0.000104"))
    await r.aclose()


def test_a_network_ledger_client_is_made_once_per_event_loop():
    """A Redis-protocol ledger URL: each event loop gets its own client (a client belongs to the loop it was
    made on), made once and reused by every request of that loop."""
    import asyncio as _asyncio

    r = Router(policy("gemini-2.5-flash-lite"), store="fakeredis://mutc2-per-loop", transport=MockTransport(lightweight=True), watch_policy=False)

    async def twice():
        return r.store(), r.store()

    first_a, first_b = _asyncio.run(twice())
    second_a, second_b = _asyncio.run(twice())
    assert first_a is first_b and second_a is second_b
    assert first_a is not None and second_a is not None and first_a is not second_a


# ---------------------------------------------------------------------- what the decision and the transport see
async def test_the_decision_time_histogram_records_one_short_observation_per_decision():
    """One call: router_decision_seconds has one observation, the time the policy took to decide (well under
    five seconds even on a loaded machine; never a clock reading)."""
    metrics, transport = RouterMetrics(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=MemoryStore(), transport=transport, watch_policy=False, metrics=metrics)
    await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert metric(metrics, "router_decision_seconds_count ") == ["router_decision_seconds_count 1.0"]
    (total,) = metric(metrics, "router_decision_seconds_sum ")
    assert 0 <= float(total.split()[1]) < 5
    await r.aclose()


async def test_a_call_keeps_the_callers_prompt_tokens_under_count_tokens_always():
    """settings.count_tokens: always counts only estimated prompts: with prompt_tokens=1,000 given, the call is
    neither counted nor re-sized: reserved 1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014, and the transport is
    told the exact size (1,000). Without it, the prompt is counted (12 tokens: 12 x $0.10 + 100 x $0.40 per 1M =
    $0.0000412 reserved) and the transport is told the count."""
    store, transport = MemoryStore(), _CountingTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 12, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite") + "settings: {count_tokens: always}\n", store=store, transport=transport,
               watch_policy=False, vertex_project="router-test")
    given = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (given.decision["prompt_size"]["source"], given.attempts[-1].reserved_usd) == ("caller", D("0.00014"))
    assert (transport.counted, transport.calls[-1].prompt_tokens) == (0, 1_000)
    counted = (await r.acomplete(HELLO, max_tokens=100)).routing
    assert (counted.decision["prompt_size"]["source"], counted.attempts[-1].reserved_usd) == ("count_tokens", D("0.0000412"))
    assert (transport.counted, transport.calls[-1].prompt_tokens) == (1, 12)
    await r.aclose()


async def test_an_estimated_prompt_size_is_not_passed_to_the_transport_as_exact():
    """settings.count_tokens: never and no prompt_tokens: the size is the ~4 characters a token estimate, so the
    transport is given no exact prompt size (None)."""
    transport = MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 10, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=MemoryStore(), transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100)).routing
    assert record.decision["prompt_size"]["source"] == "estimate"
    assert transport.calls[-1].prompt_tokens is None
    await r.aclose()


# ---------------------------------------------------------------------- traffic the policy did not plan for
async def test_traffic_served_by_provisioned_throughput_the_policy_does_not_know_is_booked_at_zero():
    """A policy without Provisioned Throughput; Vertex answers from the project's PT anyway (traffic
    PROVISIONED_THROUGHPUT): the tokens cost nothing in budgets ($0 booked, not the PayGo 1,000 x $0.10 + 10 x
    $0.40 per 1M = $0.000104), and the record says why there is no amortised cost."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10, "traffic_type": "PROVISIONED_THROUGHPUT"})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.cost_usd, record.traffic_type) == (D(0), "PROVISIONED_THROUGHPUT")
    assert (
        "gemini-2.5-flash-lite: served by Provisioned Throughput the policy has no subscription for in global: "
        "$0 in budgets, no amortised cost"
    ) in record.warnings
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()


async def test_a_regional_call_of_a_model_without_verified_regional_prices_carries_the_warning():
    """Claude Sonnet 4.5 in us-east5 (the catalog marks its regional prices unverified): billed 1,000 x $3 + 10 x
    $15 per 1M = $0.00315 at the seed's prices, and the record says a regional premium is not billed."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("claude-sonnet-4-5", usage={"input_tokens": 1_000, "output_tokens": 10})
    text = (
        "version: 1\ncandidates: [{model: claude-sonnet-4-5, location: us-east5}]\nprofiles: {p: {objective: cheapest}}\n"
        'default_profile: p\nbudgets:\n  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "10"}\n'
    )
    r = Router(text + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].location, record.cost_usd) == ("us-east5", D("0.00315"))
    assert record.warnings == [
        "claude-sonnet-4-5 in us-east5: the seed gives one set of prices for its region tabs; a regional premium, if "
        "any, is not in the seeds and is not billed here"
    ]
    assert await spend_and_holds(store) == (D("0.00315"), D("0.00315"))
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: the provider bills a prompt past the model's context window
async def test_the_itemised_bill_of_a_prompt_past_the_context_window_is_still_given():
    """The provider served (and bills) a 1,100,000-token prompt, past Flash-Lite's 1,048,576-token context window:
    the served call is billed 1,100,000 x $0.10 + 10 x $0.40 per 1M = $0.110004, and its itemised lines (built
    on demand, its long-context lines at the same rates) say the same instead of refusing the usage."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_100_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert record.cost_usd == D("0.110004")
    assert {line["dimension"]: line["amount_usd"] for line in record.cost_lines} == {"input_long": "0.11", "output_long": "0.000004"}
    await r.aclose()


async def test_a_call_is_billed_at_the_token_rates_in_force_on_its_pricing_date(tmp_path):
    """A custom catalog (a copy of the bundled one) where Gemini 2.0 Flash's token rates change on 2026-06-01
    ($0.15 / $0.60 per 1M before, test rates $0.30 / $1.20 from then): a call priced on 2026-05-01 is billed
    1,000 x $0.15 + 10 x $0.60 per 1M = $0.000156, one priced on 2026-06-01 1,000 x $0.30 + 10 x $1.20 per 1M =
    $0.000312 (the integer fast path reads the rates of the request's day, as the engine does)."""
    from router.catalog import load_catalog
    from tests.catalog_copies import catalog_copy

    anchor = '      - provenance: {seed: 000_8191c03ed1050dc1.txt, section: "Gemini 2.0 table (tarification basée sur les jetons), Gemini 2.0 Flash rows"}\n'
    later = (
        "      - effective_from: 2026-06-01\n"
        '        provenance: {source: "https://example.com/test-only-rates", section: "test data"}\n'
        '        rates: {input: "0.30", output: "1.20"}\n'
    )
    root = catalog_copy(tmp_path, ("gemini.yaml", anchor, later + "      - effective_until: 2026-06-01\n" + anchor.replace("- provenance", "  provenance", 1)))
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.0-flash", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.0-flash") + NEVER_COUNT, catalog=load_catalog(root), store=store, transport=transport, watch_policy=False)
    before = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, at=dt.date(2026, 5, 1))).routing
    after = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, at=dt.date(2026, 6, 1))).routing
    assert (before.cost_usd, after.cost_usd) == (D("0.000156"), D("0.000312"))
    await r.aclose()


async def test_search_queries_on_the_first_day_of_a_free_pool_are_drawn_from_it():
    """The Gemini 3 monthly search pool (5,000 free queries) starts on 2026-01-05: a Gemini 3 Flash call priced on
    that day with 3 Google Search queries draws them from the pool (3 used) and pays only its tokens, 1,000 x
    $0.50 + 10 x $3 per 1M = $0.00053."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-3-flash-preview", usage={"input_tokens": 1_000, "output_tokens": 10, "search_queries": 3})
    r = Router(policy("gemini-3-flash-preview") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, grounding="google_search", at=dt.date(2026, 1, 5))).routing
    assert (record.cost_usd, record.grounding_free_units) == (D("0.00053"), 3)
    assert (await store.pool_usage(r.compiled.quota_pool("gemini-3-search-monthly"))).used == 3
    assert await spend_and_holds(store) == (D("0.00053"), D("0.00053"))
    await r.aclose()


async def test_enterprise_web_grounding_is_billed_at_its_own_rate():
    """Gemini 2.5 Flash-Lite with Web Grounding for Enterprise (no free pool): one grounded prompt at $45 per
    1,000 (not Google Search's $35) + 1,000 x $0.10 + 10 x $0.40 per 1M = $0.045104."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10, "grounding_web_urls": 1})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, grounding="enterprise_web_search")).routing
    assert (record.cost_usd, record.grounding_billable_units) == (D("0.045104"), 1)
    assert await spend_and_holds(store) == (D("0.045104"), D("0.045104"))
    await r.aclose()


async def test_a_grounded_batch_eligible_call_says_it_was_sent_and_billed_online():
    """A batch-eligible Gemini 2.5 Flash candidate, grounded (billed by the cost engine): the router sends it
    online, bills online rates (1,000 x $0.30 + 10 x $2.50 per 1M = $0.000325; no web URL, no grounded prompt
    billed) and says so on the record."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 10})
    text = (
        "version: 1\ncandidates: [{model: gemini-2.5-flash, batch: true}]\nprofiles: {p: {objective: cheapest, batch: true}}\n"
        'default_profile: p\nbudgets:\n  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "10"}\n'
    )
    r = Router(text + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, grounding="google_search")).routing
    assert (record.decision["batch"], record.cost_usd) == (True, D("0.000325"))
    assert record.warnings == [
        "gemini-2.5-flash: batch-eligible, sent online (the router does not submit Batch API jobs): billed at online rates"
    ]
    await r.aclose()


async def test_priority_traffic_counts_thinking_tokens_in_the_ramp():
    """A Priority PayGo call answered as ON_DEMAND_PRIORITY (test overlay rates $0.60 in / $5.00 out per 1M):
    10,000 in + 1,000 out + 500 thinking = 11,500 tokens count in the flash ramp, and the call is billed 10,000 x
    $0.60 + 1,500 x $5.00 per 1M = $0.0135."""
    from pathlib import Path

    from router.catalog import load_catalog

    overlay = Path(__file__).resolve().parents[1] / "data" / "priority_overlay.yaml"
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash", usage={"input_tokens": 10_000, "output_tokens": 1_000, "thinking_tokens": 500, "traffic_type": "ON_DEMAND_PRIORITY"})
    text = (
        "version: 1\ncandidates: [{model: gemini-2.5-flash, priority: true}]\nprofiles: {p: {objective: cheapest}}\n"
        'default_profile: p\nbudgets:\n  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "10"}\n'
        "priority: {max_tokens_per_minute: 1000000}\n"
    )
    r = Router(text + NEVER_COUNT, catalog=load_catalog(overlays=[overlay]), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=2_000, latency_sensitive=True, prompt_tokens=10_000)).routing
    assert record.cost_usd == D("0.0135")
    assert (await store.ramp_usage("flash")).tokens_last_minute == 11_500
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: the provider bills a prompt past the model's context window
async def test_a_grounded_call_past_the_context_window_is_billed_what_the_provider_served():
    """A grounded call (billed by the cost engine) whose provider usage is a 1,100,000-token prompt, past
    Flash-Lite's 1,048,576-token window: it was served, so it is billed 1,100,000 x $0.10 + 10 x $0.40 per 1M =
    $0.110004 (no web URL: no grounded prompt), not refused after the fact."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_100_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite") + NEVER_COUNT, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, grounding="google_search")).routing
    assert record.cost_usd == D("0.110004")
    assert await spend_and_holds(store) == (D("0.110004"), D("0.110004"))
    await r.aclose()
