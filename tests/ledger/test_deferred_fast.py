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


def hand_over(src: Path, heir_dir: Path) -> None:
    """Copy the settle log in ``src`` into ``heir_dir`` as the log of a dead process (owner 4242-deadbeef), as a
    process started on the same log directory after a kill finds it."""
    heir_dir.mkdir(exist_ok=True)
    for i, seg in enumerate(sorted(src.glob("*.jsonl")), 1):
        shutil.copy(seg, heir_dir / f"4242-deadbeef.{i:09d}.jsonl")
    (heir_dir / "4242-deadbeef.lock").touch()


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
    hand_over(tmp_path / "a", heir_dir)
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
    assert (await p.store.reserve("rest", [B], D("3.25"), 60)).granted
    assert p.store.local_grants == 2  # the slice's rest, exactly: r2's released $1 is not freed twice
    assert (await p.store.reserve("more", [B], D("0.000000001"), 60)).granted
    assert p.store.local_grants == 2
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
    assert (await p.store.reserve("rest", [B], D("0.5"), 5)).granted  # $3.50 - r3's $3
    assert p.store.local_grants == 3
    assert (await p.store.reserve("more", [B], D("0.000000001"), 5)).granted
    assert p.store.local_grants == 3
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
    assert await p.store.settle("r2", D("1"))
    assert await p.store.flush(confirm=False) == 1  # the slice is $3 now
    p.clock.advance(2.1)  # idle for 2.1 s since r2
    for _ in range(200):
        if await p.taken() == D("2"):
            break
        await asyncio.sleep(0.02)
    assert await p.taken() == D("2")  # r1's hold and r2's bill: the $3 free part was given back
    await p.close()


# ---------------------------------------------------------------- slice sizing (what Redis sets aside)
async def test_a_slice_is_at_most_one_share_of_the_free_budget(tmp_path):
    """Demand wants $100 (100 s of $1/s) but a slice is at most 1/8 of the $99 free: $12.375."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=100000&lease_min=1&lease_idle_ms=3600000")
    assert (await p.store.reserve("r1", [B], D("1"), 60)).granted
    assert await p.taken() == D("13.375")
    await p.close()


async def test_a_slice_of_exactly_min_requests_is_taken(tmp_path):
    """4 s of $1/s demand is exactly lease_min (4) requests of $1: taken."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=4&lease_idle_ms=3600000")
    assert (await p.store.reserve("r1", [B], D("1"), 60)).granted
    assert await p.taken() == D("5")
    await p.close()


async def test_no_slice_below_min_requests(tmp_path):
    """3.999 s of $1/s demand is less than 4 requests of $1: no slice, only the hold."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=3999&lease_min=4&lease_idle_ms=3600000")
    assert (await p.store.reserve("r1", [B], D("1"), 60)).granted
    assert await p.taken() == D("1")
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert p.store.local_grants == 0
    await p.close()


async def test_a_request_bigger_than_the_free_slice_gives_the_slice_back_first(tmp_path):
    """Slice $4 (free $4); a $5 request does not fit it: the $4 go back, Redis grants the $5 hold and a new
    slice of 4 s of the $6/s demand ($24) capped at 1/8 of the $94 free ($11.75): 1 + 5 + 11.75 taken."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("5"), 60)).granted
    assert p.store.local_grants == 0
    assert await p.taken() == D("17.75")
    await p.close()


async def test_with_a_tight_cap_the_slice_goes_back_so_the_request_fits(tmp_path):
    """Cap $10, share 1: r1 ($1) takes a $4 slice (5 taken). A $6 request fits only without the slice: it is
    given back first and the request granted (7 taken); no new slice (3 free < 1 request of $6)."""
    cap = BudgetScope("tenant:tight", Window.parse("rolling:24h"), D("10"))
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_share=1&lease_idle_ms=3600000")
    assert (await p.store.reserve("r1", [cap], D("1"), 60)).granted
    assert await p.taken(cap) == D("5")
    got = await p.store.reserve("r2", [cap], D("6"), 60)
    assert got.granted and got.amount == D("6")
    assert await p.taken(cap) == D("7")
    assert not (await p.store.reserve("r3", [cap], D("3.000000001"), 60)).granted
    assert (await p.store.reserve("r4", [cap], D("3"), 60)).granted
    assert await p.taken(cap) == D("10")
    await p.close()


async def test_a_hold_longer_than_the_slice_goes_to_redis_and_the_slice_back(tmp_path):
    """Demand wants 100 s of $1/s, 1/8 of the $99 free is $12.375: the slice. It lives 60 s (r1's hold) + 30 s
    (lease_ttl), so r2, held 100 s, cannot come from it: the $12.375 go back first, r2 ($1) is held in Redis and
    the new slice is 1/8 of the $98 then free, $12.25: 1 + 1 + 12.25 taken (keeping the old slice and adding
    to it would take 1/8 of $85.625 more: $25.078125)."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=100000&lease_min=1&lease_ttl_ms=30000&lease_idle_ms=3600000")
    assert (await p.store.reserve("r1", [B], D("1"), 60)).granted
    assert await p.taken() == D("13.375")
    assert (await p.store.reserve("r2", [B], D("1"), 100)).granted
    assert p.store.local_grants == 0
    assert await p.taken() == D("14.25")
    await p.close()


async def _slice_with_one_dollar_free(p: Pair) -> None:
    """r1 takes the $4 slice on B, three $1 reservations use $3 of it: $1 free."""
    await _with_slice(p)
    for i in range(3):
        assert (await p.store.reserve(f"l{i}", [B], D("1"), 60)).granted
    assert p.store.local_grants == 3


async def test_a_slice_with_room_for_the_request_is_kept_and_grown(tmp_path):
    """B's slice has exactly $1 free; r2 ($1) also needs DAY, where this process has no slice, so Redis decides
    it. B's slice can serve a $1 request, so it is kept ($1 free stays), and grown by 1/8 of the $94 then free
    ($11.75; demand asks for 4 s of $5/s minus the $1 free = $19): the slice is $15.75, 17.75 taken, and
    $12.75 of it is free here."""
    p = Pair(tmp_path, LEASES)
    await _slice_with_one_dollar_free(p)
    assert (await p.store.reserve("r2", [B, DAY], D("1"), 60)).granted
    assert p.store.local_grants == 3
    assert await p.taken() == D("17.75")
    assert (await p.store.reserve("rest", [B], D("12.75"), 60)).granted
    assert p.store.local_grants == 4
    assert (await p.store.reserve("more", [B], D("0.000000001"), 60)).granted
    assert p.store.local_grants == 4
    await p.close()


async def test_a_slice_grows_by_the_demand_minus_its_free_part(tmp_path):
    """The same with share 1 (a slice may take all that is free): demand asks for 4 s of $5/s = $20 minus the
    $1 still free, so the slice grows by $19 to $23: 1 + 1 + 23 = 25 taken."""
    p = Pair(tmp_path, LEASES + "&lease_share=1")
    await _slice_with_one_dollar_free(p)
    assert (await p.store.reserve("r2", [B, DAY], D("1"), 60)).granted
    assert await p.taken() == D("25")
    await p.close()


async def test_a_slice_expires_lease_ttl_after_its_longest_hold(tmp_path):
    """The slice lives 60 s + 10 s (lease_ttl_ms): at 69 s it still grants a hold ending at 70 s; at 71 s it is
    gone (Redis counts nothing of it, r1's hold has expired too)."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_ttl_ms=10000&lease_idle_ms=3600000")
    await _with_slice(p)
    p.clock.advance(69)
    assert await p.taken() == D("4")  # r1 expired at 60 s; the slice is still held
    assert (await p.store.reserve("r2", [B], D("1"), 1)).granted
    assert p.store.local_grants == 1
    p.clock.advance(2)
    assert await p.taken() == D("0")
    await asyncio.sleep(0.2)  # the keeper notices the slice expired
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == 0
    assert (await p.store.reserve("r3", [B], D("1"), 60)).granted
    assert p.store.local_grants == 1  # no slice any more: Redis decided
    await p.close()


async def test_a_budget_another_process_needs_is_drained_and_the_request_granted(tmp_path):
    """Cap $10, share 1: A holds r1 ($1) and a $4 slice. B asks for $8: 1 + 4 + 8 > 10, but without A's slice
    it fits, so B's request waits and A is asked to drain; A's keeper reads the flag and gives the slice
    back, B is granted (9 taken), and A's next request is decided by Redis (the slice is draining)."""
    cap = BudgetScope("tenant:drain", Window.parse("rolling:24h"), D("10"))
    knobs = "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_share=1&lease_idle_ms=3600000"
    p = Pair(tmp_path, knobs)
    b = p.open(knobs + "&drain_wait_ms=20000", tmp_path / "b")
    assert (await p.store.reserve("r1", [cap], D("1"), 60)).granted
    assert await p.taken(cap) == D("5")
    waiting = asyncio.ensure_future(b.reserve("b-big", [cap], D("8"), 60))
    for _ in range(1000):  # the keeper compares the (fake) clock with its last flag read: let time pass
        if waiting.done():
            break
        p.clock.advance(0.01)
        await asyncio.sleep(0.005)
    got = await asyncio.wait_for(waiting, 5)
    assert got.granted and got.amount == D("8")
    assert await p.taken(cap) == D("9")  # r1 + b-big; A's slice is back
    assert (await p.store.reserve("a2", [cap], D("1"), 60)).granted
    assert p.store.local_grants == 0
    assert await p.taken(cap) == D("10")
    assert not (await p.store.reserve("a3", [cap], D("0.000000001"), 60)).granted
    await b.close()
    await p.close()


async def test_a_pending_settle_from_a_slice_is_not_granted_again_after_a_reserve_reply(tmp_path):
    """r2 ($1 from the $4 slice) is billed $0.50: logged, not applied, so Redis still has the slice at $4.
    r3 ($1, also on DAY) goes to Redis, which grows the slice to $12.50 (4 s of $3/s demand = $12 minus the
    $3.50 free). The reply's $12.50 still includes r2's bill: $12 are free here, not $12.50."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.5"))
    assert (await p.store.reserve("r3", [B, DAY], D("1"), 60)).granted
    assert p.store.local_grants == 1
    assert await p.taken() == D("14.5")  # r1 + r3 holds + the $12.50 slice (r2's bill inside it)
    assert (await p.store.reserve("rest", [B], D("12"), 60)).granted
    assert p.store.local_grants == 2
    assert (await p.store.reserve("more", [B], D("0.000000001"), 60)).granted
    assert p.store.local_grants == 2
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("0.5")
    await p.close()


async def test_close_gives_back_every_budgets_free_part_and_keeps_what_is_held(tmp_path):
    """Slices on B ($4) and DAY ($4, r0's demand): r2 ($1.50 on both) is still held from them at close. Both
    free parts ($2.50 each) go back in one call; another process sees r1's hold, r0's hold and r2's $1.50."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r0", [DAY], D("1"), 60)).granted
    assert await p.taken(DAY) == D("5")
    assert (await p.store.reserve("r2", [B, DAY], D("1.5"), 60)).granted
    assert p.store.local_grants == 1
    await p.store.close()
    # the budget registry as close left it (the reservations below register their budgets again)
    scopes = {info.budget.id: info.budget.limit_usd for info in await p.plain.list_scopes()}
    assert scopes == {B.id: D("100"), DAY.id: D("50")}
    assert await p.taken() == D("2.5")
    assert await p.taken(DAY) == D("2.5")
    assert (await p.plain.reserve("all", [B], D("97.5"), 60)).granted  # to the last nano
    assert not (await p.plain.reserve("over", [DAY], D("47.500000001"), 60)).granted
    await p.plain.close()



# ---------------------------------------------------------------- when a late-applied settle counts
async def test_a_settle_applied_late_is_booked_in_the_rolling_bucket_of_its_time(tmp_path):
    """rolling:1h has one-minute buckets. A bill settled at T and applied 30 minutes later counts from T: it
    has left the window 61 minutes after T (booked in the flush's bucket it would count until T + 91 min)."""
    hour = BudgetScope("tenant:hour", Window.parse("rolling:1h"), D("100"))
    p = Pair(tmp_path)
    assert (await p.store.reserve("r1", [hour], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    p.clock.advance(1800)
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(hour) == D("1.5")
    p.clock.advance(1700)  # T + 58 min 20 s: still in the window
    assert await p.plain.spend(hour) == D("1.5")
    p.clock.advance(160)  # T + 61 min: T's bucket has left the window
    assert await p.plain.spend(hour) == 0
    await p.close()


async def test_a_settle_applied_after_midnight_is_booked_on_the_day_it_was_made(tmp_path):
    """calendar:day@UTC: settled at 23:59:30, applied at 00:00:30: it counts for the day before, not today."""
    p = Pair(tmp_path)
    p.clock.set(1_750_031_970)  # 2025-06-15 23:59:30 UTC
    assert (await p.store.reserve("r1", [DAY], D("2"), 300)).granted
    assert await p.store.settle("r1", D("1.5"))
    p.clock.advance(60)  # 2025-06-16 00:00:30
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(DAY) == 0  # today
    assert await p.taken(DAY) == 0  # and no hold left
    p.clock.set(1_750_031_999)  # back on the 15th (the counter outlives its day by an hour)
    assert await p.plain.spend(DAY) == D("1.5")
    await p.close()


async def test_more_pending_settles_than_one_script_call_takes_are_all_applied_once(tmp_path):
    """300 settles pending (a script call takes 128): one flush applies all 300, each once."""
    p = Pair(tmp_path)
    for i in range(300):
        assert (await p.store.reserve(f"r{i}", [B], D("0.01"), 60)).granted
        assert await p.store.settle(f"r{i}", D("0.001"))
    assert await p.plain.spend(B) == 0
    assert await p.store.flush() == 300
    assert await p.plain.spend(B) == D("0.3")
    assert await p.taken() == D("0.3")  # every hold gone
    assert p.store.backlog() == 0
    assert await p.store.flush() == 0
    assert await p.plain.spend(B) == D("0.3")
    await p.close()


# ---------------------------------------------------------------- confirmation by the primary's replicas
class Replication:
    """What ``INFO replication`` answers (fakeredis has no INFO): the primary's replication id and offset,
    and each connected replica's acknowledged offset."""

    def __init__(self, replid: str, offset: int, replicas: list[int]) -> None:
        self.replid, self.offset, self.replicas = replid, offset, replicas

    async def info(self, section: str | None = None, *args: object, **kwargs: object) -> dict:
        assert section == "replication"
        out: dict = {"role": "master", "master_replid": self.replid, "master_repl_offset": self.offset,
                     "connected_slaves": len(self.replicas)}
        for i, acked in enumerate(self.replicas):
            out[f"slave{i}"] = {"ip": "10.0.0.2", "port": 6379 + i, "state": "online", "offset": acked, "lag": 0}
        return out


async def test_settles_stay_logged_until_every_replica_acknowledged_them(tmp_path):
    """Applied on the primary (offset 100 after the batch) but acknowledged by one replica only up to 99:
    the entry stays in the log (a failover could still lose it); at 100 it is confirmed and removed."""
    p = Pair(tmp_path)
    repl = Replication("primary-a", 100, [99, 100])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    assert await p.store.flush() == 1
    assert await p.plain.spend(B) == D("1.5")
    assert p.store.backlog() == 1  # kept: a replica is behind
    assert list(p.log_dir.glob("*.jsonl"))
    repl.offset = 150  # later writes move the primary on; the batch was at or before 100
    assert await p.store.flush() == 0
    assert p.store.backlog() == 1
    repl.replicas = [100, 120]
    assert await p.store.flush() == 0
    assert p.store.backlog() == 0
    assert await p.plain.spend(B) == D("1.5")
    await p.close()


async def test_after_a_failover_unconfirmed_settles_are_applied_again(tmp_path):
    """The batch reached the old primary but not its replica; the replica is promoted without it (a new
    replication id, the bill gone): the store applies the batch again, so the $1.50 bill is not lost, and
    applying it again counts it once."""
    p = Pair(tmp_path)
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    assert await p.store.flush() == 1
    assert p.store.backlog() == 1
    await p.plain.client.flushall()  # the promoted replica never had the batch (nor anything else here)
    repl.replid, repl.offset, repl.replicas = "primary-b", 10, []
    assert await p.store.flush() == 1  # applied again on the new primary
    assert p.store.backlog() == 0  # no replica now: the primary's reply suffices
    assert await p.plain.spend(B) == D("1.5")
    assert await p.store.flush() == 0
    assert await p.plain.spend(B) == D("1.5")
    await p.close()


async def test_a_replica_that_dropped_off_holds_the_confirmation_back(tmp_path):
    """Two replicas were seen; one drops its link (lagging, restarting) and is not listed: until it is back,
    nothing is confirmed even though the listed replica acknowledged everything (it could be promoted
    without the batch)."""
    p = Pair(tmp_path)
    repl = Replication("primary-a", 100, [100, 100])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r0", [B], D("1"), 60)).granted
    assert await p.store.settle("r0", D("1"))
    assert await p.store.flush() == 1
    assert p.store.backlog() == 0  # confirmed by both replicas
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    repl.offset, repl.replicas = 200, [200]
    assert await p.store.flush() == 1
    assert p.store.backlog() == 1  # one replica is missing
    repl.replicas = [200, 200]
    assert await p.store.flush() == 0
    assert p.store.backlog() == 0
    await p.close()


# ---------------------------------------------------------------- a decision's snapshot with leases
async def test_a_snapshot_with_only_slice_settles_pending_is_exact_without_sending_them(tmp_path):
    """Settles of reservations from this process's slices are already inside the slice Redis counts: the
    snapshot shows r1's hold + the bill without sending anything (Redis has no bill yet)."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert await p.store.list_scopes()  # (the first call also looked for dead processes' logs)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.75"))
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("1.75")
    assert await p.plain.spend(B) == 0  # not sent
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("0.75")
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("1.75")
    await p.close()


async def test_a_snapshot_sends_a_pending_settle_of_a_redis_hold_first(tmp_path):
    """r1's $1 hold is in Redis: its $0.25 bill must be applied before the snapshot, which then shows the
    bill, not the hold."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert await p.store.settle("r1", D("0.25"))
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("0.25")
    assert await p.plain.spend(B) == D("0.25")
    await p.close()


async def test_a_snapshot_applies_a_dead_processs_log_first_with_leases(tmp_path):
    p = Pair(tmp_path, LEASES, log="a")
    assert (await p.store.reserve("s1", [B], D("1"), 60)).granted
    assert await p.store.settle("s1", D("0.25"))
    heir_dir = tmp_path / "b"
    hand_over(tmp_path / "a", heir_dir)
    heir = p.open(LEASES, heir_dir)
    assert (await heir.snapshot([B], [], [])).spend[B.id] == D("4.25")  # the bill + p's $4 slice
    assert await p.plain.spend(B) == D("0.25")
    await heir.close()
    await p.close()


async def test_a_snapshot_after_a_failover_applies_the_lost_settles_again_first(tmp_path):
    """With leases: settles from a slice were applied but not confirmed when the primary failed over without
    them; the next snapshot applies them again before reading (it would show nothing billed otherwise)."""
    p = Pair(tmp_path, LEASES)
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.5"))
    assert await p.store.flush() == 1
    assert p.store.backlog() == 1  # the replica is behind
    await p.plain.client.flushall()  # the promoted replica has nothing of this
    repl.replid, repl.offset, repl.replicas = "primary-b", 10, []
    assert await p.store.flush() == 1  # the failover is noticed and the batch applied again
    assert await p.plain.spend(B) == D("0.5")
    await p.close()


async def test_a_snapshot_applies_slice_settles_first_when_the_slice_expires_within_a_second(tmp_path):
    """The slice expires at 90 s (60 s hold + 30 s lease_ttl). A bill settled from it and not applied counts in
    Redis only while the slice lives, so from 1 s before its expiry a snapshot applies it first."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_ttl_ms=30000&lease_idle_ms=3600000")
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 1)).granted
    assert await p.store.settle("r2", D("0.5"))
    p.clock.advance(88.999)
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("0.5")  # r1's hold expired at 60 s
    assert await p.plain.spend(B) == 0  # the slice (at 90 s) still counts it: not sent
    p.clock.advance(0.001)  # 89 s: one second before the slice expires
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("0.5")
    assert await p.plain.spend(B) == D("0.5")  # applied first
    await p.close()


async def test_two_pending_settles_from_a_slice_are_both_kept_out_of_a_reserve_reply(tmp_path):
    """r2 and r3 ($1 each from the $4 slice) are billed $0.50 and $0.25, both pending. r4 ($1, also on DAY)
    goes to Redis: the slice grows by 4 s of $4/s demand - the $3.25 free = $12.75, capped at 1/8 of the $94
    free = $11.75, to $15.75. Both pending bills are still in it: $15 are free here."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    for rid, bill in (("r2", "0.5"), ("r3", "0.25")):
        assert (await p.store.reserve(rid, [B], D("1"), 60)).granted
        assert await p.store.settle(rid, D(bill))
    assert (await p.store.reserve("r4", [B, DAY], D("1"), 60)).granted
    assert p.store.local_grants == 2
    assert await p.taken() == D("17.75")  # r1 + r4 holds + the $15.75 slice
    assert (await p.store.reserve("rest", [B], D("15"), 60)).granted
    assert p.store.local_grants == 3
    assert (await p.store.reserve("more", [B], D("0.000000001"), 60)).granted
    assert p.store.local_grants == 3
    await p.close()


async def test_a_settle_batch_reply_stops_local_grants_from_a_slice_another_process_needs(tmp_path):
    """A's keeper polls the drain flag only every 30 s here; B's denied request sets it. A's next settle batch
    reads it in its reply, so A's next request is not granted from the slice (it goes to Redis, which takes
    the slice's free part back first), and B is then granted."""
    import dataclasses

    cap = BudgetScope("tenant:drain2", Window.parse("rolling:24h"), D("10"))
    knobs = "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_share=1&lease_idle_ms=3600000"
    p = Pair(tmp_path, knobs)
    p.store.sizing = dataclasses.replace(p.store.sizing, poll_s=30.0)
    b = p.open(knobs + "&drain_wait_ms=20000", tmp_path / "b")
    assert (await p.store.reserve("r1", [cap], D("1"), 60)).granted
    assert (await p.store.reserve("a1", [cap], D("1"), 60)).granted
    assert p.store.local_grants == 1
    waiting = asyncio.ensure_future(b.reserve("b-big", [cap], D("6"), 60))  # 1 + 4 + 6 > 10, fits without A's slice
    for _ in range(200):
        if await p.plain.client.exists(f"{{{p.prefix}}}:ld:{cap.id}"):
            break
        await asyncio.sleep(0.01)
    assert not waiting.done()
    assert await p.store.settle("a1", D("1"))
    assert await p.store.flush(confirm=False) == 1  # its reply carries the drain flag
    assert (await p.store.reserve("a2", [cap], D("0.5"), 60)).granted
    assert p.store.local_grants == 1  # not from the slice
    got = await asyncio.wait_for(waiting, 10)
    assert got.granted
    assert await p.taken(cap) == D("8.5")  # r1 + a1's bill + a2 + b-big: A's slice is back
    await b.close()
    await p.close()


async def test_recent_demand_survives_a_slice_given_back_idle(tmp_path):
    """r1 ($1 at t) takes a $4 slice; idle for 1.5 s it is given back. r2 ($1 at t + 1.5 s) asks for a slice of
    4 s of the demand, which still remembers r1 decayed over 1.5 s: (1 + e^-1.5) * 4 = $4.89252064 (not $4)."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=1000")
    await _with_slice(p)
    p.clock.advance(1.5)
    for _ in range(200):
        if await p.taken() == D("1"):
            break
        await asyncio.sleep(0.02)
    assert await p.taken() == D("1")  # given back
    await asyncio.sleep(0.2)  # the keeper's next ticks
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.taken() == D("6.89252064")  # 1 + 1 + 4.89252064 (e^-1.5 = 0.2231301601...)
    await p.close()



async def test_a_slice_given_back_with_a_settle_pending_keeps_only_that_bill(tmp_path):
    """r2 ($1 from the $4 slice) is billed $1, logged, not applied; the idle slice's $3 free part goes back. Redis
    keeps $1 of the slice (covering the pending bill), none of it is free here: r3 goes to Redis."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=1000")
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("1"))
    p.clock.advance(1.5)
    for _ in range(200):
        if await p.taken() == D("2"):
            break
        await asyncio.sleep(0.02)
    assert await p.taken() == D("2")  # r1's hold + the $1 left of the slice (r2's bill, pending)
    await asyncio.sleep(0.05)  # the keeper takes the reply in
    assert await p.plain.spend(B) == 0
    assert (await p.store.reserve("r3", [B], D("1"), 60)).granted
    assert p.store.local_grants == 1  # not from the slice
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("1")
    await p.close()


async def test_after_a_slice_settle_is_applied_the_whole_slice_rest_is_free_again(tmp_path):
    """r2 ($1 from the $4 slice) billed $0.50 and applied: the slice is $3.50 in Redis, nothing pending. r3 ($1,
    also on DAY) goes to Redis, which grows the slice by 4 s of $3/s demand - $3.50 free = $8.50 to $12: all
    $12 are free here (an applied bill is not subtracted again)."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.5"))
    assert await p.store.flush(confirm=False) == 1
    assert (await p.store.reserve("r3", [B, DAY], D("1"), 60)).granted
    assert p.store.local_grants == 1
    assert await p.taken() == D("14.5")  # r1 + r3 holds + $0.50 billed + the $12 slice
    assert (await p.store.reserve("rest", [B], D("12"), 60)).granted
    assert p.store.local_grants == 2
    await p.close()


async def test_reservations_queued_behind_the_call_that_takes_a_slice_are_granted_from_it(tmp_path):
    """r1 goes to Redis and takes a $4 slice; r2 and r3 ($1 each) arrive while that call is in flight: once the
    reply is in, they are granted from the slice (no second round trip): 5 taken, not 7."""
    p = Pair(tmp_path, LEASES)
    first = asyncio.ensure_future(p.store.reserve("r1", [B], D("1"), 60))
    for _ in range(3):
        await asyncio.sleep(0)  # r1 queued, its batch sent
    rest = [asyncio.ensure_future(p.store.reserve(rid, [B], D("1"), 60)) for rid in ("r2", "r3")]
    assert all(r.granted for r in await asyncio.gather(first, *rest))
    assert p.store.local_grants == 2
    assert await p.taken() == D("5")
    assert (await p.store.reserve("r4", [B], D("2"), 60)).granted
    assert p.store.local_grants == 3  # the slice's last $2
    await p.close()


async def test_the_flusher_keeps_going_after_redis_was_unreachable(tmp_path):
    """The background flusher (flush_ms 20) fails while Redis is unreachable, retries, and applies the settle
    once Redis answers again, with no read to push it."""
    from router.ledger.factory import _fake_server

    p = Pair(tmp_path, "&flush_ms=20")
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    server = _fake_server(p.server.removeprefix("fakeredis://"))
    server.connected = False
    assert await p.store.settle("r1", D("1.5"))
    for _ in range(100):
        if p.store.flush_errors:
            break
        await asyncio.sleep(0.01)
    assert p.store.flush_errors >= 1
    server.connected = True
    for _ in range(300):
        if await p.plain.spend(B) == D("1.5"):
            break
        await asyncio.sleep(0.02)
    assert await p.plain.spend(B) == D("1.5")
    await p.close()


async def test_a_closed_log_segment_is_deleted_only_once_every_replica_has_its_settles(tmp_path):
    """The settle log rolls over to a new segment about once a second; a closed segment whose settles a replica
    has not acknowledged stays on disk (a crash now must replay it), and is deleted once they are."""
    p = Pair(tmp_path)
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    first = sorted(p.log_dir.glob("*.jsonl"))
    assert len(first) == 1
    await asyncio.sleep(1.1)  # the segment is due to roll over at the next synced flush
    assert await p.store.flush() == 1
    assert first[0].exists()  # closed, but the replica is at 50 < 100
    repl.replicas = [100]
    assert await p.store.flush() == 0
    assert not first[0].exists()  # confirmed: deleted
    assert await p.plain.spend(B) == D("1.5")
    await p.close()
