"""Budget leases on fakeredis: what the full mutation run of ``router/ledger/deferred.py`` (issue 12) found unseen on
the lease / reservation path (the keeper, the give-back, this process's own snapshot, reads after a failed flush).

Each test asserts what a user of the ledger relies on: what another process sees taken from a cap (bills + holds +
every slice), what this process's own snapshot shows (its slices' free part left out, to the nano), that a slice's
free part goes back when it sat idle or another process needs it (leases never strand capacity), and that a read
shows this store's settles even after a flush that could not reach Redis. Amounts are worked out by hand from the
lease sizing described in test_deferred_fast.py: a first $1 reservation on the $100 budget B takes a $4 slice."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import pytest
import redis.exceptions

from router.errors import StoreError, StoreUnavailableError
from router.ledger import BudgetScope, Window
from router.ledger.base import RECORD_GRACE_MS
from tests.ledger.test_deferred_fast import B, DAY, LEASES, Pair, _with_slice, hand_over
from tests.ledger.test_deferred_mutants import B2, _drained_pair, _set_reachable

D = Decimal
NANO = D("0.000000001")
#: LEASES, but a slice that sat unused for 1 s goes back
IDLE_1S = "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=1000"


async def _until(p: Pair, amount: Decimal, budget=B, seconds: float = 4.0) -> Decimal:  # noqa: ANN001
    """What another process sees taken from ``budget`` once it is ``amount`` (or after ``seconds``)."""
    for _ in range(int(seconds / 0.02)):
        taken = await p.taken(budget)
        if taken == amount:
            return taken
        await asyncio.sleep(0.02)
    return await p.taken(budget)


# ---------------------------------------------------------------- this process's own snapshot
async def test_this_processs_snapshot_leaves_out_exactly_the_free_part_of_its_slice(tmp_path):
    """Another process sees r1's $1 hold and the whole $4 slice. This process's own view leaves out the slice's
    free part, to the nano (a reservation of $4 less one nano leaves one nano free), and never shows less than
    nothing: with only the unused slice left in Redis, its own spend is $0."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("l1", [B], D("4") - NANO, 60)).granted
    assert p.store.local_grants == 1
    assert await p.taken() == D("5")
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("5") - NANO
    assert await p.store.release("l1") is True
    assert await p.store.release("r1") is True
    assert await p.taken() == D("4")  # the slice only
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == 0
    await p.close()


# ---------------------------------------------------------------- what reserve answers
async def test_a_reservation_granted_from_a_slice_names_its_id_also_when_reserved_again(tmp_path):
    """The Reservation answered for a grant from a slice, and for the same id reserved again (idempotent), names
    that reservation (the id the caller settles or releases), with its amount."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    got = await p.store.reserve("l1", [B], D("1.5"), 60)
    assert (got.reservation_id, got.granted, got.denied_scope, got.amount) == ("l1", True, None, D("1.5"))
    assert p.store.local_grants == 1
    again = await p.store.reserve("l1", [B], D("1.5"), 60)
    assert (again.reservation_id, again.granted, again.denied_scope, again.amount) == ("l1", True, None, D("1.5"))
    assert p.store.local_grants == 1
    await p.close()


async def test_every_budget_of_a_deferred_reservation_is_registered_with_its_limit(tmp_path):
    """``router spend`` lists the budgets the ledger has seen: a reservation on two budgets with the same $100 limit
    registers both (each its own definition), not only the first."""
    p = Pair(tmp_path, LEASES)
    twin = BudgetScope("tenant:twin", Window.parse("rolling:24h"), D("100"))
    assert (await p.store.reserve("r1", [B, twin], D("1"), 60)).granted
    scopes = {info.budget.id: info.budget.limit_usd for info in await p.plain.list_scopes()}
    assert scopes == {B.id: D("100"), twin.id: D("100")}
    await p.close()


# ---------------------------------------------------------------- the keeper gives idle and drained free parts back
async def test_a_slice_down_to_one_free_nano_is_given_back_once_idle(tmp_path):
    """l1 takes all but one nano of the $4 slice and is billed in full: the slice is one nano now, all of it free.
    Idle for lease_idle_ms (1 s), that nano goes back too: another process then sees r1's hold and l1's bill only."""
    p = Pair(tmp_path, IDLE_1S)
    await _with_slice(p)
    assert (await p.store.reserve("l1", [B], D("4") - NANO, 60)).granted
    assert p.store.local_grants == 1
    assert await p.store.settle("l1", D("4") - NANO)
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("4") - NANO
    assert await p.taken() == D("5")  # r1 + the bill + the one-nano slice
    await asyncio.sleep(0.15)  # keeper ticks: not idle yet (the clock stands still)
    assert await p.taken() == D("5")
    p.clock.advance(1)
    assert await _until(p, D("5") - NANO) == D("5") - NANO
    await p.close()


async def test_a_slice_whose_drain_ends_exactly_now_keeps_its_free_part(tmp_path):
    """The drain another process asked for lasts lease drain_s (1 s) from when the flag was read; at exactly its
    end the slice is this process's again: r3's released $1 stays in the slice (not idle: lease_idle_ms is an
    hour) and serves r4 locally; another process still sees B's $3 taken (r2's bill, r3's $1, r1's hold)."""
    p = await _drained_pair(tmp_path)
    assert await p.store.release("r3") is True
    await asyncio.sleep(0.2)  # keeper ticks at the drain's last millisecond (the clock stands still)
    assert await p.taken() == D("3")
    assert (await p.store.reserve("r4", [B], D("1"), 60)).granted
    assert p.store.local_grants == 4
    assert await p.taken() == D("3")
    await p.close()


async def test_the_keeper_survives_a_drain_flag_poll_that_cannot_reach_redis(tmp_path):
    """Redis is unreachable when the keeper polls the drain flags; once it is back, the next poll reads the flag
    another process set and the slice's $4 free part goes back (it is not stranded until the slice expires)."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    await p.plain.client.set(p.store.keys.drain_flag(B.id), "1")
    _set_reachable(p, False)
    p.clock.advance(0.1)  # the flag read with r1's reply is stale: the keeper polls it (and fails)
    await asyncio.sleep(0.2)
    _set_reachable(p, True)
    assert await _until(p, D("1")) == D("1")  # r1's hold only
    await p.close()


@pytest.mark.parametrize("poll_s", [0.05, 1.0])
async def test_the_keeper_polls_drain_flags_once_per_poll_s_of_clock_time(tmp_path, poll_s):
    """The keeper ticks every poll_s (50 ms by default) but reads a flag only when no reply read it in the last
    poll_s of ledger clock: with the clock standing still it sends no MGET at all; once exactly poll_s passed, one
    MGET reads the flag another process set, and the slice's $4 free part goes back."""
    p = Pair(tmp_path, LEASES)
    p.store.sizing = dataclasses.replace(p.store.sizing, poll_s=poll_s)  # (read by the keeper when it starts)
    reads = []
    mget = p.store.client.mget

    async def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        reads.append(args)
        return await mget(*args, **kwargs)

    p.store.client.mget = counting
    await _with_slice(p)
    await p.plain.client.set(p.store.keys.drain_flag(B.id), "1")
    await asyncio.sleep(0.3)  # about six keeper ticks
    assert reads == []
    assert await p.taken() == D("5")
    p.clock.advance(poll_s)
    assert await _until(p, D("1")) == D("1")
    await asyncio.sleep(0.2)
    assert len(reads) == 1
    await p.close()


async def test_a_drain_read_in_a_settle_batch_reply_ends_after_exactly_drain_s(tmp_path):
    """A settle batch's reply carries the drain flag another process set: the slice stops granting for lease
    drain_s (1 s) from then. The keeper is kept out of the way (poll_s a minute). With the flag gone, exactly 1 s
    later the slice grants again: a3 is granted from its $2 free part, and another process still sees the
    whole $3 slice (r1's $1 hold + a1's $1 bill + the slice: $5)."""
    p = Pair(tmp_path, LEASES)
    p.store.sizing = dataclasses.replace(p.store.sizing, poll_s=60.0)  # (read by the keeper when it starts)
    await _with_slice(p)
    for rid in ("a1", "a2"):
        assert (await p.store.reserve(rid, [B], D("1"), 60)).granted
    assert p.store.local_grants == 2
    await p.plain.client.set(p.store.keys.drain_flag(B.id), "1")
    assert await p.store.settle("a1", D("1"))
    assert await p.store.flush(confirm=False) == 1  # its reply carries the flag
    await p.plain.client.delete(p.store.keys.drain_flag(B.id))
    p.clock.advance(1)
    assert (await p.store.reserve("a3", [B], D("1"), 60)).granted
    assert p.store.local_grants == 3
    assert await p.taken() == D("5")
    await p.close()


async def test_a_drain_flag_read_while_applying_a_dead_processs_log_stops_local_grants(tmp_path, monkeypatch):
    """A dead process's log settles dead1 ($0.40 of a $1 hold) on B2 and B, in that order; this process holds a
    slice of B only (none of B2), and another process needs B (its flag is set). Applying that log reads both
    budgets' flags: B's stops local grants at once (the keeper, polling once a minute here, would be too late),
    so l2 goes to Redis, which takes the slice's free $3 back first: another process sees r1's hold, l1's $1
    of the slice, l2's hold and the $0.40 bill ($3.40)."""
    from router.ledger import deferred

    monkeypatch.setattr(deferred, "ORPHAN_SCAN_S", 0.05)
    p = Pair(tmp_path, LEASES)
    p.store.sizing = dataclasses.replace(p.store.sizing, poll_s=60.0)  # (read by the keeper when it starts)
    await _with_slice(p)
    assert (await p.store.reserve("l1", [B], D("1"), 60)).granted
    assert (await p.plain.reserve("dead1", [B2, B], D("1"), 60)).granted
    line = '{"rid":"dead1","mode":"S","nano":400000000,"held":1000000000,"bids":["%s","%s"],"at":%d,"owner":""}\n'
    (p.log_dir / "4242-deadbeef.000000001.jsonl").write_text(line % (B2.id, B.id, p.store.now_ms()))
    (p.log_dir / "4242-deadbeef.lock").touch()
    await p.plain.client.set(p.store.keys.drain_flag(B.id), "1")
    await asyncio.sleep(0.1)  # the next scan for dead processes' logs is due
    assert await p.store.flush(confirm=False) == 1  # the dead process's settle, with B2's and B's flags
    assert await p.plain.spend(B) == D("0.4")
    assert (await p.store.reserve("l2", [B], D("1"), 60)).granted
    assert p.store.local_grants == 1  # l1 only
    assert await p.taken() == D("3.4")
    await p.close()


async def test_the_keeper_keeps_giving_back_after_a_give_back_redis_refused(tmp_path):
    """Another process needs B (its drain flag is set). The keeper's give-back fails once (the lease's Redis key
    holds a wrong type: a script error, not an outage); the keeper carries on, so once the key is intact again
    the $1 that a1's release frees is given back too: another process then sees r1's hold + the $3 of the slice
    that the failed give-back left in Redis ($4), not the whole $5."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("a1", [B], D("1"), 60)).granted
    key = p.store.keys.lease(B.id)
    saved = await p.plain.client.hgetall(key)
    await p.plain.client.delete(key)
    await p.plain.client.set(key, "not a hash")
    await p.plain.client.set(p.store.keys.drain_flag(B.id), "1")
    p.clock.advance(0.1)  # the flag read with r1's reply is stale: the keeper polls it and gives back (refused)
    await asyncio.sleep(0.2)
    assert await p.taken() == D("5")
    await p.plain.client.delete(key)
    await p.plain.client.hset(key, mapping=saved)
    assert await p.store.release("a1") is True
    assert await _until(p, D("4")) == D("4")
    await p.close()


class _FailingGiveBack:
    """Wraps a client's ``evalsha`` so the next give-back (``reserve_batch`` with no request) fails to reach Redis
    (a connection error, as when Redis is down for that one call); ``failed`` is set once it did."""

    def __init__(self, client) -> None:  # noqa: ANN001 - a redis client
        self.evalsha, self.failed = client.evalsha, asyncio.Event()
        client.evalsha = self

    async def __call__(self, sha: str, numkeys: int, *keys_and_args: object) -> object:
        args = keys_and_args[numkeys:]
        if len(args) > 6 and str(args[6]) == "0" and not self.failed.is_set():
            self.failed.set()
            raise redis.exceptions.ConnectionError("Redis went away for this call")
        return await self.evalsha(sha, numkeys, *keys_and_args)


async def test_the_keeper_keeps_giving_back_after_a_give_back_could_not_reach_redis(tmp_path):
    """As above, but the failed give-back could not reach Redis at all: the keeper carries on, and the $1 that
    a1's release frees is given back at a later tick (another process sees $4, not $5)."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("a1", [B], D("1"), 60)).granted
    failing = _FailingGiveBack(p.store.client)
    await p.plain.client.set(p.store.keys.drain_flag(B.id), "1")
    p.clock.advance(0.1)  # the flag read with r1's reply is stale: the keeper polls it and gives back (fails)
    await asyncio.wait_for(failing.failed.wait(), 5)
    await asyncio.sleep(0.1)
    assert await p.taken() == D("5")
    assert await p.store.release("a1") is True
    assert await _until(p, D("4")) == D("4")
    await p.close()


# ---------------------------------------------------------------- reservations granted from a slice while queued
async def _queued_behind_the_slice(p: Pair) -> None:
    """r1 goes to Redis and takes the $4 slice; r2 and r3 ($1 each, 60 s) arrive while that call is in flight and
    are granted from the slice once its reply is in (no second round trip)."""
    first = asyncio.ensure_future(p.store.reserve("r1", [B], D("1"), 60))
    for _ in range(3):
        await asyncio.sleep(0)  # r1 queued, its batch sent
    rest = [asyncio.ensure_future(p.store.reserve(rid, [B], D("1"), 60)) for rid in ("r2", "r3")]
    assert all(r.granted for r in await asyncio.gather(first, *rest))
    assert p.store.local_grants == 2
    assert await p.taken() == D("5")


async def test_a_slice_that_served_queued_reservations_goes_back_once_idle(tmp_path):
    """After r2 and r3 took $2 of the slice while queued, it sits idle for lease_idle_ms (1 s): its $2 free part
    goes back (another process sees r1's hold + the $2 of r2 and r3 in the slice: $3)."""
    p = Pair(tmp_path, IDLE_1S)
    await _queued_behind_the_slice(p)
    p.clock.advance(1)
    assert await _until(p, D("3")) == D("3")
    await p.close()


async def test_reservations_granted_from_a_slice_while_queued_name_their_ids(tmp_path):
    """r2 and r3, granted from the slice r1's reply brought while they waited in the group commit, are answered
    with their own ids (the ids the caller settles or releases) and amounts, like a grant from Redis."""
    p = Pair(tmp_path, LEASES)
    first = asyncio.ensure_future(p.store.reserve("r1", [B], D("1"), 60))
    for _ in range(3):
        await asyncio.sleep(0)  # r1 queued, its batch sent
    rest = [asyncio.ensure_future(p.store.reserve(rid, [B], D(amount), 60)) for rid, amount in (("r2", "1"), ("r3", "0.5"))]
    got = await asyncio.gather(first, *rest)
    assert p.store.local_grants == 2
    assert [(r.reservation_id, r.granted, r.denied_scope, r.amount) for r in got] == [
        ("r1", True, None, D("1")), ("r2", True, None, D("1")), ("r3", True, None, D("0.5"))]
    await p.close()


async def test_reservations_granted_from_a_slice_while_queued_expire_with_their_ttl(tmp_path):
    """r2 and r3 (60 s) end with their TTL like any reservation: 61 s later (r1's hold gone too, the slice lives
    to 90 s) their room is back in the slice, so r4 ($4, 20 s) is granted from it, no round trip; another
    process sees the slice alone ($4)."""
    p = Pair(tmp_path, LEASES)
    await _queued_behind_the_slice(p)
    p.clock.advance(61)
    got = await p.store.reserve("r4", [B], D("4"), 20)
    assert got.granted is True and got.amount == D("4")
    assert p.store.local_grants == 3
    assert await p.taken() == D("4")
    await p.close()


async def test_a_reservation_from_a_slice_ends_exactly_at_its_ttl(tmp_path):
    """l1 ($3, 10 s) ends at exactly 10 s, as a Redis hold does (counted while its expiry is after now): at that
    millisecond the slice's whole $4 is free again, so l2 ($4) is granted from it, no round trip (another process
    still sees r1's hold + the $4 slice)."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("l1", [B], D("3"), 10)).granted
    p.clock.advance(10)
    got = await p.store.reserve("l2", [B], D("4"), 5)
    assert got.granted is True and got.amount == D("4")
    assert p.store.local_grants == 2
    assert await p.taken() == D("5")
    await p.close()


async def test_a_slice_reservation_is_forgotten_after_the_record_grace(tmp_path):
    """A reservation from a slice is remembered for a late settle for RECORD_GRACE_MS (24 h) after it ended, like
    a Redis hold's record, and (as the reservation itself ends exactly at its TTL) no longer at exactly 24 h
    after its end: a settle then is refused as unknown and books nothing."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("l1", [B], D("1"), 10)).granted
    p.clock.advance(10 + RECORD_GRACE_MS / 1000)
    await p.store.snapshot([B], [], [])  # (any call that looks at the slices forgets what ended long ago)
    with pytest.raises(StoreError, match="unknown reservation"):
        await p.store.settle("l1", D("1"))
    assert await p.store.flush(confirm=False) == 0
    assert await p.plain.spend(B) == 0
    await p.close()


class _SlowReserves:
    """Wraps a client's ``evalsha`` so a reserve batch that decides requests takes ``delay`` seconds longer (the
    slice guard stays held meanwhile); ``started`` is set when one is in flight."""

    def __init__(self, client, delay: float) -> None:  # noqa: ANN001 - a redis client
        self.evalsha, self.delay, self.started = client.evalsha, delay, asyncio.Event()
        client.evalsha = self

    async def __call__(self, sha: str, numkeys: int, *keys_and_args: object) -> object:
        args = keys_and_args[numkeys:]
        if len(args) > 6 and str(args[6]) != "0":  # reserve_batch with requests
            self.started.set()
            await asyncio.sleep(self.delay)
        return await self.evalsha(sha, numkeys, *keys_and_args)


async def test_a_reservation_that_fits_the_slice_never_waits_for_a_redis_call_in_flight(tmp_path):
    """Granted from this process's slice with no round trip: while d1's reserve call (on another budget) is in
    flight (it takes a second here), l1 fits B's slice and is answered at once, not after that call."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    slow = _SlowReserves(p.store.client, 1.0)
    other = asyncio.ensure_future(p.store.reserve("d1", [DAY], D("1"), 60))
    await asyncio.wait_for(slow.started.wait(), 5)
    got = await p.store.reserve("l1", [B], D("1"), 60)
    assert got.granted is True and got.amount == D("1")
    assert not other.done()  # answered before d1's call came back
    assert p.store.local_grants == 1
    assert (await other).granted
    await p.close()


async def test_a_give_back_whose_free_part_was_granted_meanwhile_gives_nothing_back(tmp_path):
    """The idle slice's $3 free part is chosen for a give-back while a reserve call (on another budget) holds the
    slice guard; before the give-back runs, r3 takes those $3 from the slice. The give-back then has nothing to
    return: Redis keeps the whole $4 slice for r2 + r3, so with the rest of B taken elsewhere not one nano more
    is granted to another process."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=1")
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert (await p.plain.reserve("fill", [B], D("95"), 60)).granted
    slow = _SlowReserves(p.store.client, 0.4)
    other = asyncio.ensure_future(p.store.reserve("d1", [DAY], D("1"), 60))
    await asyncio.wait_for(slow.started.wait(), 5)
    p.clock.advance(0.01)  # idle now: the keeper's next tick chooses B's $3 and waits for the guard
    await asyncio.sleep(0.15)
    got = await p.store.reserve("r3", [B], D("3"), 60)
    assert got.granted is True and p.store.local_grants == 2
    assert (await other).granted
    await asyncio.sleep(0.2)  # the give-back has run
    assert await p.taken() == D("100")
    assert not (await p.plain.reserve("over", [B], NANO, 60)).granted
    await p.close()


async def test_a_slice_redis_lost_under_a_held_reservation_is_kept_until_it_ends(tmp_path):
    """Redis loses everything (a restart without persistence) while l1 ($3, five minutes) is held from the $4
    slice. A minute later the keeper gives the idle slice back and learns it is gone. l1 still counts as used in
    the lease it belongs to: its release answers True (the lease is not forgotten while l1 is held), and the next
    slice ($4, taken by r3) grants exactly its size: with B's rest taken elsewhere, $4 more is granted from it
    and $1 more is denied (never beyond the cap)."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=1000&lease_ttl_ms=600000")
    await _with_slice(p)
    assert (await p.store.reserve("l1", [B], D("3"), 300)).granted
    assert p.store.local_grants == 1
    await p.plain.client.flushall()
    p.clock.advance(61)  # l1's demand is a minute old; the slice sat idle: the keeper gives it back
    await asyncio.sleep(0.3)
    assert await p.taken() == 0
    assert await p.store.release("l1") is True
    assert (await p.store.reserve("r3", [B], D("1"), 60)).granted
    assert await p.taken() == D("5")  # r3's hold + the new $4 slice
    assert (await p.plain.reserve("fill", [B], D("95"), 60)).granted
    assert (await p.store.reserve("r4", [B], D("4"), 60)).granted
    assert p.store.local_grants == 2
    assert not (await p.store.reserve("r5", [B], D("1"), 60)).granted
    assert await p.taken() == D("100")
    await p.close()


# ---------------------------------------------------------------- reads after a flush that could not reach Redis
async def test_a_read_after_a_failed_flush_applies_the_settle_first(tmp_path):
    """r1's $1.25 bill (a $3 Redis hold) was logged; the explicit flush could not reach Redis, so it waits in a
    batch not applied yet (the background flusher is not due for 10 minutes). Once Redis is back, this store's
    spend shows the bill (read your writes)."""
    p = Pair(tmp_path)
    assert (await p.store.reserve("r1", [B], D("3"), 60)).granted
    assert await p.store.settle("r1", D("1.25"))
    _set_reachable(p, False)
    with pytest.raises(StoreUnavailableError):
        await p.store.flush(confirm=False)
    _set_reachable(p, True)
    assert await p.store.spend(B) == D("1.25")
    assert await p.plain.spend(B) == D("1.25")
    await p.close()


async def test_a_snapshot_with_leases_after_a_failed_flush_applies_a_redis_hold_settle_first(tmp_path):
    """With leases: r1's $0.25 bill settles a $1 Redis hold; the flush failed, so Redis still counts the hold. This
    process's snapshot applies it first: $0.25 (the $4 slice is its own free part), not the $1 hold."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert await p.store.settle("r1", D("0.25"))
    _set_reachable(p, False)
    with pytest.raises(StoreUnavailableError):
        await p.store.flush(confirm=False)
    _set_reachable(p, True)
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("0.25")
    assert await p.plain.spend(B) == D("0.25")
    await p.close()


async def test_a_snapshot_with_leases_applies_a_dead_processs_log_whose_first_apply_failed(tmp_path):
    """A dead process logged s1's $0.25 bill (a $1 hold; its $4 slice is still in Redis). The heir adopts its log
    while Redis is unreachable, so the log waits unapplied; once Redis is back the heir's snapshot applies it
    first: the bill + the dead process's slice, $4.25, not the $1 hold."""
    p = Pair(tmp_path, LEASES, log="a")
    assert (await p.store.reserve("s1", [B], D("1"), 60)).granted
    assert await p.store.settle("s1", D("0.25"))
    heir_dir = tmp_path / "b"
    hand_over(tmp_path / "a", heir_dir)
    heir = p.open(LEASES, heir_dir)
    heir.retry_interval_s = 30.0  # the background flusher's retry waits (it must not apply the log meanwhile)
    _set_reachable(p, False)
    with pytest.raises(StoreUnavailableError):
        await heir.flush(confirm=False)
    await asyncio.sleep(0.05)  # the background flusher tried too (and failed)
    _set_reachable(p, True)
    assert (await heir.snapshot([B], [], [])).spend[B.id] == D("4.25")
    assert await p.plain.spend(B) == D("0.25")
    await heir.close()
    await p.close()


async def test_this_processs_snapshot_stops_leaving_out_a_slice_once_it_expired(tmp_path):
    """r1's $1 is billed; its $4 slice expires at 90 s (60 s hold + 30 s lease TTL). Right after that, before the
    keeper's next tick (poll_s set to a minute here), Redis no longer counts the slice, so this process's own
    snapshot must not leave its free part out any more: it shows the $1 bill, not $1 - $4 (floored at $0)."""
    p = Pair(tmp_path, LEASES)
    p.store.sizing = dataclasses.replace(p.store.sizing, poll_s=60.0)  # (read by the keeper when it starts)
    await _with_slice(p)
    assert await p.store.settle("r1", D("1"))
    assert await p.store.flush(confirm=False) == 1
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("1")
    p.clock.advance(90)
    assert await p.taken() == D("1")
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("1")
    await p.close()
