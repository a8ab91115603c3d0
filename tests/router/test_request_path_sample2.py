"""The request path where the second broad-profile mutmut sample of ``router/_client.py`` (80 mutants, seed 31)
found no test: how a policy argument is told from a file, the bounds of a hold's TTL, the outcome metrics of
refused / failed calls (which must not turn the error the caller sees into a crash), the rule and policy version
a served request is recorded under, the "billed > reserved" warning's causes, the labels a custom transport is
given, a store error at reserve time, and Provisioned Throughput / denied budgets on the streaming path.

Router + ``router.testing.MockTransport`` (lightweight) + the memory ledger. Prices by hand (seed 000):
Gemini 2.5 Flash-Lite $0.10 in / $0.40 out per 1M tokens, Gemini 2.5 Flash $0.30 / $2.50 (Google Search:
$35 per 1,000 grounded prompts past the 1,500 free a day), Claude Sonnet 4 $3 / $15 (1 h cache writes $6).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest

from router import BudgetExceededError, Router, RouterMetrics, TransportError
from router.errors import NoEligibleModelError, StoreError
from router.ledger.memory import MemoryStore
from router.testing import MockTransport
from tests.router.test_request_path_sample import HELLO, PT_POLICY, metric, policy, spend_and_holds

D = Decimal


# ---------------------------------------------------------------------- what the policy argument is
def test_multi_line_policy_text_is_text_even_when_a_file_has_that_name(tmp_path, monkeypatch):
    """YAML text (multi-line) is never taken for a path: a file named like the text (names may hold newlines)
    is not read. The text routes to Flash-Lite, the file would route to Flash."""
    text = "version: 1\ncandidates: [{model: gemini-2.5-flash-lite}]\nprofiles: {p: {objective: cheapest}}\ndefault_profile: p\n"
    monkeypatch.chdir(tmp_path)
    (tmp_path / text).write_text(text.replace("gemini-2.5-flash-lite", "gemini-2.5-flash"))
    transport = MockTransport(lightweight=True)
    r = Router(text, transport=transport)
    assert r.complete(HELLO, max_tokens=10).routing.model == "gemini-2.5-flash-lite"
    assert r.policy_version is None  # not watched as a file
    r.close()


def test_one_line_policy_text_longer_than_a_file_name_is_loaded_as_text():
    """A flow-style policy on one line, longer than a file name may be (255 bytes: the OS refuses to look it
    up), is YAML text, not a missing file: the Router builds and serves from it ($0.10 / $0.40 per 1M:
    1,000 in + 10 out = $0.000104)."""
    text = ("{version: 1, description: '" + "a one-line policy, " * 12 + "', candidates: [{model: gemini-2.5-flash-lite}], "
            "profiles: {p: {objective: cheapest}}, default_profile: p, "
            "budgets: [{name: month, scope: global, window: 'calendar:month@UTC', limit_usd: '10'}]}")
    assert 255 < len(text) < 4096 and "\n" not in text
    transport = MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(text, transport=transport)
    assert r.complete(HELLO, max_tokens=100, prompt_tokens=1_000).routing.cost_usd == D("0.000104")
    r.close()


# ---------------------------------------------------------------------- a hold's TTL: up to 7 days
@pytest.mark.parametrize("name", ["request_timeout_s", "reservation_ttl_s"])
def test_a_hold_lives_at_most_seven_days(name):
    week = 7 * 86_400
    r = Router(policy("gemini-2.5-flash-lite"), transport=MockTransport(lightweight=True), watch_policy=False, **{name: week})
    r.close()
    with pytest.raises(ValueError, match=rf"Router\({name}=...\) must be a positive number of seconds up to 7 days, not 604801"):
        Router(policy("gemini-2.5-flash-lite"), transport=MockTransport(lightweight=True), watch_policy=False, **{name: week + 1})


# ---------------------------------------------------------------------- outcome metrics of calls that end in an error
async def test_a_decision_with_no_eligible_model_is_refused_and_counted_refused():
    """2,000,000 prompt tokens fit no candidate's context window: the caller gets the refusal (not a crash of
    the metrics), nothing is sent or held, and the request is counted "refused" under its tenant."""
    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False, metrics=metrics)
    with pytest.raises(NoEligibleModelError):
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=2_000_000, tenant="acme")
    assert transport.calls == []
    assert metric(metrics, "router_requests_total{") == [
        'router_requests_total{model="-",outcome="refused",rule="-",tenant="acme"} 1.0'
    ]
    await r.aclose()


async def test_a_failure_the_policy_does_not_retry_is_the_callers_error_counted_failed():
    """A 403 (auth) is not retried: the caller gets a TransportError naming it, the hold is released (nothing
    billed or held) and the request counts as "failed" for its tenant."""
    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    transport.script("gemini-2.5-flash-lite", error="auth")
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False, metrics=metrics)
    with pytest.raises(TransportError, match="gemini-2.5-flash-lite: mock auth"):
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, tenant="acme")
    assert await spend_and_holds(store) == (D(0), D(0))
    assert metric(metrics, "router_requests_total{") == [
        'router_requests_total{model="-",outcome="failed",rule="-",tenant="acme"} 1.0'
    ]
    await r.aclose()


async def test_every_attempt_failing_is_the_callers_error_counted_failed():
    """Both candidates answer 500 (retried, then exhausted): a TransportError listing both, nothing billed or
    held, the request counted "failed"."""
    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    transport.script("gemini-2.5", error="server_error")
    r = Router("""\
version: 1
candidates: [{model: gemini-2.5-flash}, {model: gemini-2.5-flash-lite}]
profiles: {p: {objective: cheapest, fallbacks: 1}}
default_profile: p
budgets:
  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "10"}
""", store=store, transport=transport, watch_policy=False, metrics=metrics)
    with pytest.raises(TransportError, match="every attempt failed: gemini-2.5-flash-lite: server_error; gemini-2.5-flash: server_error"):
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, tenant="acme")
    assert await spend_and_holds(store) == (D(0), D(0))
    assert metric(metrics, "router_requests_total{") == [
        'router_requests_total{model="-",outcome="failed",rule="-",tenant="acme"} 1.0'
    ]
    await r.aclose()


async def test_a_store_error_at_reserve_time_is_counted_under_its_operation():
    """The ledger fails the reservation: the caller gets the StoreError, nothing is sent, and
    router_store_errors_total counts it under operation="reserve" (the alert's label)."""

    class _BrokenReserve(MemoryStore):
        async def reserve(self, reservation_id, budgets, amount, ttl_s):  # type: ignore[override]
            raise StoreError("ledger down")

    transport, metrics = MockTransport(lightweight=True), RouterMetrics()
    r = Router(policy("gemini-2.5-flash-lite"), store=_BrokenReserve(), transport=transport, watch_policy=False, metrics=metrics)
    with pytest.raises(StoreError, match="ledger down"):
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert transport.calls == []
    assert metric(metrics, "router_store_errors_total{") == ['router_store_errors_total{operation="reserve"} 1.0']
    await r.aclose()


# ---------------------------------------------------------------------- what a served request is recorded under
async def test_a_served_request_is_recorded_under_its_rule_and_policy_version():
    """The request matched rule "acme-rule": the request metric carries it (and the bill, 1,000 x $0.10 + 10 x
    $0.40 per 1M = $0.000104); the record names the version of the policy text that decided it (the first
    12 hex digits of its SHA-256), also for a policy given as text (no file, no shared name)."""
    text = policy("gemini-2.5-flash-lite") + "rules:\n  - {name: acme-rule, when: {tenant: acme}, profile: p}\n"
    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(text, store=store, transport=transport, watch_policy=False, metrics=metrics)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, tenant="acme")).routing
    assert (record.rule, record.cost_usd) == ("acme-rule", D("0.000104"))
    assert record.policy_version == hashlib.sha256(text.encode()).hexdigest()[:12]
    assert metric(metrics, "router_requests_total{") == [
        'router_requests_total{model="gemini-2.5-flash-lite",outcome="ok",rule="acme-rule",tenant="acme"} 1.0'
    ]
    await r.aclose()


async def test_a_custom_transport_is_given_the_tenant_and_app_labels():
    """The CallSpec's labels (the cloud bill's breakdown by tenant and app) use the lower-case keys Vertex
    accepts, whatever transport sends them."""
    transport = MockTransport(lightweight=True)
    r = Router(policy("gemini-2.5-flash-lite"), transport=transport, watch_policy=False)
    await r.acomplete(HELLO, max_tokens=100, tenant="acme", app="search")
    assert transport.calls[-1].labels == {"router-tenant": "acme", "router-app": "search"}
    await r.aclose()


# ---------------------------------------------------------------------- the "billed > reserved" warning's causes
def _overrun_warnings(record) -> list[str]:
    return [w for w in record.warnings if w.startswith("billed $")]


@pytest.mark.reservation_overrun  # deliberate: the scripted usage has more output than max_tokens
async def test_output_past_max_tokens_is_the_one_cause_of_an_overrun():
    """150 output tokens against max_tokens=100: billed 1,000 x $0.10 + 150 x $0.40 per 1M = $0.00016 above the
    $0.00014 reserved; the call is served and booked in full, and the warning names that one cause."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 150})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00014"), D("0.00016"))
    assert _overrun_warnings(record) == [
        "billed $0.00016 > reserved $0.00014: the model produced 150 output tokens (thinking included), more than "
        "max_tokens=100; the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.00016"), D("0.00016"))
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: the scripted usage has more output than max_tokens
async def test_one_hour_cache_writes_the_request_marked_are_not_an_overrun_cause():
    """The prompt marks a part for 1 h caching: the whole 1,000-token prompt is reserved at the 1 h write rate
    (1,000 x $6 + 100 x $15 per 1M = $0.0075). The provider writes 1,000 tokens to the 1 h cache (as
    reserved) but produces 150 output tokens: billed $0.006 + 150 x $15 per 1M = $0.00825; only the output
    is named as the cause."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("claude-sonnet-4", usage={"input_tokens": 1_000, "cache_write_1h_tokens": 1_000, "output_tokens": 150})
    r = Router(policy("claude-sonnet-4"), store=store, transport=transport, watch_policy=False)
    messages = [{"role": "user", "content": [{"type": "text", "text": "hello", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]
    record = (await r.acomplete(messages, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.0075"), D("0.00825"))
    assert _overrun_warnings(record) == [
        "billed $0.00825 > reserved $0.0075: the model produced 150 output tokens (thinking included), more than "
        "max_tokens=100; the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.00825"), D("0.00825"))
    await r.aclose()


@pytest.mark.reservation_overrun  # deliberate: the scripted usage has more output than max_tokens
async def test_the_one_grounded_prompt_reserved_is_not_an_overrun_cause():
    """The free pool is used up (1,500 of 1,500 today): the grounded prompt is billed $35 / 1,000 = $0.035, as
    reserved; 150 output tokens past max_tokens=100 make the overrun: reserved 1,000 x $0.30 + 100 x $2.50 per
    1M + $0.035 = $0.03555, billed $0.0003 + 150 x $2.50 per 1M + $0.035 = $0.035675. Only the output is
    named as the cause (the one billable grounded prompt is what was reserved)."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 150, "grounding_web_urls": 2})
    r = Router(policy("gemini-2.5-flash", limit="100"), store=store, transport=transport, watch_policy=False)
    await store.consume(r.compiled.quota_pool("gemini-2x-flash-search-daily"), 1_500, "earlier-traffic")
    record = (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, grounding="google_search")).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd, record.grounding_billable_units) == (D("0.03555"), D("0.035675"), 1)
    assert _overrun_warnings(record) == [
        "billed $0.035675 > reserved $0.03555: the model produced 150 output tokens (thinking included), more "
        "than max_tokens=100; the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.035675"), D("0.035675"))
    await r.aclose()


# ---------------------------------------------------------------------- the streaming path
async def test_every_candidate_denied_on_a_stream_is_a_budget_error():
    """$0.0001 cannot hold the stream's 1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014: the caller gets the
    budget error (not a crash), nothing is sent, billed or held."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    r = Router(policy("gemini-2.5-flash-lite", limit="0.0001"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    with pytest.raises(BudgetExceededError, match="every candidate's reservation was denied"):
        async for _ in stream:
            pass
    assert transport.calls == []
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()


async def test_a_failed_provisioned_stream_gives_its_claimed_capacity_back():
    """One GSU of Gemini 2.0 Flash: 100,800 burndown-adjusted tokens in the 30 s window; each stream claims
    1,000 + 8,000 x 4 = 33,000. The first stream fails before its first chunk (a 500: nothing served or
    billed): its claim goes back, so three streams still fit and are served by PT at $0, none refused."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.0-flash", usage={"input_tokens": 1_000, "output_tokens": 8_000, "traffic_type": "PROVISIONED_THROUGHPUT"},
                     error="server_error", error_times=1)
    r = Router(PT_POLICY, store=store, transport=transport, watch_policy=False)
    day = dt.date(2026, 11, 3)
    stream = await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=day, stream=True)
    with pytest.raises(TransportError):
        async for _ in stream:
            pass
    for _ in range(3):
        stream = await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=day, stream=True)
        assert [chunk async for chunk in stream]
        assert (stream.routing.traffic_type, stream.routing.cost_usd) == ("PROVISIONED_THROUGHPUT", D(0))
    assert len(transport.calls) == 4
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()
