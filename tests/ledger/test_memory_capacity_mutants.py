"""The in-process ledger (router/ledger/memory.py) at the edges of Provisioned Throughput capacity (claims,
reconciliations, the monthly report), shared policy versions and the priority ramp: the claim a caller gets
back (its bucket is reconciled later), a reconciliation of the oldest in-window bucket or of an empty one, the
spill totals of a month and the report's order, a policy's current version / text / history, the ramp streak.

Written to kill mutmut survivors of memory.py (issue 12); expected values are hand-computed literals.
Capacity windows are 30 one-second buckets (router.ledger.capacity); ``T0`` is a whole second and minute.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from router.ledger import MemoryStore, RampUsage
from router.ledger.capacity import PtClaim, PtTotals

D = Decimal
T0 = 1_800_000_000.0  # a whole minute: bucket 1_800_000_000 of the capacity window, minute 30_000_000
B0 = 1_800_000_000
FLASH = "gemini-2.0-flash@us-central1"
PRO = "gemini-2.5-pro@us-central1"


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _store(now: float = T0) -> tuple[MemoryStore, _Clock]:
    clock = _Clock(now)
    return MemoryStore(clock=clock), clock


# ---------------------------------------------------------------------------------------------- capacity claims
async def test_a_claim_in_mid_second_returns_its_whole_second_bucket_and_is_reconciled_there() -> None:
    store, _ = _store(T0 + 0.5)
    assert await store.pt_claim(FLASH, 1000, 5000) == PtClaim(True, 1000, 5000, B0)
    # bucket 0 = "the current one": the same whole-second bucket the claim went to
    assert await store.pt_adjust(FLASH, 0, -300)
    assert await store.pt_usage([FLASH]) == {FLASH: 700}
    await store.pt_settle(FLASH, 0, -200, True, 500, D("0.001"), D("0.002"))
    assert await store.pt_usage([FLASH]) == {FLASH: 500}


async def test_a_denied_claim_reports_the_window_the_capacity_and_the_bucket() -> None:
    store, _ = _store()
    assert (await store.pt_claim(FLASH, 4000, 5000)).granted
    assert await store.pt_claim(FLASH, 1001, 5000) == PtClaim(False, 4000, 5000, B0)
    assert await store.pt_usage([FLASH]) == {FLASH: 4000}


@pytest.mark.parametrize("capacity", [-1, 1.5, True])
async def test_a_claim_against_a_bad_capacity_is_refused(capacity: object) -> None:
    store, _ = _store()
    with pytest.raises(ValueError, match="capacity"):
        await store.pt_claim(FLASH, 1, capacity)  # type: ignore[arg-type]
    assert await store.pt_usage([FLASH]) == {FLASH: 0}


async def test_the_oldest_in_window_bucket_is_still_reconciled() -> None:
    store, clock = _store()
    assert (await store.pt_claim(FLASH, 1000, 5000)).granted  # bucket B0
    clock.now = T0 + 29  # B0 is the oldest of the 30 buckets in the window
    assert await store.pt_adjust(FLASH, B0, -400)
    assert await store.pt_usage([FLASH]) == {FLASH: 600}
    await store.pt_settle(FLASH, B0, -100, True, 500, D(0), D(0))
    assert await store.pt_usage([FLASH]) == {FLASH: 500}
    clock.now = T0 + 30  # B0 left the window: nothing to reconcile any more
    assert not await store.pt_adjust(FLASH, B0, 100)
    assert await store.pt_usage([FLASH]) == {FLASH: 0}


async def test_adjustments_of_zero_or_of_an_empty_bucket_change_nothing() -> None:
    store, clock = _store()
    assert (await store.pt_claim(FLASH, 1000, 5000)).granted  # bucket B0
    clock.now = T0 + 1
    assert not await store.pt_adjust(FLASH, B0, 0)
    assert not await store.pt_adjust(FLASH, B0 + 1, -500)  # bucket B0 + 1 holds nothing to give back
    await store.pt_settle(FLASH, B0 + 1, -500, False, 0, D(0), D("0.01"))
    assert await store.pt_usage([FLASH]) == {FLASH: 1000}
    assert await store.pt_adjust(FLASH, B0 + 1, 1)  # a one-token correction counts
    assert await store.pt_usage([FLASH]) == {FLASH: 1001}
    # nothing negative left behind: the next claim sees exactly 1,001 + 3,999
    assert await store.pt_claim(FLASH, 3999, 5000) == PtClaim(True, 5000, 5000, B0 + 1)


async def test_spills_add_up_over_the_month() -> None:
    store, clock = _store()
    await store.pt_settle(FLASH, 0, 0, False, 0, D(0), D("0.25"))
    clock.now = T0 + 60
    await store.pt_settle(FLASH, 0, 0, False, 0, D(0), D("0.125"))
    await store.pt_settle(FLASH, 0, 0, True, 700, D("0.5"), D("0.75"))
    [row] = await store.pt_totals()
    assert row == PtTotals(FLASH, "2027-01", 1, 2, 700, D("0.5"), D("0.75"), D("0.375"))


async def test_the_monthly_report_lists_newest_month_first_then_keys_in_reverse_order() -> None:
    store, clock = _store(1_793_577_600.0)  # 2026-11-02T00:00:00Z
    for _ in range(2):  # FLASH first and with more served requests than PRO
        await store.pt_settle(FLASH, 0, 0, True, 10, D(0), D(0))
    await store.pt_settle(PRO, 0, 0, True, 10, D(0), D(0))
    clock.now += 31 * 86_400  # December
    await store.pt_settle(FLASH, 0, 0, False, 0, D(0), D(0))
    rows = [(t.month, t.key, t.served, t.spilled) for t in await store.pt_totals()]
    assert rows == [("2026-12", FLASH, 0, 1), ("2026-11", PRO, 1, 0), ("2026-11", FLASH, 2, 0)]


async def test_a_month_row_is_reported_until_400_days_after_its_last_update() -> None:
    store, clock = _store()
    await store.pt_settle(FLASH, 0, 0, True, 10, D(0), D(0))
    clock.now = T0 + 400 * 86_400 - 0.001
    assert [t.month for t in await store.pt_totals()] == ["2027-01"]
    clock.now = T0 + 400 * 86_400
    assert await store.pt_totals() == []


# ---------------------------------------------------------------------------------------------- shared policies
async def test_policy_versions_text_and_history() -> None:
    store, clock = _store()
    assert await store.policy_version("team") is None
    assert await store.policy_text("team", "0123456789ab") is None
    assert await store.policy_history("team") == []
    assert await store.publish_policy("team", "0123456789ab", "version: 1\n")
    clock.now = T0 + 60
    assert await store.publish_policy("team", "ba9876543210", "version: 2\n")
    assert await store.policy_version("team") == "ba9876543210"
    assert await store.policy_text("team", "0123456789ab") == "version: 1\n"
    assert await store.policy_text("team", "ba9876543210") == "version: 2\n"
    utc = dt.timezone.utc
    assert await store.policy_history("team") == [
        ("ba9876543210", dt.datetime.fromtimestamp(T0 + 60, utc)),
        ("0123456789ab", dt.datetime.fromtimestamp(T0, utc)),
    ]
    assert await store.policy_version("other") is None


@pytest.mark.parametrize("call", ["publish", "text", "version"])
async def test_bad_policy_names_and_versions_are_refused(call: str) -> None:
    store, _ = _store()
    with pytest.raises(ValueError, match="invalid policy"):
        if call == "publish":
            await store.publish_policy("team", "not-a-version", "x: 1\n")
        elif call == "text":
            await store.policy_text("team", "not-a-version")
        else:
            await store.policy_version("bad name")
    assert await store.policy_version("team") is None


# ---------------------------------------------------------------------------------------------- priority ramp
async def _ten_minute_streak(store: MemoryStore, clock: _Clock) -> None:
    for minute in range(11):  # minutes 0..10 of a streak
        clock.now = T0 + 60 * minute
        await store.record_priority_tokens("pro", 1_000)


async def test_a_single_priority_token_counts() -> None:
    store, _ = _store()
    await store.record_priority_tokens("pro", 1)
    assert await store.ramp_usage("pro") == RampUsage("pro", 1, 1_000_000)


async def test_the_ramp_limit_holds_through_the_minute_after_the_last_use() -> None:
    store, clock = _store()
    await _ten_minute_streak(store, clock)
    clock.now = T0 + 11 * 60 + 30  # half-way through minute 11, last use in minute 10: 11 sustained minutes
    assert await store.ramp_usage("pro") == RampUsage("pro", 0, 1_500_000)  # minute 10's tokens left the last 60 s
    clock.now = T0 + 12 * 60  # minute 12: minute 11 was idle, the streak is over
    assert await store.ramp_usage("pro") == RampUsage("pro", 0, 1_000_000)


async def test_a_clock_stepping_back_does_not_end_the_ramp_streak() -> None:
    store, clock = _store()
    await _ten_minute_streak(store, clock)
    clock.now = T0 + 9 * 60 + 30  # the clock steps back into minute 9
    await store.record_priority_tokens("pro", 1_000)
    clock.now = T0 + 11 * 60  # minute 11 follows the latest minute seen (10): the streak goes on
    await store.record_priority_tokens("pro", 1_000)
    assert await store.ramp_usage("pro") == RampUsage("pro", 1_000, 1_500_000)
