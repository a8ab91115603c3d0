"""Spend windows and quota periods: which counter a moment falls into, in integer milliseconds.

Rolling windows are bucketed. A window of span ``S`` with buckets of size ``B`` sums the buckets whose
index lies in ``[floor((now - S) / B), floor(now / B)]``: it always covers *at least* the last ``S``
(and at most ``S + B``), so it never under-counts. The worst-case error is an over-count of the spend
recorded in the one oldest bucket that has partly aged out (at most ``B`` worth of spend):

=======  ===========  ================  =========================================
window   bucket size  buckets summed    worst-case over-count
=======  ===========  ================  =========================================
1h       1 minute     61                spend of 1 minute  (1.7 % of the span)
24h      15 minutes   97                spend of 15 minutes (1.0 %)
7d       1 hour       169               spend of 1 hour    (0.6 %)
30d      1 hour       721               spend of 1 hour    (0.14 %)
=======  ===========  ================  =========================================

Calendar windows (``day`` / ``month``) are one counter per period, in a named IANA time zone
(``zoneinfo``); a period starts at the first instant whose local date is the period's first day, so a
day across a DST change lasts 23 or 25 hours. Quota pools use the same periods.

Every counter key expires on its own (rolling: ``S + 2B`` after its last write; calendar: one hour after
its period ends), so memory and key count stay bounded however long the ledger runs.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from router.ledger.types import ROLLING_SPANS, Window

#: Rolling window span -> bucket size in seconds.
ROLLING_BUCKET_S: dict[str, int] = {"1h": 60, "24h": 900, "7d": 3600, "30d": 3600}
#: How long a calendar counter (budget or pool) outlives its period, in ms.
CALENDAR_GRACE_MS = 3_600_000

_TZ_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*\Z")
_UTC = dt.timezone.utc


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (validated: no path tricks, must exist)."""
    if not isinstance(name, str) or len(name) > 64 or not _TZ_RE.match(name):
        raise ValueError(f"invalid time zone name {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a tz folder such as "America"
        raise ValueError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class Rolling:
    """A rolling window at a moment: bucket size, the index of ``now``'s bucket and of the oldest summed."""

    bucket_ms: int
    span_ms: int
    current: int
    first: int

    @property
    def key_ttl_ms(self) -> int:
        """How long the window's counter lives after a write."""
        return self.span_ms + 2 * self.bucket_ms


@dataclass(frozen=True)
class Period:
    """A calendar period ``[start_ms, end_ms)`` (UTC epoch milliseconds)."""

    start_ms: int
    end_ms: int

    def ttl_ms(self, now_ms: int) -> int:
        """How long the period's counter must still live, seen at ``now_ms`` (<= 0: already gone)."""
        return self.end_ms + CALENDAR_GRACE_MS - now_ms

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.end_ms / 1000, _UTC)


def rolling(span: str, now_ms: int) -> Rolling:
    """The rolling window ``span`` (``1h|24h|7d|30d``) seen at ``now_ms``."""
    bucket_ms = ROLLING_BUCKET_S[span] * 1000
    span_ms = ROLLING_SPANS[span] * 1000
    current = now_ms // bucket_ms
    return Rolling(bucket_ms, span_ms, current, (now_ms - span_ms) // bucket_ms)


def _local_midnight(day: dt.date, tz: ZoneInfo) -> int:
    """Epoch ms of the first instant of local date ``day`` in ``tz`` (DST gaps at midnight handled by
    zoneinfo's fold=0 rule, which maps a non-existent 00:00 to the first existing instant after it)."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    return int(start.astimezone(_UTC).timestamp()) * 1000


#: The last period computed per (kind, time zone): reused while ``now`` stays inside it, so the time-zone
#: arithmetic runs once per day / month and zone instead of several times per request.
_PERIODS: dict[tuple[str, str], Period] = {}


def period(kind: str, timezone: str, now_ms: int) -> Period:
    """The calendar ``day`` or ``month`` in ``timezone`` that contains ``now_ms``."""
    cached = _PERIODS.get((kind, timezone))
    if cached is not None and cached.start_ms <= now_ms < cached.end_ms:
        return cached
    found = _compute_period(kind, timezone, now_ms)
    if len(_PERIODS) > 1024:  # bounded: zones are few, but every (kind, zone) seen is kept
        _PERIODS.clear()
    _PERIODS[(kind, timezone)] = found
    return found


def _compute_period(kind: str, timezone: str, now_ms: int) -> Period:
    tz = zone(timezone)
    local = dt.datetime.fromtimestamp(now_ms / 1000, _UTC).astimezone(tz).date()
    if kind == "day":
        first, nxt = local, local + dt.timedelta(days=1)
    elif kind == "month":
        first = local.replace(day=1)
        nxt = (first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1))
    else:
        raise ValueError(f"calendar period must be day or month, not {kind!r}")
    start, end = _local_midnight(first, tz), _local_midnight(nxt, tz)
    # Guard the rare zones whose midnight is skipped differently: the period must contain now.
    if not start <= now_ms < end:  # pragma: no cover - defensive
        raise ValueError(f"cannot place {now_ms} in a {kind} of {timezone}")
    return Period(start, end)


def window_period(window: Window, now_ms: int) -> Period:
    """The calendar period of a calendar ``window`` at ``now_ms``."""
    return period(window.span, window.timezone, now_ms)


def to_datetime(ms: int) -> dt.datetime:
    """UTC datetime of epoch milliseconds."""
    return dt.datetime.fromtimestamp(ms / 1000, _UTC)
