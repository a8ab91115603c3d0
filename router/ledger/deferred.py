"""Redis off the request path: durable deferred settlement (and, with ``leases``, budget leases).

:class:`DeferredRedisStore` keeps the :class:`~router.ledger.base.Store` contract of :class:`RedisStore`
(the same test suite runs over it) and changes *when* Redis is written:

* **Deferred settlement.** ``settle`` of a reservation this store granted returns once its entry is in
  the local settle log (:mod:`router.ledger.wal`: one ``write``, so it survives ``kill -9``). A background
  flusher applies the logged settles to Redis once the oldest of them is ``flush_interval_s`` old, all
  logged meanwhile in ONE script call per batch (``settle_batch.lua``), and deletes the log entries only
  when Redis confirmed them: the primary applied them and every connected replica acknowledged the write
  (checked from ``INFO replication`` offsets, read every ``CONFIRM_INTERVAL_S`` while entries wait; with
  no replica the primary's reply suffices). The flusher sleeps on one timer until it has something to
  do (no task or timer per settle, no fixed tick), and Redis commands are written without a task per
  command (:mod:`router.ledger.quick_send`). Unconfirmed entries are applied again after a failover
  (the primary's replication id changed) and by the next process when this one died (its log is
  adopted): settles are idempotent per reservation id, so nothing counts twice. Caps stay exact while a
  settle is pending because the hold (>= the bill) is still counted in Redis until the settle lands.
  A bill above its hold is settled synchronously (booked in full at once, as before).
* **Read your writes.** ``spend`` / ``snapshot`` / ``pool_usage`` first apply this store's pending
  settles. Other processes see a settled bill within ``flush_interval_s`` + one round trip; until then
  they see its hold, which is never less than the bill (a view that lags can only over-count).
* **Budget leases** (``leases=True``, see :mod:`router.ledger.leases`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from redis.asyncio.connection import AbstractConnection

from router.errors import StoreError, StoreUnavailableError
from router.ledger.base import IDEMPOTENCY_TTL_MS, RECORD_GRACE_MS
from router.ledger.file_thread import FileThread
from router.ledger.journal import default_journal_path
from router.ledger.keys import check_id, parse_budget_id, window_of
from router.ledger.leases import Lease, LeaseSizing
from router.ledger.money import to_nano
from router.ledger.money import from_nano
from router.ledger.quick_send import quick_send_class
from router.ledger.redis_store import _UNREACHABLE, RedisStore, _int, _str, _Unavailable
from router.ledger.types import BudgetScope, LedgerSnapshot, PoolUsage, QuotaPool, Reservation, ScopeInfo
from router.ledger.wal import SettleLog, settle_line
from router.ledger.windows import rolling

log = logging.getLogger("router.ledger")

#: Most settles applied by one script call (bounds the time Redis spends in one script).
MAX_BATCH = 128
#: How long a settle-log segment is appended to before a new one starts.
SEGMENT_S = 1.0
#: How often a live process looks for settle logs left by dead processes.
ORPHAN_SCAN_S = 5.0
#: How long a replica that disappeared from the primary's list is waited for before it is taken as removed.
REPLICA_GRACE_S = 60.0
#: How long :meth:`DeferredRedisStore.close` waits for Redis by default (``close_ms`` in the ledger URL).
CLOSE_TIMEOUT_S = 3.0
#: At most this much more for closing the Redis connection pool at the end of ``close``.
POOL_CLOSE_S = 1.0
#: How often the background flusher reads the primary's replication state (``INFO replication``) while
#: applied entries wait for confirmation (never when none wait). Entries only wait longer in the log.
CONFIRM_INTERVAL_S = 1.0


@dataclass
class _Batch:
    """Settle-log entries applied (or to apply) together; ``segment`` is deleted once confirmed."""

    segment: Path | None
    entries: list[dict[str, Any]]
    applied: bool = False
    replid: str = ""  # the primary's replication id as last read before the batch was applied
    offset: int = -1  # its replication offset as first read after the batch was applied (-1: not read yet)
    orphan: str | None = None  # the dead owner whose log this came from
    holds: int = 0  # entries that settle a Redis hold (not a reservation from this process's slices)
    orphan_fd: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _wake(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)


def _resolve(future: "asyncio.Future[Reservation]", result: Reservation) -> None:
    """Answer a waiting reservation (unless its caller was cancelled meanwhile: a granted hold then
    expires with its TTL, as it would with a synchronous reserve cancelled in flight)."""
    if not future.done():
        future.set_result(result)


@dataclass
class _Request:
    """A reservation waiting for the next group commit."""

    rid: str
    bids: tuple[str, ...]
    limits: tuple[int, ...]
    metas: tuple[str, ...]
    nano: int
    ttl_ms: int
    future: "asyncio.Future[Reservation]"
    give_up_at: float = 0.0
    flushed: bool = False  # decided again after this store's pending settles were applied
    reclaim: set[str] = field(default_factory=set)  # budgets whose free slice part goes back before it is decided again


@dataclass
class _Slice:
    """A reservation granted from this process's slices."""

    bids: tuple[str, ...]
    nano: int
    expiry: int
    state: str = "held"  # held | released | expired


class DeferredRedisStore(RedisStore):
    """A :class:`RedisStore` that settles through a local durable log (see the module docstring).

    ``settle_log_dir``: the settle log directory (default: ``JOURNAL_PATH.settles`` next to the fail-open
    journal, i.e. ``$TMPDIR/router-ledger-PREFIX-DIGEST.jsonl.settles``, one per ledger); every process sharing the directory
    recovers the logs of dead ones. ``flush_interval_s``: how long settles are collected before one batch
    is sent (the staleness bound seen by other processes, plus one round trip). ``fsync``: ``batch``
    (fsync each segment before it is sent) or ``always`` (fsync every settle before it returns).
    ``close_timeout_s``: how long :meth:`close` waits for Redis (see there). ``quick_send``: write Redis
    commands without a task per command (:mod:`router.ledger.quick_send`) by swapping the connection class of
    ``client``'s pool; off by default because that changes a client the caller may share with other code (the
    store URLs of :func:`router.ledger.store_from_url` turn it on: the client is the store's own).
    """

    def __init__(
        self,
        client: Any,
        *,
        settle_log_dir: str | None = None,
        flush_interval_s: float = 0.02,
        fsync: str = "batch",
        leases: bool | LeaseSizing = False,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        quick_send: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(client, **options)
        pool = getattr(client, "connection_pool", None)
        base = getattr(pool, "connection_class", None)
        if quick_send and isinstance(base, type) and issubclass(base, AbstractConnection) and base.__module__.startswith("redis."):
            pool.connection_class = quick_send_class(base)  # no task per command (see router.ledger.quick_send)
        if not isinstance(close_timeout_s, (int, float)) or isinstance(close_timeout_s, bool) or not 0 <= close_timeout_s <= 3600:
            raise ValueError(f"close_timeout_s must be between 0 and 3600 seconds, not {close_timeout_s!r}")
        self.close_timeout_s = float(close_timeout_s)
        if not isinstance(flush_interval_s, (int, float)) or isinstance(flush_interval_s, bool) or not 0 <= flush_interval_s <= 3600:
            raise ValueError(f"flush_interval_s must be between 0 and 3600 seconds, not {flush_interval_s!r}")
        journal = options.get("journal_path") or default_journal_path(options.get("url", "redis://"), self.keys.prefix)
        self.settle_log = SettleLog(settle_log_dir or f"{journal}.settles", fsync=fsync)
        self._files = FileThread()  # fsync / segment close and delete off the event loop
        self.flush_interval_s = float(flush_interval_s)
        self._pending: list[dict[str, Any]] = []
        self._pending_holds = 0  # entries in _pending that settle a Redis hold
        self._batches: list[_Batch] = []
        self._done: OrderedDict[str, int] = OrderedDict()  # rid -> keep until (ms): settled here already
        self._done_check = 0  # epoch ms of the next clean-up of _done
        self._valid_bids: set[str] = set()  # budget ids of log entries already validated (see _settle_batch)
        self._flusher: asyncio.Task[None] | None = None
        self._pending_at = 0.0  # monotonic time the oldest entry of _pending was logged
        self._flush_waiter: asyncio.Future[None] | None = None  # the flusher's sleep (see _flush_loop)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_due = 0.0  # monotonic time the flusher's sleep ends
        self._flush_lock: asyncio.Lock | None = None
        self._closed = False
        self._recovered = False
        self._next_orphan_scan = 0.0
        self.flush_errors = 0
        self._replicas_seen: dict[str, tuple[int, float]] = {}  # replication id -> (replicas, last seen)
        self._replid: str | None = None  # the primary's replication id at the last INFO read
        self._next_confirm = 0.0  # monotonic time of the flusher's next INFO read
        self._closed_segments: set[Path] = set()  # own closed segments, deleted once nothing in them is pending
        # group commit: reservations that go to Redis, queued while a batch is in flight
        self._queue: list[_Request] = []
        self._committer: asyncio.Task[None] | None = None
        # budget leases
        self.sizing: LeaseSizing | None = (leases if isinstance(leases, LeaseSizing) else LeaseSizing()) if leases else None
        self.owner = self.settle_log.owner
        self._leases: dict[str, Lease] = {}
        self._slices: OrderedDict[str, _Slice] = OrderedDict()  # reservations granted from slices
        self._slice_expiry: list[tuple[int, str]] = []
        self._keeper: asyncio.Task[None] | None = None
        self._slice_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.local_grants = 0

    # ------------------------------------------------------------------ settle
    def _mark_done(self, rid: str, now: int) -> None:
        # ``rid`` is not in the map (settle returned early otherwise), so the map stays in time order; an id
        # leaves it once Redis has its settle, so the clean-up below rarely finds anything (checked once a
        # second, or when the map is huge)
        done = self._done
        done[rid] = now + IDEMPOTENCY_TTL_MS
        if now >= self._done_check or len(done) > 1_000_000:
            self._done_check = now + 1000
            while done:
                first_rid, until = next(iter(done.items()))
                if until > now and len(done) <= 1_000_000:
                    break
                del done[first_rid]

    def _slice_guard(self) -> Any:
        """Held while a script that reads or changes this process's slices runs (with leases).

        A reply reports the slice size as of the script's execution; this process subtracts the slice
        decrements it has logged but not seen applied (``Lease.pending``) and what it gives back. That is
        only right when replies are processed in the order Redis executed the scripts, with nothing
        changed locally in between: a settle batch applied (its ``pending`` dropped) after a reserve batch
        executed but before its reply was processed made the stale size look current, and the settled
        bills were granted a second time (the cap overshot under heavy load). So reserve batches, give-
        backs and settle batches never overlap, and each takes its reply into the leases before the guard
        is released. Not reentrant: nothing under it may flush."""
        if self.sizing is None:
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()
        if self._slice_lock is None or self._slice_lock[0] is not loop:
            # one lock per running loop: a lock left held by a task of a loop that is gone (a store reused
            # across event loops, e.g. by test fixtures) must never block this loop forever
            self._slice_lock = (loop, asyncio.Lock())
        return self._slice_lock[1]

    def _defer(self, rid: str, nano: int, held: int | None, bids: list[str], at: int, owner: str, ldec: int | None) -> None:
        """Log one settle (one ``write``) and queue it for the flusher."""
        entry: dict[str, Any] = {"rid": rid, "mode": "S", "nano": nano, "held": held, "bids": bids, "at": at, "owner": owner}
        if ldec is not None:
            entry["ldec"] = ldec
        self.settle_log.append_line(settle_line(rid, nano, held, bids, at, owner, ldec))
        first = not self._pending
        self._pending.append(entry)
        if not owner:
            self._pending_holds += 1
        if first:  # the flusher sends it flush_interval_s from now, with every settle logged meanwhile
            self._pending_at = time.monotonic()
            self._wake_flusher(self._pending_at + self.flush_interval_s)

    # ------------------------------------------------------------------ reserve: slices, then group commit
    async def reserve(self, reservation_id: str, budgets: Sequence[BudgetScope], amount: Decimal, ttl_s: float) -> Reservation:
        """See :meth:`Store.reserve`. Granted from this process's slices when they fit (no round trip),
        otherwise decided by Redis together with the other reservations queued meanwhile (one call)."""
        unique, nano, ttl_ms = self._check_reserve(reservation_id, budgets, amount, ttl_s)
        now = self.now_ms()
        found = self._slices.get(reservation_id)
        if found is not None:
            return Reservation(reservation_id, True, None, from_nano(found.nano))
        bids = tuple([b.id for b, _ in unique])
        if self.sizing is not None and unique:
            self._expire_slices(now)
            leases = []
            until = now + ttl_ms
            fits = True
            for bid in bids:
                lease = self._leases.get(bid)
                if lease is None:
                    lease = self._leases[bid] = Lease()
                lease.note_demand(now, nano)
                leases.append(lease)
                fits = fits and lease.usable(now, until, nano)
            if fits:
                for lease in leases:
                    lease.used += nano
                    lease.last_use = now
                self._slices[reservation_id] = _Slice(bids, nano, until)
                heapq.heappush(self._slice_expiry, (until, reservation_id))
                self.local_grants += 1
                return Reservation(reservation_id, True, None, from_nano(nano))  # no round trip
        await self._recover_once()
        loop = asyncio.get_running_loop()
        request = _Request(reservation_id, bids, tuple(limit for _, limit in unique),
                           tuple(self._meta_update(b.id, limit, now) for b, limit in unique), nano, ttl_ms, loop.create_future())
        if self.sizing is not None:
            request.give_up_at = time.monotonic() + self.sizing.drain_wait_s
        self._queue.append(request)
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit_loop())
        return await request.future

    def _expire_slices(self, now: int) -> None:
        heap = self._slice_expiry
        while heap and heap[0][0] <= now:
            until, rid = heapq.heappop(heap)
            found = self._slices.get(rid)
            if found is not None and found.state == "held" and found.expiry == until:
                found.state = "expired"
                for bid in found.bids:
                    lease = self._leases.get(bid)
                    if lease is not None:
                        lease.used -= found.nano
        # a finished reservation is remembered (for an idempotent or late settle) for the record grace
        while self._slices:
            rid, first = next(iter(self._slices.items()))
            if first.state == "held" or first.expiry + RECORD_GRACE_MS > now:
                break
            del self._slices[rid]

    async def _commit_loop(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                for request in batch:
                    if not request.future.done():
                        request.future.cancel()
                raise
            except BaseException as exc:  # every waiter gets the error (never a hung request)
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)

    def _grant_local(self, request: _Request, now: int) -> bool:
        """Grant ``request`` from this process's slices if it fits them all (no round trip)."""
        until = now + request.ttl_ms
        leases = [self._leases.get(bid) for bid in request.bids]
        if not leases or not all(lease is not None and lease.usable(now, until, request.nano) for lease in leases):
            return False
        for lease in leases:
            assert lease is not None
            lease.used += request.nano
            lease.last_use = now
        self._slices[request.rid] = _Slice(request.bids, request.nano, until)
        heapq.heappush(self._slice_expiry, (until, request.rid))
        self.local_grants += 1
        return True

    async def _commit(self, batch: list[_Request]) -> None:
        batch = [r for r in batch if not r.future.done()]  # a caller that gave up (cancelled) is not decided
        if not batch:
            return
        now = self.now_ms()
        self._expire_slices(now)
        sizing = self.sizing
        if sizing is not None:  # a slice granted while these waited may hold them now
            kept = []
            for request in batch:
                if not request.flushed and self._grant_local(request, now):
                    _resolve(request.future, Reservation(request.rid, True, None, from_nano(request.nano)))
                else:
                    kept.append(request)
            batch = kept
            if not batch:
                return
        async with self._slice_guard():  # from sizing the slices to taking the reply (see _slice_guard)
            slots: dict[str, int] = {}
            slot_keys: list[str] = []
            slot_args: list[Any] = []
            req_args: list[Any] = []
            biggest: dict[str, int] = {}
            longest = max(r.ttl_ms for r in batch)
            reclaim = {bid for r in batch for bid in r.reclaim}
            for request in batch:
                numbers = []
                for bid, limit, meta in zip(request.bids, request.limits, request.metas):
                    biggest[bid] = max(biggest.get(bid, 0), request.nano)
                    slot = slots.get(bid)
                    if slot is None:
                        slot = slots[bid] = len(slots) + 1
                        key, kind, first, _, _ = self._spend_key(bid, now)
                        slot_keys += self.keys.slot(key, bid)
                        slot_args.append([bid, kind, first, limit, meta, 0, 0, 0, 0])
                    elif meta:
                        slot_args[slot - 1][4] = meta
                    numbers.append(slot)
                req_args += [request.rid, request.nano, request.ttl_ms, len(numbers), *numbers]
            if sizing is not None:
                for bid, slot in slots.items():
                    lease = self._leases.get(bid)
                    if lease is None:
                        continue
                    args = slot_args[slot - 1]
                    if 0 < lease.free and (bid in reclaim or lease.free < biggest[bid] or lease.draining_until > now or lease.expiry < now + longest):
                        # the slice cannot serve these requests: give its free part back first, so Redis decides
                        # them with all of this process's unused capacity (leases never strand capacity)
                        args[5] = lease.free
                        lease.size -= lease.free
                    want = lease.want(sizing, now) - max(0, lease.free)
                    smallest = sizing.min_requests * biggest[bid]
                    if want >= smallest and lease.draining_until <= now:
                        args[6], args[7] = want, smallest
                        args[8] = now + longest + int(sizing.ttl_s * 1000)
            keys = [self.keys.meta, *slot_keys, *(self.keys.record(r.rid) for r in batch)]
            drain_ms = int(sizing.drain_s * 1000) if sizing else 1000
            share = sizing.share if sizing else 8
            args = [now, self.owner, RECORD_GRACE_MS, drain_ms, share, len(slots), len(batch), *(v for a in slot_args for v in a), *req_args]
            try:
                out = await self._run("reserve_batch", keys, args)
            except _Unavailable as exc:
                for bid in slots:  # nothing is known about our slices any more: use none until Redis answers
                    lease = self._leases.get(bid)
                    if lease is not None:
                        lease.size = lease.used
                if self.failure_mode == "fail_closed":
                    raise self._unavailable(exc) from None
                for request in batch:  # fail_open: granted without holds (and journaled when settled)
                    self._remember(request.rid, request.bids, request.nano, now + request.ttl_ms + RECORD_GRACE_MS, now)
                    _resolve(request.future, Reservation(request.rid, True, None, from_nano(request.nano)))
                return
            base = 3 * len(batch)  # the slices first: a denial below looks at what is free in them now
            for bid, slot in slots.items():
                size, expiry, draining = (_int(v) for v in out[base + 3 * (slot - 1): base + 3 * slot])
                lease = self._leases.get(bid)
                if lease is None:
                    if size <= 0:
                        continue
                    lease = self._leases[bid] = Lease()
                before = lease.size
                lease.size, lease.expiry, lease.flag_at = size - lease.pending, expiry, now
                if lease.size > before:  # a slice taken (or grown) now: idle_s counts from here, not from 1970
                    lease.last_use = now
                if draining:
                    lease.draining_until = now + drain_ms
            unflushed = bool(self._pending) or any(not b.applied for b in self._batches)
            again: list[_Request] = []
            for i, request in enumerate(batch):
                code, denied, held = _int(out[3 * i]), _str(out[3 * i + 1]), _int(out[3 * i + 2])
                if code != 1 and unflushed and not request.flushed:
                    # Redis still counted the holds of settles this store has not applied yet (hold >= bill):
                    # apply them, then decide again, so a denial is exact
                    request.flushed = True
                    again.append(request)
                    continue
                if code != 1 and denied not in request.reclaim and self._has_free_slice(denied):
                    # Redis counted this process's whole slice of the denied budget as held (a request that
                    # reaches Redis is not granted from it): its free part is this process's own unused
                    # capacity, so give it back and decide again (leases never strand capacity)
                    request.reclaim.add(denied)
                    again.append(request)
                    continue
                if code == 1:
                    self._remember(request.rid, request.bids, held, now + request.ttl_ms + RECORD_GRACE_MS, now)
                    _resolve(request.future, Reservation(request.rid, True, None, from_nano(held)))
                elif code == 2 and time.monotonic() < request.give_up_at:
                    # other processes hold slices that would make it fit: they were asked to drain; decide again
                    asyncio.get_running_loop().call_later(sizing.poll_s if sizing else 0.05, self._requeue, request)
                else:
                    _resolve(request.future, Reservation(request.rid, False, denied, Decimal(0)))
            if sizing is not None and any(lease.size > 0 for lease in self._leases.values()):
                self._start_keeper()
        if again:
            try:
                await self.flush(confirm=False)
            except StoreError:
                pass  # decided again against what Redis has
            self._queue[:0] = again

    def _has_free_slice(self, bid: str) -> bool:
        """Whether this process holds a slice of ``bid`` with a free part (as far as it knows)."""
        lease = self._leases.get(bid)
        return lease is not None and lease.free > 0

    def _requeue(self, request: _Request) -> None:
        if request.future.done():
            return
        self._queue.append(request)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_loop())

    # ------------------------------------------------------------------ the lease keeper
    def _start_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep_leases())

    async def _keep_leases(self) -> None:
        """While this process holds slices: give back the free part of those whose budget is draining (another
        process needs it) or that sat idle for ``idle_s``; forget expired ones."""
        assert self.sizing is not None
        sizing = self.sizing
        while not self._closed:
            await asyncio.sleep(sizing.poll_s)
            now = self.now_ms()
            self._expire_slices(now)
            live = {bid: lease for bid, lease in self._leases.items() if lease.size > 0 and lease.expiry > now}
            for bid, lease in self._leases.items():
                if lease.expiry <= now and lease.size > 0:
                    lease.size = lease.used = 0
            if not live:
                self._leases = {b: lease for b, lease in self._leases.items() if lease.used or lease.pending or lease.demand_at > now - 60_000}
                if not any(lease.size > 0 for lease in self._leases.values()):
                    return
                continue
            # the drain flags not read in the last poll_s by a settle batch or reserve batch: one MGET
            poll_ms = int(sizing.poll_s * 1000)
            stale = [bid for bid, lease in live.items() if now - lease.flag_at >= poll_ms]
            if stale:
                try:
                    flags = await self.client.mget([self.keys.drain_flag(bid) for bid in stale])
                except Exception:  # noqa: BLE001 - unreachable: the slices simply stay until they expire
                    continue
                for bid, flag in zip(stale, flags):
                    lease = live[bid]
                    lease.flag_at = now
                    if flag is not None:
                        lease.draining_until = now + int(sizing.drain_s * 1000)
            give: list[str] = []
            for bid, lease in live.items():
                if lease.free > 0 and (lease.draining_until > now or now - lease.last_use >= sizing.idle_s * 1000):
                    give.append(bid)
            if give:
                with contextlib.suppress(StoreError, _Unavailable):
                    await self._give_back(give)

    async def _give_back(self, bids: Sequence[str]) -> None:
        """Return the free part of this process's slices of ``bids`` to their budgets (one call)."""
        async with self._slice_guard():
            await self._give_back_locked(bids)

    async def _give_back_locked(self, bids: Sequence[str]) -> None:
        now = self.now_ms()
        keys: list[str] = [self.keys.meta]
        args: list[Any] = []
        for bid in bids:
            lease = self._leases[bid]
            free = max(0, lease.free)
            lease.size -= free
            key, kind, first, _, _ = self._spend_key(bid, now)
            keys += self.keys.slot(key, bid)
            args += [bid, kind, first, 0, "", free, 0, 0, 0]
        out = await self._run("reserve_batch", keys, [now, self.owner, RECORD_GRACE_MS, 1000, 8, len(bids), 0, *args])
        for i, bid in enumerate(bids):
            lease = self._leases[bid]
            lease.size, lease.expiry = _int(out[3 * i]) - lease.pending, _int(out[3 * i + 1])

    # ------------------------------------------------------------------ settle
    async def settle(self, reservation_id: str, actual: Decimal) -> bool:
        """See :meth:`Store.settle`: acknowledged once logged locally (applied to Redis by the flusher).
        A reservation this store did not grant, or a bill above its hold, is settled synchronously
        (from a slice: a bill above its hold is taken from the slice's free part when it fits)."""
        check_id(reservation_id)
        nano = to_nano(actual, what="actual cost")
        now = self.now_ms()
        if reservation_id in self._done:
            return False
        found = self._slices.get(reservation_id)
        if found is not None:
            return await self._settle_slice(reservation_id, found, nano, now)
        local = self._local.get(reservation_id)
        if local is None or nano > local[1] or self._closed:
            await self._recover_once()
            return await super().settle(reservation_id, actual)
        bids, held, _ = local
        self._defer(reservation_id, nano, held, list(bids), now, "", None)
        self._local.pop(reservation_id, None)
        self._mark_done(reservation_id, now)
        return True

    async def _settle_slice(self, rid: str, found: _Slice, nano: int, now: int) -> bool:
        self._expire_slices(now)
        leases = []
        for bid in found.bids:
            lease = self._leases.get(bid)
            if lease is None:
                lease = self._leases[bid] = Lease()
            leases.append(lease)
        held = found.nano if found.state == "held" else 0
        absorbed = True
        for lease in leases:
            if lease.free + held < nano:
                absorbed = False
        # the slice shrinks by the bill (booked instead); a bill beyond what the slice can cover shrinks it
        # by what it covered, and is booked at once (the cap can then overshoot by the difference)
        dec = nano if absorbed else held
        for lease in leases:
            lease.used -= held
            lease.size -= dec
            lease.pending += dec
        found.state = "settled"
        self._defer(rid, nano, None, list(found.bids), now, self.owner, dec)
        self._mark_done(rid, now)
        del self._slices[rid]
        if not absorbed:
            await self.flush(confirm=False)
        return True

    async def release(self, reservation_id: str) -> bool:
        """See :meth:`Store.release` (synchronous: a failed call is rare, and a pending release only keeps
        capacity held; a reservation granted from a slice goes back to the slice)."""
        check_id(reservation_id)
        if reservation_id in self._done:
            return False
        found = self._slices.get(reservation_id)
        if found is not None:
            self._expire_slices(self.now_ms())
            if found.state != "held":
                return False
            found.state = "released"
            for bid in found.bids:
                self._leases[bid].used -= found.nano
            return True
        await self._recover_once()
        return await super().release(reservation_id)

    # ------------------------------------------------------------------ reads see this store's settles
    async def _sync_for_read(self) -> None:
        if self._pending or any(not b.applied for b in self._batches) or not self._recovered:
            try:
                await self.flush(confirm=False)
            except StoreUnavailableError:
                if self.failure_mode == "fail_closed":
                    raise

    async def spend(self, budget: BudgetScope) -> Decimal:
        """See :meth:`Store.spend` (this store's pending settles are applied first)."""
        await self._sync_for_read()
        return await super().spend(budget)

    def _slices_show_pending(self) -> bool:
        """Whether Redis's counters, with this process's slices subtracted as :meth:`snapshot` does, already
        show every settle of this store exactly, applied or not: true when every pending settle is of a
        reservation granted from a live slice of this process. Such a settle moved the bill from the
        slice's free part to ``Lease.pending`` locally, and Redis still counts it inside the slice (a
        slice is a hold), so settled + holds + slices - this process's free part is exact. A settle of a
        Redis hold (counted at the hold, >= the bill), an adopted log, a batch to apply again after a
        failover or a slice that expired with settles pending need the flush."""
        if self._pending_holds or not self._recovered:
            return False
        for batch in self._batches:
            if not batch.applied and (batch.holds or batch.orphan is not None or batch.extra.get("reapply")):
                return False
        now = self.now_ms()
        return all(lease.expiry > now + 1000 for lease in self._leases.values() if lease.pending)

    async def snapshot(self, budgets: Sequence[BudgetScope], pools: Sequence[QuotaPool], ramp_families: Sequence[str]) -> LedgerSnapshot:
        """See :meth:`Store.snapshot` (this store's pending settles are applied first, unless the view is
        exact without them: see :meth:`_slices_show_pending`; the read then costs one round trip and never
        waits for the flusher)."""
        if self.sizing is None or not self._slices_show_pending():
            await self._sync_for_read()
        snap = await super().snapshot(budgets, pools, ramp_families)
        if self.sizing is not None:  # this process's unused slices are not spend (other processes' are held)
            now = self.now_ms()
            self._expire_slices(now)
            for budget in budgets:
                lease = self._leases.get(budget.id)
                # a slice that expired no longer counts in Redis (the keeper resets it at its next tick only)
                if lease is not None and lease.free > 0 and lease.expiry > now and budget.id in snap.spend:
                    snap.spend[budget.id] = max(Decimal(0), snap.spend[budget.id] - from_nano(lease.free))
        return snap

    async def pool_usage(self, pool: QuotaPool) -> PoolUsage:
        """See :meth:`Store.pool_usage`."""
        await self._sync_for_read()
        return await super().pool_usage(pool)

    async def list_scopes(self) -> list[ScopeInfo]:
        """See :meth:`Store.list_scopes`."""
        await self._recover_once()
        return await super().list_scopes()

    # ------------------------------------------------------------------ flusher
    def _start_flusher(self) -> None:
        """Have the flusher look at the log now (an adopted log to apply)."""
        self._wake_flusher(time.monotonic())

    def _wake_flusher(self, due: float) -> None:
        """Make sure the flusher runs at ``due`` (monotonic) at the latest: start it, or move its sleep's end
        earlier. One timer per sleep, no task or timer per settle."""
        loop = asyncio.get_running_loop()
        if self._flusher is None or self._flusher.done() or self._flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush_loop())  # (a store reused on a new event loop too)
            return
        waiter = self._flush_waiter
        if waiter is not None and not waiter.done() and due < self._flush_due:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
            self._flush_due = due
            self._flush_timer = loop.call_later(max(0.0, due - time.monotonic()), _wake, waiter)

    def _lock_flush(self) -> asyncio.Lock:
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        return self._flush_lock

    def _next_flush(self) -> float:
        """When (monotonic) the flusher has something to do: send the pending settles once the oldest is
        ``flush_interval_s`` old (so a low rate still batches what arrives meanwhile, and no settle waits
        longer); apply batches not applied yet (adopted logs, a failover's re-apply) now; read the
        replication state of applied, unconfirmed batches every ``CONFIRM_INTERVAL_S``; otherwise look
        for dead processes' logs every ``ORPHAN_SCAN_S``."""
        for batch in self._batches:
            if not batch.applied:
                return 0.0  # (before the pending settles' time: an adopted log waited for it)
        if self._pending:
            return self._pending_at + self.flush_interval_s
        if not self._batches:
            return self._next_orphan_scan  # (each of these times moves on when the flush does it)
        return self._next_confirm

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            due = self._next_flush()
            wait = due - time.monotonic()
            if wait > 0.0005:  # sleep until then; a settle logged meanwhile moves the end earlier (_wake_flusher)
                waiter: asyncio.Future[None] = loop.create_future()
                self._flush_waiter, self._flush_due = waiter, due
                self._flush_timer = loop.call_later(wait, _wake, waiter)
                try:
                    await waiter
                finally:
                    self._flush_timer.cancel()
                    self._flush_waiter = self._flush_timer = None
                continue
            try:
                await self._flush(confirm=True, sync=True, confirm_now=False)
            except (StoreError, OSError) as exc:
                self.flush_errors += 1
                log.warning("ledger %s: deferred settles not flushed yet (%s); kept in %s, retrying", self.url, exc, self.settle_log.dir)
                await asyncio.sleep(max(self.retry_interval_s, 0.05))
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the flusher die: the log keeps every entry
                self.flush_errors += 1
                log.exception("ledger %s: settle flusher error", self.url)
                await asyncio.sleep(max(self.retry_interval_s, 0.05))

    async def flush(self, confirm: bool = True) -> int:
        """Apply every pending settle of this store to Redis now (and, with ``confirm``, fsync the log, read
        the primary's replication state and delete the log entries that Redis confirmed). Returns the number
        of entries applied. Raises :class:`StoreUnavailableError` when Redis cannot be reached (the entries
        stay in the log)."""
        return await self._flush(confirm=confirm, sync=confirm, confirm_now=True)

    async def _flush(self, *, confirm: bool, sync: bool, confirm_now: bool) -> int:
        """``sync``: fsync the log (and rotate it when due) first. The background flusher syncs once per
        interval; a flush for a read does not (the entries it sends are synced by the next interval's pass,
        so a crash of the machine still loses at most one interval, and sending never makes an entry less
        durable). ``confirm_now``: read the replication state now rather than every CONFIRM_INTERVAL_S."""
        async with self._lock_flush():
            await self._recover_locked()
            log_ = self.settle_log
            entries, self._pending = self._pending, []  # all in the current segment
            if entries:
                self._batches.append(_Batch(log_.current, entries, holds=self._pending_holds))
            self._pending_holds = 0
            # fsync off the event loop (one hop to the file thread, only when something was written); a segment
            # is closed about once a second and deleted once every batch in it is confirmed, so the file
            # system sees few creates and deletes
            if sync and log_.rotation_due(SEGMENT_S):
                rotated = log_.rotate()
                assert rotated is not None
                self._closed_segments.add(rotated[0])
                _, old_fd, dirty = rotated
                await self._files.run(lambda: SettleLog.finish(old_fd, dirty))
            elif sync:
                fd = log_.dirty_fd()
                if fd is not None:
                    await self._files.run(lambda: os.fsync(fd))
            applied = 0
            try:
                for attempt in range(2):  # a second pass applies again what a failover lost
                    for batch in self._batches:
                        if not batch.applied:
                            await self._apply_batch(batch)
                            applied += len(batch.entries)
                    if not confirm or not self._batches:
                        break
                    if not confirm_now and attempt == 0 and time.monotonic() < self._next_confirm:
                        break  # read the replication state at most every CONFIRM_INTERVAL_S
                    await self._confirm()
                    if all(batch.applied for batch in self._batches):
                        break
            except _Unavailable as exc:
                raise self._unavailable(exc) from None
            if applied and not confirm and self._batches:  # applied for a read: the flusher confirms them
                self._wake_flusher(self._next_confirm)
            return applied

    async def _apply_batch(self, batch: _Batch) -> None:
        if self._replid is None:  # the first batch: learn which primary it is written to
            self._replid = (await self._replication())[0]
        now = self.now_ms()
        for start in range(0, len(batch.entries), MAX_BATCH):
            chunk = batch.entries[start:start + MAX_BATCH]
            async with self._slice_guard():  # the slice decrements are taken in before another slice script
                await self._settle_batch(chunk, now)
                for e in chunk:  # Redis now answers a repeated settle itself (already settled: False)
                    self._done.pop(e["rid"], None)
                # this process's slice decrements are now in Redis: taken off pending once per entry (a batch
                # retried after a later call of it failed sends its first calls' entries again)
                counted = batch.extra.get("counted", 0)
                for lease, ldec in self._own_slice_decrements(chunk[max(0, counted - start):]):
                    lease.pending -= ldec
                batch.extra["counted"] = max(counted, start + len(chunk))
        # The batch is confirmed once every replica acknowledged the primary's offset as read (by _confirm)
        # after these writes, on a primary whose replication id is still the one read before them: a
        # failover in between changes it, and the batch is applied again (idempotent).
        batch.replid, batch.offset = self._replid or "", -1
        batch.applied = True

    async def _settle_batch(self, entries: list[dict[str, Any]], now: int) -> list[int]:
        """Apply ``entries`` (settle-log entries) in one ``settle_batch.lua`` call; one code per entry (1 done
        now, 0 already settled / released). The entries travel as one packed argument (space-separated
        fields, see the script), so the client encodes a handful of arguments instead of ~14 per entry."""
        keys = [self.keys.record(check_id(e["rid"])) for e in entries]
        slot_keys: list[str] = []
        slot_args: list[str] = []
        slot_bids: list[str] = []
        slots: dict[str, int] = {}
        fields: list[str] = []
        rolling_keys: dict[str, tuple[str, int, int, int] | None] = {}  # bid -> (key, bucket, first, ttl) at now
        valid = self._valid_bids
        for e in entries:
            bids = e.get("bids") or []
            mode = e.get("mode", "S")
            if mode not in ("S", "R"):
                raise ValueError(f"settle log entry {e['rid']!r}: mode must be 'S' or 'R', not {mode!r}")
            owner = e.get("owner") or "-"
            if owner != "-":
                check_id(owner, "settle log owner")  # no spaces: it is one field of the packed argument
            held = e.get("held")
            fields.append(f"{e['rid']} {mode} {int(e.get('nano', 0))} {'-' if held is None else int(held)} {owner} {int(e.get('ldec', 0))} {len(bids)}")
            for bid in bids:
                if bid not in valid:
                    parse_budget_id(bid, Decimal(0))  # validates: nothing from a log file escapes the prefix
                    if len(valid) > 4096:
                        valid.clear()
                    valid.add(bid)
                found = rolling_keys.get(bid, False)
                if found is False:  # a rolling window's key, oldest bucket and TTL are the same for the batch
                    window = window_of(bid)
                    if window.kind == "rolling":
                        win = rolling(window.span, now)
                        found = (self.keys.rolling(bid), win.bucket_ms, win.first, win.key_ttl_ms)
                    else:
                        found = None
                    rolling_keys[bid] = found
                if found is not None:  # the bucket written is the one of the settle's time
                    key, bucket, first, ttl = found
                    kind, widx = "R", int(e.get("at", now)) // bucket
                else:
                    key, kind, first, widx, ttl = self._spend_key(bid, now, int(e.get("at", now)))
                slot = slots.get(key)
                if slot is None:
                    slot = slots[key] = len(slots) + 1
                    slot_keys += self.keys.slot(key, bid)
                    slot_args.append(f"{kind} {first}")
                    slot_bids.append(bid)
                fields.append(f"{slot} {widx} {ttl}")
        args = [now, IDEMPOTENCY_TTL_MS, len(entries), len(slots), " ".join(slot_args), " ".join(fields)]
        codes, _, flags = _str(await self._run("settle_batch", keys + slot_keys, args)).partition(":")
        if self.sizing is not None:
            self._note_drain_flags(slot_bids, flags, now)
        return [int(code) for code in codes]

    def _note_drain_flags(self, bids: list[str], flags: str, now: int) -> None:
        """Take in the drain flags a settle batch read (one digit per budget in ``bids``): this process's
        slices of those budgets need no separate poll for ``poll_s`` (see :meth:`_keep_leases`)."""
        assert self.sizing is not None
        for bid, flag in zip(bids, flags):
            lease = self._leases.get(bid)
            if lease is None:
                continue
            lease.flag_at = now
            if flag == "1":
                lease.draining_until = now + int(self.sizing.drain_s * 1000)

    # ------------------------------------------------------------------ replication confirmation
    async def _replication(self) -> tuple[str, int, list[int]]:
        """(replication id, primary offset, acknowledged offsets of the online replicas) of the node that
        holds this ledger; no replicas when the server cannot say (fakeredis)."""
        try:
            if hasattr(self.client, "get_node_from_key"):
                node = self.client.get_node_from_key(self.keys.meta)
                info = await self.client.info("replication", target_nodes=node)
            else:
                info = await self.client.info("replication")
        except _UNREACHABLE as exc:
            raise _Unavailable(f"{type(exc).__name__}: {exc}") from exc
        except Exception:  # a server without INFO replication (fakeredis): no replicas
            return "", 0, []
        replicas = []
        for name, value in info.items():
            if name.startswith("slave") and isinstance(value, dict):  # every connected replica, syncing ones too
                replicas.append(int(value.get("offset", 0)))
        return str(info.get("master_replid", "")), int(info.get("master_repl_offset", 0)), replicas

    async def _confirm(self) -> None:
        replid, offset, replicas = await self._replication()
        self._replid = replid
        self._next_confirm = time.monotonic() + CONFIRM_INTERVAL_S
        # A replica that dropped its link (lagging, restarting) is not listed: until it is back (or gone for
        # REPLICA_GRACE_S), confirm nothing, since a failover could promote it without our entries.
        seen, since = self._replicas_seen.get(replid, (0, 0.0))
        now = time.monotonic()
        if len(replicas) >= seen or now - since > REPLICA_GRACE_S:
            self._replicas_seen[replid] = (len(replicas), now)
            missing = False
        else:
            missing = True
        keep: list[_Batch] = []
        lost = [b for b in self._batches if b.applied and b.replid != replid and b.extra.get("counted")]
        if lost:
            async with self._slice_guard():
                for batch in lost:
                    self._uncount(batch)
        for batch in self._batches:
            if batch.applied and batch.replid != replid:
                batch.applied = False  # failover (or restart): the new primary may miss it; apply again
            elif batch.applied and batch.offset < 0:
                batch.offset = offset  # the first read after it was applied: at or past its writes
            if not batch.applied or missing or (replicas and min(replicas) < batch.offset):
                keep.append(batch)  # not applied yet, or a replica has not acknowledged it yet
        referenced = {b.segment for b in keep}
        done = [p for p in self._closed_segments | {b.segment for b in self._batches if b.orphan} if p is not None and p not in referenced]
        if done:
            self._closed_segments.difference_update(done)
            await self._files.run(lambda: [SettleLog.drop(p) for p in done])
        adopted = {(b.orphan, b.orphan_fd) for b in self._batches if b.orphan is not None and b.orphan_fd is not None}
        for owner, fd in adopted:
            if not any(b.orphan == owner for b in keep):  # an adopted log fully confirmed: remove it
                self.settle_log.bury(owner, fd)  # type: ignore[arg-type]
        self._batches = keep

    def _uncount(self, batch: _Batch) -> None:
        """A failover: the new primary may miss ``batch`` (it is applied again), and with it the slice decrements
        it applied. Count them as pending again until then, and take them off the slices' local size now: a
        reply of the new primary taken in since the failover (this store learns of it only here) showed the
        slices without them, so their free part was over-stated by them and would be granted a second time,
        beyond the cap. If the new primary has the batch after all, the slices look smaller than they are
        until the next reply (which only sends more requests to Redis)."""
        counted = batch.extra.pop("counted", 0)
        batch.extra["reapply"] = True
        for lease, ldec in self._own_slice_decrements(batch.entries[:counted]):
            lease.pending += ldec
            lease.size -= ldec

    def _own_slice_decrements(self, entries: Sequence[dict[str, Any]]) -> Iterator[tuple[Lease, int]]:
        """(lease, nano) for each slice decrement that ``entries`` (settle-log entries) make on a slice this
        process still holds: the settles of reservations it granted from its own slices."""
        for e in entries:
            if e.get("owner") == self.owner and e.get("ldec"):
                for bid in e.get("bids") or ():
                    lease = self._leases.get(bid)
                    if lease is not None:
                        yield lease, int(e["ldec"])

    # ------------------------------------------------------------------ recovery of dead processes' logs
    async def _recover_once(self) -> None:
        if not self._recovered or time.monotonic() >= self._next_orphan_scan:
            async with self._lock_flush():
                await self._recover_locked()

    async def _recover_locked(self) -> None:
        if self._recovered and time.monotonic() < self._next_orphan_scan:
            return
        self._next_orphan_scan = time.monotonic() + ORPHAN_SCAN_S
        for owner, segments in self.settle_log.orphans():
            if any(b.orphan == owner for b in self._batches):
                continue
            fd = self.settle_log.adopt(owner)
            if fd is None:
                continue
            if not segments:
                self.settle_log.bury(owner, fd)
                continue
            for segment in segments:
                self._batches.append(_Batch(segment, SettleLog.entries(segment), orphan=owner, orphan_fd=fd))
            self._start_flusher()
        self._recovered = True

    # ------------------------------------------------------------------ lifecycle
    def backlog(self) -> int:
        """Settles acknowledged but not yet confirmed by Redis (this process's and adopted ones)."""
        return len(self._pending) + sum(len(b.entries) for b in self._batches)

    async def close(self, timeout_s: float | None = None) -> None:
        """Give back unused slices, flush and confirm what can be (waiting for replicas), stop the flusher
        and close Redis, all within ``timeout_s`` (default: the store's ``close_timeout_s``, URL
        ``close_ms``), plus at most ``POOL_CLOSE_S`` to close the connection pool, however Redis behaves
        (down, or up but not answering). Entries Redis did not confirm stay in the log, synced, for the
        next process (or a restart) to replay; replay books each exactly once. A slice not given back
        expires with its TTL."""
        timeout = self.close_timeout_s if timeout_s is None else float(timeout_s)
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._keeper
        try:
            await asyncio.wait_for(self._close_remote(time.monotonic() + timeout), timeout)
        except asyncio.TimeoutError:
            log.warning("ledger %s: close gave up on Redis after %.1f s; %d settles stay in %s for replay",
                        self.url, timeout, self.backlog(), self.settle_log.dir)
        except Exception:  # noqa: BLE001 - e.g. a settle log entry refused: the rest of close must still run
            log.exception("ledger %s: close could not apply the settle log; %d settles stay in %s",
                          self.url, self.backlog(), self.settle_log.dir)
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
        for batch in self._batches:  # adopted logs not confirmed: give them back (lock released below)
            if batch.orphan_fd is not None:
                os.close(batch.orphan_fd)
                for other in self._batches:
                    if other.orphan == batch.orphan:
                        other.orphan_fd = None
        self.settle_log.close(remove=not self._batches and not self._pending)
        try:
            await asyncio.wait_for(super().close(), POOL_CLOSE_S)
        except asyncio.TimeoutError:
            log.warning("ledger %s: the Redis connection pool did not close within %.1f s", self.url, POOL_CLOSE_S)

    async def _close_remote(self, deadline: float) -> None:
        """The Redis part of :meth:`close` (cancelled at the bound)."""
        giving = [bid for bid, lease in self._leases.items() if lease.free > 0 and lease.expiry > self.now_ms()]
        if giving:
            with contextlib.suppress(StoreError, _Unavailable, OSError):
                await self._give_back(giving)
        with contextlib.suppress(StoreError, OSError):
            while True:
                await self.flush(confirm=True)
                if not self._batches or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.05)

