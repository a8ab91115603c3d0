"""The ledger at the boundaries where a plausible bug loses or invents money (issue 12's surviving mutations):
a hold exactly at its TTL, spend exactly at a rolling window's edge, the life of a rolling counter, a ramp
streak broken by exactly one idle minute, and journal replays after an outage that crosses midnight, a month
end or a window edge (spend, consumption and priority tokens land in the period of the event, not of the
replay). Every test runs on memory, fakeredis and a real redis-server unless it is about Redis itself.
"""

from __future__ import annotations

import contextlib
import uuid
from decimal import Decimal

import pytest

from router.ledger import QuotaPool, store_from_url
from router.ledger.windows import ROLLING_BUCKET_S, ROLLING_SPANS
from tests.ledger.helpers import at, budget

D = Decimal
MINUTE = 60


# ---------------------------------------------------------------------- holds: expired exactly at the TTL
async def test_a_hold_is_gone_exactly_at_its_ttl(store, clock):
    b = budget(limit="1")
    assert (await store.reserve("a", [b], D("0.6"), 30)).granted
    clock.advance(30)  # the hold's expiry is now: it no longer counts
    snap = await store.snapshot([b], [], [])
    assert snap.spend[b.id] == 0
    assert (await store.reserve("b", [b], D("0.6"), 30)).granted


async def test_a_hold_still_counts_one_millisecond_before_its_ttl(store, clock):
    b = budget(limit="1")
    assert (await store.reserve("a", [b], D("0.6"), 30)).granted
    clock.advance(29.999)
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.6")
    assert not (await store.reserve("b", [b], D("0.6"), 30)).granted


async def test_an_expired_hold_stops_counting_while_others_stay(store, clock):
    b = budget(limit="1")
    assert (await store.reserve("short", [b], D("0.3"), 10)).granted
    assert (await store.reserve("long", [b], D("0.3"), 100)).granted
    clock.advance(10)  # "short" expires; "long" is still held
    assert (await store.reserve("next", [b], D("0.3"), 100)).granted  # purges the expired hold
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.6")  # long + next, not short any more
    assert (await store.reserve("last", [b], D("0.4"), 100)).granted  # 0.6 + 0.4 = the limit, exactly
    assert not (await store.reserve("over", [b], D("0.000000001"), 100)).granted


# ---------------------------------------------------------------------- ramp streak: one idle minute ends it
async def test_one_whole_idle_minute_ends_the_ramp_streak(store, clock):
    clock.set((clock.now // MINUTE) * MINUTE)
    for _ in range(11):  # minutes 0..10: ten minutes of sustained use, +50 %
        await store.record_priority_tokens("pro", 10_000)
        clock.advance(MINUTE)
    clock.advance(-MINUTE)
    assert (await store.ramp_usage("pro")).limit_tpm == 1_500_000
    clock.advance(2 * MINUTE)  # minute 11 had no priority tokens at all; now minute 12
    await store.record_priority_tokens("pro", 10_000)
    assert (await store.ramp_usage("pro")).limit_tpm == 1_000_000


async def test_consecutive_minutes_keep_the_ramp_streak(store, clock):
    clock.set((clock.now // MINUTE) * MINUTE + 59)  # the last second of minute 0
    await store.record_priority_tokens("pro", 10_000)
    for _ in range(10):  # the first second of minutes 1..10: no idle minute in between
        clock.advance(1)
        await store.record_priority_tokens("pro", 10_000)
        clock.advance(MINUTE - 1)
    clock.advance(-(MINUTE - 1))
    assert (await store.ramp_usage("pro")).limit_tpm == 1_500_000


# ---------------------------------------------------------------------- rolling counters outlive their window
@pytest.mark.parametrize("store_url", ["fakeredis", "redis"], indirect=True)
@pytest.mark.parametrize("span", sorted(ROLLING_SPANS))
async def test_a_rolling_counter_lives_until_its_last_bucket_leaves_the_window(store, store_url, unique_prefix, span):
    """Spend written at the start of a bucket counts until span + one bucket later, so its Redis key must live
    at least that long, plus a margin for clock skew between the router and Redis (half a bucket at least)."""
    import redis.asyncio as aredis

    b = budget("global", f"rolling:{span}", "100")
    await store.reserve("r", [b], D("1"), 60)
    await store.settle("r", D("1"))
    client = store.client if store_url.startswith("fakeredis") else aredis.Redis.from_url(store_url)
    ttl = await client.pttl(store.keys.rolling(b.id))
    if client is not store.client:
        await client.aclose()
    bucket_ms, span_ms = ROLLING_BUCKET_S[span] * 1000, ROLLING_SPANS[span] * 1000
    assert ttl > span_ms + bucket_ms + bucket_ms // 2


# ---------------------------------------------------------------------- journal replay: the event's period
@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.redis_server)])
def journaled(request, tmp_path, clock, unique_prefix):
    """A fail_open Redis store with a journal, and an ``outage()`` context manager that makes Redis
    unreachable (fakeredis: disconnected; a real redis-server: stopped, then started again empty)."""
    if request.param == "fakeredis":
        from router.ledger import factory

        url = f"fakeredis://{uuid.uuid4().hex}"
        store = store_from_url(url, prefix=unique_prefix, failure_mode="fail_open", journal_path=str(tmp_path / "j"), clock=clock)
        server = factory._fake_server(url.partition("://")[2])

        @contextlib.contextmanager
        def outage():
            server.connected = False
            try:
                yield
            finally:
                server.connected = True
    else:
        from tests.fixtures_redis import need_redis_server
        from router.testing.redis_server import RedisServer

        need_redis_server()
        redis_server = RedisServer()
        request.addfinalizer(redis_server.close)
        store = store_from_url(redis_server.url, prefix=unique_prefix, failure_mode="fail_open", journal_path=str(tmp_path / "j"), clock=clock)

        @contextlib.contextmanager
        def outage():
            redis_server.stop()
            try:
                yield
            finally:
                redis_server.start()
    store.retry_interval_s = 0.0
    store.outage = outage
    store.test_url = url if request.param == "fakeredis" else redis_server.url
    return store


async def _settled_during_outage(store, b, amount: str) -> None:
    assert (await store.reserve("r", [b], D(amount), 3600)).granted
    with store.outage():
        assert await store.settle("r", D(amount))  # journaled with its time
    assert store.journal.backlog() > 0


@pytest.mark.parametrize(
    "window,tz",
    [("calendar:day@UTC", "UTC"), ("calendar:month@UTC", "UTC"), ("calendar:day@Europe/Paris", "Europe/Paris"), ("calendar:month@Europe/Paris", "Europe/Paris")],
)
async def test_a_replayed_settle_lands_in_the_period_of_the_event(journaled, clock, window, tz):
    store = journaled
    b = budget("tenant:a", window, "10")
    clock.set(at("2026-03-31T23:59:30", tz))  # the last minute of a day and of a month, local time
    await _settled_during_outage(store, b, "0.4")
    clock.set(at("2026-04-01T00:00:30", tz))  # Redis is back after midnight, in the next month
    assert await store.replay_journal() == 1
    assert await store.spend(b) == 0  # nothing booked in the new period
    clock.set(at("2026-03-31T23:59:50", tz))
    assert await store.spend(b) == D("0.4")  # all of it in the period the call was made
    await store.close()


async def test_a_replayed_settle_at_the_rolling_window_edge_still_counts(journaled, clock):
    store = journaled
    b = budget("tenant:a", "rolling:1h", "10")
    clock.set((clock.now // MINUTE) * MINUTE)  # the first instant of a 1-minute bucket
    await _settled_during_outage(store, b, "0.4")
    clock.advance(3600)  # Redis is back exactly one hour later: the event's bucket is the oldest in the window
    assert await store.replay_journal() == 1
    assert await store.spend(b) == D("0.4")
    clock.advance(MINUTE)  # one bucket later it has aged out
    assert await store.spend(b) == 0
    await store.close()


async def test_a_replayed_settle_older_than_the_rolling_window_is_not_counted(journaled, clock):
    store = journaled
    b = budget("tenant:a", "rolling:1h", "10")
    clock.set((clock.now // MINUTE) * MINUTE)
    await _settled_during_outage(store, b, "0.4")
    clock.advance(3600 + MINUTE)
    assert await store.replay_journal() == 1
    assert await store.spend(b) == 0
    await store.close()


async def test_a_replayed_consumption_lands_in_the_day_of_the_event(journaled, clock):
    store = journaled
    pool = QuotaPool("search", 3, "day", "America/Los_Angeles")
    clock.set(at("2026-03-31T23:59:30", "America/Los_Angeles"))
    with store.outage():
        consumed = await store.consume(pool, 2, "q1")  # journaled (billed in full while Redis is down)
    assert consumed.billable_units == 2
    clock.set(at("2026-04-01T00:00:30", "America/Los_Angeles"))
    assert await store.replay_journal() == 1
    assert (await store.pool_usage(pool)).used == 0  # the new day's free units are untouched
    clock.set(at("2026-03-31T23:59:50", "America/Los_Angeles"))
    assert (await store.pool_usage(pool)).used == 2
    await store.close()


async def test_replayed_priority_tokens_older_than_a_minute_are_not_counted(journaled, clock):
    store = journaled
    with store.outage():
        await store.record_priority_tokens("flash", 1_000_000)
    clock.advance(61)
    assert await store.replay_journal() == 1
    assert (await store.ramp_usage("flash")).tokens_last_minute == 0
    await store.close()


async def test_replayed_priority_tokens_count_in_the_minute_they_were_used(journaled, clock):
    store = journaled
    with store.outage():
        await store.record_priority_tokens("flash", 1_000_000)
    clock.advance(30)
    assert await store.replay_journal() == 1
    assert (await store.ramp_usage("flash")).tokens_last_minute == 1_000_000
    await store.close()


async def test_after_a_long_idle_the_oldest_in_window_bucket_still_counts(store, clock):
    """rolling:30d has 720 one-hour buckets: a counter idle for more than 256 buckets is evicted in one sweep,
    which must keep the bucket exactly at the window's start."""
    hour = 3600
    b = budget("tenant:a", "rolling:30d", "100")
    clock.set((clock.now // hour) * hour)
    await store.reserve("old", [b], D("0.1"), 60)
    await store.settle("old", D("0.1"))
    clock.advance(300 * hour)
    await store.reserve("edge", [b], D("0.2"), 60)
    await store.settle("edge", D("0.2"))
    clock.advance(30 * 24 * hour)  # "edge" is now the oldest bucket of the window; "old" left it 300 hours ago
    assert (await store.reserve("probe", [b], D("0.01"), 60)).granted  # a mutating read: evicts, then holds
    await store.release("probe")
    assert await store.spend(b) == D("0.2")
    clock.advance(hour)
    assert await store.spend(b) == 0


async def test_a_replayed_settle_older_than_the_newest_spend_still_ages_out(journaled, clock, unique_prefix):
    """A replayed event can be older than every bucket the counter holds: it must still leave the window on
    time (the counter's low mark moves down to it)."""
    store = journaled
    other = store_from_url(store.test_url, prefix=unique_prefix, clock=clock)  # another process, never down
    b = budget("tenant:a", "rolling:1h", "10")
    clock.set((clock.now // MINUTE) * MINUTE)
    await _settled_during_outage(store, b, "0.4")  # at T0, journaled
    clock.advance(10 * MINUTE)
    assert (await other.reserve("new", [b], D("0.2"), 60)).granted
    await other.settle("new", D("0.2"))  # at T0 + 10 min, before the journal is replayed
    assert await store.replay_journal() == 1
    assert await store.spend(b) == D("0.6")
    clock.advance(51 * MINUTE)  # T0 + 61 min: the replayed bucket has left the window, the newer one has not
    assert await store.spend(b) == D("0.2")
    await other.close()
    await store.close()


# ---------------------------------------------------------------------- calendar month at the year end
async def test_the_december_month_ends_on_new_year(store, clock):
    b = budget("tenant:a", "calendar:month@UTC", "10")
    clock.set(at("2026-12-31T23:59:00"))
    assert (await store.reserve("r", [b], D("0.4"), 60)).granted
    await store.settle("r", D("0.4"))
    assert await store.spend(b) == D("0.4")
    clock.set(at("2027-01-01T00:00:00"))
    assert await store.spend(b) == 0


# ---------------------------------------------------------------------- idempotent consumption outlives housekeeping
async def test_a_retried_consumption_is_counted_once_after_housekeeping(store, clock):
    pool = QuotaPool("search", 3, "day", "UTC")
    clock.set(at("2026-03-10T10:00:00"))
    first = await store.consume(pool, 2, "q1")
    clock.advance(5)  # housekeeping runs (at most once a second) on the next operation
    await store.consume(pool, 1, "q2")
    again = await store.consume(pool, 2, "q1")  # a retry of q1: the same split, nothing counted twice
    assert (again.free_units, again.billable_units) == (first.free_units, first.billable_units) == (2, 0)
    assert (await store.pool_usage(pool)).used == 3


# ---------------------------------------------------------------------- the cap counts settled spend
async def test_settled_spend_counts_against_the_cap(store):
    b = budget(limit="1")
    assert (await store.reserve("a", [b], D("0.8"), 60)).granted
    await store.settle("a", D("0.8"))  # settled, no longer held
    assert not (await store.reserve("b", [b], D("0.200000001"), 60)).granted
    assert (await store.reserve("c", [b], D("0.2"), 60)).granted  # 0.8 + 0.2 = the limit, exactly


# ---------------------------------------------------------------------- no key lives forever
@pytest.mark.parametrize("store_url", ["fakeredis", "redis"], indirect=True)
async def test_every_key_of_an_abandoned_hold_expires(store, store_url, unique_prefix):
    """A worker killed between reserve and settle leaves keys that must all expire on their own."""
    import redis.asyncio as aredis

    b = budget("tenant:a", "rolling:1h", "10")
    assert (await store.reserve("abandoned", [b], D("0.5"), 60)).granted
    client = store.client if store_url.startswith("fakeredis") else aredis.Redis.from_url(store_url)
    ttls = {k: await client.pttl(k) async for k in client.scan_iter(match="{" + unique_prefix + "}:*")}
    if client is not store.client:
        await client.aclose()
    assert ttls and all(ttl > 0 for ttl in ttls.values()), ttls


# ---------------------------------------------------------------------- shared policy versions
async def test_publishing_the_current_version_again_changes_nothing(store):
    from router.ledger.base import POLICY_HISTORY

    def v(i: int) -> str:
        return f"{i:012x}"  # policy versions are 12 hex digits

    assert await store.publish_policy("main", v(1), "version: 1") is True
    assert await store.publish_policy("main", v(1), "version: 1") is False
    assert [version for version, _ in await store.policy_history("main")] == [v(1)]
    for i in range(2, POLICY_HISTORY + 3):
        assert await store.publish_policy("main", v(i), "version: 1") is True
    history = [version for version, _ in await store.policy_history("main")]
    assert len(history) == POLICY_HISTORY and history[0] == v(POLICY_HISTORY + 2)  # newest first, capped
