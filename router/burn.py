"""Burn rate and projected spend of a budget window, and money formatted for people.

Pure functions shared by ``router monitor``, the Prometheus exporter and ``router demo``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from router.ledger.types import ROLLING_SPANS, Window
from router.ledger.windows import to_datetime, window_period

_CENT = Decimal("0.01")


def format_usd(value: Decimal) -> str:
    """Money for people: ``$10.00``, ``$0.75``, ``$0.00152`` (at least cents, never trailing zeros
    beyond them, never rounded: every digit the ledger holds is shown), ``-$1.50`` for negatives."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value == value.quantize(_CENT):
        text = f"{value.quantize(_CENT):,.2f}"
    else:
        text = format(value.normalize(), ",f")
    return f"{sign}${text}"


def window_bounds(window: Window, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Start and end of the window containing ``now`` (a rolling window ends ``now``)."""
    if window.kind == "rolling":
        return now - dt.timedelta(seconds=ROLLING_SPANS[window.span]), now
    period = window_period(window, int(now.timestamp() * 1000))
    return to_datetime(period.start_ms), to_datetime(period.end_ms)


def burn_projection(spend: Decimal, window_start: dt.datetime, window_end: dt.datetime, now: dt.datetime) -> tuple[Decimal, Decimal]:
    """(USD per hour so far, projected spend at window end at the current pace); at least one minute
    counts as elapsed so a fresh window does not project from a division by almost zero."""
    elapsed_h = Decimal(str(max((now - window_start).total_seconds(), 60.0) / 3600))
    total_h = Decimal(str((window_end - window_start).total_seconds() / 3600))
    per_hour = spend / elapsed_h
    return per_hour, per_hour * total_h
