"""Calendar windows seen from outside the ledger (issue 12, survivors of the full mutmut run of
router/ledger/windows.py): a calendar counter's Redis key lives until its period ends plus the one-hour grace,
and ``router monitor``'s burn projection of a calendar month in a non-UTC zone uses that month's real bounds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from router.burn import burn_projection, window_bounds
from router.ledger.types import Window
from tests.ledger.helpers import at, budget

D = Decimal
UTC = dt.timezone.utc


@pytest.mark.parametrize("store_url", ["fakeredis", "redis"], indirect=True)
async def test_a_calendar_counter_expires_one_hour_after_its_day_ends(store, store_url, clock):
    import redis.asyncio as aredis

    clock.set(at("2026-11-02T18:00", "Europe/Paris"))  # 6 h before the Paris day ends
    b = budget("tenant:a", "calendar:day@Europe/Paris", "100")
    await store.reserve("r", [b], D("1"), 60)
    await store.settle("r", D("1"))
    start_ms = int(at("2026-11-02T00:00", "Europe/Paris") * 1000)
    client = store.client if store_url.startswith("fakeredis") else aredis.Redis.from_url(store_url)
    ttl = await client.pttl(store.keys.calendar(b.id, start_ms))
    if client is not store.client:
        await client.aclose()
    seven_hours = 7 * 3600 * 1000  # the rest of the day (6 h) + the grace (1 h)
    assert seven_hours - 60_000 < ttl <= seven_hours


def test_a_calendar_month_s_burn_projection_uses_the_month_of_its_zone():
    # Paris is UTC+1 in November 2026: the month runs from Oct 31 23:00 UTC to Nov 30 23:00 UTC (720 h)
    now = dt.datetime(2026, 11, 15, 23, 0, tzinfo=UTC)  # 15 days (360 h) into it
    start, end = window_bounds(Window("calendar", "month", "Europe/Paris"), now)
    assert (start, end) == (dt.datetime(2026, 10, 31, 23, 0, tzinfo=UTC), dt.datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    assert start.utcoffset() == dt.timedelta(0)
    # $36 in 360 h: $0.10 an hour, $72 by the month's end
    assert burn_projection(D(36), start, end, now) == (D("0.1"), D("72.0"))
