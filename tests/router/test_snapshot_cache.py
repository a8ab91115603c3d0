"""Issue 13: the Router's ledger views on a shared store are stale-while-revalidate, and still never staler
than ``snapshot_max_age_s`` (counted from when a view's read started).

The clock is a fake one and every read is held until the test lets it land, so nothing here depends on timing:
* a request under the refresh point (half the maximum age) uses the view and starts no read;
* past it, the request still uses the view without waiting and starts ONE background read (one at a time);
* a view older than the maximum age (or none) makes the request wait for a read started within the bound;
* a failed read leaves the view as it was, its waiters get the error, and the next request retries;
* over random interleavings, every answer's read started at most ``max_age_s`` before the request;
* through a Router: spend booked elsewhere steers the decision once the age passed, and the snapshot error
  metric counts a failed read, waited on or in the background.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any

import pytest

from router import Router
from router._snapshot_cache import SnapshotCache
from router.errors import StoreUnavailableError
from router.ledger import MemoryStore
from router.metrics import RouterMetrics
from router.testing import MockTransport

MAX_AGE = 0.05


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Reads:
    """``read()`` for the cache: each read answers ``("view", n)`` (n = its number) when the test lands it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.started: list[float] = []  # the clock when each read started
        self.gates: list[asyncio.Future[Any]] = []

    def __call__(self) -> Any:
        gate = asyncio.get_running_loop().create_future()
        self.started.append(self.clock.now)
        self.gates.append(gate)
        number = len(self.gates) - 1

        async def read() -> Any:
            await gate
            return ("view", number)

        return read()

    async def land(self, number: int, error: BaseException | None = None) -> None:
        if error is None:
            self.gates[number].set_result(None)
        else:
            self.gates[number].set_exception(error)
        for _ in range(5):  # the read's task, its done callbacks and the waiters run
            await asyncio.sleep(0)


async def settle_loop() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def cache_setup():
    clock = Clock()
    return SnapshotCache(clock=clock), clock, Reads(clock)


async def at_once(cache: SnapshotCache, reads: Reads) -> Any:
    """A request's answer, which must come without waiting for any read."""
    request = asyncio.ensure_future(cache.get("k", MAX_AGE, reads))
    await settle_loop()
    assert request.done(), "the request waited for a read"
    return request.result()


async def first_view(cache: SnapshotCache, reads: Reads) -> Any:
    waiting = asyncio.ensure_future(cache.get("k", MAX_AGE, reads))
    await settle_loop()
    assert not waiting.done()  # no view yet: the request waits for the read
    await reads.land(0)
    return await waiting


async def test_no_view_waits_and_under_the_refresh_point_no_read_starts(cache_setup):
    cache, clock, reads = cache_setup
    assert await first_view(cache, reads) == ("view", 0)
    clock.now += MAX_AGE * 0.5  # exactly at the refresh point: not past it
    assert await at_once(cache, reads) == ("view", 0)
    assert len(reads.started) == 1


async def test_past_the_refresh_point_one_background_read_and_no_wait(cache_setup):
    cache, clock, reads = cache_setup
    await first_view(cache, reads)
    clock.now += 0.03
    # answered from the cached view at once, while the refresh it started is still held
    assert await at_once(cache, reads) == ("view", 0)
    assert len(reads.started) == 2
    clock.now += 0.01
    assert await at_once(cache, reads) == ("view", 0)
    assert await at_once(cache, reads) == ("view", 0)
    assert len(reads.started) == 2  # one refresh at a time
    await reads.land(1)
    assert await at_once(cache, reads) == ("view", 1)  # the refresh replaced the view
    assert len(reads.started) == 2  # the new view is 0.01 s old: under the refresh point


async def test_a_view_older_than_the_max_age_is_never_used(cache_setup):
    cache, clock, reads = cache_setup
    await first_view(cache, reads)
    clock.now += MAX_AGE + 0.001
    waiting = asyncio.ensure_future(cache.get("k", MAX_AGE, reads))
    await settle_loop()
    assert not waiting.done()  # the old view is past the bound: the request waits for a fresh read
    assert len(reads.started) == 2
    await reads.land(1)
    assert await waiting == ("view", 1)


async def test_a_waiting_request_joins_the_refresh_in_flight_when_it_started_within_the_bound(cache_setup):
    cache, clock, reads = cache_setup
    await first_view(cache, reads)
    clock.now += 0.03
    await at_once(cache, reads)  # starts refresh 1 at t0 + 0.03
    clock.now += 0.03  # the view is 0.06 old, the refresh started 0.03 ago
    waiting = [asyncio.ensure_future(cache.get("k", MAX_AGE, reads)) for _ in range(3)]
    await settle_loop()
    assert len(reads.started) == 2 and not any(w.done() for w in waiting)
    await reads.land(1)
    assert [await w for w in waiting] == [("view", 1)] * 3


async def test_a_read_in_flight_past_the_bound_is_not_waited_on(cache_setup):
    cache, clock, reads = cache_setup
    await first_view(cache, reads)
    clock.now += 0.03
    await at_once(cache, reads)  # refresh 1 starts and hangs
    clock.now += 0.06  # refresh 1 started 0.06 ago: its answer could be staler than the bound
    waiting = asyncio.ensure_future(cache.get("k", MAX_AGE, reads))
    await settle_loop()
    assert len(reads.started) == 3  # a new read
    await reads.land(2)
    assert await waiting == ("view", 2)
    await reads.land(1)  # the hung read lands late: it must not replace the newer view
    assert await at_once(cache, reads) == ("view", 2)


async def test_a_failed_refresh_keeps_the_view_and_the_next_request_retries(cache_setup):
    cache, clock, reads = cache_setup
    await first_view(cache, reads)
    clock.now += 0.03
    await at_once(cache, reads)  # background refresh 1
    await reads.land(1, StoreUnavailableError("redis down"))
    assert await at_once(cache, reads) == ("view", 0)  # still within the bound: kept
    assert len(reads.started) == 3  # past the refresh point with no read in flight: retried
    await reads.land(2)
    assert await at_once(cache, reads) == ("view", 2)


async def test_a_failed_read_reaches_its_waiters_and_does_not_poison_the_cache(cache_setup):
    cache, clock, reads = cache_setup
    waiting = [asyncio.ensure_future(cache.get("k", MAX_AGE, reads)) for _ in range(2)]
    await settle_loop()
    await reads.land(0, StoreUnavailableError("redis down"))
    for w in waiting:
        with pytest.raises(StoreUnavailableError):
            await w
    waiting = asyncio.ensure_future(cache.get("k", MAX_AGE, reads))  # same instant: a new read, not the failure
    await settle_loop()
    assert len(reads.started) == 2
    await reads.land(1)
    assert await waiting == ("view", 1)


async def test_a_cancelled_waiter_does_not_cancel_the_read_of_the_others(cache_setup):
    cache, clock, reads = cache_setup
    first = asyncio.ensure_future(cache.get("k", MAX_AGE, reads))
    second = asyncio.ensure_future(cache.get("k", MAX_AGE, reads))
    await settle_loop()
    first.cancel()
    await settle_loop()
    await reads.land(0)
    assert await second == ("view", 0)
    assert len(reads.started) == 1


async def test_random_interleavings_never_answer_a_view_older_than_the_bound(cache_setup):
    cache, clock, reads = cache_setup
    rng = random.Random(13)
    requests: list[tuple[float, asyncio.Future[Any]]] = []
    for _ in range(600):
        step = rng.random()
        if step < 0.45:
            requests.append((clock.now, asyncio.ensure_future(cache.get("k", MAX_AGE, reads))))
        elif step < 0.75:
            clock.now += rng.choice([0.001, 0.005, 0.02, 0.04, 0.07])
        else:
            open_reads = [n for n, gate in enumerate(reads.gates) if not gate.done()]
            if open_reads:
                number = rng.choice(open_reads)
                await reads.land(number, StoreUnavailableError("down") if rng.random() < 0.1 else None)
        await settle_loop()
    for number, gate in enumerate(reads.gates):
        if not gate.done():
            await reads.land(number)
    answered = 0
    for arrived, request in requests:
        try:
            _, number = await request
        except StoreUnavailableError:
            continue
        answered += 1
        assert arrived - reads.started[number] <= MAX_AGE  # the view's read started within the bound
    assert answered > 200 and len(reads.started) < len(requests) / 2  # most requests shared a view


# ------------------------------------------------------------------ through a Router

POLICY = """\
version: 1
candidates: [{model: gemini-2.5-flash}, {model: gemini-2.0-flash-lite}]
profiles:
  standard: {objective: best_quality}
  cost-first: {objective: cheapest}
default_profile: standard
budgets:
  - name: month
    scope: global
    window: calendar:month@UTC
    limit_usd: "10"
    actions:
      - {at_percent: 80, switch_profile: cost-first}
"""
HELLO = [{"role": "user", "content": "hello"}]


class SharedLedger:
    """A shared-store stand-in (the Router caches its views): a memory ledger whose snapshot reads are counted
    and can be made to fail."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.snapshot_reads = 0
        self.fail = False

    async def snapshot(self, *args: Any, **kwargs: Any) -> Any:
        self.snapshot_reads += 1
        if self.fail:
            raise StoreUnavailableError("redis down")
        return await self.inner.snapshot(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
async def routed():
    store, clock, metrics = SharedLedger(), Clock(), RouterMetrics()
    router = Router(POLICY, store=store, transport=MockTransport(lightweight=True), watch_policy=False, metrics=metrics)
    router._snapshots = SnapshotCache(clock=clock)
    yield router, store, clock, metrics
    await router.aclose()


def snapshot_errors(metrics: RouterMetrics) -> float:
    return metrics.store_errors.labels("snapshot")._value.get()


async def test_spend_booked_elsewhere_steers_the_decision_once_the_view_passed_the_bound(routed):
    router, store, clock, _ = routed
    assert router.snapshot_max_age_s == MAX_AGE
    assert (await router.acomplete(HELLO, max_tokens=20)).routing.model == "gemini-2.5-flash"
    budgets = [info.budget for info in await store.list_scopes()]
    assert (await store.reserve("elsewhere", budgets, Decimal("8"), 60)).granted
    assert await store.settle("elsewhere", Decimal("8"))  # $8 of $10: the 80 % switch applies
    clock.now += 0.02  # under the refresh point: the cached view (before the $8) decides, no read
    assert (await router.acomplete(HELLO, max_tokens=20)).routing.model == "gemini-2.5-flash"
    assert store.snapshot_reads == 1
    clock.now += 0.04  # 0.06 old: past the bound, this decision waits for a fresh read
    assert (await router.acomplete(HELLO, max_tokens=20)).routing.model == "gemini-2.0-flash-lite"
    assert store.snapshot_reads == 2


async def test_a_refresh_past_the_refresh_point_serves_the_next_decision(routed):
    router, store, clock, _ = routed
    await router.acomplete(HELLO, max_tokens=20)
    budgets = [info.budget for info in await store.list_scopes()]
    assert (await store.reserve("elsewhere", budgets, Decimal("8"), 60)).granted
    assert await store.settle("elsewhere", Decimal("8"))
    clock.now += 0.03  # past the refresh point: this decision uses the old view, a refresh starts
    assert (await router.acomplete(HELLO, max_tokens=20)).routing.model == "gemini-2.5-flash"
    await settle_loop()
    assert store.snapshot_reads == 2
    clock.now += 0.001  # the refreshed view (started 0.001 ago) decides
    assert (await router.acomplete(HELLO, max_tokens=20)).routing.model == "gemini-2.0-flash-lite"
    assert store.snapshot_reads == 2


async def test_failed_reads_are_counted_whether_waited_on_or_in_the_background(routed):
    router, store, clock, metrics = routed
    await router.acomplete(HELLO, max_tokens=20)
    store.fail = True
    clock.now += 0.03  # background refresh fails: this call is served from the view
    assert (await router.acomplete(HELLO, max_tokens=20)).routing.model == "gemini-2.5-flash"
    await settle_loop()
    assert snapshot_errors(metrics) == 1
    clock.now += 0.03  # the view is past the bound: the call waits, and the read's error is the call's
    with pytest.raises(StoreUnavailableError):
        await router.acomplete(HELLO, max_tokens=20)
    assert snapshot_errors(metrics) == 2
    store.fail = False
    assert (await router.acomplete(HELLO, max_tokens=20)).routing.model == "gemini-2.5-flash"  # retried
    assert store.snapshot_reads == 4
