"""The ledger's one test suite, run on every backend (memory, fakeredis, real redis-server)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from router.errors import StoreError
from router.ledger import BudgetScope, QuotaPool, Window
from tests.ledger.helpers import at, budget

D = Decimal


# ---------------------------------------------------------------------- reserve / settle / release
async def test_reserve_grants_and_holds(store):
    b = budget(limit="1")
    r = await store.reserve("r1", [b], D("0.4"), 60)
    assert r.granted and r.denied_scope is None and r.amount == D("0.4")
    snap = await store.snapshot([b], [], [])
    assert snap.spend[b.id] == D("0.4")  # holds count in the snapshot
    assert await store.spend(b) == 0  # ...but not in settled spend


async def test_cap_is_exact_to_the_nano(store):
    b = budget(limit="1")
    assert (await store.reserve("a", [b], D("0.999999999"), 60)).granted
    assert not (await store.reserve("b", [b], D("0.000000002"), 60)).granted
    assert (await store.reserve("c", [b], D("0.000000001"), 60)).granted
    assert (await store.snapshot([b], [], [])).spend[b.id] == D(1)


async def test_denial_names_the_scope_and_holds_nothing_anywhere(store):
    wide = budget("global", "rolling:24h", "100")
    tenant = budget("tenant:acme", "calendar:day@Europe/Paris", "1")
    app = budget("app:search", "rolling:1h", "100")
    assert (await store.reserve("fill", [tenant], D("0.9"), 60)).granted
    r = await store.reserve("big", [wide, tenant, app], D("0.2"), 60)
    assert not r.granted and r.denied_scope == tenant.id
    snap = await store.snapshot([wide, tenant, app], [], [])
    assert snap.spend == {wide.id: 0, tenant.id: D("0.9"), app.id: 0}
    with pytest.raises(StoreError):  # nothing was recorded for the denied id
        await store.settle("big", D("0.1"))
    assert (await store.reserve("small", [wide, tenant, app], D("0.1"), 60)).granted


async def test_settle_is_idempotent(store):
    b = budget(limit="10")
    await store.reserve("r", [b], D("2"), 60)
    assert await store.settle("r", D("1.5")) is True
    assert await store.settle("r", D("1.5")) is False
    assert await store.settle("r", D("9")) is False  # a retry with another figure changes nothing
    assert await store.spend(b) == D("1.5")
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("1.5")  # hold gone
    assert await store.release("r") is False


async def test_release_is_idempotent_and_books_nothing(store):
    b = budget(limit="1")
    await store.reserve("r", [b], D("0.8"), 60)
    assert await store.release("r") is True
    assert await store.release("r") is False
    assert await store.release("never-seen") is False
    assert (await store.snapshot([b], [], [])).spend[b.id] == 0
    assert (await store.reserve("r2", [b], D("1"), 60)).granted


async def test_settle_after_release_still_books(store):
    b = budget(limit="1")
    await store.reserve("r", [b], D("0.5"), 60)
    await store.release("r")
    assert await store.settle("r", D("0.25")) is True
    assert await store.spend(b) == D("0.25")


async def test_settle_of_unknown_reservation_raises(store):
    with pytest.raises(StoreError, match="unknown reservation"):
        await store.settle("nobody", D("1"))


async def test_reserve_twice_holds_once(store):
    b = budget(limit="1")
    assert (await store.reserve("r", [b], D("0.6"), 60)).granted
    again = await store.reserve("r", [b], D("0.6"), 60)
    assert again.granted and again.amount == D("0.6")
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.6")


async def test_multi_scope_settle_books_every_scope(store):
    bs = [budget("global", "rolling:24h", "10"), budget("tenant:a", "calendar:month@America/New_York", "10"), budget("tag:team=ml", "rolling:7d", "10")]
    await store.reserve("r", bs, D("3"), 60)
    await store.settle("r", D("2.5"))
    for b in bs:
        assert await store.spend(b) == D("2.5")


async def test_concurrent_reservations_never_overshoot(store):
    b = budget(limit="1")
    results = await asyncio.gather(*(store.reserve(f"r{i}", [b], D("0.07"), 60) for i in range(40)))
    granted = [r for r in results if r.granted]
    assert len(granted) == 14  # 14 * 0.07 = 0.98
    assert all(r.denied_scope == b.id for r in results if not r.granted)


# ---------------------------------------------------------------------- TTL
async def test_holds_expire_after_ttl(store, clock):
    b = budget(limit="1")
    assert (await store.reserve("a", [b], D("0.6"), 30)).granted
    assert not (await store.reserve("b", [b], D("0.6"), 30)).granted
    clock.advance(29.9)
    assert not (await store.reserve("c", [b], D("0.6"), 30)).granted
    clock.advance(0.2)
    assert (await store.snapshot([b], [], [])).spend[b.id] == 0
    assert (await store.reserve("d", [b], D("0.6"), 30)).granted


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.5, 0.0, -0.0, 7 * 86400 + 0.5, True, "30", None])
async def test_a_bad_ttl_is_refused_every_time_and_holds_nothing(store, bad):
    """Reservations validate their TTL on every call (valid float TTLs are remembered for speed; a bad one
    never is): refused twice in a row, also after valid calls with the same float value's neighbours."""
    b = budget(limit="1")
    assert (await store.reserve("ok-1", [b], D("0.1"), 30.0)).granted
    assert (await store.reserve("ok-2", [b], D("0.1"), 30.0)).granted
    for attempt in range(2):
        with pytest.raises(ValueError, match="ttl_s"):
            await store.reserve(f"bad-{attempt}", [b], D("0.1"), bad)
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.2")


async def test_a_float_ttl_gives_the_same_hold_life_on_every_call(store, clock):
    b = budget(limit="1")
    for rid in ("a", "b"):  # the second call takes the remembered milliseconds
        assert (await store.reserve(rid, [b], D("0.4"), 0.5)).granted
    clock.advance(0.499)
    assert not (await store.reserve("c", [b], D("0.4"), 0.5)).granted
    clock.advance(0.002)
    assert (await store.reserve("d", [b], D("0.4"), 0.5)).granted


async def test_settle_after_expiry_still_records_spend(store, clock):
    b = budget(limit="1")
    await store.reserve("late", [b], D("0.5"), 10)
    clock.advance(3600 * 0.5)  # long after the hold expired
    await store.reserve("other", [b], D("0.3"), 60)  # purges the expired hold
    assert await store.settle("late", D("0.4")) is True
    assert await store.spend(b) == D("0.4")
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.7")  # 0.4 settled + 0.3 held


# ---------------------------------------------------------------------- windows
async def test_rolling_hour_ages_out(store, clock):
    start = (clock.now // 60) * 60 + 30  # mid-minute
    clock.set(start)
    b = budget("global", "rolling:1h", "100")
    await store.reserve("r", [b], D("1"), 60)
    await store.settle("r", D("1"))
    clock.set(start + 3599)
    assert await store.spend(b) == D(1)
    clock.set(start + 3600 + 29)  # past the span, inside the documented one-bucket over-count
    assert await store.spend(b) == D(1)
    clock.set(start + 3600 + 30)  # the bucket has fully aged out
    assert await store.spend(b) == 0


async def test_rolling_windows_sum_buckets(store, clock):
    b24 = budget("global", "rolling:24h", "100")
    b30 = budget("global", "rolling:30d", "100")
    clock.set((clock.now // 86400) * 86400)
    for i in range(5):
        await store.reserve(f"r{i}", [b24, b30], D("0.1"), 60)
        await store.settle(f"r{i}", D("0.1"))
        clock.advance(6 * 3600)  # 0h, 6h, 12h, 18h, 24h
    assert await store.spend(b24) == D("0.4")  # the first has aged out of 24h (+15 min)
    assert await store.spend(b30) == D("0.5")
    clock.advance(30 * 86400)
    assert await store.spend(b30) == 0
    assert (await store.snapshot([b24, b30], [], [])).spend == {b24.id: 0, b30.id: 0}


@pytest.mark.parametrize(
    "tz,before,after",
    [
        ("America/New_York", "2024-03-09T23:30", "2024-03-10T00:30"),  # the night before spring-forward
        ("America/New_York", "2024-11-02T23:59", "2024-11-03T00:01"),
        ("Europe/Paris", "2024-03-30T23:30", "2024-03-31T00:30"),
        ("Europe/Paris", "2024-10-26T23:59", "2024-10-27T00:01"),
    ],
)
async def test_calendar_day_turns_at_local_midnight(store, clock, tz, before, after):
    b = budget("tenant:a", f"calendar:day@{tz}", "100")
    clock.set(at(before, tz))
    await store.reserve("r", [b], D("1"), 60)
    await store.settle("r", D("1"))
    assert await store.spend(b) == D(1)
    clock.set(at(after, tz))
    assert await store.spend(b) == 0


@pytest.mark.parametrize(
    "tz,day,hours",
    [
        ("America/New_York", "2024-03-10", 23),
        ("America/New_York", "2024-11-03", 25),
        ("Europe/Paris", "2024-03-31", 23),
        ("Europe/Paris", "2024-10-27", 25),
    ],
)
async def test_calendar_dst_day_length(store, clock, tz, day, hours):
    b = budget("tenant:a", f"calendar:day@{tz}", "100")
    start = at(f"{day}T00:00", tz)
    clock.set(start + 60)
    await store.reserve("r", [b], D("1"), 60)
    await store.settle("r", D("1"))
    clock.set(start + hours * 3600 - 60)  # still the same local day (23 or 25 hours long)
    assert await store.spend(b) == D(1)
    clock.set(start + hours * 3600 + 60)
    assert await store.spend(b) == 0


async def test_calendar_month_boundary(store, clock):
    b = budget("tenant:a", "calendar:month@Europe/Paris", "100")
    clock.set(at("2024-10-31T23:30", "Europe/Paris"))
    await store.reserve("r1", [b], D("2"), 60)
    await store.settle("r1", D("2"))
    clock.set(at("2024-11-01T00:30", "Europe/Paris"))  # still Oct 31 in UTC
    assert await store.spend(b) == 0
    await store.reserve("r2", [b], D("3"), 60)
    await store.settle("r2", D("3"))
    clock.set(at("2024-11-30T23:59", "Europe/Paris"))
    assert await store.spend(b) == D(3)


# ---------------------------------------------------------------------- quota pools
FLASH = QuotaPool("gemini-2x-flash-search-daily", 1500, "day")


@pytest.mark.parametrize("units,free,billable", [(1499, 1499, 0), (1500, 1500, 0), (1501, 1500, 1)])
async def test_consume_free_billable_split(store, units, free, billable):
    c = await store.consume(FLASH, units, "req")
    assert (c.free_units, c.billable_units) == (free, billable)
    usage = await store.pool_usage(FLASH)
    assert usage.used == units and usage.remaining == max(0, 1500 - units)


async def test_consume_one_at_a_time_across_the_line(store):
    await store.consume(FLASH, 1498, "bulk")
    got = [await store.consume(FLASH, 1, f"r{i}") for i in range(3)]
    assert [(c.free_units, c.billable_units) for c in got] == [(1, 0), (1, 0), (0, 1)]
    c = await store.consume(FLASH, 5, "straddle")
    assert (c.free_units, c.billable_units) == (0, 5)


async def test_consume_is_idempotent_per_request(store):
    first = await store.consume(FLASH, 1000, "req")
    assert await store.consume(FLASH, 1000, "req") == first
    assert (await store.pool_usage(FLASH)).used == 1000
    c = await store.consume(FLASH, 1000, "req2")
    assert (c.free_units, c.billable_units) == (500, 500)


async def test_daily_pool_resets_at_midnight_pacific(store, clock):
    clock.set(at("2025-07-01T23:59", "America/Los_Angeles"))
    await store.consume(FLASH, 1500, "a")
    usage = await store.pool_usage(FLASH)
    assert usage.resets_at.isoformat() == "2025-07-02T07:00:00+00:00"
    clock.set(at("2025-07-02T00:00", "America/Los_Angeles"))
    assert (await store.pool_usage(FLASH)).used == 0
    c = await store.consume(FLASH, 1, "b")
    assert (c.free_units, c.billable_units) == (1, 0)


async def test_month_pool(store, clock):
    pool = QuotaPool("gemini-3-search-monthly", 5000, "month")
    clock.set(at("2026-01-31T23:59", "America/Los_Angeles"))
    c = await store.consume(pool, 5003, "a")
    assert (c.free_units, c.billable_units) == (5000, 3)
    assert (await store.pool_usage(pool)).resets_at.isoformat() == "2026-02-01T08:00:00+00:00"
    clock.set(at("2026-02-01T00:01", "America/Los_Angeles"))
    c = await store.consume(pool, 2, "b")
    assert (c.free_units, c.billable_units) == (2, 0)
    assert (await store.pool_usage(pool)).used == 2


async def test_pool_timezone_is_configurable(store, clock):
    utc_pool = QuotaPool("p-utc", 10, "day", "UTC")
    clock.set(at("2025-07-01T23:00", "UTC"))
    await store.consume(utc_pool, 10, "a")
    clock.set(at("2025-07-02T00:00", "UTC"))
    assert (await store.pool_usage(utc_pool)).used == 0


# ---------------------------------------------------------------------- priority ramp
async def test_ramp_counts_the_last_minute(store, clock):
    await store.record_priority_tokens("flash", 1_000_000)
    clock.advance(30)
    await store.record_priority_tokens("flash", 500_000)
    usage = (await store.snapshot([], [], ["flash", "pro", "flash-lite"])).ramp
    assert usage["flash"].tokens_last_minute == 1_500_000 and usage["flash"].limit_tpm == 4_000_000
    assert usage["pro"].tokens_last_minute == 0 and usage["pro"].limit_tpm == 1_000_000
    assert usage["flash-lite"].limit_tpm == 4_000_000
    clock.advance(31)
    assert (await store.ramp_usage("flash")).tokens_last_minute == 500_000
    clock.advance(60)
    assert (await store.ramp_usage("flash")).tokens_last_minute == 0


async def test_ramp_limit_grows_with_sustained_use(store, clock):
    clock.set((clock.now // 60) * 60)
    for minute in range(21):
        await store.record_priority_tokens("pro", 10_000)
        if minute == 9:
            assert (await store.ramp_usage("pro")).limit_tpm == 1_000_000
        if minute == 10:
            assert (await store.ramp_usage("pro")).limit_tpm == 1_500_000
        if minute == 20:
            assert (await store.ramp_usage("pro")).limit_tpm == 2_250_000
        clock.advance(60)
    clock.advance(120)  # a whole minute without priority traffic ends the streak
    await store.record_priority_tokens("pro", 10_000)
    assert (await store.ramp_usage("pro")).limit_tpm == 1_000_000


# ---------------------------------------------------------------------- snapshot and metadata
async def test_snapshot_contents(store):
    b1, b2 = budget("global", "rolling:24h", "10"), budget("tenant:x", "calendar:day", "5")
    await store.reserve("s", [b1, b2], D("1.25"), 60)
    await store.settle("s", D("1"))
    await store.reserve("h", [b1], D("0.5"), 60)
    await store.consume(FLASH, 7, "q")
    await store.record_priority_tokens("flash", 42)
    snap = await store.snapshot([b1, b2], [FLASH], ["flash"])
    assert snap.spend == {b1.id: D("1.5"), b2.id: D("1")}
    assert snap.pools[FLASH.id].used == 7 and snap.pools[FLASH.id].remaining == 1493
    assert snap.ramp["flash"].tokens_last_minute == 42
    empty = await store.snapshot([], [], [])
    assert empty.spend == {} and empty.pools == {} and empty.ramp == {}


async def test_list_scopes_keeps_limits(store):
    b1, b2 = budget("global", "rolling:24h", "10.5"), budget("tenant:x", "calendar:month@Europe/Paris", "5")
    await store.reserve("s", [b1, b2], D("1"), 60)
    scopes = {s.budget.id: s.budget for s in await store.list_scopes()}
    assert scopes == {b1.id: b1, b2.id: b2}


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("scope", ["tenant:a}:x", "tenant:{x}", "../etc", "tenant:../x", "tenant:a b", "tenant:", "user:x", "global:x", "tenant:a\n"])
def test_scope_names_are_validated(scope):
    with pytest.raises(ValueError):
        BudgetScope(scope, Window.parse("rolling:1h"), D(1))


async def test_store_rechecks_scopes_built_around_validation(store):
    evil = object.__new__(BudgetScope)
    object.__setattr__(evil, "scope", "tenant:a}:x")
    object.__setattr__(evil, "window", Window("rolling", "1h"))
    object.__setattr__(evil, "limit_usd", D(1))
    with pytest.raises(ValueError):
        await store.reserve("r", [evil], D("0.1"), 60)
    with pytest.raises(ValueError):
        await store.reserve("r", [budget("tenant:a", "calendar:day@../../etc/passwd")], D("0.1"), 60)
    with pytest.raises(ValueError):
        await store.reserve("r", [budget("tenant:a", "calendar:day@Nowhere/City")], D("0.1"), 60)


@pytest.mark.parametrize("rid", ["a b", "a{b", "x}", "", "é", "a" * 300])
async def test_ids_are_validated(store, rid):
    with pytest.raises(ValueError):
        await store.reserve(rid, [budget()], D("0.1"), 60)
    with pytest.raises(ValueError):
        await store.consume(FLASH, 1, rid)


async def test_pool_ids_and_families_are_validated(store):
    with pytest.raises(ValueError):
        await store.consume(QuotaPool("p}:x", 10, "day"), 1, "r")
    with pytest.raises(ValueError):
        await store.consume(QuotaPool("../p", 10, "day"), 1, "r")
    with pytest.raises(ValueError):
        await store.consume(QuotaPool("p", 10, "day", "Not/AZone"), 1, "r")
    with pytest.raises(ValueError):
        await store.record_priority_tokens("flash}", 1)
    with pytest.raises(ValueError):
        await store.record_priority_tokens("ultra", 1)
    with pytest.raises(ValueError):
        await store.snapshot([], [], ["Flash"])
    with pytest.raises(ValueError):
        await store.consume(FLASH, -1, "r")


async def test_bad_amounts_are_refused(store):
    b = budget()
    with pytest.raises(TypeError):
        await store.reserve("r", [b], 0.1, 60)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.reserve("r", [b], D("-1"), 60)
    with pytest.raises(ValueError):
        await store.reserve("r", [b], D("NaN"), 60)
    with pytest.raises(ValueError):
        await store.reserve("r", [b], D("1"), 0)
    with pytest.raises(ValueError):
        await store.reserve("r", [budget(limit="1e10")], D("1"), 60)


# ---------------------------------------------------------------------- Decimal exactness
async def test_decimal_sums_are_exact(store):
    b = budget(limit="1000")
    await store.reserve("a", [b], D("0.1"), 60)
    await store.reserve("b", [b], D("0.2"), 60)
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.3")
    await store.settle("a", D("0.1"))
    await store.settle("b", D("0.2"))
    assert await store.spend(b) == D("0.3")
    for i in range(1000):
        await store.reserve(f"n{i}", [b], D("0.000000001"), 60)
        await store.settle(f"n{i}", D("0.000000001"))
    assert await store.spend(b) == D("0.300001")


async def test_sub_nano_amounts_round_up(store):
    b = budget(limit="1")
    await store.reserve("r", [b], D("0.0000000046875"), 60)  # 4.6875 nano-USD
    await store.settle("r", D("0.0000000000046875"))  # one cached token of a cheap model
    assert await store.spend(b) == D("0.000000001")


async def test_large_amounts_stay_exact(store):
    b = budget(limit="9000000")
    await store.reserve("r", [b], D("8999999.999999999"), 60)
    await store.settle("r", D("8999999.999999999"))
    assert await store.spend(b) == D("8999999.999999999")
