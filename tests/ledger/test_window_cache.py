"""Calendar periods are cached until they change: the cached answer is always the period containing now,
whatever order the moments come in (forward, backward, across DST and month ends)."""

from __future__ import annotations

import datetime as dt

import pytest

from router.ledger.windows import period


def ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.timezone.utc).timestamp()) * 1000


# Europe/Paris, March 2026: CET (UTC+1) until 2026-03-29 01:00 UTC, then CEST (UTC+2).
DAY_28 = (ms(2026, 3, 27, 23), ms(2026, 3, 28, 23))  # 24 h
DAY_29 = (ms(2026, 3, 28, 23), ms(2026, 3, 29, 22))  # 23 h: the DST day
DAY_30 = (ms(2026, 3, 29, 22), ms(2026, 3, 30, 22))
MARCH = (ms(2026, 2, 28, 23), ms(2026, 3, 31, 22))
APRIL = (ms(2026, 3, 31, 22), ms(2026, 4, 30, 22))


@pytest.mark.parametrize(
    "moment, expected",
    [
        (ms(2026, 3, 28, 12), DAY_28),
        (ms(2026, 3, 28, 22, 59, 59), DAY_28),
        (ms(2026, 3, 28, 23), DAY_29),  # the boundary itself belongs to the new day
        (ms(2026, 3, 29, 21, 59, 59), DAY_29),
        (ms(2026, 3, 29, 22), DAY_30),
        (ms(2026, 3, 28, 23) - 1, DAY_28),  # back in time: the cached day is not reused
        (ms(2026, 3, 29, 5), DAY_29),
    ],
)
def test_day_periods_in_order_given(moment, expected):
    p = period("day", "Europe/Paris", moment)
    assert (p.start_ms, p.end_ms) == expected


def test_the_cache_follows_time_both_ways_and_keeps_zones_and_kinds_apart():
    sequence = [
        ("day", "Europe/Paris", ms(2026, 3, 28, 12), DAY_28),
        ("month", "Europe/Paris", ms(2026, 3, 28, 12), MARCH),
        ("day", "UTC", ms(2026, 3, 28, 23, 30), (ms(2026, 3, 28), ms(2026, 3, 29))),
        ("day", "Europe/Paris", ms(2026, 3, 28, 23, 30), DAY_29),
        ("month", "Europe/Paris", ms(2026, 3, 31, 22), APRIL),
        ("month", "Europe/Paris", ms(2026, 3, 31, 21, 59, 59), MARCH),
        ("day", "UTC", ms(2026, 3, 28, 22, 59), (ms(2026, 3, 28), ms(2026, 3, 29))),
        ("day", "Europe/Paris", ms(2026, 3, 28, 22, 59), DAY_28),
    ]
    for _ in range(2):  # second pass: every answer comes from a warm cache
        for kind, tz, moment, expected in sequence:
            p = period(kind, tz, moment)
            assert (p.start_ms, p.end_ms) == expected, (kind, tz, moment)


def test_bad_kind_or_zone_still_refused_after_caching():
    period("day", "UTC", ms(2026, 1, 1))
    with pytest.raises(ValueError, match="day or month"):
        period("week", "UTC", ms(2026, 1, 1))
    with pytest.raises(ValueError, match="time zone"):
        period("day", "Mars/Olympus", ms(2026, 1, 1))
