"""The spend / quota ledger: atomic multi-scope budget reservations, rolling and calendar spend windows,
grounding quota pools and the Priority PayGo ramp, on an in-process store or Redis.

    store = store_from_url("redis://localhost:6379/0", prefix="router", failure_mode="fail_closed")
    r = await store.reserve("req-1:0", budgets, Decimal("0.0123"), ttl_s=600)
    if r.granted:
        ...                                   # call the model
        await store.settle("req-1:0", actual)  # or release() if the call failed
    snap = await store.snapshot(budgets, pools, ["flash", "pro"])   # one round trip

Guarantees (each has a test on memory, fakeredis and a real redis-server; see :mod:`router.ledger.base`):
reservations are atomic across scopes and never overshoot a cap, even under contention from many
processes; settle and release are idempotent; holds expire after their TTL; spend is never lost (a late
settle still books; ``fail_open`` journals and replays); windows and periods are documented in
:mod:`router.ledger.windows`, money in :mod:`router.ledger.money`, keys in :mod:`router.ledger.keys`.
"""

from router._lazy import lazy_exports

from router.ledger.base import Store
from router.ledger.memory import MemoryStore
from router.ledger.quota import DEFAULT_POOL_TIMEZONE, quota_pool_from_spec
from router.ledger.rate import COUNT_TOKENS_RPM, RatePool, RateTake, count_tokens_pool
from router.ledger.types import (
    CALENDAR_SPANS,
    ROLLING_SPANS,
    SCOPE_RE,
    BudgetScope,
    Consumed,
    LedgerSnapshot,
    PoolUsage,
    QuotaPool,
    RampUsage,
    Reservation,
    ScopeInfo,
    Window,
)

__all__ = [
    "CALENDAR_SPANS",
    "COUNT_TOKENS_RPM",
    "DEFAULT_POOL_TIMEZONE",
    "ROLLING_SPANS",
    "SCOPE_RE",
    "BudgetScope",
    "Consumed",
    "LedgerSnapshot",
    "MemoryStore",
    "PoolUsage",
    "QuotaPool",
    "RampUsage",
    "RatePool",
    "RateTake",
    "RedisStore",
    "Reservation",
    "ScopeInfo",
    "Store",
    "Window",
    "count_tokens_pool",
    "quota_pool_from_spec",
    "store_from_url",
]

#: Loaded on first use so that ``router validate`` / ``explain`` (which read ledger types) never import redis.
_LAZY = {"RedisStore": "router.ledger.redis_store", "store_from_url": "router.ledger.factory"}


__getattr__, _ = lazy_exports('router.ledger', globals(), _LAZY)
