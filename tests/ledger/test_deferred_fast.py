"""Deferred settlement and budget leases (``?settle=deferred``, ``?leases=on``) on fakeredis, through the public
store API (issue 12, mutation testing of ``router/ledger/deferred.py``): the money the ledger shows -- the bills
booked, the holds and slices counted against a cap, what still fits -- after settles logged locally, settles
from slices, releases, flushes, a dead process's log replayed, and close.

These run in mutmut's fast profile (no redis-server); the same behaviours on a real redis-server are in
test_deferred*.py / test_settle_batch_mutants.py / test_leases.py. One fakeredis server per test (a fresh name),
shared by the deferred store under test and a plain store that plays "another process" reading Redis.
A fake clock drives every TTL and the lease sizing; ``flush_ms=600000`` keeps the background flusher out of
the way, so every settle stays pending until a read or an explicit ``flush`` sends it.

Lease sizing by hand (see router/ledger/leases.py): the first reservation of ``a`` nano on a budget notes a
demand of ``a``; the slice asked for is ``demand * horizon_s`` (minus what is still free), granted by Redis
when at least ``min_requests * a`` and at most 1/``share`` of the budget's free part. Amounts: nano-USD = USD * 10^9."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from decimal import Decimal
from pathlib import Path

from router.ledger import BudgetScope, Window, store_from_url
from tests.fixtures_redis import FakeClock

D = Decimal
B = BudgetScope("tenant:fast", Window.parse("rolling:24h"), D("100"))
DAY = BudgetScope("app:fast", Window.parse("calendar:day@UTC"), D("50"))
# a slice of 4 s of demand (4 requests' worth after the first), no minimum beyond 1 request, never idle
LEASES = "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=3600000"


class Pair:
    """A deferred store under test and a plain synchronous store on the same fakeredis server."""

    def __init__(self, tmp_path: Path, extra: str = "", log: str = "log") -> None:
        self.clock = FakeClock()
        self.server = f"fakeredis://{uuid.uuid4().hex}"
        self.prefix = "t" + uuid.uuid4().hex[:8]
        self.log_dir = tmp_path / log
        self.store = self.open(extra, self.log_dir)
        self.plain = store_from_url(self.server, prefix=self.prefix, clock=self.clock)

    def open(self, extra: str, log_dir: Path):  # noqa: ANN201
        url = f"{self.server}?settle=deferred&settle_log={log_dir}&flush_ms=600000{extra}"
        return store_from_url(url, prefix=self.prefix, clock=self.clock)

    async def taken(self, budget: BudgetScope = B) -> Decimal:
        """What another process sees taken from the cap: bills + holds + every slice."""
        return (await self.plain.snapshot([budget], [], [])).spend[budget.id]

    async def close(self) -> None:
        await self.store.close()
        await self.plain.close()


# ---------------------------------------------------------------- deferred settles of Redis holds
async def test_a_deferred_settle_is_pending_until_flushed_and_books_the_bill_once(tmp_path):
    """Settle of a Redis hold: acknowledged at once, Redis still counts the $3 hold (never less than the $1.25
    bill) until the flush books $1.25; a repeated settle is refused; this store's own reads see the bill."""
    p = Pair(tmp_path)
    assert (await p.store.reserve("r1", [B], D("3"), 60)).amount == D("3")
    assert await p.taken() == D("3")
    assert await p.store.settle("r1", D("1.25")) is True
    assert p.store.backlog() == 1
    assert await p.plain.spend(B) == 0  # not in Redis yet
    assert await p.taken() == D("3")  # the hold still counts
    assert await p.store.settle("r1", D("1.25")) is False  # already settled here
    assert await p.store.release("r1") is False
    assert await p.store.spend(B) == D("1.25")  # read your writes: applied first
    assert p.store.backlog() == 1  # applied, not confirmed yet
    assert await p.plain.spend(B) == D("1.25")
    assert await p.taken() == D("1.25")  # the hold is gone
    assert await p.store.settle("r1", D("1.25")) is False  # Redis answers now
    assert await p.plain.spend(B) == D("1.25")
    assert await p.store.flush() == 0  # nothing left to apply; confirmed (no replica)
    assert p.store.backlog() == 0
    await p.close()


async def test_a_bill_above_its_hold_is_booked_at_once(tmp_path):
    """A $2.50 bill on a $2 hold is settled synchronously: Redis has the full bill before settle returns."""
    p = Pair(tmp_path)
    assert (await p.store.reserve("r1", [B, DAY], D("2"), 60)).granted
    assert await p.store.settle("r1", D("2.5"))
    assert p.store.backlog() == 0
    assert await p.plain.spend(B) == D("2.5")
    assert await p.plain.spend(DAY) == D("2.5")
    assert await p.taken(DAY) == D("2.5")
    await p.close()


async def test_a_bill_equal_to_its_hold_is_deferred(tmp_path):
    p = Pair(tmp_path)
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("2"))
    assert p.store.backlog() == 1
    assert await p.plain.spend(B) == 0
    assert await p.store.flush() == 1
    assert await p.plain.spend(B) == D("2")
    await p.close()


async def test_a_deferred_settle_books_every_scope_and_a_calendar_day(tmp_path):
    p = Pair(tmp_path)
    assert (await p.store.reserve("r1", [B, DAY], D("4"), 60)).granted
    assert (await p.store.reserve("r2", [DAY], D("1"), 60)).granted
    assert await p.store.settle("r1", D("0.75"))
    assert await p.store.settle("r2", D("0.5"))
    assert await p.store.flush(confirm=False) == 2
    assert await p.plain.spend(B) == D("0.75")
    assert await p.plain.spend(DAY) == D("1.25")
    assert await p.taken(DAY) == D("1.25")
    await p.close()


async def test_a_denial_is_decided_again_after_the_pending_settles_are_applied(tmp_path):
    """Cap $100: a $90 hold settled at $10 (pending: Redis still counts $90), then a $85 request. Redis alone
    would deny it (90 + 85 > 100); the store applies its pending settle and decides again: 10 + 85 <= 100."""
    p = Pair(tmp_path)
    assert (await p.store.reserve("big", [B], D("90"), 60)).granted
    assert await p.store.settle("big", D("10"))
    assert await p.plain.spend(B) == 0
    got = await p.store.reserve("next", [B], D("85"), 60)
    assert got.granted and got.amount == D("85")
    assert await p.plain.spend(B) == D("10")
    assert await p.taken() == D("95")
    denied = await p.store.reserve("over", [B], D("5.000000001"), 60)
    assert not denied.granted and denied.denied_scope == B.id
    assert (await p.store.reserve("last", [B], D("5"), 60)).granted  # exactly to the cap
    await p.close()


async def test_a_settle_log_of_a_dead_process_is_replayed_once(tmp_path):
    """A process logged two settles and died before sending them (its log is copied as a dead owner's):
    the next process applies them, once, and removes the log once confirmed."""
    p = Pair(tmp_path, log="a")
    for rid in ("s1", "s2"):
        assert (await p.store.reserve(rid, [B], D("1"), 60)).granted
    assert await p.store.settle("s1", D("0.25"))
    assert await p.store.settle("s2", D("0.5"))
    assert await p.plain.spend(B) == 0
    heir_dir = tmp_path / "b"
    heir_dir.mkdir()
    for i, seg in enumerate(sorted((tmp_path / "a").glob("*.jsonl")), 1):
        shutil.copy(seg, heir_dir / f"4242-deadbeef.{i:09d}.jsonl")
    (heir_dir / "4242-deadbeef.lock").touch()
    heir = p.open("", heir_dir)
    assert await heir.spend(B) == D("0.75")
    assert await p.plain.spend(B) == D("0.75")
    assert await p.taken() == D("0.75")  # both holds gone
    assert await heir.flush() == 0
    assert not list(heir_dir.glob("4242-deadbeef.*"))
    assert await p.store.spend(B) == D("0.75")  # the first process's own log again: still counted once
    await heir.close()
    await p.close()


# ---------------------------------------------------------------- budget leases
async def _with_slice(p: Pair) -> None:
    """r1 ($1) goes to Redis and takes a $4 slice (4 s of $1/s demand; 1/8 of the $99 free is more)."""
    first = await p.store.reserve("r1", [B], D("1"), 60)
    assert first.granted and first.amount == D("1")
    assert p.store.local_grants == 0
    assert await p.taken() == D("5")  # the hold + the slice


async def test_a_slice_grants_exactly_its_size_locally(tmp_path):
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    for i in range(4):
        got = await p.store.reserve(f"l{i}", [B], D("1"), 60)
        assert got.granted and got.amount == D("1")
    assert p.store.local_grants == 4
    assert await p.taken() == D("5")  # no round trip: Redis saw nothing new
    # this process's own view: what it holds, without the free part of its slice (none left)
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("5")
    got = await p.store.reserve("l4", [B], D("1"), 60)  # the slice is used up: Redis decides
    assert got.granted
    assert p.store.local_grants == 4
    await p.close()


async def test_a_settle_from_a_slice_shrinks_it_by_the_bill(tmp_path):
    """r2 ($1 from the slice) billed $0.50: the slice shrinks by the bill, so others see 0.25 + 0.50 billed
    + the slice's rest 3.50 = 4.25 taken, and exactly 95.75 more fits."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert await p.store.settle("r1", D("0.25"))
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert p.store.local_grants == 1
    assert await p.store.settle("r2", D("0.5"))
    assert await p.store.settle("r2", D("0.5")) is False
    assert await p.store.flush(confirm=False) == 2
    assert await p.plain.spend(B) == D("0.75")
    assert await p.taken() == D("4.25")
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("0.75")  # its free slice is not spend
    assert await p.store.spend(B) == D("0.75")
    assert not (await p.plain.reserve("too-much", [B], D("95.750000001"), 60)).granted
    assert (await p.plain.reserve("exactly", [B], D("95.75"), 60)).granted
    await p.close()


async def test_the_slices_rest_serves_reservations_after_a_settle(tmp_path):
    """Slice $4, r2 ($1) settled at $0.50: $3.50 is left, so three $1 reservations and one $0.50 fit locally,
    a fifth does not."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.5"))
    for i in range(3):
        assert (await p.store.reserve(f"l{i}", [B], D("1"), 60)).granted
    assert (await p.store.reserve("half", [B], D("0.5"), 60)).granted
    assert p.store.local_grants == 5
    assert (await p.store.reserve("more", [B], D("0.000000001"), 60)).granted
    assert p.store.local_grants == 5  # the slice is empty: Redis decided
    await p.close()


async def test_a_bill_above_its_slice_hold_that_fits_the_slice_is_taken_from_it(tmp_path):
    """r2 holds $1 of the $4 slice and is billed $2.50 (<= $1 + the $3 free): the slice pays it, shrinking to
    $1.50; nothing is booked before the flush, and the total never exceeds the slice."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("2.5"))
    assert p.store.backlog() == 1
    assert await p.plain.spend(B) == 0
    assert await p.taken() == D("5")  # r1's hold + the slice (which covers the bill)
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("2.5")
    assert await p.taken() == D("5")  # 1 hold + 2.50 billed + 1.50 slice left
    assert (await p.store.reserve("a", [B], D("1.5"), 60)).granted
    assert p.store.local_grants == 2  # the slice's rest, exactly
    assert (await p.store.reserve("b", [B], D("0.000000001"), 60)).granted
    assert p.store.local_grants == 2
    await p.close()


async def test_a_bill_beyond_the_slice_is_booked_at_once(tmp_path):
    """r2 holds $1 of the $4 slice and is billed $4.50 (> $1 + $3 free): the slice shrinks by the $1 it held
    and the full bill is in Redis when settle returns."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("4.5"))
    assert await p.plain.spend(B) == D("4.5")
    assert await p.taken() == D("8.5")  # r1's $1 hold + $4.50 + the $3 slice left
    for i in range(3):
        assert (await p.store.reserve(f"l{i}", [B], D("1"), 60)).granted
    assert p.store.local_grants == 4
    await p.close()


async def test_a_bill_equal_to_the_slice_hold_plus_its_free_part_is_taken_from_it(tmp_path):
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("4"))  # exactly $1 held + $3 free
    assert await p.plain.spend(B) == 0  # pending: the slice covers it
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("4")
    assert await p.taken() == D("5")  # r1's hold + $4 billed, no slice left
    await p.close()


async def test_a_release_from_a_slice_gives_the_room_back_to_it(tmp_path):
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("4"), 60)).granted
    assert p.store.local_grants == 1
    assert await p.store.release("r2") is True
    assert await p.store.release("r2") is False
    assert (await p.store.reserve("r3", [B], D("4"), 60)).granted
    assert p.store.local_grants == 2  # the whole slice again
    assert await p.store.settle("r3", D("1"))
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("1")
    assert await p.taken() == D("5")  # r1's hold + $1 billed + $3 slice left
    await p.close()


async def test_a_settle_after_a_release_from_a_slice_still_books(tmp_path):
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.release("r2")
    assert await p.store.settle("r2", D("0.75"))  # taken from the slice's free part
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("0.75")
    assert await p.taken() == D("5")  # $1 hold + $0.75 + $3.25 slice left
    await p.close()


async def test_a_reservation_from_a_slice_expires_with_its_ttl(tmp_path):
    """r2 holds the whole $4 slice for 10 s; after 11 s it is expired: the slice is free again, a release
    finds nothing, and a late settle still books its bill."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("4"), 10)).granted
    assert p.store.local_grants == 1
    p.clock.advance(11)
    assert (await p.store.reserve("r3", [B], D("3"), 5)).granted
    assert p.store.local_grants == 2  # from the slice again
    assert await p.store.release("r2") is False
    assert await p.store.settle("r2", D("0.5"))  # late: paid from the slice's $1 free part
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("0.5")
    assert await p.taken() == D("5")  # r1's $1 hold + $0.50 billed + $3.50 slice left (r3 inside it)
    await p.close()


async def test_a_repeated_reserve_of_a_slice_reservation_returns_it(tmp_path):
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1.5"), 60)).amount == D("1.5")
    again = await p.store.reserve("r2", [B], D("1.5"), 60)
    assert again.granted and again.amount == D("1.5")
    assert p.store.local_grants == 1
    assert (await p.store.reserve("r3", [B], D("2.5"), 60)).granted
    assert p.store.local_grants == 2  # $1.50 + $2.50 = the $4 slice: r2 was held once
    await p.close()


async def test_close_gives_the_free_part_of_slices_back(tmp_path):
    """After close, another process sees only the bills and the holds: the slice's free part is back."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.5"))
    await p.store.close()
    assert p.store.backlog() == 0
    assert await p.plain.spend(B) == D("0.5")
    assert await p.taken() == D("1.5")  # r1's $1 hold + $0.50: the $3.50 slice rest was given back
    assert (await p.plain.reserve("all", [B], D("98.5"), 60)).granted
    await p.plain.close()


async def test_a_new_slice_is_kept_until_it_sat_idle_for_lease_idle_ms(tmp_path):
    """``lease_idle_ms`` counts from when the slice was taken: a slice nobody has used yet is not given back
    at the keeper's first tick (it was: its last use read as 1970, so every fresh slice went back after
    ``poll_s`` whatever ``lease_idle_ms`` said), and is given back once it sat idle for ``lease_idle_ms``."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=2000&lease_ttl_ms=600000")
    await _with_slice(p)
    await asyncio.sleep(0.3)  # six keeper ticks (poll 50 ms)
    p.clock.advance(1.9)
    await asyncio.sleep(0.3)
    assert await p.taken() == D("5")  # r1's hold + the $4 slice, still there
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert p.store.local_grants == 1  # from the slice
    p.clock.advance(2.1)  # idle for 2.1 s since r2
    for _ in range(200):
        if await p.taken() == D("2"):
            break
        await asyncio.sleep(0.02)
    assert await p.taken() == D("2")  # r1's and r2's holds: the $3 free part was given back
    await p.close()
