"""The request path where the broad-profile mutmut sample of ``router/_client.py`` (60 mutants, seed 12) found
no test: a stream whose usage has no catalog price, every candidate denied (the outcome metrics see), policies
shared through the ledger (``policy="store:NAME"``: adopted, switched, a broken published version refused) and
the reload metrics they set. The shared-policy tests of ``test_shared_policy.py`` need a real redis-server (not
run by the mutation profiles); these use the memory ledger, whose policy publication is the same store API.

Router + ``router.testing.MockTransport`` (lightweight) + the memory ledger. Prices by hand (seed 000):
Gemini 2.5 Flash-Lite $0.10 in / $0.40 out per 1M tokens, Gemini 2.5 Flash $0.30 / $2.50.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from router import BudgetExceededError, Router, RouterMetrics
from router.errors import PolicyError
from router.ledger.memory import MemoryStore
from router.testing import MockTransport

HELLO = [{"role": "user", "content": "hello"}]
D = Decimal


def policy(model: str, limit: str = "10") -> str:
    return f"""\
version: 1
candidates: [{{model: {model}}}]
profiles: {{p: {{objective: cheapest}}}}
default_profile: p
budgets:
  - {{name: month, scope: global, window: calendar:month@UTC, limit_usd: "{limit}"}}
"""


async def spend_and_holds(store: MemoryStore) -> tuple[Decimal, Decimal]:
    """(settled, settled + held) of the policy's one budget."""
    (info,) = await store.list_scopes()
    settled = await store.spend(info.budget)
    return settled, (await store.snapshot([info.budget], [], [])).spend[info.budget.id]


def metric(metrics: RouterMetrics, prefix: str) -> list[str]:
    return [line for line in metrics.render().decode().splitlines() if line.startswith(prefix)]


# ---------------------------------------------------------------------- a stream with an unpriced usage dimension
async def test_a_stream_whose_usage_has_no_catalog_price_is_billed_its_reservation():
    """Gemini has no cache-write price: the engine cannot price the usage, so the stream is billed what was
    reserved (never nothing) and says why. Reserved: 1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10, "cache_write_5m_tokens": 100})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    assert [chunk async for chunk in stream]
    record = stream.routing
    assert record.attempts[-1].reserved_usd == D("0.00014")
    assert record.cost_usd == D("0.00014")
    assert record.attempts[-1].settled_usd == D("0.00014")
    assert any(w.startswith("billed at the reserved upper bound: no price for 'cache_write_5m'") for w in record.warnings)
    assert await spend_and_holds(store) == (D("0.00014"), D("0.00014"))  # booked, and nothing left held
    await r.aclose()


# ---------------------------------------------------------------------- every candidate denied
async def test_every_candidate_denied_is_a_budget_error_counted_as_denied():
    """$0.0001 cannot hold 1,000 x $0.10 + 100 x $0.40 per 1M = $0.00014: nothing is sent or billed, the error
    names the budget and the request is counted with outcome "denied" (not "failed" or "refused")."""
    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    r = Router(policy("gemini-2.5-flash-lite", limit="0.0001"), store=store, transport=transport, watch_policy=False, metrics=metrics)
    with pytest.raises(BudgetExceededError) as info:
        await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, tenant="acme")
    assert "every candidate's reservation was denied" in str(info.value)
    assert transport.calls == []
    assert await spend_and_holds(store) == (D(0), D(0))
    assert metric(metrics, "router_requests_total{") == [
        'router_requests_total{model="-",outcome="denied",rule="-",tenant="acme"} 1.0'
    ]
    await r.aclose()


# ---------------------------------------------------------------------- policies shared through the ledger
async def publish(store: MemoryStore, version: str, text: str) -> None:
    assert await store.publish_policy("main", version, text) is True


async def test_a_shared_policy_is_adopted_switched_and_a_broken_version_refused():
    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    await publish(store, "aaaaaaaaaaaa", policy("gemini-2.5-flash-lite"))
    transport.script("gemini-2.5", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router("store:main", store=store, transport=transport, watch_interval_s=0.05, metrics=metrics)

    first = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    # 1,000 x $0.10 + 10 x $0.40 per 1M
    assert (first.routing.model, first.routing.cost_usd) == ("gemini-2.5-flash-lite", D("0.000104"))
    assert r.policy_version == "aaaaaaaaaaaa"
    assert metric(metrics, "router_policy_reload_failing ") == ["router_policy_reload_failing 0.0"]
    assert metric(metrics, "router_policy_version_info{") == ['router_policy_version_info{version="aaaaaaaaaaaa"} 1.0']

    await publish(store, "bbbbbbbbbbbb", policy("gemini-2.5-flash"))
    await asyncio.sleep(0.1)
    second = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    # 1,000 x $0.30 + 10 x $2.50 per 1M
    assert (second.routing.model, second.routing.cost_usd) == ("gemini-2.5-flash", D("0.000325"))
    assert r.policy_version == "bbbbbbbbbbbb"
    assert metric(metrics, 'router_policy_reloads_total{result="ok"}') == ['router_policy_reloads_total{result="ok"} 2.0']
    assert metric(metrics, "router_policy_version_info{") == ['router_policy_version_info{version="bbbbbbbbbbbb"} 1.0']

    # A version that does not compile (published around the CLI's check) is refused: the serving one stays.
    await publish(store, "cccccccccccc", policy("gemini-2.5-flash") + "oops: [\n")
    await asyncio.sleep(0.1)
    third = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert (third.routing.model, r.policy_version) == ("gemini-2.5-flash", "bbbbbbbbbbbb")
    assert metric(metrics, "router_policy_reload_failing ") == ["router_policy_reload_failing 1.0"]
    assert metric(metrics, 'router_policy_reloads_total{result="error"}') == ['router_policy_reloads_total{result="error"} 1.0']
    # Re-publishing the serving version clears the alert.
    await publish(store, "bbbbbbbbbbbb", policy("gemini-2.5-flash"))
    await asyncio.sleep(0.1)
    await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)
    assert metric(metrics, "router_policy_reload_failing ") == ["router_policy_reload_failing 0.0"]

    settled, with_holds = await spend_and_holds(store)
    assert settled == with_holds == D("0.000104") + 3 * D("0.000325")
    await r.aclose()


async def test_a_broken_first_shared_version_refuses_the_call():
    """Nothing serving yet: a published version that does not compile is an error, and nothing is sent."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    await publish(store, "dddddddddddd", "version: 1\ncandidates: [{model: no-such-model}]\n")
    r = Router("store:main", store=store, transport=transport)
    with pytest.raises(PolicyError) as info:
        await r.acomplete(HELLO, max_tokens=100)
    assert "store:main@dddddddddddd" in str(info.value)
    assert transport.calls == []
    await r.aclose()


# ---------------------------------------------------------------------- Provisioned Throughput "only", saturated
PT_POLICY = """\
version: 1
provisioned:
  mode: only
  wait_s: 0.2
  subscriptions:
    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}
candidates:
  - {model: gemini-2.0-flash, location: us-central1}
profiles:
  main: {objective: cheapest, fallbacks: 0}
default_profile: main
budgets:
  - {name: all, scope: global, window: "calendar:month@UTC", limit_usd: "1"}
"""


async def test_provisioned_only_still_saturated_after_its_wait_refuses_and_bills_nothing():
    """One GSU of Gemini 2.0 Flash: 3,360 adjusted tokens a second, 100,800 in the 30 s window. Each request
    claims 1,000 + 8,000 x 4 = 33,000: three fit (99,000), the fourth finds 1,800 of headroom, waits 0.2 s
    and is refused (never sent, nothing billed or held), the error naming the model and why."""
    import datetime as dt

    from router.errors import RequestRefusedError

    store, transport, metrics = MemoryStore(), MockTransport(lightweight=True), RouterMetrics()
    transport.script("gemini-2.0-flash", usage={"input_tokens": 1_000, "output_tokens": 8_000, "traffic_type": "PROVISIONED_THROUGHPUT"})
    r = Router(PT_POLICY, store=store, transport=transport, watch_policy=False, metrics=metrics)
    day = dt.date(2026, 11, 3)
    for _ in range(3):
        served = await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=day, tenant="acme")
        assert (served.routing.traffic_type, served.routing.cost_usd) == ("PROVISIONED_THROUGHPUT", D(0))
    with pytest.raises(RequestRefusedError) as info:
        await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=day, tenant="acme")
    assert str(info.value) == (
        "refused: gemini-2.0-flash: Provisioned Throughput gemini-2.0-flash@us-central1 saturated: headroom 1,800 < "
        "33,000 burndown-adjusted tokens after waiting 0.2 s (provisioned: only)"
    )
    assert len(transport.calls) == 3
    assert await spend_and_holds(store) == (D(0), D(0))
    assert 'router_requests_total{model="-",outcome="refused",rule="-",tenant="acme"} 1.0' in metrics.render().decode()
    await r.aclose()


# ---------------------------------------------------------------------- character-billed models (Gemini 1.x)
@pytest.mark.parametrize("grounding", [None, "google_search"])
async def test_a_character_billed_model_bills_output_and_thinking_as_characters(grounding):
    """Gemini 1.5 Flash bills characters (4 a token): $0.00001875 in / $0.000075 out per 1,000. 1,000 prompt
    tokens = 4,000 chars: $0.000075; 100 output + 50 thinking = 600 chars: $0.000045; Google Search grounding
    (one grounded prompt, no free pool for 1.5): $35 / 1,000 = $0.035. The reservation counts characters too.
    Both the integer path (no grounding)
    and the engine path (grounding) bill every part, and the itemised lines say so."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-1.5-flash", usage={"input_tokens": 1_000, "output_tokens": 100, "thinking_tokens": 50, "grounding_web_urls": 1})
    r = Router(policy("gemini-1.5-flash", limit="100"), store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, max_tokens=200, prompt_tokens=1_000, grounding=grounding)).routing
    expected = D("0.00012") + (D("0.035") if grounding else 0)
    # reserved: 4,000 chars in ($0.000075) + 200 max_tokens = 800 chars out ($0.00006) (+ the grounded prompt)
    assert record.attempts[-1].reserved_usd == D("0.000135") + (D("0.035") if grounding else 0)
    assert record.cost_usd == expected
    lines = {line["dimension"]: D(str(line["amount_usd"])) for line in record.cost_lines}
    assert (lines["input_chars"], lines["output_chars"]) == (D("0.000075"), D("0.000045"))
    assert await spend_and_holds(store) == (expected, expected)
    await r.aclose()


# ---------------------------------------------------------------------- aclose flushes this loop's ledger
async def test_aclose_flushes_the_deferred_settles_of_this_event_loops_store(tmp_path):
    """With deferred settlement the bill waits in the local settle log until the flusher runs (here every
    60 s): aclose must close this event loop's store, which applies it. 1,000 x $0.10 + 10 x $0.40 per 1M =
    $0.000104 billed; $0.00014 (1,000 + 100 max_tokens) held until then."""
    import uuid

    from router.ledger import store_from_url

    name = "aclose" + uuid.uuid4().hex[:8]
    transport = MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    url = f"fakeredis://{name}?settle=deferred&flush_ms=60000&settle_log={tmp_path}"
    r = Router(policy("gemini-2.5-flash-lite"), store=url, transport=transport, watch_policy=False)
    assert (await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000)).routing.cost_usd == D("0.000104")
    reader = store_from_url(f"fakeredis://{name}")  # the same (in-process) Redis, settling directly
    (info,) = await reader.list_scopes()
    assert (await reader.spend(info.budget), (await reader.snapshot([info.budget], [], [])).spend[info.budget.id]) == (D(0), D("0.00014"))
    await r.aclose()
    assert (await reader.spend(info.budget), (await reader.snapshot([info.budget], [], [])).spend[info.budget.id]) == (D("0.000104"), D("0.000104"))
    await reader.close()


# ---------------------------------------------------------------------- what a transport is told
async def test_the_transport_is_told_whether_the_attempt_streams():
    """A custom transport (the ``transport=`` seam) reads the attempt from its CallSpec: a streamed call says
    stream=True, a plain one stream=False (MockTransport logs the specs it received)."""
    transport = MockTransport(lightweight=True)
    r = Router(policy("gemini-2.5-flash-lite"), transport=transport, watch_policy=False)
    await r.acomplete(HELLO, max_tokens=100)
    stream = await r.acomplete(HELLO, max_tokens=100, stream=True)
    assert [chunk async for chunk in stream]
    assert [spec.stream for spec in transport.calls] == [False, True]
    await r.aclose()


# ---------------------------------------------------------------------- what the decision says about the prompt
def test_explain_shows_an_estimated_prompt_as_its_own_estimate_with_no_margin(monkeypatch):
    import router._client

    # Sizes are shared per (tokens, source) in a module-level cache: start from an empty one, so this test
    # sees how a size is built, not one an earlier test (or mutmut's clean run, before it forks) left there.
    monkeypatch.setattr(router._client, "_PROMPT_SIZES", {})
    r = Router(policy("gemini-2.5-flash-lite"), transport=MockTransport(lightweight=True), watch_policy=False)
    size = r.explain([{"role": "user", "content": "How many tokens is this prompt, roughly?"}], max_tokens=10)["prompt_size"]
    assert size["source"] == "estimate" and size["tokens"] > 0
    assert (size["estimate"], size["margin_percent"]) == (size["tokens"], "0")
    given = r.explain([{"role": "user", "content": "hello"}], max_tokens=10, prompt_tokens=1_234)["prompt_size"]
    assert (given["tokens"], given["source"], given["estimate"], given["margin_percent"]) == (1_234, "caller", None, None)
    r.close()


# ---------------------------------------------------------------------- metrics of a watched policy file
def test_a_watched_policy_file_exports_its_version_from_the_start(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(policy("gemini-2.5-flash-lite"))
    metrics = RouterMetrics()
    r = Router(str(path), transport=MockTransport(lightweight=True), metrics=metrics)
    assert r.policy_version
    assert metric(metrics, "router_policy_version_info{") == [f'router_policy_version_info{{version="{r.policy_version}"}} 1.0']
    assert metric(metrics, "router_policy_reload_failing ") == ["router_policy_reload_failing 0.0"]
    r.close()


# ---------------------------------------------------------------------- a stream that ends without its usage
class _NoUsageStream:
    """A provider stream that ends (no error) before its final usage chunk: two text chunks, then the end."""

    def __init__(self, inner) -> None:
        self._inner, self._left = inner, 2

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._left == 0:
            raise StopAsyncIteration
        self._left -= 1
        return await self._inner.__anext__()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def final_usage(self):
        return self._inner.final_usage()  # the usage chunk was never read: an estimate, complete=False


class _NoUsageTransport(MockTransport):
    def stream(self, spec, settings=None):  # type: ignore[override]
        return _NoUsageStream(super().stream(spec, settings))


async def test_a_stream_that_ends_without_its_usage_is_recorded_interrupted_and_billed_its_estimate():
    """The provider's stream ended cleanly but never sent usage: the bill is the estimate of what was produced
    (the caller's 1,000 prompt tokens, the output the chunks carried), booked, nothing left held, and the
    attempt (and the request's outcome in the metrics) says "interrupted", not "ok"."""
    store, metrics = MemoryStore(), RouterMetrics()
    transport = _NoUsageTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="one two three four five six", stream_chunks=3, usage={"input_tokens": 1_000, "output_tokens": 500})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False, metrics=metrics)
    stream = await r.acomplete(HELLO, max_tokens=1_000, prompt_tokens=1_000, stream=True, tenant="acme")
    assert len([chunk async for chunk in stream]) == 2
    record = stream.routing
    assert [a.outcome for a in record.attempts] == ["interrupted"]
    # billed below the scripted 500 output tokens (only two chunks of text were produced), above the prompt alone
    assert D("0.0001") < record.cost_usd < D("0.0001") + 500 * D("0.0000004")
    assert await spend_and_holds(store) == (record.cost_usd, record.cost_usd)
    assert metric(metrics, "router_requests_total{") == [
        'router_requests_total{model="gemini-2.5-flash-lite",outcome="interrupted",rule="-",tenant="acme"} 1.0'
    ]
    await r.aclose()


async def test_streams_draw_the_last_free_grounding_unit_once_each_by_their_own_attempt():
    """Gemini 2.5 Flash's Google Search pool: 1,500 free grounded prompts a day, 1,499 used. Two grounded
    streams: the first takes the last free unit, the second is billed $35 / 1,000 = $0.035 for its grounded
    prompt (each stream's pool draw is its own attempt's, never taken for a retry of the other's).
    Tokens: 1,000 x $0.30 + 10 x $2.50 per 1M = $0.000325 each."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash", usage={"input_tokens": 1_000, "output_tokens": 10, "grounding_web_urls": 2})
    r = Router(policy("gemini-2.5-flash", limit="100"), store=store, transport=transport, watch_policy=False)
    pool = r.compiled.quota_pool("gemini-2x-flash-search-daily")
    await store.consume(pool, 1_499, "earlier-traffic")
    bills = []
    for _ in range(2):
        stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, grounding="google_search", stream=True)
        assert [chunk async for chunk in stream]
        bills.append((stream.routing.cost_usd, stream.routing.grounding_free_units, stream.routing.grounding_billable_units))
    assert bills == [(D("0.000325"), 1, 0), (D("0.035325"), 0, 1)]
    assert (await store.pool_usage(pool)).used == 1_501
    assert await spend_and_holds(store) == (D("0.03565"), D("0.03565"))
    await r.aclose()


async def test_a_failed_provisioned_attempt_gives_its_claimed_capacity_back():
    """The first call fails (a 500: nothing served, nothing billed); its 33,000-token claim must go back to the
    30 s window, so three calls of 33,000 still fit the 100,800 (one GSU), none refused."""
    import datetime as dt

    from router import TransportError

    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.0-flash", usage={"input_tokens": 1_000, "output_tokens": 8_000, "traffic_type": "PROVISIONED_THROUGHPUT"},
                     error="server_error", error_times=1)
    r = Router(PT_POLICY, store=store, transport=transport, watch_policy=False)
    day = dt.date(2026, 11, 3)
    with pytest.raises(TransportError):
        await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=day)
    for _ in range(3):
        served = await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=day)
        assert (served.routing.traffic_type, served.routing.cost_usd) == ("PROVISIONED_THROUGHPUT", D(0))
    assert len(transport.calls) == 4
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()


# ---------------------------------------------------------------------- a primary denied at reserve time
#: 2.5 Flash first, 2.5 Flash-Lite as its fallback, under a $0.001 monthly budget.
FLASH_THEN_LITE = """\
version: 1
candidates: [{model: gemini-2.5-flash}, {model: gemini-2.5-flash-lite}]
profiles: {p: {objective: best_quality, fallbacks: 1}}
default_profile: p
budgets:
  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "0.001"}
"""


class _RacedLedger(MemoryStore):
    """Another request holds $0.0008 of the budget between this call's decision and its first reservation."""

    raced = False

    async def reserve(self, reservation_id, budgets, amount, ttl_s):  # type: ignore[override]
        if not self.raced:
            self.raced = True
            await super().reserve("another-request", budgets, D("0.0008"), ttl_s)
        return await super().reserve(reservation_id, budgets, amount, ttl_s)


async def assert_raced_primary_fell_back_to_lite(record, transport, store) -> None:
    """Under FLASH_THEN_LITE with a _RacedLedger: Flash (reserving $0.00055) was denied, Flash-Lite ($0.00014) was
    the only model sent, served and billed $0.000104; the ledger holds that bill plus the other request's $0.0008."""
    assert [(a.model, a.outcome, a.reserved_usd) for a in record.attempts] == [
        ("gemini-2.5-flash", "denied", D("0.00055")), ("gemini-2.5-flash-lite", "ok", D("0.00014"))]
    assert (record.model, record.cost_usd) == ("gemini-2.5-flash-lite", D("0.000104"))
    assert [spec.model_id for spec in transport.calls] == ["gemini-2.5-flash-lite"]
    assert await spend_and_holds(store) == (D("0.000104"), D("0.000904"))  # + the other request's hold


async def test_a_primary_denied_at_reserve_time_falls_back_to_a_candidate_that_fits():
    """$0.001 budget; best_quality picks 2.5 Flash (reserves 1,000 x $0.30 + 100 x $2.50 per 1M = $0.00055), but
    another request took $0.0008 meanwhile: Flash is denied, Flash-Lite ($0.00014) fits, is served and billed
    1,000 x $0.10 + 10 x $0.40 per 1M = $0.000104."""
    store, transport = _RacedLedger(), MockTransport(lightweight=True)
    transport.script("gemini-2.5", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(FLASH_THEN_LITE, store=store, transport=transport, watch_policy=False)
    record = (await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=100)).routing
    await assert_raced_primary_fell_back_to_lite(record, transport, store)
    await r.aclose()


# ---------------------------------------------------------------------- a saturated "only" primary, then its fallback
class _RacedPtLedger(MemoryStore):
    """Another request claims 100,000 of Gemini 3 Flash's 100,800-token window between this call's decision and its claim."""

    raced = False

    async def pt_claim(self, key, tokens, capacity):  # type: ignore[override]
        if not self.raced and key.startswith("gemini-3-flash-preview"):
            self.raced = True
            await super().pt_claim(key, 100_000, capacity)
        return await super().pt_claim(key, tokens, capacity)


async def test_a_provisioned_only_primary_saturated_at_claim_time_falls_back_to_the_next_subscription(tmp_path):
    """Two subscriptions, one GSU each (a catalog copy gives Gemini 3 Flash the seed's 2.0 Flash burndown rates as test
    values: 3,360 adjusted tokens a second, 100,800 in the 30 s window). Both are covered at decision time ($0 each;
    the tie goes to the better quality, Gemini 3 Flash). Another request fills Gemini 3 Flash's window before this call
    claims its 1,000 + 8,000 x 4 = 33,000 tokens: after its 0.2 s wait it is still saturated, so the call goes on to
    2.0 Flash, served by its Provisioned Throughput at $0 (it is not refused while a fallback has capacity)."""
    import datetime as dt

    from tests.catalog_copies import catalog_with_gemini_3_flash_burndown

    root = catalog_with_gemini_3_flash_burndown(tmp_path)
    policy_text = PT_POLICY.replace(
        "    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n",
        "    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n"
        "    - {model: gemini-3-flash-preview, region: global, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n",
    ).replace("  - {model: gemini-2.0-flash, location: us-central1}\n",
              "  - {model: gemini-2.0-flash, location: us-central1}\n  - {model: gemini-3-flash-preview, location: global}\n",
    ).replace("fallbacks: 0", "fallbacks: 1")
    store, transport = _RacedPtLedger(), MockTransport(lightweight=True)
    for model in ("gemini-2.0-flash", "gemini-3-flash-preview"):
        transport.script(model, usage={"input_tokens": 1_000, "output_tokens": 8_000, "traffic_type": "PROVISIONED_THROUGHPUT"})
    r = Router(policy_text, catalog=root, store=store, transport=transport, watch_policy=False)
    served = await r.acomplete(HELLO, prompt_tokens=1_000, max_tokens=8_000, at=dt.date(2026, 11, 3), tenant="acme")
    record = served.routing
    assert [(a.model, a.outcome) for a in record.attempts] == [("gemini-3-flash-preview", "pt_saturated"), ("gemini-2.0-flash", "ok")]
    assert (record.model, record.traffic_type, record.cost_usd) == ("gemini-2.0-flash", "PROVISIONED_THROUGHPUT", D(0))
    assert [(c.model_id, c.location) for c in transport.calls] == [("gemini-2.0-flash", "us-central1")]  # Gemini 3 never sent
    assert await spend_and_holds(store) == (D(0), D(0))
    await r.aclose()
