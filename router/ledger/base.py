"""The ledger's store contract: an ABC of a handful of async methods, shared by every backend.

Guarantees every backend keeps (one test suite runs over all of them):

* ``reserve`` is atomic across all the budgets it names: granted everywhere, or denied naming the first
  budget (``BudgetScope.id``) that would overflow, with nothing held anywhere. A budget overflows when
  settled spend in its window + active holds + amount > ``limit_usd``.
* ``settle`` and ``release`` are idempotent per reservation id: a retried settle never double counts.
  A settle after the hold expired, or after a release, still records the spend (spend is never lost).
* Holds expire after their TTL, so a worker killed mid-request leaks nothing.
* ``consume`` is atomic and idempotent per request id; it splits units into free and billable.
* Money is ``Decimal`` at the edge and integer nano-USD inside (see :mod:`router.ledger.money`).
* Time comes from the store's ``clock`` (a callable returning epoch seconds, default ``time.time``):
  one clock for the logic, injectable in tests. Redis keys still expire on the server's own clock.
"""

from __future__ import annotations

import abc
import datetime as dt
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from router.ledger.capacity import PtClaim, PtTotals, check_pt_key, check_tokens
from router.ledger.keys import check_budget, checked_limit, check_family, check_id
from router.ledger.money import to_nano
from router.ledger.quota import check_quota_pool
from router.ledger.ramp import base_tpm
from router.ledger.rate import RatePool, RateTake
from router.ledger.types import (
    BudgetScope,
    Consumed,
    LedgerSnapshot,
    PoolUsage,
    QuotaPool,
    RampUsage,
    Reservation,
    ScopeInfo,
)

Clock = Callable[[], float]
#: A reservation record (and the budgets it names) outlives its hold by this much, so a late settle
#: still knows where to book the spend.
RECORD_GRACE_MS = 24 * 3_600_000
#: How long a settled / released marker (and a consume result) is kept for idempotency.
IDEMPOTENCY_TTL_MS = 48 * 3_600_000
#: Shared policy versions kept per name, and how long a version's text is kept after it was published.
POLICY_HISTORY = 50
POLICY_TEXT_TTL_MS = 180 * 86_400_000


#: Validated float TTLs (seconds) and their milliseconds, as _check_reserve computes them (bounded).
_TTL_MS: dict[float, int] = {}


class Store(abc.ABC):
    """A spend / quota ledger. All methods are coroutines; see the module docstring for guarantees."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or time.time

    def now_ms(self) -> int:
        """The store clock, in integer epoch milliseconds."""
        return int(self.clock() * 1000)

    # ------------------------------------------------------------------ budgets
    @abc.abstractmethod
    async def reserve(self, reservation_id: str, budgets: Sequence[BudgetScope], amount: Decimal, ttl_s: float) -> Reservation:
        """Hold ``amount`` USD in every budget for ``ttl_s`` seconds, atomically, or deny naming the budget
        that would overflow (nothing is held when denied). Reserving an id that exists returns it again."""

    @abc.abstractmethod
    async def settle(self, reservation_id: str, actual: Decimal) -> bool:
        """Book ``actual`` USD in the reservation's budgets and drop its holds. True when booked now,
        False when it was already settled (idempotent). Raises ``StoreError`` for an id the ledger never
        saw (its spend could not be attributed)."""

    @abc.abstractmethod
    async def release(self, reservation_id: str) -> bool:
        """Drop the reservation's holds without booking spend. True when released now, False otherwise."""

    @abc.abstractmethod
    async def spend(self, budget: BudgetScope) -> Decimal:
        """Settled spend in ``budget``'s window now (holds excluded)."""

    @abc.abstractmethod
    async def snapshot(self, budgets: Sequence[BudgetScope], pools: Sequence[QuotaPool], ramp_families: Sequence[str]) -> LedgerSnapshot:
        """One consistent read for the decision engine: spend by ``BudgetScope.id`` (settled + active
        holds), pool usage by pool id, priority ramp usage by family."""

    @abc.abstractmethod
    async def list_scopes(self) -> list[ScopeInfo]:
        """Every budget named by a reservation recently (definition with its limit, and when last seen)."""

    # ------------------------------------------------------------------ quota and ramp
    @abc.abstractmethod
    async def consume(self, pool: QuotaPool, units: int, request_id: str) -> Consumed:
        """Count ``units`` in ``pool``'s current period; say how many were inside the free quota and how
        many are billable. Idempotent per ``request_id`` (a retry returns the first answer)."""

    @abc.abstractmethod
    async def pool_usage(self, pool: QuotaPool) -> PoolUsage:
        """Units used in ``pool``'s current period, its free units and the next reset."""

    @abc.abstractmethod
    async def record_priority_tokens(self, family: str, tokens: int) -> None:
        """Count Priority PayGo tokens of a model family (``flash``, ``flash-lite``, ``pro``)."""

    async def take_rate(self, pool: "RatePool", n: int = 1) -> "RateTake":
        """Take ``n`` requests from a per-minute rate pool (:mod:`router.ledger.rate`), atomically across
        every process sharing the ledger: granted only if the window stays within ``pool.limit``
        (nothing is taken when denied). ``n=0`` reads the pool without taking."""
        raise NotImplementedError(f"{type(self).__name__} has no rate pools")

    async def rate_outcomes(self, pool: "RatePool", outcome: str | None = None) -> dict[str, int]:
        """Count one ``outcome`` (``counted``, ``cache_hit``, ``fallback``, ``unsupported``) of the pool
        today (UTC) and return the day's counts by outcome; ``outcome=None`` only reads them."""
        raise NotImplementedError(f"{type(self).__name__} has no rate pools")

    async def ramp_usage(self, family: str) -> RampUsage:
        """Priority tokens of ``family`` in the last minute against its current ramp limit."""
        return (await self.snapshot((), (), (family,))).ramp[family]

    # ------------------------------------------------------------------ Provisioned Throughput capacity
    # Burndown-adjusted tokens per (model, region), rolling 30 s window (router.ledger.capacity).
    async def pt_claim(self, key: str, tokens: int, capacity: int) -> PtClaim:
        """Add an estimate of ``tokens`` adjusted tokens to ``key``'s (``MODEL@REGION``) current window,
        atomically, only if the window's tokens + ``tokens`` stay within ``capacity``."""
        raise NotImplementedError(f"{type(self).__name__} has no Provisioned Throughput counter")

    async def pt_adjust(self, key: str, bucket: int, delta: int) -> bool:
        """Reconcile a claim: add ``delta`` (negative: give tokens back) to ``bucket`` (the claim's, or
        0 for now) if it is still in the window. True when counted."""
        raise NotImplementedError(f"{type(self).__name__} has no Provisioned Throughput counter")

    async def pt_usage(self, keys: Sequence[str]) -> dict[str, int]:
        """Adjusted tokens in the current window of each ``MODEL@REGION`` key (one consistent read)."""
        raise NotImplementedError(f"{type(self).__name__} has no Provisioned Throughput counter")

    async def pt_settle(self, key: str, bucket: int, delta: int, served: bool, tokens: int, amortised: Decimal, paygo: Decimal) -> None:
        """End of a request that could use PT, atomically: reconcile the capacity counter (``delta`` into
        ``bucket``, as :meth:`pt_adjust`) and count it in ``key``'s month: ``served`` by PT with ``tokens``
        adjusted tokens, ``amortised`` subscription cost and ``paygo`` (the PayGo cost it avoided), or
        spilled with ``paygo`` its PayGo cost."""
        raise NotImplementedError(f"{type(self).__name__} has no Provisioned Throughput counter")

    async def pt_totals(self) -> list[PtTotals]:
        """Provisioned Throughput totals per ``MODEL@REGION`` and UTC month (recent months first)."""
        raise NotImplementedError(f"{type(self).__name__} has no Provisioned Throughput counter")

    @staticmethod
    def _check_pt(key: str, tokens: int, capacity: int | None = None, signed: bool = False) -> None:
        check_pt_key(key)
        check_tokens(tokens, "tokens" if not signed else "delta", signed)
        if capacity is not None:
            check_tokens(capacity, "capacity")

    # ------------------------------------------------------------------ shared policy versions
    # A policy published here is picked up by every Router using this ledger with ``policy="store:NAME"``,
    # so all processes switch together; the history allows a rollback by re-publishing a version.
    @abc.abstractmethod
    async def publish_policy(self, name: str, version: str, text: str) -> bool:
        """Make ``version`` (with its YAML ``text``) the current policy ``name``; False if it already was."""

    @abc.abstractmethod
    async def policy_version(self, name: str) -> str | None:
        """The current version of shared policy ``name`` (one cheap read), or None if never published."""

    @abc.abstractmethod
    async def policy_text(self, name: str, version: str) -> str | None:
        """The YAML text of a published version, or None if unknown (or expired from the history)."""

    @abc.abstractmethod
    async def policy_history(self, name: str) -> list[tuple[str, dt.datetime]]:
        """Versions of ``name`` as they became current, newest first, with when."""

    async def close(self) -> None:
        """Release connections and files. The store must not be used afterwards."""

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ argument checks shared by backends
    @staticmethod
    def _check_reserve(reservation_id: str, budgets: Sequence[BudgetScope], amount: Decimal, ttl_s: float) -> tuple[list[tuple[BudgetScope, int]], int, int]:
        """Validated ``[(budget, limit_nano)]`` (one per id), amount in nano-USD and TTL in ms. One counter has
        one limit: the same budget id twice with different limits is refused (``ValueError``), never decided
        by the order of the list."""
        check_id(reservation_id)
        unique: dict[str, tuple[BudgetScope, int]] = {}
        for budget in budgets:
            limit = checked_limit(budget)
            found = unique.setdefault(budget.id, (budget, limit))
            if found[1] != limit:
                raise ValueError(
                    f"two budgets share the counter {budget.id!r} with different limits ({found[0].limit_usd} and "
                    f"{budget.limit_usd} USD): one counter has one limit; merge them or use different windows"
                )
        nano = to_nano(amount)
        ttl_ms = _TTL_MS.get(ttl_s) if type(ttl_s) is float else None  # a Router passes the same few TTLs
        if ttl_ms is None:
            if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float, Decimal)) or not 0 < ttl_s <= 7 * 86400:
                raise ValueError(f"ttl_s must be a positive number of seconds up to 7 days, not {ttl_s!r}")
            ttl_ms = max(1, int(Decimal(str(ttl_s)) * 1000))
            if type(ttl_s) is float and len(_TTL_MS) < 256:
                _TTL_MS[ttl_s] = ttl_ms
        return list(unique.values()), nano, ttl_ms

    @staticmethod
    def _check_snapshot(budgets: Sequence[BudgetScope], pools: Sequence[QuotaPool], ramp_families: Sequence[str]) -> None:
        """Validate the arguments of :meth:`snapshot` (names that reach keys, known ramp families)."""
        for budget in budgets:
            check_budget(budget)
        for pool in pools:
            check_quota_pool(pool)
        for family in ramp_families:
            check_family(family)
            base_tpm(family)

    @staticmethod
    def _check_consume(pool: QuotaPool, units: int, request_id: str) -> None:
        check_quota_pool(pool)
        check_id(request_id, "request id")
        if isinstance(units, bool) or not isinstance(units, int) or units < 0:
            raise ValueError(f"units must be a non-negative integer, not {units!r}")

    @staticmethod
    def _check_tokens(family: str, tokens: int) -> None:
        check_family(family)
        base_tpm(family)
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be a non-negative integer, not {tokens!r}")
