"""Redis off the request path: durable deferred settlement (and, with ``leases``, budget leases).

:class:`DeferredRedisStore` keeps the :class:`~router.ledger.base.Store` contract of :class:`RedisStore`
(the same test suite runs over it) and changes *when* Redis is written:

* **Deferred settlement.** ``settle`` of a reservation this store granted returns once its entry is in
  the local settle log (:mod:`router.ledger.wal`: one ``write``, so it survives ``kill -9``). A background
  flusher applies the logged settles to Redis every ``flush_interval_s`` in ONE script call per batch
  (``settle_batch.lua``) and deletes the log entries only when Redis confirmed them: the primary applied
  them and every connected replica acknowledged the write (checked from ``INFO replication`` offsets;
  with no replica the primary's reply suffices). Unconfirmed entries are applied again after a failover
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
import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from router.errors import StoreError, StoreUnavailableError
from router.ledger.base import IDEMPOTENCY_TTL_MS
from router.ledger.keys import check_id, parse_budget_id
from router.ledger.money import to_nano
from router.ledger.redis_store import _UNREACHABLE, RedisStore, _int, _Unavailable
from router.ledger.types import BudgetScope, LedgerSnapshot, PoolUsage, QuotaPool, ScopeInfo
from router.ledger.wal import SettleLog

log = logging.getLogger("router.ledger")

#: Most settles applied by one script call (bounds the time Redis spends in one script).
MAX_BATCH = 128
#: How often a live process looks for settle logs left by dead processes.
ORPHAN_SCAN_S = 5.0


@dataclass
class _Batch:
    """Settle-log entries applied (or to apply) together; ``segment`` is deleted once confirmed."""

    segment: Path | None
    entries: list[dict[str, Any]]
    applied: bool = False
    replid: str = ""
    offset: int = 0
    orphan: str | None = None  # the dead owner whose log this came from
    orphan_fd: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DeferredRedisStore(RedisStore):
    """A :class:`RedisStore` that settles through a local durable log (see the module docstring).

    ``settle_log_dir``: the settle log directory (default: ``JOURNAL_PATH.settles`` next to the fail-open
    journal, i.e. ``$TMPDIR/router-ledger-PREFIX.jsonl.settles``); every process sharing the directory
    recovers the logs of dead ones. ``flush_interval_s``: how long settles are collected before one batch
    is sent (the staleness bound seen by other processes, plus one round trip). ``fsync``: ``batch``
    (fsync each segment before it is sent) or ``always`` (fsync every settle before it returns).
    """

    def __init__(
        self,
        client: Any,
        *,
        settle_log_dir: str | None = None,
        flush_interval_s: float = 0.02,
        fsync: str = "batch",
        leases: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(client, **options)
        if leases:
            raise ValueError("budget leases are not available in this version (use settle=deferred alone)")
        if not isinstance(flush_interval_s, (int, float)) or isinstance(flush_interval_s, bool) or not 0 <= flush_interval_s <= 3600:
            raise ValueError(f"flush_interval_s must be between 0 and 3600 seconds, not {flush_interval_s!r}")
        journal = options.get("journal_path") or f"{tempfile.gettempdir()}/router-ledger-{self.keys.prefix}.jsonl"
        self.settle_log = SettleLog(settle_log_dir or f"{journal}.settles", fsync=fsync)
        self.flush_interval_s = float(flush_interval_s)
        self._pending: list[dict[str, Any]] = []
        self._batches: list[_Batch] = []
        self._done: OrderedDict[str, int] = OrderedDict()  # rid -> keep until (ms): settled here already
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._closed = False
        self._recovered = False
        self._next_orphan_scan = 0.0
        self._replicas_checked = 0.0
        self.flush_errors = 0

    # ------------------------------------------------------------------ settle
    def _mark_done(self, rid: str, now: int) -> None:
        self._done[rid] = now + IDEMPOTENCY_TTL_MS
        self._done.move_to_end(rid)
        while self._done:
            first_rid, until = next(iter(self._done.items()))
            if until > now and len(self._done) <= 1_000_000:
                break
            del self._done[first_rid]

    def _defer(self, entry: dict[str, Any]) -> None:
        self.settle_log.append(entry)
        self._pending.append(entry)
        self._start_flusher()

    async def settle(self, reservation_id: str, actual: Decimal) -> bool:
        """See :meth:`Store.settle`: acknowledged once logged locally (applied to Redis by the flusher).
        A reservation this store did not grant, or a bill above its hold, is settled synchronously."""
        check_id(reservation_id)
        nano = to_nano(actual, what="actual cost")
        now = self.now_ms()
        if reservation_id in self._done:
            return False
        local = self._local.get(reservation_id)
        if local is None or nano > local[1] or self._closed:
            await self._recover_once()
            return await super().settle(reservation_id, actual)
        bids, held, _ = local
        self._defer({"rid": reservation_id, "mode": "S", "nano": nano, "held": held, "bids": list(bids), "at": now, "owner": ""})
        self._local.pop(reservation_id, None)
        self._mark_done(reservation_id, now)
        return True

    async def release(self, reservation_id: str) -> bool:
        """See :meth:`Store.release` (synchronous: a failed call is rare, and a pending release only keeps
        capacity held)."""
        check_id(reservation_id)
        if reservation_id in self._done:
            return False
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

    async def snapshot(self, budgets: Sequence[BudgetScope], pools: Sequence[QuotaPool], ramp_families: Sequence[str]) -> LedgerSnapshot:
        """See :meth:`Store.snapshot` (this store's pending settles are applied first)."""
        await self._sync_for_read()
        return await super().snapshot(budgets, pools, ramp_families)

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
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    def _lock_flush(self) -> asyncio.Lock:
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        return self._flush_lock

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if self.flush_interval_s:
                await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush(confirm=True)
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
            if self._batches or self._pending:
                self._wake.set()  # unconfirmed entries: look again after the interval

    async def flush(self, confirm: bool = True) -> int:
        """Apply every pending settle of this store to Redis now (and, with ``confirm``, delete the log
        entries that Redis confirmed). Returns the number of entries applied. Raises
        :class:`StoreUnavailableError` when Redis cannot be reached (the entries stay in the log)."""
        async with self._lock_flush():
            await self._recover_locked()
            segment = self.settle_log.seal()
            if self._pending or segment is not None:
                self._batches.append(_Batch(segment, self._pending))
                self._pending = []
            applied = 0
            try:
                for _ in range(2):  # a second pass applies again what a failover lost
                    for batch in self._batches:
                        if not batch.applied:
                            await self._apply_batch(batch)
                            applied += len(batch.entries)
                    if not confirm or not self._batches:
                        break
                    await self._confirm()
                    if all(batch.applied for batch in self._batches):
                        break
            except _Unavailable as exc:
                raise self._unavailable(exc) from None
            return applied

    async def _apply_batch(self, batch: _Batch) -> None:
        now = self.now_ms()
        for start in range(0, len(batch.entries), MAX_BATCH):
            await self._settle_batch(batch.entries[start:start + MAX_BATCH], now)
        # Read the primary's replication position after the writes: the batch is confirmed once every
        # replica acknowledged that offset (if this read fails, the batch is simply applied again later).
        batch.replid, batch.offset, _ = await self._replication()
        batch.applied = True

    async def _settle_batch(self, entries: list[dict[str, Any]], now: int) -> list[int]:
        keys = [self.keys.record(check_id(e["rid"])) for e in entries]
        slot_keys: list[str] = []
        slot_args: list[Any] = []
        slots: dict[str, int] = {}
        entry_args: list[Any] = []
        for e in entries:
            bids = e.get("bids") or []
            entry_args += [e["rid"], e.get("mode", "S"), int(e.get("nano", 0)), "" if e.get("held") is None else int(e["held"]), e.get("owner") or "", len(bids)]
            for bid in bids:
                parse_budget_id(bid, Decimal(0))  # validates: nothing from a log file escapes the prefix
                key, kind, first, widx, ttl = self._spend_key(bid, now, int(e.get("at", now)))
                slot = slots.get(key)
                if slot is None:
                    slot = slots[key] = len(slots) + 1
                    slot_keys += [key, self.keys.hold_set(bid), self.keys.hold_sum(bid), self.keys.lease(bid)]
                    slot_args += [kind, first]
                entry_args += [slot, widx, ttl]
        args = [now, IDEMPOTENCY_TTL_MS, len(entries), len(slots), *slot_args, *entry_args]
        return [_int(v) for v in await self._run("settle_batch", keys + slot_keys, args)]

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
        replid, _, replicas = await self._replication()
        keep: list[_Batch] = []
        for batch in self._batches:
            if batch.applied and batch.replid != replid:
                batch.applied = False  # failover (or restart): the new primary may miss it; apply again
            if not batch.applied or (replicas and min(replicas) < batch.offset):
                keep.append(batch)  # not applied yet, or a replica has not acknowledged it yet
            elif batch.segment is not None:
                self.settle_log.drop(batch.segment)
        adopted = {(b.orphan, b.orphan_fd) for b in self._batches if b.orphan is not None and b.orphan_fd is not None}
        for owner, fd in adopted:
            if not any(b.orphan == owner for b in keep):  # an adopted log fully confirmed: remove it
                self.settle_log.bury(owner, fd)  # type: ignore[arg-type]
        self._batches = keep

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

    async def close(self, confirm_timeout_s: float = 3.0) -> None:
        """Flush and confirm what can be (waiting up to ``confirm_timeout_s`` for replicas), stop the
        flusher and close Redis. Entries Redis did not confirm stay in the log for the next process."""
        deadline = time.monotonic() + confirm_timeout_s
        with contextlib.suppress(StoreError, OSError):
            while True:
                await self.flush(confirm=True)
                if not self._batches or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.05)
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
        await super().close()

