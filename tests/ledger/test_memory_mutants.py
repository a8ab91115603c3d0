"""The in-process ledger (router/ledger/memory.py) at the edges its caches and lazy clean-up must not move:
the reservation a reserve returns, a settled hold surfacing in the expiry heap, a release's idempotency
record, spend booked at exactly a calendar period's end or a rolling bucket's last in-window millisecond.

Written to kill mutmut survivors of memory.py (issue 12); expected amounts are hand-computed literals.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.ledger import MemoryStore, Reservation
from tests.ledger.helpers import at, budget

D = Decimal


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# 1_800_000_000 s is a whole number of minutes, quarter-hours and hours: a bucket boundary for every span
T0 = 1_800_000_000.0


def _store(now: float = T0) -> tuple[MemoryStore, _Clock]:
    clock = _Clock(now)
    return MemoryStore(clock=clock), clock


# ---------------------------------------------------------------------------------------------- reservations
async def test_reserve_returns_the_reservation_granted_idempotent_and_denied() -> None:
    store, _ = _store()
    b = budget(limit="1")
    assert await store.reserve("r1", [b], D("0.7"), 30) == Reservation("r1", True, None, D("0.7"))
    # the same id again: the original hold, not a second one, whatever amount is asked now
    assert await store.reserve("r1", [b], D("0.9"), 30) == Reservation("r1", True, None, D("0.7"))
    assert await store.reserve("r2", [b], D("0.4"), 30) == Reservation("r2", False, b.id, D(0))
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.7")


async def test_a_settled_hold_surfacing_in_the_expiry_heap_is_skipped() -> None:
    store, clock = _store()
    b = budget(limit="1")
    assert (await store.reserve("short", [b], D("0.2"), 10)).granted
    assert (await store.reserve("long", [b], D("0.3"), 100)).granted
    assert await store.settle("short", D("0.25"))
    clock.now = T0 + 10  # "short"'s hold would expire now; it was settled already
    assert (await store.reserve("next", [b], D("0.4"), 100)).granted
    # 0.25 settled + 0.3 held + 0.4 held
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.95")
    assert await store.reserve("over", [b], D("0.050000001"), 100) == Reservation("over", False, b.id, D(0))
    assert (await store.reserve("exact", [b], D("0.05"), 100)).granted


async def test_settle_refuses_a_negative_cost_naming_it() -> None:
    store, _ = _store()
    b = budget(limit="1")
    assert (await store.reserve("r1", [b], D("0.5"), 30)).granted
    with pytest.raises(ValueError, match=r"^actual cost: -0\.1 is negative$"):
        await store.settle("r1", D("-0.1"))
    assert await store.spend(b) == 0
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.5")


async def test_a_released_reservation_stays_idempotent_for_48_hours() -> None:
    store, clock = _store()
    b = budget(window="rolling:7d", limit="1")
    assert (await store.reserve("r1", [b], D("0.2"), 1)).granted
    assert await store.release("r1")
    # past the hold's expiry + the 24 h record grace, within the 48 h idempotency TTL of the release
    clock.now = T0 + 25 * 3600
    assert await store.reserve("r1", [b], D("0.5"), 60) == Reservation("r1", True, None, D("0.2"))
    assert (await store.snapshot([b], [], [])).spend[b.id] == 0  # no new hold: the retry holds nothing
    assert not await store.release("r1")


# ---------------------------------------------------------------------------------------------- calendar periods
async def test_spend_settled_exactly_at_midnight_lands_in_the_new_day() -> None:
    tz = "Europe/Paris"
    b = budget(window=f"calendar:day@{tz}", limit="10")
    store, clock = _store(at("2026-03-10T23:59:59.999", tz))
    assert (await store.reserve("a", [b], D("0.3"), 60)).granted
    assert await store.settle("a", D("0.3"))
    assert (await store.reserve("b", [b], D("0.2"), 60)).granted  # reserved on the 10th...
    clock.now = at("2026-03-11T00:00:00", tz)
    assert await store.settle("b", D("0.2"))  # ...settled exactly at midnight: the 11th's spend
    assert await store.spend(b) == D("0.2")
    clock.now = at("2026-03-10T23:59:59.999", tz)  # the 10th keeps only what was settled on the 10th
    assert await store.spend(b) == D("0.3")
    clock.now = at("2026-03-11T23:59:59.999", tz)
    assert (await store.reserve("c", [b], D("0.1"), 60)).granted
    assert await store.settle("c", D("0.1"))
    assert await store.spend(b) == D("0.3")
    clock.now = at("2026-03-12T00:00:00", tz)
    assert await store.spend(b) == 0


async def test_a_month_budget_rolls_over_at_the_local_month_start() -> None:
    tz = "America/New_York"
    b = budget(window=f"calendar:month@{tz}", limit="10")
    store, clock = _store(at("2026-01-31T23:59:59.999", tz))
    assert (await store.reserve("jan", [b], D("4"), 60)).granted
    assert await store.settle("jan", D("4"))
    assert await store.spend(b) == D("4")
    clock.now = at("2026-02-01T00:00:00", tz)
    assert await store.spend(b) == 0
    assert (await store.reserve("feb", [b], D("10"), 60)).granted  # the whole limit again
    assert await store.settle("feb", D("1.5"))
    assert await store.spend(b) == D("1.5")


# ---------------------------------------------------------------------------------------------- rolling windows
async def test_a_rolling_bucket_counts_until_its_last_in_window_millisecond_on_both_paths() -> None:
    # rolling:1h has 60 s buckets: spend booked at T0 (bucket T0/60) leaves the window at T0 + 3660 s
    b = budget(window="rolling:1h", limit="10")
    store, clock = _store()
    assert (await store.reserve("a", [b], D("0.3"), 60)).granted
    assert await store.settle("a", D("0.3"))
    clock.now = T0 + 3630
    assert await store.spend(b) == D("0.3")
    clock.now = T0 + 3659.999
    assert await store.spend(b) == D("0.3")
    clock.now = T0 + 3660
    assert await store.spend(b) == 0


async def test_booking_into_a_rolling_window_keeps_the_oldest_in_window_bucket() -> None:
    b = budget(window="rolling:1h", limit="10")
    store, clock = _store()
    assert (await store.reserve("a", [b], D("0.3"), 7200)).granted
    assert (await store.reserve("b", [b], D("0.1"), 7200)).granted
    assert (await store.reserve("c", [b], D("0.2"), 7200)).granted
    assert (await store.reserve("d", [b], D("0.4"), 7200)).granted
    assert await store.settle("a", D("0.3"))
    clock.now = T0 + 3630  # books (and trims) with the T0 bucket still in the window
    assert await store.settle("b", D("0.1"))
    assert await store.spend(b) == D("0.4")
    clock.now = T0 + 3659.999  # the T0 bucket's last in-window millisecond
    assert await store.settle("c", D("0.2"))
    assert await store.spend(b) == D("0.6")
    clock.now = T0 + 3660  # the T0 bucket leaves; the bucket of T0 + 3630 s stays
    assert await store.settle("d", D("0.4"))
    assert await store.spend(b) == D("0.7")


@pytest.mark.parametrize(
    ("window", "last_in", "first_out"),
    [
        ("rolling:24h", 86400 + 899.999, 86400 + 900),  # 15-minute buckets
        ("rolling:7d", 7 * 86400 + 3599.999, 7 * 86400 + 3600),  # 1-hour buckets
        ("rolling:30d", 30 * 86400 + 3599.999, 30 * 86400 + 3600),
    ],
)
async def test_each_rolling_span_drops_a_bucket_exactly_a_span_and_a_bucket_later(
    window: str, last_in: float, first_out: float
) -> None:
    b = budget(window=window, limit="10")
    store, clock = _store()
    assert (await store.reserve("a", [b], D("1.25"), 60)).granted
    assert await store.settle("a", D("1.25"))
    clock.now = T0 + last_in
    assert await store.spend(b) == D("1.25")
    clock.now = T0 + first_out
    assert await store.spend(b) == 0


# ---------------------------------------------------------------------------------------------- rate pools, ramp
async def test_rate_takes_report_the_pool_its_use_and_its_limit() -> None:
    from router.ledger.rate import RatePool, RateTake

    store, _ = _store()
    pool = RatePool("count_tokens.p1", 2)
    assert await store.take_rate(pool) == RateTake("count_tokens.p1", True, 1, 2)
    assert await store.take_rate(pool) == RateTake("count_tokens.p1", True, 2, 2)
    assert await store.take_rate(pool) == RateTake("count_tokens.p1", False, 2, 2)
    assert await store.take_rate(pool, 0) == RateTake("count_tokens.p1", True, 2, 2)


async def test_priority_tokens_count_for_exactly_sixty_one_second_buckets() -> None:
    from router.ledger import RampUsage

    store, clock = _store()
    assert await store.ramp_usage("pro") == RampUsage("pro", 0, 1_000_000)
    await store.record_priority_tokens("pro", 10_000)  # second T0
    clock.now = T0 + 59.5  # second T0 + 59: T0's bucket is the oldest of the last 60
    await store.record_priority_tokens("pro", 5_000)
    assert await store.ramp_usage("pro") == RampUsage("pro", 15_000, 1_000_000)
    clock.now = T0 + 60  # T0's bucket has left
    assert await store.ramp_usage("pro") == RampUsage("pro", 5_000, 1_000_000)
