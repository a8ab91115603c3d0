"""The Router's cache of ledger snapshots on a shared store: stale-while-revalidate with a hard age bound.

A view's age is counted from when its read STARTED (when the read's task first runs; the data is at least
that fresh, so the bound is conservative). A request uses the cached view while it is at most ``max_age_s`` old; once the view is older than
half of that, the request also starts ONE background read that replaces the view when it lands. Only a
request finding no view, or a view older than ``max_age_s``, waits: on the read already in flight when it
started at most ``max_age_s`` ago, else on a new one. So a decision never uses a view whose read started more
than ``max_age_s`` before the request arrived, and on a busy Router requests do not wait on reads at all.

A failed read never replaces the view: the requests waiting on it get its error, the cache keeps what it had
and the next request past the refresh point tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.ledger.types import LedgerSnapshot

#: A refresh starts once the view is older than this fraction of the maximum age.
REFRESH_FRACTION = 0.5
#: At most this many keys (sets of budgets / pools / families) are cached; past it the cache starts over.
MAX_KEYS = 4096


class _Slot:
    """One key's view (the last landed read and when it started) and the read in flight, if any."""

    __slots__ = ("view", "view_started", "pending", "pending_started")

    def __init__(self) -> None:
        self.view: LedgerSnapshot | None = None
        self.view_started = 0.0
        self.pending: asyncio.Future[tuple[float, LedgerSnapshot]] | None = None
        self.pending_started = 0.0


class SnapshotCache:
    """Ledger views per key, at most ``max_age_s`` old (see the module docstring). ``clock``: monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._slots: dict[Hashable, _Slot] = {}

    async def get(self, key: Hashable, max_age_s: float, read: Callable[[], Awaitable[LedgerSnapshot]]) -> LedgerSnapshot:
        """The view of ``key`` whose read started at most ``max_age_s`` ago; ``read()`` makes a new one."""
        now = self._clock()
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) >= MAX_KEYS:  # bounded: many tenants only ever cost a fresh read
                self._slots.clear()
            slot = self._slots[key] = _Slot()
        view = slot.view
        if view is not None:
            age = now - slot.view_started
            if age <= max_age_s:
                if age > max_age_s * REFRESH_FRACTION and slot.pending is None:
                    self._start(slot, read, now)  # revalidate in the background; this request does not wait
                return view
        pending = slot.pending
        if pending is None or now - slot.pending_started > max_age_s or pending.get_loop() is not asyncio.get_running_loop():
            pending = self._start(slot, read, now)
        # Shared by every request waiting: one caller being cancelled must not cancel the others' read.
        return (await asyncio.shield(pending))[1]

    def _start(self, slot: _Slot, read: Callable[[], Awaitable[LedgerSnapshot]], now: float) -> asyncio.Future[tuple[float, LedgerSnapshot]]:
        future = asyncio.ensure_future(self._read(read))
        slot.pending, slot.pending_started = future, now  # it starts no earlier than now: joining it is safe
        future.add_done_callback(partial(self._landed, slot))
        return future

    async def _read(self, read: Callable[[], Awaitable[LedgerSnapshot]]) -> tuple[float, LedgerSnapshot]:
        """``(when the read started, its view)``; the start is taken when the read runs, not when it was
        scheduled (on a busy event loop that is a loop iteration later: the view is that much younger)."""
        started = self._clock()
        return started, await read()

    @staticmethod
    def _landed(slot: _Slot, future: asyncio.Future[tuple[float, LedgerSnapshot]]) -> None:
        """A read ended: a successful one becomes the view unless a later-started read already landed."""
        if slot.pending is future:
            slot.pending = None
        if future.cancelled() or future.exception() is not None:  # retrieved: no "never retrieved" warning
            return
        started, view = future.result()
        if slot.view is None or started >= slot.view_started:
            slot.view, slot.view_started = view, started
