"""Deferred settlement on fakeredis, the settle path (issue 12, the full mutmut run of ``router/ledger/deferred.py``;
verdicts in bench/mutation/verdicts.tsv): what the ledger shows at a cap after settles from slices are lost by a
failover and applied again, after a late settle of a slice reservation whose lease was forgotten, and the like.

Amounts are worked out by hand from the lease sizing described in test_deferred_fast.py (a first $1 reservation on
a $100 budget takes a $4 slice: 4 s of $1/s demand; a later request asks for 4 s of the demand minus what is still
free here, at most 1/8 of the budget's free part). nano-USD = USD * 10^9."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from tests.ledger.test_deferred_fast import B, DAY, LEASES, Pair, Replication, _with_slice
from tests.ledger.test_deferred_mutants import _dump, _promote

D = Decimal


# ---------------------------------------------------------------- a failover that lost two slice settles
async def test_a_failover_that_lost_two_slice_settles_counts_both_pending_again(tmp_path):
    """r2 and r3 ($1 each from the $4 slice) are billed $1 and $0.50; both settles go in one batch, applied on
    primary-a (slice $2.50, $1.50 booked) but not acknowledged by its replica, which is promoted without them.
    The store applies the batch again on the new primary (both decrements pending again until then, $1.50 in
    all, not only the last one's $0.50). r4 ($1, also on DAY) goes to Redis: the slice grows by 4 s of $4/s
    demand minus the $1 free here, capped at 1/8 of the $94 free = $11.75, to $14.25 (17.75 taken). With the
    rest of the cap taken elsewhere, the slice grants exactly its $14.25 locally and a nano more is denied (it
    was granted: the slice looked $1 bigger than Redis holds for it)."""
    p = Pair(tmp_path, LEASES)
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    await _with_slice(p)
    for rid, bill in (("r2", "1"), ("r3", "0.5")):
        assert (await p.store.reserve(rid, [B], D("1"), 60)).granted
        assert await p.store.settle(rid, D(bill))
    assert p.store.local_grants == 2
    replica = await _dump(p.plain.client)
    assert await p.store.flush() == 2
    assert p.store.backlog() == 2  # the replica is behind
    assert await p.plain.spend(B) == D("1.5")
    await _promote(p.plain.client, replica)
    repl.replid, repl.offset, repl.replicas = "primary-b", 10, []
    assert await p.plain.spend(B) == 0
    assert await p.store.flush() == 2  # the new replication id: applied again
    assert p.store.backlog() == 0
    assert await p.plain.spend(B) == D("1.5")
    assert await p.taken() == D("5")  # r1's $1 hold + $1.50 booked + the $2.50 slice
    assert (await p.store.reserve("r4", [B, DAY], D("1"), 60)).granted
    assert p.store.local_grants == 2
    assert await p.taken() == D("17.75")  # r1 + r4 + $1.50 booked + the $14.25 slice
    assert (await p.plain.reserve("fill", [B], D("82.25"), 60)).granted
    got = await p.store.reserve("rest", [B], D("14.25"), 60)
    assert got.granted is True and got.amount == D("14.25")
    assert p.store.local_grants == 3  # from the slice
    assert (await p.store.reserve("over", [B], D("0.000000001"), 60)).granted is False
    assert await p.taken() == D("100")
    await p.close()


# ---------------------------------------------------------------- a late settle after the lease was forgotten
async def test_a_late_settle_of_a_slice_reservation_is_booked_after_its_lease_was_forgotten(tmp_path):
    """r2 ($1 from the slice, held 60 s) is settled 100 s later: its hold, r1's and the slice (90 s) have expired,
    and the keeper has forgotten the idle lease. The settle is still accepted (within the record grace) and its
    $0.75 bill is booked at once (no slice covers it), exactly once."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert p.store.local_grants == 1
    p.clock.advance(100)
    deadline = time.monotonic() + 10
    while B.id in p.store._leases and time.monotonic() < deadline:  # the keeper's next tick (every 50 ms)
        await asyncio.sleep(0.01)
    assert B.id not in p.store._leases
    assert await p.taken() == 0  # every hold and the slice expired
    assert await p.store.settle("r2", D("0.75")) is True
    assert await p.plain.spend(B) == D("0.75")  # booked before settle returned
    assert await p.store.settle("r2", D("0.75")) is False
    assert await p.store.flush() == 0
    assert await p.plain.spend(B) == D("0.75")
    assert await p.taken() == D("0.75")
    await p.close()
