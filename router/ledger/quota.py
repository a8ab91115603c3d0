"""Grounding quota pools: catalog pool specs -> ledger pools, and the reset time zone.

The default reset zone is ``America/Los_Angeles``: Google's per-day quotas (including the free grounded
prompts per day) reset at midnight Pacific time, not UTC, so a day counted in UTC would put up to 8 hours
of one Google day into the next and bill free units (or give away billable ones) around the reset. The
zone is configurable per pool (``QuotaPool.timezone``), e.g. if Google's billing account says otherwise.
Counting rules (what a *unit* is) stay with the caller: a Gemini 2.x grounded prompt counts once and only
when the response had at least one web grounding URL; Gemini 3 counts the search queries it ran.
"""

from __future__ import annotations

from typing import Any

from router.ledger.keys import check_pool
from router.ledger.types import QuotaPool
from router.ledger.windows import zone

#: Google's daily quotas reset at midnight Pacific time.
DEFAULT_POOL_TIMEZONE = "America/Los_Angeles"


def quota_pool_from_spec(spec: Any, timezone: str = DEFAULT_POOL_TIMEZONE) -> QuotaPool:
    """A ledger :class:`QuotaPool` from a catalog ``QuotaPoolSpec`` (``id``, ``period``, ``free_units``)."""
    zone(timezone)
    return QuotaPool(id=check_pool(spec.id), free_units=int(spec.free_units), period=spec.period, timezone=timezone)


def check_quota_pool(pool: QuotaPool) -> QuotaPool:
    """Validate a pool's id, period, free units and zone."""
    if not isinstance(pool, QuotaPool):
        raise TypeError(f"expected a QuotaPool, not {type(pool).__name__}")
    check_pool(pool.id)
    if pool.period not in ("day", "month"):
        raise ValueError(f"quota pool {pool.id}: period must be day or month, not {pool.period!r}")
    if not isinstance(pool.free_units, int) or pool.free_units < 0:
        raise ValueError(f"quota pool {pool.id}: free_units must be a non-negative integer")
    zone(pool.timezone)
    return pool
