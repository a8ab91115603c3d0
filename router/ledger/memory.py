"""In-process ledger backend: the embedded default (and the demo's). Same semantics as Redis, same suite.

State lives in dictionaries guarded by one ``threading.Lock`` (the Router shares a memory store across
event loops), so every operation is atomic. Expired holds, aged-out buckets, finished periods and old
idempotency markers are dropped lazily (at most once per second of store clock), so memory stays bounded.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from router.errors import StoreError
from router.ledger import capacity as capacity_mod
from router.ledger import ramp as ramp_mod
from router.ledger import rate as rate_mod
from router.ledger.capacity import PtClaim, PtTotals, check_pt_key, check_tokens, month_of
from router.ledger.base import IDEMPOTENCY_TTL_MS, POLICY_HISTORY, RECORD_GRACE_MS, Clock, Store
from router.ledger.keys import check_budget, check_id, check_policy, parse_budget_id, window_of
from router.ledger.money import from_nano, to_nano
from router.ledger.quota import check_quota_pool
from router.ledger.types import (
    ROLLING_SPANS,
    BudgetScope,
    Consumed,
    LedgerSnapshot,
    PoolUsage,
    QuotaPool,
    RampUsage,
    Reservation,
    ScopeInfo,
)
from router.ledger.windows import CALENDAR_GRACE_MS, ROLLING_BUCKET_S, period, rolling, to_datetime

#: Budgets not named by any reservation for this long disappear from ``list_scopes``.
META_TTL_MS = 35 * 86_400_000


class _Buckets:
    """Bucket index -> amount, with a running total; buckets older than ``first`` are evicted."""

    __slots__ = ("idxs", "vals", "total")

    def __init__(self) -> None:
        self.idxs: list[int] = []
        self.vals: dict[int, int] = {}
        self.total = 0

    def evict(self, first: int) -> None:
        cut = bisect.bisect_left(self.idxs, first)
        for idx in self.idxs[:cut]:
            self.total -= self.vals.pop(idx)
        del self.idxs[:cut]

    def add(self, idx: int, amount: int) -> None:
        if idx not in self.vals:
            bisect.insort(self.idxs, idx)
            self.vals[idx] = 0
        self.vals[idx] += amount
        self.total += amount


class _Holds:
    """One budget's live holds: rid -> (nano, expires_ms), their running total, and an expiry heap.

    ``total`` always equals the sum of the live holds' nano (kept on every add / drop / expiry), so a
    reserve costs O(log holds) instead of a scan of every outstanding hold. The heap may keep entries of
    holds already settled or released; they are skipped when they come up.
    """

    __slots__ = ("by_rid", "total", "heap")

    def __init__(self) -> None:
        self.by_rid: dict[str, tuple[int, int]] = {}
        self.total = 0
        self.heap: list[tuple[int, str]] = []

    def add(self, rid: str, nano: int, expires: int) -> None:
        old = self.by_rid.get(rid)
        if old is not None:
            self.total -= old[0]
        self.by_rid[rid] = (nano, expires)
        self.total += nano
        heapq.heappush(self.heap, (expires, rid))

    def drop(self, rid: str) -> None:
        found = self.by_rid.pop(rid, None)
        if found is not None:
            self.total -= found[0]

    def expire(self, now: int) -> None:
        heap, by_rid = self.heap, self.by_rid
        while heap and heap[0][0] <= now:
            expires, rid = heapq.heappop(heap)
            found = by_rid.get(rid)
            if found is not None and found[1] == expires:
                del by_rid[rid]
                self.total -= found[0]


@dataclass
class _Record:
    state: str
    amount: int
    bids: tuple[str, ...]
    keep_until: int


@dataclass
class _Ramp:
    buckets: _Buckets = field(default_factory=_Buckets)
    streak_start: int | None = None
    last_minute: int | None = None
    last_ms: int = 0


class MemoryStore(Store):
    """The in-process ledger. ``clock``: epoch seconds (default ``time.time``), injectable for tests."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._holds: dict[str, _Holds] = {}  # bid -> live holds with their running total
        self._rolling: dict[str, _Buckets] = {}
        self._calendar: dict[tuple[str, int], list[int]] = {}  # (bid, start) -> [nano, end_ms]
        self._meta: dict[str, tuple[int, int]] = {}  # bid -> (limit nano, last seen ms)
        self._policy_texts: dict[tuple[str, str], str] = {}
        self._policy_history: dict[str, list[tuple[str, dt.datetime]]] = {}
        self._pools: dict[tuple[str, int], list[int]] = {}  # (pool, start) -> [used, end_ms]
        self._pool_requests: dict[tuple[str, str], tuple[int, int, int]] = {}  # -> (free, billable, keep_until)
        self._ramps: dict[str, _Ramp] = {}
        self._pt_counters: dict[str, _Buckets] = {}
        self._rates: dict[str, _Buckets] = {}
        self._rate_stats: dict[tuple[str, int], dict[str, int]] = {}
        self._pt_months: dict[tuple[str, str], list[int]] = {}  # (key, YYYY-MM) -> [served, spilled, tokens, amortised, paygo, spill, last ms]
        self._windows: dict[str, list] = {}  # bid -> its window, with the current calendar period (see _window)
        # (keep_until, key) of every record / pool request, pushed whenever one is written: the clean-up pops the
        # due ones instead of scanning every record kept for idempotency (48 h of traffic) once a second.
        self._record_due: list[tuple[int, str]] = []
        self._pool_request_due: list[tuple[int, tuple[str, str]]] = []
        self._last_gc = 0

    # ------------------------------------------------------------------ internals (lock held)
    def _gc(self, now: int) -> None:
        if now - self._last_gc < 1000:
            return
        self._last_gc = now
        records, due = self._records, self._record_due
        while due and due[0][0] <= now:
            rid = heapq.heappop(due)[1]
            record = records.get(rid)
            if record is not None and record.keep_until <= now:  # else kept longer since: a later entry is due
                del records[rid]
        for bid in list(self._holds):
            self._held(bid, now)
        for bid in list(self._rolling):
            win = rolling(window_of(bid).span, now)
            self._rolling[bid].evict(win.first)
            if not self._rolling[bid].idxs:
                del self._rolling[bid]
        self._calendar = {k: v for k, v in self._calendar.items() if v[1] + CALENDAR_GRACE_MS > now}
        self._pools = {k: v for k, v in self._pools.items() if v[1] + CALENDAR_GRACE_MS > now}
        requests, pending = self._pool_requests, self._pool_request_due
        while pending and pending[0][0] <= now:
            key = heapq.heappop(pending)[1]
            found = requests.get(key)
            if found is not None and found[2] <= now:
                del requests[key]
        self._ramps = {k: v for k, v in self._ramps.items() if v.last_ms + ramp_mod.KEY_TTL_MS > now}
        first_pt = capacity_mod.first_bucket(now)
        for key in list(self._pt_counters):
            self._pt_counters[key].evict(first_pt)
            if not self._pt_counters[key].idxs:
                del self._pt_counters[key]
        self._meta = {k: v for k, v in self._meta.items() if v[1] + META_TTL_MS > now}
        today = now // rate_mod.DAY_MS
        self._rate_stats = {k: v for k, v in self._rate_stats.items() if k[1] >= today - 1}
        first = rate_mod.first_bucket(now)
        for pool_id in list(self._rates):
            self._rates[pool_id].evict(first)
            if not self._rates[pool_id].idxs:
                del self._rates[pool_id]

    def _held(self, bid: str, now: int) -> int:
        holds = self._holds.get(bid)
        if holds is None:
            return 0
        holds.expire(now)
        if not holds.by_rid:
            del self._holds[bid]
            return 0
        return holds.total

    def _window(self, bid: str) -> list:
        """The budget's window, cached per id: ``[True, bucket_ms, span_ms]`` for a rolling window, or
        ``[False, span, zone, start_ms, end_ms]`` for a calendar one, its current period kept until ``now``
        leaves it (the time-zone arithmetic runs once per period, not on every read)."""
        found = self._windows.get(bid)
        if found is None:
            window = window_of(bid)
            if window.kind == "rolling":
                found = [True, ROLLING_BUCKET_S[window.span] * 1000, ROLLING_SPANS[window.span] * 1000]
            else:
                found = [False, window.span, window.timezone, 0, 0]
            if len(self._windows) > 100_000:
                self._windows.clear()
            self._windows[bid] = found
        return found

    def _period_start(self, win: list, now: int) -> int:
        if not win[3] <= now < win[4]:
            p = period(win[1], win[2], now)
            win[3], win[4] = p.start_ms, p.end_ms
        return win[3]

    def _settled(self, bid: str, now: int) -> int:
        win = self._windows.get(bid) or self._window(bid)
        if win[0]:
            buckets = self._rolling.get(bid)
            if buckets is None:
                return 0
            first = (now - win[2]) // win[1]
            if buckets.idxs and buckets.idxs[0] < first:
                buckets.evict(first)
            return buckets.total
        start = win[3] if win[3] <= now < win[4] else self._period_start(win, now)
        entry = self._calendar.get((bid, start))
        return entry[0] if entry else 0

    def _book(self, bid: str, nano: int, now: int) -> None:
        win = self._windows.get(bid) or self._window(bid)
        if win[0]:
            buckets = self._rolling.get(bid)
            if buckets is None:
                buckets = self._rolling[bid] = _Buckets()
            first = (now - win[2]) // win[1]
            if buckets.idxs and buckets.idxs[0] < first:
                buckets.evict(first)
            buckets.add(now // win[1], nano)
        else:
            start = win[3] if win[3] <= now < win[4] else self._period_start(win, now)
            entry = self._calendar.get((bid, start))
            if entry is None:
                entry = self._calendar[(bid, start)] = [0, win[4]]
            entry[0] += nano

    # ------------------------------------------------------------------ budgets
    async def reserve(self, reservation_id: str, budgets: Sequence[BudgetScope], amount: Decimal, ttl_s: float) -> Reservation:
        """See :meth:`Store.reserve`."""
        unique, nano, ttl_ms = self._check_reserve(reservation_id, budgets, amount, ttl_s)
        with self._lock:
            now = int(self.clock() * 1000)
            if now - self._last_gc >= 1000:
                self._gc(now)
            record = self._records.get(reservation_id)
            if record is not None:
                return Reservation(reservation_id, True, None, from_nano(record.amount))
            bids = tuple([budget.id for budget, _ in unique])
            meta = self._meta
            for (_, limit), bid in zip(unique, bids):
                meta[bid] = (limit, now)
            all_holds = self._holds
            for (_, limit), bid in zip(unique, bids):
                holds = all_holds.get(bid)
                held = self._held(bid, now) if holds is not None else 0
                if self._settled(bid, now) + held + nano > limit:
                    return Reservation(reservation_id, False, bid, Decimal(0))
            expires = now + ttl_ms
            for bid in bids:
                holds = all_holds.get(bid)
                if holds is None:
                    holds = all_holds[bid] = _Holds()
                holds.add(reservation_id, nano, expires)
            self._records[reservation_id] = _Record("held", nano, bids, expires + RECORD_GRACE_MS)
            heapq.heappush(self._record_due, (expires + RECORD_GRACE_MS, reservation_id))
        return Reservation(reservation_id, True, None, from_nano(nano))

    async def settle(self, reservation_id: str, actual: Decimal) -> bool:
        """See :meth:`Store.settle`."""
        check_id(reservation_id)
        nano = to_nano(actual, what="actual cost")
        with self._lock:
            now = int(self.clock() * 1000)
            if now - self._last_gc >= 1000:
                self._gc(now)
            record = self._records.get(reservation_id)
            if record is None:
                raise StoreError(f"settle: unknown reservation {reservation_id!r} (never reserved, or older than the record grace)")
            if record.state == "settled":
                return False
            for bid in record.bids:
                holds = self._holds.get(bid)
                if holds is not None:
                    holds.drop(reservation_id)
                self._book(bid, nano, now)
            record.state, record.keep_until = "settled", now + IDEMPOTENCY_TTL_MS
            heapq.heappush(self._record_due, (record.keep_until, reservation_id))
        return True

    async def release(self, reservation_id: str) -> bool:
        """See :meth:`Store.release`."""
        check_id(reservation_id)
        with self._lock:
            now = self.now_ms()
            self._gc(now)
            record = self._records.get(reservation_id)
            if record is None or record.state != "held":
                return False
            for bid in record.bids:
                holds = self._holds.get(bid)
                if holds is not None:
                    holds.drop(reservation_id)
            record.state, record.keep_until = "released", max(record.keep_until, now + IDEMPOTENCY_TTL_MS)
            heapq.heappush(self._record_due, (record.keep_until, reservation_id))
        return True

    async def spend(self, budget: BudgetScope) -> Decimal:
        """See :meth:`Store.spend`."""
        check_budget(budget)
        with self._lock:
            return from_nano(self._settled(budget.id, self.now_ms()))

    async def snapshot(self, budgets: Sequence[BudgetScope], pools: Sequence[QuotaPool], ramp_families: Sequence[str]) -> LedgerSnapshot:
        """See :meth:`Store.snapshot`."""
        self._check_snapshot(budgets, pools, ramp_families)
        snap = LedgerSnapshot()
        with self._lock:
            now = self.now_ms()
            for budget in budgets:
                snap.spend[budget.id] = from_nano(self._settled(budget.id, now) + self._held(budget.id, now))
            for pool in pools:
                snap.pools[pool.id] = self._pool_usage(pool, now)
            for family in ramp_families:
                snap.ramp[family] = self._ramp_usage(family, now)
        return snap

    async def list_scopes(self) -> list[ScopeInfo]:
        """See :meth:`Store.list_scopes`."""
        with self._lock:
            items = sorted(self._meta.items())
        return [ScopeInfo(parse_budget_id(bid, from_nano(limit)), to_datetime(last)) for bid, (limit, last) in items]

    # ------------------------------------------------------------------ shared policy versions
    async def publish_policy(self, name: str, version: str, text: str) -> bool:
        """See :meth:`Store.publish_policy`."""
        check_policy(name, version)
        with self._lock:
            self._policy_texts[(name, version)] = text
            history = self._policy_history.setdefault(name, [])
            if history and history[0][0] == version:
                return False
            history.insert(0, (version, to_datetime(self.now_ms())))
            del history[POLICY_HISTORY:]
            return True

    async def policy_version(self, name: str) -> str | None:
        """See :meth:`Store.policy_version`."""
        check_policy(name)
        history = self._policy_history.get(name)
        return history[0][0] if history else None

    async def policy_text(self, name: str, version: str) -> str | None:
        """See :meth:`Store.policy_text`."""
        check_policy(name, version)
        return self._policy_texts.get((name, version))

    async def policy_history(self, name: str) -> list[tuple[str, dt.datetime]]:
        """See :meth:`Store.policy_history`."""
        check_policy(name)
        return list(self._policy_history.get(name, []))

    # ------------------------------------------------------------------ quota and ramp
    async def consume(self, pool: QuotaPool, units: int, request_id: str) -> Consumed:
        """See :meth:`Store.consume`."""
        self._check_consume(pool, units, request_id)
        with self._lock:
            now = self.now_ms()
            self._gc(now)
            done = self._pool_requests.get((pool.id, request_id))
            if done is not None:
                return Consumed(done[0], done[1])
            p = period(pool.period, pool.timezone, now)
            entry = self._pools.setdefault((pool.id, p.start_ms), [0, p.end_ms])
            before = entry[0]
            entry[0] += units
            free = max(0, min(units, pool.free_units - before))
            self._pool_requests[(pool.id, request_id)] = (free, units - free, now + IDEMPOTENCY_TTL_MS)
            heapq.heappush(self._pool_request_due, (now + IDEMPOTENCY_TTL_MS, (pool.id, request_id)))
        return Consumed(free, units - free)

    def _pool_usage(self, pool: QuotaPool, now: int) -> PoolUsage:
        p = period(pool.period, pool.timezone, now)
        entry = self._pools.get((pool.id, p.start_ms))
        return PoolUsage(pool.id, entry[0] if entry else 0, pool.free_units, p.end)

    async def pool_usage(self, pool: QuotaPool) -> PoolUsage:
        """See :meth:`Store.pool_usage`."""
        check_quota_pool(pool)
        with self._lock:
            return self._pool_usage(pool, self.now_ms())

    async def record_priority_tokens(self, family: str, tokens: int) -> None:
        """See :meth:`Store.record_priority_tokens`."""
        self._check_tokens(family, tokens)
        if tokens == 0:
            return
        with self._lock:
            now = self.now_ms()
            self._gc(now)
            state = self._ramps.setdefault(family, _Ramp())
            second, minute = now // ramp_mod.BUCKET_MS, now // 60_000
            state.buckets.evict(second - ramp_mod.BUCKETS + 1)
            state.buckets.add(second, tokens)
            if state.last_minute is None or minute > state.last_minute + 1:
                state.streak_start = minute
            state.last_minute = minute if state.last_minute is None else max(state.last_minute, minute)
            state.last_ms = now

    # ------------------------------------------------------------------ Provisioned Throughput capacity
    def _pt(self, key: str, now: int) -> _Buckets:
        found = self._pt_counters.get(key)
        if found is None:
            found = self._pt_counters[key] = _Buckets()
        found.evict(capacity_mod.first_bucket(now))
        return found

    async def pt_claim(self, key: str, tokens: int, capacity: int) -> PtClaim:
        """See :meth:`Store.pt_claim`."""
        self._check_pt(key, tokens, capacity)
        with self._lock:
            now = self.now_ms()
            counter = self._pt(key, now)
            used = max(0, counter.total)
            bucket = now // capacity_mod.BUCKET_MS
            if used + tokens > capacity:
                return PtClaim(False, used, capacity, bucket)
            if tokens:
                counter.add(bucket, tokens)
            return PtClaim(True, used + tokens, capacity, bucket)

    async def pt_adjust(self, key: str, bucket: int, delta: int) -> bool:
        """See :meth:`Store.pt_adjust`."""
        self._check_pt(key, delta, signed=True)
        with self._lock:
            now = self.now_ms()
            bucket = bucket or now // capacity_mod.BUCKET_MS
            counter = self._pt(key, now)
            if delta == 0 or bucket < capacity_mod.first_bucket(now):
                return False
            if delta < 0:
                delta = max(delta, -counter.vals.get(bucket, 0))
                if delta == 0:
                    return False
            counter.add(bucket, delta)
            return True

    async def pt_settle(self, key: str, bucket: int, delta: int, served: bool, tokens: int, amortised: Decimal, paygo: Decimal) -> None:
        """See :meth:`Store.pt_settle`."""
        self._check_pt(key, delta, signed=True)
        check_tokens(tokens)
        amortised_nano, paygo_nano = to_nano(amortised), to_nano(paygo)
        with self._lock:
            now = self.now_ms()
            bucket = bucket or now // capacity_mod.BUCKET_MS
            counter = self._pt(key, now)
            if delta and bucket >= capacity_mod.first_bucket(now):
                if delta < 0:
                    delta = max(delta, -counter.vals.get(bucket, 0))
                if delta:
                    counter.add(bucket, delta)
            totals = self._pt_months.setdefault((key, month_of(now)), [0, 0, 0, 0, 0, 0, now])
            if served:
                totals[0] += 1
                totals[2] += tokens
                totals[3] += amortised_nano
                totals[4] += paygo_nano
            else:
                totals[1] += 1
                totals[5] += paygo_nano
            totals[6] = now

    async def pt_totals(self) -> list[PtTotals]:
        """See :meth:`Store.pt_totals`."""
        with self._lock:
            now = self.now_ms()
            rows = [(k, v) for k, v in self._pt_months.items() if v[6] + capacity_mod.MONTH_TTL_MS > now]
        rows.sort(key=lambda kv: (kv[0][1], kv[0][0]), reverse=True)
        return [PtTotals(k, m, v[0], v[1], v[2], from_nano(v[3]), from_nano(v[4]), from_nano(v[5])) for (k, m), v in rows]

    async def pt_usage(self, keys: Sequence[str]) -> dict[str, int]:
        """See :meth:`Store.pt_usage`."""
        for key in keys:
            check_pt_key(key)
        with self._lock:
            now = self.now_ms()
            return {key: max(0, self._pt(key, now).total) if key in self._pt_counters else 0 for key in keys}

    async def take_rate(self, pool: rate_mod.RatePool, n: int = 1) -> rate_mod.RateTake:
        """See :meth:`Store.take_rate`."""
        rate_mod.check_take(pool, n)
        with self._lock:
            now = self.now_ms()
            self._gc(now)
            buckets = self._rates.get(pool.id)
            if buckets is None:
                buckets = self._rates[pool.id] = _Buckets()
            buckets.evict(rate_mod.first_bucket(now))
            if n == 0:
                return rate_mod.RateTake(pool.id, True, buckets.total, pool.limit)
            if buckets.total + n > pool.limit:
                return rate_mod.RateTake(pool.id, False, buckets.total, pool.limit)
            buckets.add(now // rate_mod.BUCKET_MS, n)
            return rate_mod.RateTake(pool.id, True, buckets.total, pool.limit)

    async def rate_outcomes(self, pool: rate_mod.RatePool, outcome: str | None = None) -> dict[str, int]:
        """See :meth:`Store.rate_outcomes`."""
        rate_mod.check_take(pool, 0)
        rate_mod.check_outcome(outcome)
        with self._lock:
            day = self._rate_stats.setdefault((pool.id, self.now_ms() // rate_mod.DAY_MS), {})
            if outcome is not None:
                day[outcome] = day.get(outcome, 0) + 1
            return dict(day)

    def _ramp_usage(self, family: str, now: int) -> RampUsage:
        state = self._ramps.get(family)
        minute = now // 60_000
        if state is None:
            return RampUsage(family, 0, ramp_mod.limit_tpm(family, 0))
        state.buckets.evict(now // ramp_mod.BUCKET_MS - ramp_mod.BUCKETS + 1)
        minutes = ramp_mod.sustained_minutes(state.streak_start, state.last_minute, minute)
        return RampUsage(family, state.buckets.total, ramp_mod.limit_tpm(family, minutes))
