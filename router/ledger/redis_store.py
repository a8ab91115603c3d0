"""Redis ledger backend (redis-py asyncio): standalone, TLS (``rediss://``) and Redis Cluster.

* Every mutation is ONE Lua script (``router/ledger/lua/*.lua``; ``_lib.lua`` is prepended to each),
  registered once with ``register_script``: called by EVALSHA, reloaded automatically on NOSCRIPT (after
  a ``SCRIPT FLUSH`` or a failover to a node that never saw it).
* All keys share the hash tag ``{prefix}`` (see :mod:`router.ledger.keys`), so every script touches one
  Cluster slot; every key a script touches is passed in KEYS.
* Time is the client's clock (the store's ``clock``), passed to each script as an argument: tests can
  inject a clock, and windows line up with the caller's view of time. Workers must therefore keep their
  clocks in sync (NTP); a skew of ``s`` seconds moves a spend event by ``s`` between buckets and can move
  a hold's expiry by ``s``. Key lifetimes (PEXPIRE) are durations, so they run on the server's clock.
* Failure modes: when Redis is unreachable, ``fail_closed`` raises :class:`StoreUnavailableError`
  naming the URL; ``fail_open`` serves (reservations are granted without holds, consumes are billed in
  full, snapshots read as zero), journals every spend event (settle, release, consume, ramp tokens) to
  a local append-only file (:mod:`router.ledger.journal`) bound to this ledger, and replays it
  idempotently as soon as Redis answers again: a background probe tries Redis every
  :data:`PROBE_INTERVAL_S` while it is down, and on its first answer ends the bypass and replays; every
  operation, reads included (``spend``, ``snapshot``, ``list_scopes``, ``pool_usage``), replays a
  pending journal first. Only this ledger's events are replayed (matched by the ledger's id and
  identity, see :mod:`router.ledger.journal`); other events stay in the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.exceptions as rexc

from router.errors import JournalEntryError, StoreError, StoreUnavailableError
from router.ledger import capacity as capacity_mod
from router.ledger import ramp as ramp_mod
from router.ledger import rate as rate_mod
from router.ledger.capacity import PtClaim, PtTotals, check_pt_key, check_tokens, month_of
from router.ledger.base import IDEMPOTENCY_TTL_MS, POLICY_HISTORY, POLICY_TEXT_TTL_MS, RECORD_GRACE_MS, Clock, Store
from router.ledger.journal import Journal, default_journal_path, ledger_identity
from router.ledger.keys import KeySpace, check_budget, check_family, check_id, check_policy, parse_budget_id, window_of
from router.ledger.money import MAX_NANO, from_nano, to_nano
from router.ledger.quota import check_quota_pool
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
from router.ledger.windows import period, rolling, to_datetime

SCRIPTS = ("ledger_id", "reserve", "settle", "snapshot", "consume", "ramp", "scopes", "policy", "settle_batch", "reserve_batch", "pt_claim", "pt_adjust", "pt_usage", "pt_settle", "rate", "rate_stats")
FAILURE_MODES = ("fail_closed", "fail_open")
#: Budgets not named by any reservation for this long are left out of ``list_scopes``.
META_TTL_MS = 35 * 86_400_000
#: A store refreshes a budget's meta entry (limit, last seen) at most this often.
META_REFRESH_MS = 60_000
#: Replay de-duplication keys for journaled ramp events live this long.
RAMP_DEDUPE_TTL_MS = 600_000
#: In ``fail_open``, while Redis is unreachable, a background probe tries it this often (seconds).
PROBE_INTERVAL_S = 0.05
#: RedisClusterException: no seed node reachable, or slots not covered during a failover.
_UNREACHABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ClusterDownError, rexc.RedisClusterException, OSError, asyncio.TimeoutError)

log = logging.getLogger("router.ledger")


@lru_cache(maxsize=1)
def script_sources() -> dict[str, str]:
    """The text of every ledger script (``_lib.lua`` + the script), by name."""
    folder = resources.files("router.ledger") / "lua"
    lib = (folder / "_lib.lua").read_text(encoding="utf-8")
    return {name: lib + "\n" + (folder / f"{name}.lua").read_text(encoding="utf-8") for name in SCRIPTS}


def redact(url: str) -> str:
    """``url`` without its password (for error messages)."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        user = parts.username or ""
        parts = parts._replace(netloc=f"{user}:***@{host}")
    return urlunsplit(parts)


class _Unavailable(Exception):
    """Internal: Redis could not be reached for this call."""


def _int(value: Any) -> int:
    return int(value.decode() if isinstance(value, bytes) else value)


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _journal_int(value: Any, what: str, top: int = 2**63 - 1) -> int:
    """An integer field of a journaled event, 0 to ``top`` (never a bool, a string or a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ValueError(f"{what} must be an integer from 0 to {top}, not {value!r}")
    return value


_TRANSIENT_PREFIXES = ("OOM", "READONLY", "MASTERDOWN", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "BUSY")


def _transient(exc: BaseException) -> bool:
    """A server-state error that passes (memory pressure, failover, loading), not a bad request."""
    if isinstance(exc, (rexc.ReadOnlyError, rexc.BusyLoadingError, rexc.TryAgainError, rexc.ClusterDownError)):
        return True
    return str(exc).upper().startswith(_TRANSIENT_PREFIXES)


def _pool_exhausted(exc: BaseException) -> bool:
    """redis-py's BlockingConnectionPool raises a plain ConnectionError("No connection available.") when
    its wait times out: the server is fine, the client is saturated (fail_open must not bypass caps for it)."""
    return "No connection available" in str(exc)


class RedisStore(Store):
    """The ledger on Redis. ``client``: a ``redis.asyncio.Redis`` / ``RedisCluster`` (or fakeredis) client.

    ``url`` is only used in messages (its password is redacted). ``failure_mode``: ``fail_closed`` or
    ``fail_open``; ``journal_path``: the fail-open journal (default: one per ledger,
    ``$TMPDIR/router-ledger-PREFIX-DIGEST.jsonl``, see :func:`~router.ledger.journal.default_journal_path`).
    ``retry_interval_s``: in ``fail_open``, how long an operation skips Redis after it failed (a background
    probe ends the skip as soon as Redis answers).
    """

    def __init__(
        self,
        client: Any,
        *,
        url: str = "redis://",
        prefix: str = "router",
        failure_mode: str = "fail_closed",
        journal_path: str | None = None,
        clock: Clock | None = None,
        retry_interval_s: float = 0.5,
    ) -> None:
        super().__init__(clock)
        if failure_mode not in FAILURE_MODES:
            raise ValueError(f"failure_mode must be one of {FAILURE_MODES}, not {failure_mode!r}")
        self.client = client
        self.url = redact(url)
        self.keys = KeySpace(prefix)
        #: Which ledger this is (URL host, port, db and prefix; no credentials), recorded in journal events.
        self.identity = ledger_identity(url, prefix)
        #: The ledger's random id (``{P}:id``), known after the first contact in ``fail_open``.
        self.ledger_id: str | None = None
        self.failure_mode = failure_mode
        self.retry_interval_s = retry_interval_s
        self.journal: Journal | None = None
        if failure_mode == "fail_open":
            self.journal = Journal(journal_path or default_journal_path(url, prefix))
        self._scripts = {name: client.register_script(text) for name, text in script_sources().items()}
        # reservation id -> (budget ids, held nano, keep until ms): lets a settle book spend even when the
        # Redis record is gone (Redis restarted empty, fail_open journal) and saves a round trip.
        self._local: OrderedDict[str, tuple[tuple[str, ...], int, int]] = OrderedDict()
        self._down_until = 0.0
        self._replay_lock: asyncio.Lock | None = None
        self._meta_sent: dict[str, tuple[int, int]] = {}
        self._probe: asyncio.Task[None] | None = None
        self._id_scan_after = 0.0
        self._id_scanned: str | None = None

    # ------------------------------------------------------------------ plumbing
    async def _run(self, name: str, keys: list[str], args: list[Any], probe: bool = False) -> Any:
        if self.failure_mode == "fail_open" and not probe and time.monotonic() < self._down_until:
            raise _Unavailable("unreachable a moment ago; retrying shortly")
        try:
            return await self._scripts[name](keys=keys, args=args)
        except rexc.MaxConnectionsError as exc:  # saturated, not unreachable: never switch to fail_open for it
            raise StoreError(f"ledger store {self.url}: connection pool exhausted ({exc})") from exc
        except rexc.ConnectionError as exc:
            if _pool_exhausted(exc):  # BlockingConnectionPool timed out waiting: saturated, not down
                raise StoreError(f"ledger store {self.url}: connection pool exhausted ({exc})") from exc
            self._went_down()
            raise _Unavailable(f"{type(exc).__name__}: {exc}") from exc
        except _UNREACHABLE as exc:
            self._went_down()
            raise _Unavailable(f"{type(exc).__name__}: {exc}") from exc
        except rexc.RedisError as exc:
            if self.failure_mode == "fail_open" and _transient(exc):
                # OOM, READONLY / MASTERDOWN during a failover, LOADING: journal rather than lose spend.
                raise _Unavailable(f"{type(exc).__name__}: {exc}") from exc
            raise StoreError(f"ledger store {self.url}: {name} script failed: {exc}") from exc

    def _went_down(self) -> None:
        """fail_open: skip Redis for a moment, and probe it in the background until it answers."""
        if self.failure_mode != "fail_open":
            return
        self._down_until = time.monotonic() + self.retry_interval_s
        if self._probe is None or self._probe.done():
            try:
                self._probe = asyncio.get_running_loop().create_task(self._recover())
            except RuntimeError:  # no running loop: the next operation after retry_interval_s tries again
                self._probe = None

    async def _recover(self) -> None:
        """Probe Redis until it answers; then end the bypass and replay the journal right away."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            try:
                await self._claim_id(probe=True)
            except _Unavailable:
                continue
            except StoreError:  # Redis answers but refuses (not an outage): operations will report it
                self._down_until = 0.0
                return
            self._down_until = 0.0
            if self.journal is not None and self.journal.pending and not self._lock().locked():
                try:
                    await self.replay_journal()
                except StoreError:
                    continue
            return

    async def _claim_id(self, probe: bool = False) -> str:
        """The ledger's id, stored on first contact (``ledger_id.lua``). This store proposes the id it knew
        (or one its journal recorded for this ledger) so a Redis that came back empty keeps its identity."""
        proposal = self.ledger_id or self._journaled_id() or uuid.uuid4().hex
        found = _str(await self._run("ledger_id", [self.keys.ledger_id], [proposal], probe=probe))
        self.ledger_id = found
        return found

    def _journaled_id(self) -> str | None:
        """A ledger id recorded by this ledger's events in the journal (any process sharing it). The journal is
        read at most once a second (the probe asks 20 times a second during an outage); in between, the id the
        last read found is the answer (a random proposal instead would make the journal another ledger's)."""
        if self.journal is None or not self.journal.pending:
            return None
        if time.monotonic() >= self._id_scan_after:
            self._id_scan_after = time.monotonic() + 1.0
            found: list[str] = []

            def mine(event: dict[str, Any]) -> bool:
                if event.get("ledger") == self.identity and isinstance(event.get("lid"), str) and not found:
                    found.append(event["lid"])
                return False

            self.journal.backlog(mine)
            self._id_scanned = found[0] if found else None
        return self._id_scanned

    def _belongs(self, event: dict[str, Any]) -> bool:
        """Whether a journaled event was written for this ledger: its ledger id when it recorded one (the
        process had reached Redis), else its ledger identity; events of an older journal format (neither)
        belong to whoever replays their file."""
        lid = event.get("lid")
        if lid is not None:
            return lid == self.ledger_id
        ledger = event.get("ledger")
        return ledger is None or ledger == self.identity

    def _journal(self, event: dict[str, Any]) -> None:
        """Append a spend event to the fail-open journal, bound to this ledger."""
        assert self.journal is not None
        event["ledger"] = self.identity
        if self.ledger_id is not None:
            event["lid"] = self.ledger_id
        self.journal.append(event)

    def journal_backlog(self) -> int:
        """Events of this ledger journaled during an outage and not yet replayed (0 without a journal)."""
        return self.journal.backlog(self._belongs) if self.journal is not None else 0

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"ledger store {self.url} is unreachable ({exc}); refusing to serve without it (failure_mode={self.failure_mode})")

    def _lock(self) -> asyncio.Lock:
        if self._replay_lock is None:
            self._replay_lock = asyncio.Lock()
        return self._replay_lock

    async def _before(self, force: bool = False) -> None:
        """fail_open: learn the ledger's id on first contact, and replay a pending journal first (best effort:
        if Redis is still down, carry on). ``force``: even within ``retry_interval_s`` of a failure (reads
        that would otherwise report the store unavailable)."""
        journal = self.journal
        if journal is None or (not force and time.monotonic() < self._down_until):
            return
        if self._lock().locked():  # a replay is under way (the probe's, or another task's): let it finish
            async with self._lock():
                pass
        if not journal.pending:
            if self.ledger_id is None:
                with contextlib.suppress(_Unavailable, StoreError):
                    await self._claim_id()
            return
        try:
            await self.replay_journal()
        except StoreUnavailableError:
            pass

    def _remember(self, rid: str, bids: tuple[str, ...], nano: int, keep_until: int, now: int) -> None:
        self._local[rid] = (bids, nano, keep_until)
        self._local.move_to_end(rid)
        while self._local:
            first = next(iter(self._local.values()))
            if first[2] > now:
                break
            self._local.popitem(last=False)

    def _meta_update(self, bid: str, limit: int, now: int) -> str:
        """The meta value to store for ``bid`` (``limit|seen``), or '' if this store stored it recently."""
        sent = self._meta_sent.get(bid)
        if sent is not None and sent[0] == limit and now - sent[1] < META_REFRESH_MS:
            return ""
        if len(self._meta_sent) > 10_000:
            self._meta_sent.clear()
        self._meta_sent[bid] = (limit, now)
        return f"{limit}|{now}"

    def _spend_key(self, bid: str, now: int, at: int | None = None) -> tuple[str, str, int, int, int]:
        """Key, kind, first bucket (for reading at ``now``), write bucket and key TTL (for writing at ``at``)."""
        window = window_of(bid)
        at = now if at is None else at
        if window.kind == "rolling":
            win = rolling(window.span, now)
            return self.keys.rolling(bid), "R", win.first, rolling(window.span, at).current, win.key_ttl_ms
        p = period(window.span, window.timezone, at)
        return self.keys.calendar(bid, p.start_ms), "C", 0, 0, p.ttl_ms(now)

    # ------------------------------------------------------------------ budgets
    async def reserve(self, reservation_id: str, budgets: Sequence[BudgetScope], amount: Decimal, ttl_s: float) -> Reservation:
        """See :meth:`Store.reserve`. In ``fail_open`` with Redis down: granted, nothing held."""
        unique, nano, ttl_ms = self._check_reserve(reservation_id, budgets, amount, ttl_s)
        now = self.now_ms()
        bids = tuple(b.id for b, _ in unique)
        keys = [self.keys.record(reservation_id), self.keys.meta]
        args: list[Any] = [now, reservation_id, nano, ttl_ms, RECORD_GRACE_MS, len(unique)]
        for budget, limit in unique:
            key, kind, first, _, _ = self._spend_key(budget.id, now)
            keys += [key, self.keys.hold_set(budget.id), self.keys.hold_sum(budget.id)]
            args += [budget.id, kind, first, limit, self._meta_update(budget.id, limit, now)]
        await self._before()
        try:
            granted, denied, held = await self._run("reserve", keys, args)
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None
            self._remember(reservation_id, bids, nano, now + ttl_ms + RECORD_GRACE_MS, now)
            return Reservation(reservation_id, True, None, from_nano(nano))
        if _int(granted):
            self._remember(reservation_id, bids, _int(held), now + ttl_ms + RECORD_GRACE_MS, now)
            return Reservation(reservation_id, True, None, from_nano(_int(held)))
        return Reservation(reservation_id, False, _str(denied), Decimal(0))

    async def _finish(self, mode: str, rid: str, nano: int, now: int, at: int, bids: Sequence[str] | None, held: int | None) -> int:
        """Run settle.lua; returns 1 (done now), 0 (nothing to do) or -1 (unknown reservation)."""
        for _ in range(2):
            keys = [self.keys.record(rid)]
            args: list[Any] = [now, rid, mode, nano, IDEMPOTENCY_TTL_MS, "" if held is None else held, len(bids or ())]
            for bid in bids or ():
                key, kind, first, widx, ttl = self._spend_key(bid, now, at)
                keys += [key, self.keys.hold_set(bid), self.keys.hold_sum(bid)]
                args += [bid, kind, first, widx, ttl]
            result = await self._run("settle", keys, args)
            code = _int(result[0])
            if code != -2:
                return code
            bids = [b for b in _str(result[1]).split("\n") if b]
        raise StoreError(f"ledger store {self.url}: settle of {rid!r} did not converge")  # pragma: no cover

    async def settle(self, reservation_id: str, actual: Decimal) -> bool:
        """See :meth:`Store.settle`. In ``fail_open`` with Redis down: journaled, returns True."""
        check_id(reservation_id)
        nano = to_nano(actual, what="actual cost")
        now = self.now_ms()
        local = self._local.get(reservation_id)
        bids, held = (local[0], local[1]) if local else (None, None)
        await self._before()
        try:
            code = await self._finish("S", reservation_id, nano, now, now, bids, held)
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None
            self._journal({"op": "settle", "rid": reservation_id, "nano": nano, "at": now, "bids": list(bids) if bids else None, "held": held})
            self._local.pop(reservation_id, None)
            return True
        if code == -1:
            raise StoreError(f"settle: unknown reservation {reservation_id!r} (never reserved, or older than the record grace)")
        self._local.pop(reservation_id, None)
        return code == 1

    async def release(self, reservation_id: str) -> bool:
        """See :meth:`Store.release`. In ``fail_open`` with Redis down: journaled, returns True."""
        check_id(reservation_id)
        now = self.now_ms()
        local = self._local.get(reservation_id)
        bids, held = (local[0], local[1]) if local else (None, None)
        await self._before()
        try:
            code = await self._finish("R", reservation_id, 0, now, now, bids, held)
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None
            self._journal({"op": "release", "rid": reservation_id, "at": now, "bids": list(bids) if bids else None, "held": held})
            self._local.pop(reservation_id, None)
            return True
        self._local.pop(reservation_id, None)
        return code == 1

    async def _read(self, budgets: Sequence[BudgetScope], pools: Sequence[QuotaPool], families: Sequence[str], now: int, force: bool = False) -> list[Any]:
        """One snapshot.lua call. ``force``: try Redis even within ``retry_interval_s`` of a failure (a read
        that reports the store unavailable rather than zeros must not say so when Redis is back)."""
        keys: list[str] = []
        args: list[Any] = [now, len(budgets), len(pools), len(families)]
        for budget in budgets:
            key, kind, first, _, _ = self._spend_key(budget.id, now)
            keys += [key, self.keys.hold_set(budget.id), self.keys.hold_sum(budget.id)]
            args += [kind, first]
        for pool in pools:
            keys.append(self.keys.pool(pool.id, period(pool.period, pool.timezone, now).start_ms))
        for family in families:
            keys.append(self.keys.ramp(family))
            args.append(now // ramp_mod.BUCKET_MS - ramp_mod.BUCKETS + 1)
        await self._before(force)  # a pending fail_open journal is replayed first, so reads never under-report
        return [_int(v) for v in await self._run("snapshot", keys, args, probe=force)]

    async def spend(self, budget: BudgetScope) -> Decimal:
        """See :meth:`Store.spend`. Raises :class:`StoreUnavailableError` when Redis is down (any mode)."""
        check_budget(budget)
        try:
            values = await self._read([budget], (), (), self.now_ms(), force=True)
        except _Unavailable as exc:
            raise self._unavailable(exc) from None
        return from_nano(values[0])

    async def snapshot(self, budgets: Sequence[BudgetScope], pools: Sequence[QuotaPool], ramp_families: Sequence[str]) -> LedgerSnapshot:
        """See :meth:`Store.snapshot`: ONE script call. In ``fail_open`` with Redis down: all zero."""
        self._check_snapshot(budgets, pools, ramp_families)
        now = self.now_ms()
        try:
            values = await self._read(budgets, pools, ramp_families, now)
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None
            values = [0] * (2 * len(budgets)) + [0] * len(pools) + [0, -1, -1] * len(ramp_families)
        snap = LedgerSnapshot()
        it = iter(values)
        for budget in budgets:
            settled, held = next(it), next(it)
            snap.spend[budget.id] = from_nano(settled + held)
        for pool in pools:
            used = next(it)
            snap.pools[pool.id] = PoolUsage(pool.id, used, pool.free_units, period(pool.period, pool.timezone, now).end)
        minute = now // 60_000
        for family in ramp_families:
            tokens, start, last = next(it), next(it), next(it)
            minutes = ramp_mod.sustained_minutes(None if start < 0 else start, None if last < 0 else last, minute)
            snap.ramp[family] = RampUsage(family, tokens, ramp_mod.limit_tpm(family, minutes))
        return snap

    async def list_scopes(self) -> list[ScopeInfo]:
        """See :meth:`Store.list_scopes`."""
        now = self.now_ms()
        await self._before(force=True)
        try:
            flat = await self._run("scopes", [self.keys.meta], [now - META_TTL_MS], probe=True)
        except _Unavailable as exc:
            raise self._unavailable(exc) from None
        pairs = sorted((_str(flat[i]), _str(flat[i + 1])) for i in range(0, len(flat), 2))
        found = []
        for bid, value in pairs:
            limit, _, last = value.partition("|")
            found.append(ScopeInfo(parse_budget_id(bid, from_nano(limit)), to_datetime(int(last))))
        return found

    # ------------------------------------------------------------------ shared policy versions
    async def publish_policy(self, name: str, version: str, text: str) -> bool:
        """See :meth:`Store.publish_policy`."""
        check_policy(name, version)
        now = self.now_ms()
        keys = [self.keys.policy(name), self.keys.policy_history(name), self.keys.policy_text(name, version)]
        try:
            done = await self._run("policy", keys, [version, text, now, POLICY_HISTORY, POLICY_TEXT_TTL_MS])
        except _Unavailable as exc:
            raise self._unavailable(exc) from None
        return _int(done) == 1

    async def policy_version(self, name: str) -> str | None:
        """See :meth:`Store.policy_version`."""
        check_policy(name)
        try:
            found = await self.client.hget(self.keys.policy(name), "version")
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from None
        return _str(found) if found is not None else None

    async def policy_text(self, name: str, version: str) -> str | None:
        """See :meth:`Store.policy_text`."""
        check_policy(name, version)
        try:
            found = await self.client.get(self.keys.policy_text(name, version))
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from None
        return _str(found) if found is not None else None

    async def policy_history(self, name: str) -> list[tuple[str, dt.datetime]]:
        """See :meth:`Store.policy_history`."""
        check_policy(name)
        try:
            raw = await self.client.lrange(self.keys.policy_history(name), 0, -1)
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from None
        out = []
        for item in raw:
            version, _, at = _str(item).partition("|")
            out.append((version, to_datetime(int(at))))
        return out

    # ------------------------------------------------------------------ quota and ramp
    async def _consume(self, pool: QuotaPool, units: int, request_id: str, now: int, at: int) -> Consumed:
        p = period(pool.period, pool.timezone, at)
        keys = [self.keys.pool(pool.id, p.start_ms), self.keys.pool_request(pool.id, request_id)]
        free, billable = await self._run("consume", keys, [units, pool.free_units, p.ttl_ms(now), IDEMPOTENCY_TTL_MS])
        return Consumed(_int(free), _int(billable))

    async def consume(self, pool: QuotaPool, units: int, request_id: str) -> Consumed:
        """See :meth:`Store.consume`. In ``fail_open`` with Redis down: journaled, all units billable
        (the bill may be high, never low)."""
        self._check_consume(pool, units, request_id)
        now = self.now_ms()
        await self._before()
        try:
            return await self._consume(pool, units, request_id, now, now)
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None
            pool_doc = {"id": pool.id, "free_units": pool.free_units, "period": pool.period, "timezone": pool.timezone}
            self._journal({"op": "consume", "pool": pool_doc, "units": units, "rid": request_id, "at": now})
            return Consumed(0, units)

    async def pool_usage(self, pool: QuotaPool) -> PoolUsage:
        """See :meth:`Store.pool_usage`. Raises :class:`StoreUnavailableError` when Redis is down."""
        check_quota_pool(pool)
        now = self.now_ms()
        try:
            values = await self._read((), [pool], (), now, force=True)
        except _Unavailable as exc:
            raise self._unavailable(exc) from None
        return PoolUsage(pool.id, values[0], pool.free_units, period(pool.period, pool.timezone, now).end)

    async def _ramp(self, family: str, tokens: int, now: int, at: int, event: str | None) -> None:
        keys = [self.keys.ramp(family)] + ([self.keys.ramp_dedupe(event)] if event else [])
        first = now // ramp_mod.BUCKET_MS - ramp_mod.BUCKETS + 1
        args = [tokens, at // ramp_mod.BUCKET_MS, first, at // 60_000, ramp_mod.KEY_TTL_MS, RAMP_DEDUPE_TTL_MS]
        await self._run("ramp", keys, args)

    async def record_priority_tokens(self, family: str, tokens: int) -> None:
        """See :meth:`Store.record_priority_tokens`. In ``fail_open`` with Redis down: journaled."""
        self._check_tokens(family, tokens)
        if tokens == 0:
            return
        now = self.now_ms()
        await self._before()
        try:
            await self._ramp(family, tokens, now, now, None)
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None
            self._journal({"op": "ramp", "family": family, "tokens": tokens, "at": now, "event": uuid.uuid4().hex})

    # ------------------------------------------------------------------ Provisioned Throughput capacity
    # Not journaled in fail_open: the counter only matters for the next 30 seconds. With Redis down a
    # claim is denied (the caller then reserves the PayGo spill) and an adjustment is dropped.
    async def pt_claim(self, key: str, tokens: int, capacity: int) -> PtClaim:
        """See :meth:`Store.pt_claim`: ONE script call (``pt_claim.lua``)."""
        self._check_pt(key, tokens, capacity)
        now = self.now_ms()
        bucket = now // capacity_mod.BUCKET_MS
        try:
            granted, used = await self._run("pt_claim", [self.keys.pt(key)], [tokens, capacity, bucket, capacity_mod.first_bucket(now), capacity_mod.KEY_TTL_MS])
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None
            return PtClaim(False, capacity, capacity, bucket)
        return PtClaim(_int(granted) == 1, _int(used), capacity, bucket)

    async def pt_adjust(self, key: str, bucket: int, delta: int) -> bool:
        """See :meth:`Store.pt_adjust`: ONE script call (``pt_adjust.lua``)."""
        self._check_pt(key, delta, signed=True)
        now = self.now_ms()
        bucket = bucket or now // capacity_mod.BUCKET_MS
        try:
            done = await self._run("pt_adjust", [self.keys.pt(key)], [delta, bucket, capacity_mod.first_bucket(now), capacity_mod.KEY_TTL_MS])
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None
            return False
        return _int(done) == 1

    async def pt_settle(self, key: str, bucket: int, delta: int, served: bool, tokens: int, amortised: Decimal, paygo: Decimal) -> None:
        """See :meth:`Store.pt_settle`: ONE script call (``pt_settle.lua``). Dropped in ``fail_open`` with
        Redis down (the counter heals within 30 s; the month totals miss that request)."""
        self._check_pt(key, delta, signed=True)
        check_tokens(tokens)
        amortised_nano, paygo_nano = to_nano(amortised), to_nano(paygo)
        now = self.now_ms()
        bucket = bucket or now // capacity_mod.BUCKET_MS
        month = month_of(now)
        keys = [self.keys.pt(key), self.keys.pt_month(key, month), self.keys.pt_index()]
        args = [delta, bucket, capacity_mod.first_bucket(now), capacity_mod.KEY_TTL_MS, 1 if served else 0, tokens, amortised_nano, paygo_nano, capacity_mod.MONTH_TTL_MS, now, f"{key}|{month}"]
        try:
            await self._run("pt_settle", keys, args)
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None

    async def pt_totals(self) -> list[PtTotals]:
        """See :meth:`Store.pt_totals` (reads only: the index, then each month's hash)."""
        try:
            index = await self.client.hgetall(self.keys.pt_index())
            now = self.now_ms()
            rows = []
            for field, seen in index.items():
                name = _str(field)
                key, _, month = name.partition("|")
                if _int(seen) + capacity_mod.MONTH_TTL_MS <= now:
                    continue
                values = {_str(k): _int(v) for k, v in (await self.client.hgetall(self.keys.pt_month(key, month))).items()}
                rows.append(
                    PtTotals(
                        key, month, values.get("served", 0), values.get("spilled", 0), values.get("tokens", 0),
                        from_nano(values.get("amortised", 0)), from_nano(values.get("paygo_avoided", 0)), from_nano(values.get("spill_paygo", 0)),
                    )
                )
        except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
            raise self._unavailable(exc) from None
        rows.sort(key=lambda r: (r.month, r.key), reverse=True)
        return rows

    async def pt_usage(self, keys: Sequence[str]) -> dict[str, int]:
        """See :meth:`Store.pt_usage`: ONE script call (``pt_usage.lua``). In ``fail_open`` with Redis
        down: every counter reads as full (unknown), so nothing is counted on as free."""
        for key in keys:
            check_pt_key(key)
        if not keys:
            return {}
        try:
            values = await self._run("pt_usage", [self.keys.pt(k) for k in keys], [capacity_mod.first_bucket(self.now_ms())])
        except _Unavailable as exc:
            if self.failure_mode == "fail_closed":
                raise self._unavailable(exc) from None
            return {key: 2**52 for key in keys}
        return {key: _int(v) for key, v in zip(keys, values)}

    # ------------------------------------------------------------------ journal and lifecycle
    async def take_rate(self, pool: rate_mod.RatePool, n: int = 1) -> rate_mod.RateTake:
        """See :meth:`Store.take_rate`: ONE script call (``lua/rate.lua``). With Redis unreachable, in
        either failure mode, a take is denied (a quota shared across processes cannot be kept without
        the shared counter; the caller falls back) and a read raises :class:`StoreUnavailableError`."""
        rate_mod.check_take(pool, n)
        now = self.now_ms()
        args = [n, now // rate_mod.BUCKET_MS, rate_mod.first_bucket(now), pool.limit, rate_mod.KEY_TTL_MS]
        try:
            granted, used = await self._run("rate", [self.keys.rate(pool.id)], args)
        except _Unavailable as exc:
            if n == 0:
                raise self._unavailable(exc) from None
            return rate_mod.RateTake(pool.id, False, 0, pool.limit)
        return rate_mod.RateTake(pool.id, bool(_int(granted)), _int(used), pool.limit)

    async def rate_outcomes(self, pool: rate_mod.RatePool, outcome: str | None = None) -> dict[str, int]:
        """See :meth:`Store.rate_outcomes`: ONE script call (``lua/rate_stats.lua``). Statistics only:
        with Redis unreachable an outcome is not counted and a read raises :class:`StoreUnavailableError`."""
        rate_mod.check_take(pool, 0)
        rate_mod.check_outcome(outcome)
        key = self.keys.rate_stats(pool.id, self.now_ms() // rate_mod.DAY_MS)
        try:
            flat = await self._run("rate_stats", [key], [outcome or "", rate_mod.STATS_TTL_MS])
        except _Unavailable as exc:
            if outcome is None:
                raise self._unavailable(exc) from None
            return {}
        return {_str(flat[i]): _int(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def replay_journal(self) -> int:
        """Apply the fail-open journal to Redis (idempotently) and truncate it; returns the number of events
        applied. Raises :class:`StoreUnavailableError` if Redis is still unreachable (the journal is kept)."""
        if self.journal is None:
            return 0
        applied = 0
        async with self._lock():
            self._down_until = 0.0
            try:
                await self._claim_id()  # which ledger this is: only its own events are applied
            except _Unavailable as exc:
                raise self._unavailable(exc) from None
            for _ in range(8):  # a batch left from a cut replay first, then what was appended since
                if not self.journal.pending:
                    break
                events = self.journal.take(self._belongs)
                origins = self.journal.origins
                now = self.now_ms()
                try:
                    for event, origin in zip(events, origins):
                        try:
                            await self._apply(event, now)
                        except (ValueError, TypeError, KeyError) as exc:  # refused before anything reached Redis
                            self._quarantine(event, origin, exc)
                            continue
                        applied += 1
                except _Unavailable as exc:
                    raise self._unavailable(exc) from None
                self.journal.done()
        return applied

    def _quarantine(self, event: dict[str, Any], origin: tuple[Any, int], exc: Exception) -> None:
        """Move an event that cannot be replayed as written aside (``PATH.quarantine``) and report it with
        the file and line it was read from: it never reaches Redis and never stops the events after it."""
        assert self.journal is not None
        reason = f"{type(exc).__name__}: {exc}"
        self.journal.quarantine(event, origin, reason)
        log.warning("%s", JournalEntryError(str(origin[0]), origin[1], reason, str(self.journal.quarantine_path)))

    async def _apply(self, event: dict[str, Any], now: int) -> None:
        """Replay one journaled event. Every field is validated (as the live call validates its arguments)
        before anything is sent to Redis: an invalid event raises ``ValueError`` / ``TypeError`` /
        ``KeyError`` having changed nothing."""
        assert self.journal is not None
        op, at = event.get("op"), _journal_int(event.get("at", now), "at")
        if op in ("settle", "release"):
            mode = "S" if op == "settle" else "R"
            rid = check_id(event["rid"])
            nano = _journal_int(event["nano"], "nano", MAX_NANO) if mode == "S" else 0  # a release books nothing
            held = event.get("held")
            if held is not None:
                held = _journal_int(held, "held", MAX_NANO)
            bids = event.get("bids")
            if bids is not None:
                if not isinstance(bids, list):
                    raise TypeError(f"bids must be a list of budget ids, not {bids!r}")
                for bid in bids:
                    if not isinstance(bid, str):
                        raise TypeError(f"a budget id must be a string, not {bid!r}")
                    parse_budget_id(bid, Decimal(0))  # validates scope and window: nothing escapes the prefix
            code = await self._finish(mode, rid, nano, now, at, bids, held)
            if code == -1:
                self.journal.set_aside(event)
        elif op == "consume":
            doc = event["pool"]
            if not isinstance(doc, dict):
                raise TypeError(f"pool must be an object, not {doc!r}")
            pool, units, rid = QuotaPool(**doc), event["units"], event["rid"]
            self._check_consume(pool, units, rid)
            await self._consume(pool, units, rid, now, at)
        elif op == "ramp":
            family, tokens = event["family"], event["tokens"]
            self._check_tokens(family, tokens)
            await self._ramp(family, tokens, now, at, check_id(event["event"], "event id"))
        else:
            self.journal.set_aside(event)

    async def close(self) -> None:
        """Stop the fail_open probe and close the Redis connection pool."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._probe
            self._probe = None
        close = getattr(self.client, "aclose", None) or getattr(self.client, "close")
        await close()
