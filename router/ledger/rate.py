"""Request-rate pools: at most ``limit`` requests per minute, shared by every process on one ledger.

The one pool today is the Count Tokens API quota (seed ``002_fc2fbf5f1659a49d.txt``: "Le quota maximal pour
l'API CountTokens est de 3 000 requêtes par minute (RPM)", free of charge), one pool per Google Cloud
project: :func:`count_tokens_pool`.

Counting: 1-second buckets; a take is granted when the requests of the current second and of the
:data:`BUCKETS` - 1 seconds before it, plus the new ones, stay within the limit. The window is one second
longer than a minute on purpose: any 60-second interval lies within 61 consecutive one-second buckets,
so no 60-second interval ever holds more than ``limit`` requests (a 60-bucket window would allow up to
twice the limit across a bucket edge). The cost of that guarantee: at a steady maximal rate the pool
grants ~1.6 % less than the quota.

On Redis a take is ONE Lua script (``lua/rate.lua``) on the hash ``{P}:rt:POOL`` (bucket -> requests,
``t`` total, ``lo`` oldest bucket), so processes sharing the ledger share the pool atomically.

The ledger also counts what became of the prompt sizes the router wanted, per pool and UTC day
(:data:`OUTCOMES`: ``counted``, ``cache_hit``, ``fallback``, ``unsupported``; ``lua/rate_stats.lua`` on
``{P}:rs:POOL:DAY``, kept 2 days), for ``router quota``.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.ledger.keys import check_pool

#: Count Tokens API: at most 3,000 requests per minute per project (seed 002); the API is free.
COUNT_TOKENS_RPM = 3_000
BUCKET_MS = 1_000
#: Buckets a take looks at: the current second and the 60 before it (see the module doc).
BUCKETS = 61
#: A pool's key expires after this long without a take (its buckets are out of the window long before).
KEY_TTL_MS = 120_000
#: What became of a prompt size the policy wanted counted (see :mod:`router._token_counter`).
OUTCOMES = ("counted", "cache_hit", "fallback", "unsupported")
DAY_MS = 86_400_000
STATS_TTL_MS = 2 * DAY_MS


@dataclass(frozen=True)
class RatePool:
    """``id``: the pool's name (``count_tokens.PROJECT``); ``limit``: requests per minute."""

    id: str
    limit: int

    def __post_init__(self) -> None:
        check_pool(self.id)
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"rate pool {self.id}: limit must be a positive integer of requests per minute, not {self.limit!r}")


@dataclass(frozen=True)
class RateTake:
    """The answer of a take (or a read): ``granted``; ``used`` requests in the window after it;
    ``remaining`` = ``limit`` - ``used``."""

    pool_id: str
    granted: bool
    used: int
    limit: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


_PROJECT_SAFE = str.maketrans({c: "_" for c in ":/{} "})


def count_tokens_pool(project: str | None, limit: int = COUNT_TOKENS_RPM) -> RatePool:
    """The Count Tokens API pool of a Google Cloud project (3,000 requests per minute by default)."""
    name = (project or "default").translate(_PROJECT_SAFE)
    return RatePool(f"count_tokens.{name}"[:128], limit)


def first_bucket(now_ms: int) -> int:
    """The oldest bucket still inside the window at ``now_ms``."""
    return now_ms // BUCKET_MS - BUCKETS + 1


def check_take(pool: RatePool, n: int) -> None:
    """Validate a take's arguments."""
    if not isinstance(pool, RatePool):
        raise TypeError(f"expected a RatePool, not {type(pool).__name__}")
    check_pool(pool.id)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer of requests, not {n!r}")


def check_outcome(outcome: str | None) -> None:
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"unknown count outcome {outcome!r}: one of {', '.join(OUTCOMES)}")


__all__ = ["BUCKETS", "BUCKET_MS", "COUNT_TOKENS_RPM", "OUTCOMES", "RatePool", "RateTake", "count_tokens_pool"]
