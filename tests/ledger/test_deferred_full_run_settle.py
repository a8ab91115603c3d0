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

import pytest

from router.errors import StoreUnavailableError
from router.ledger import BudgetScope, store_from_url
from tests.ledger.test_deferred_fast import B, DAY, LEASES, Pair, Replication, _with_slice, hand_over
from tests.ledger.test_deferred_mutants import _dump, _FailingSettleBatches, _open_mode, _promote, _set_reachable

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


# ---------------------------------------------------------------- what the settle log keeps for the next process
async def test_a_replayed_settle_of_a_fail_open_grant_keeps_the_amount_granted(tmp_path):
    """fail_open: "down" ($2) is granted while Redis is unreachable (no hold, no record in Redis) and settled at
    $1.50; the process dies before sending it. The next process replays its log: $1.50 is booked once, and
    reserving "down" again returns the reservation as granted ($2, from the log's hold amount), not the bill."""
    p = Pair(tmp_path)
    store = _open_mode(p, "fail_open", tmp_path)
    _set_reachable(p, False)
    assert (await store.reserve("down", [B], D("2"), 60)).amount == D("2")
    _set_reachable(p, True)
    await asyncio.sleep(0.05)  # past retry_interval_s
    assert await store.settle("down", D("1.5")) is True
    hand_over(tmp_path / "fail_open", tmp_path / "heir")
    heir = p.open("", tmp_path / "heir")
    assert await heir.spend(B) == D("1.5")
    assert await p.plain.spend(B) == D("1.5")
    again = await p.plain.reserve("down", [B], D("2"), 60)
    assert again.granted is True and again.amount == D("2")
    assert await p.taken() == D("1.5")  # no new hold
    await heir.close()
    await store.close()
    assert await p.plain.spend(B) == D("1.5")  # the first process's own entry: counted once
    await p.close()


async def test_a_replayed_settle_from_a_slice_shrinks_the_dead_processs_slice_by_the_bill(tmp_path):
    """r2 ($1 from the $4 slice) is billed $0.50 and the process dies before sending it. The next process replays
    the log: $0.50 is booked and the slice shrinks by it to $3.50, so r1's $1 hold + $0.50 + $3.50 = $5 are
    taken, as before the settle (the bill is not counted twice, in the slice and booked)."""
    p = Pair(tmp_path, LEASES, log="a")
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.5"))
    assert await p.taken() == D("5")
    hand_over(tmp_path / "a", tmp_path / "heir")
    heir = p.open("", tmp_path / "heir")
    assert await heir.flush() == 1
    assert await p.plain.spend(B) == D("0.5")
    assert await p.taken() == D("5")  # r1's hold + $0.50 booked + the $3.50 slice
    await heir.close()
    await p.close()


async def test_an_adopted_slice_settle_of_a_dead_process_leaves_this_processs_own_slice_exact(tmp_path, monkeypatch):
    """Process A (r1 $1 + a $4 slice) billed r2 ($1 from its slice) $0.50 and died before sending it. Process H
    took its own $4 slice (h1 $1; 10 taken) and then adopts A's log: the $0.50 comes off A's slice, nothing off
    H's. h2 ($1, also on DAY) grows H's slice by 4 s of $2/s demand minus its $4 free, to $8 (15 taken); with
    the rest of the cap taken elsewhere, H grants exactly its $8 locally and a nano more is denied (it was
    granted: A's decrement was taken off H's own pending part, so H's slice looked $0.50 bigger)."""
    from router.ledger import deferred

    monkeypatch.setattr(deferred, "ORPHAN_SCAN_S", 0.05)
    p = Pair(tmp_path, LEASES, log="a")
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.5"))
    heir = p.open(LEASES, tmp_path / "heir")
    assert (await heir.reserve("h1", [B], D("1"), 60)).granted
    assert await p.taken() == D("10")  # r1 + A's $4 slice + h1 + H's $4 slice
    hand_over(tmp_path / "a", tmp_path / "heir")
    await asyncio.sleep(0.1)  # past the next look for dead processes' logs
    assert await heir.flush() == 1
    assert await p.plain.spend(B) == D("0.5")
    assert await p.taken() == D("10")  # A's slice is $3.50 now, $0.50 booked
    assert (await heir.reserve("h2", [B, DAY], D("1"), 60)).granted
    assert await p.taken() == D("15")
    assert (await p.plain.reserve("fill", [B], D("85"), 60)).granted
    got = await heir.reserve("rest", [B], D("8"), 60)
    assert got.granted is True and got.amount == D("8")
    assert heir.local_grants == 1
    assert (await heir.reserve("over", [B], D("0.000000001"), 60)).granted is False
    assert await p.taken() == D("100")
    await heir.close()
    await p.close()


# ---------------------------------------------------------------- the flush interval bounds the staleness
async def test_a_steady_stream_of_settles_is_sent_flush_ms_after_the_oldest(tmp_path):
    """flush_ms=300 and a settle every 50 ms for 2 s: the first bill must reach Redis about 300 ms after it was
    logged (the oldest pending settle sets the time), not wait for a pause in the stream (it never came: each
    settle moved the send 300 ms later). Checked at 1.2 s, generously."""
    p = Pair(tmp_path)
    log_dir = tmp_path / "stream"
    store = store_from_url(f"{p.server}?settle=deferred&settle_log={log_dir}&flush_ms=300", prefix=p.prefix, clock=p.clock)
    for i in range(40):
        assert (await store.reserve(f"s{i}", [B], D("1"), 60)).granted
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen_at = None
    for i in range(40):
        assert await store.settle(f"s{i}", D("0.01"))
        if seen_at is None and await p.plain.spend(B) > 0:
            seen_at = loop.time() - start
        await asyncio.sleep(0.05)
    assert seen_at is not None and seen_at < 1.2
    await store.close()
    assert await p.plain.spend(B) == D("0.4")
    await p.close()


# ---------------------------------------------------------------- a limit changed between two queued reservations
async def test_a_budget_limit_changed_within_one_group_commit_is_recorded_for_router_spend(tmp_path):
    """x and y are decided by Redis in one call (queued together), both on B and DAY; y names B with a new $200
    limit (a policy reloaded meanwhile). Both are granted, and the scopes `router spend` lists show B at $200
    (the latest limit) and DAY still at $50 (y's DAY meta, unchanged, is not sent again)."""
    p = Pair(tmp_path)
    assert (await p.store.reserve("warm", [DAY], D("1"), 60)).granted  # (the log is looked at once)
    b200 = BudgetScope(B.scope, B.window, D("200"))
    x, y = await asyncio.gather(p.store.reserve("x", [B, DAY], D("1"), 60), p.store.reserve("y", [b200, DAY], D("2"), 60))
    assert x.granted is True and x.amount == D("1")
    assert y.granted is True and y.amount == D("2")
    assert await p.taken() == D("3")
    assert await p.taken(DAY) == D("4")
    limits = {s.budget.id: s.budget.limit_usd for s in await p.store.list_scopes()}
    assert limits == {B.id: D("200"), DAY.id: D("50")}
    await p.close()


# ---------------------------------------------------------------- a denial decided again keeps the queue
async def test_a_reservation_queued_behind_a_denial_decided_again_is_still_answered(tmp_path):
    """A $90 hold is settled at $10 (pending: Redis still counts $90). "next" ($85) goes to Redis and is denied
    there; while that call is in flight "small" ($1) is queued. The store applies the pending settle and puts
    "next" back at the head of the queue: both are answered (granted: 10 + 85 + 1 <= 100), "small" is not lost."""
    p = Pair(tmp_path)
    assert (await p.store.reserve("big", [B], D("90"), 60)).granted
    assert await p.store.settle("big", D("10"))
    first = asyncio.ensure_future(p.store.reserve("next", [B], D("85"), 60))
    for _ in range(3):  # until the commit loop has taken "next" and waits for Redis
        await asyncio.sleep(0)
    assert not first.done()
    second = asyncio.ensure_future(p.store.reserve("small", [B], D("1"), 60))
    got, small = await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert got.granted is True and got.amount == D("85")
    assert small.granted is True and small.amount == D("1")
    assert await p.taken() == D("96")
    await p.close()


async def test_a_denial_is_answered_while_the_pending_settles_cannot_be_applied(tmp_path):
    """The $90 hold's $10 settle is pending and every settle batch fails (the connection drops), while
    reservations still reach Redis: "next" ($85) is denied by Redis (it counts the $90 hold), decided once more
    after the failed flush, and then answered as denied (not retried for as long as the settles fail)."""
    p = Pair(tmp_path)
    assert (await p.store.reserve("big", [B], D("90"), 60)).granted
    assert await p.store.settle("big", D("10"))
    _FailingSettleBatches(p.store.client)
    got = await asyncio.wait_for(p.store.reserve("next", [B], D("85"), 60), 10)
    assert got.granted is False and got.denied_scope == B.id
    assert await p.taken() == D("90")
    await p.store.close(timeout_s=0.1)
    assert p.store.backlog() == 1  # kept for replay
    await p.plain.close()


# ---------------------------------------------------------------- a hold ending exactly when the slice does
async def test_a_slice_lasting_exactly_as_long_as_the_hold_is_kept_and_grown(tmp_path):
    """The $4 slice expires at 90 s (r1's 60 s + lease_ttl 30 s). x ($1, also on DAY: Redis decides it) is held
    exactly 90 s: the slice covers it to its end, so its $4 stay (no give-back) and it grows by 4 s of $2/s
    demand minus the $4 free, capped at 1/8 of the $16 free after "fill" ($78) and x = $2, to $6 (86 taken). Had
    it been given back first, it would have been regrown to only $2.50 (1/8 of $20). The whole $6 is granted
    locally once the rest of the cap is taken elsewhere, a nano more is denied."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.plain.reserve("fill", [B], D("78"), 60)).granted
    assert (await p.store.reserve("x", [B, DAY], D("1"), 90)).granted
    assert await p.taken() == D("86")  # r1 + fill + x + the $6 slice
    assert (await p.plain.reserve("fill2", [B], D("14"), 60)).granted
    got = await p.store.reserve("rest", [B], D("6"), 60)
    assert got.granted is True and p.store.local_grants == 1
    assert (await p.store.reserve("over", [B], D("0.000000001"), 60)).granted is False
    assert await p.taken() == D("100")
    await p.close()


# ---------------------------------------------------------------- one flusher task
async def test_the_background_flusher_is_one_task_however_many_batches_it_sends(tmp_path):
    """flush_ms=10: ten settles, each sent by the background flusher before the next (another process sees each
    bill). The store runs one flusher task throughout: no task is left per batch (they would each wake up for
    every later scan, and close stops only one)."""
    p = Pair(tmp_path)
    store = store_from_url(f"{p.server}?settle=deferred&settle_log={tmp_path / 'one'}&flush_ms=10", prefix=p.prefix, clock=p.clock)
    for i in range(10):
        assert (await store.reserve(f"s{i}", [B], D("1"), 60)).granted
    before = len(asyncio.all_tasks())
    for i in range(10):
        assert await store.settle(f"s{i}", D("0.1"))
        deadline = time.monotonic() + 5
        while await p.plain.spend(B) != D("0.1") * (i + 1) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert await p.plain.spend(B) == D("0.1") * (i + 1)
    assert len(asyncio.all_tasks()) <= before + 1  # (the flusher, started by the first settle)
    await store.close()
    await p.close()


# ---------------------------------------------------------------- an idle slice goes back after lease_idle_ms
async def test_a_reply_that_leaves_the_slice_as_it_was_does_not_make_it_look_used(tmp_path):
    """lease_idle_ms=1000, lease_min=4: r1 ($1) takes a $4 slice at 0 s. At 0.6 s x ($1, also on DAY) goes to
    Redis; B's slice neither serves it nor grows (4 s of the decayed demand minus the $4 free is under the $4
    minimum). The slice was last used at 0 s, so at 1.2 s the keeper gives its free $4 back: another process
    sees only r1's and x's holds on B (it kept the $4 until 1.6 s: the reply counted as a use)."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=4&lease_idle_ms=1000")
    assert (await p.store.reserve("r1", [B], D("1"), 60)).granted
    assert await p.taken() == D("5")
    p.clock.advance(0.6)
    assert (await p.store.reserve("x", [B, DAY], D("1"), 60)).granted
    assert await p.taken() == D("6")  # r1 + x + the unchanged $4 slice
    p.clock.advance(0.6)
    deadline = time.monotonic() + 5
    while await p.taken() != D("2") and time.monotonic() < deadline:  # the keeper's next tick (every 50 ms)
        await asyncio.sleep(0.01)
    assert await p.taken() == D("2")
    await p.close()


# ---------------------------------------------------------------- a denial while a lost batch waits to be re-applied
async def test_a_denial_is_decided_again_after_a_failover_lost_settle_is_applied_again(tmp_path):
    """r1's $90 hold is settled at $10 and applied on primary-a, whose replica is promoted without it (the $90
    hold is back, nothing booked). Applying it again fails once (the connection drops), so it waits, not
    applied, with nothing else pending. "next" ($85) is denied by Redis (90 + 85 > 100): the store applies the
    lost settle first and decides again: 10 + 85 <= 100, granted."""
    p = Pair(tmp_path)
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r1", [B], D("90"), 60)).granted
    assert await p.store.settle("r1", D("10"))
    replica = await _dump(p.plain.client)
    assert await p.store.flush() == 1
    assert await p.plain.spend(B) == D("10")
    await _promote(p.plain.client, replica)
    repl.replid, repl.offset, repl.replicas = "primary-b", 10, []
    _FailingSettleBatches(p.store.client, entries=1)
    with pytest.raises(StoreUnavailableError):
        await p.store.flush()  # the new replication id is read, the second apply fails
    assert await p.taken() == D("90")  # the hold, not applied again yet
    got = await p.store.reserve("next", [B], D("85"), 60)
    assert got.granted is True and got.amount == D("85")
    assert await p.plain.spend(B) == D("10")
    assert await p.taken() == D("95")
    await p.close()


# ---------------------------------------------------------------- a snapshot after a failed send
async def test_a_snapshot_applies_a_redis_hold_settle_whose_first_send_failed(tmp_path):
    """With leases: r1's $1 Redis hold is settled at $0.25; sending it fails once (the connection drops), so the
    batch waits, not applied, with nothing else pending. The next snapshot must apply it first: it shows the
    $0.25 bill, not the $1 hold Redis still counts."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert await p.store.list_scopes()  # (the first call also looked for dead processes' logs)
    assert await p.store.settle("r1", D("0.25"))
    _FailingSettleBatches(p.store.client, entries=1)
    with pytest.raises(StoreUnavailableError):
        await p.store.flush(confirm=False)
    assert await p.plain.spend(B) == 0
    assert (await p.store.snapshot([B], [], [])).spend[B.id] == D("0.25")
    assert await p.plain.spend(B) == D("0.25")
    await p.close()


# ---------------------------------------------------------------- the record a slice settle leaves in Redis
async def test_a_slice_reservation_reserved_again_after_its_settle_was_applied_is_answered_from_its_record(tmp_path):
    """r2 ($1 from the slice) is billed $0.50 and the settle applied. Reserving "r2" again 40 s later (a retried
    call; the slice, ending at 90 s, can no longer cover a 60 s hold, so Redis answers) is answered from its
    record: granted, for the $0.50 booked for it (nothing booked again)."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.5"))
    assert await p.store.flush() == 1
    assert await p.taken() == D("5")
    p.clock.advance(40)
    again = await p.store.reserve("r2", [B], D("1"), 60)
    assert again.granted is True and again.amount == D("0.5")
    assert await p.plain.spend(B) == D("0.5")
    await p.close()


# ---------------------------------------------------------------- the keeper after a settle batch
async def test_an_idle_slice_is_given_back_after_a_settle_batch_read_its_drain_flag(tmp_path):
    """lease_idle_ms=1000: r2 ($1 from the $4 slice) is billed $0.50 and the settle sent (its reply carries B's
    drain flag, not set). Two seconds later the slice has sat idle: the keeper gives its free $3.50 back, so
    another process sees only r1's $1 hold and the $0.50 bill."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=1000")
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("0.5"))
    assert await p.store.flush(confirm=False) == 1
    assert await p.taken() == D("5")
    p.clock.advance(2)
    deadline = time.monotonic() + 5
    while await p.taken() != D("1.5") and time.monotonic() < deadline:  # the keeper's next tick (every 50 ms)
        await asyncio.sleep(0.01)
    assert await p.taken() == D("1.5")
    await p.close()


# ---------------------------------------------------------------- the flusher keeps retrying an unexpected error
async def test_the_background_flusher_keeps_retrying_after_an_unexpected_error_and_counts_each(tmp_path):
    """A dead process's log names a budget id no ledger writes: every pass of the background flusher fails with a
    ValueError (not a StoreError). The flusher does not die: it retries every 50 ms (retry_interval_s is lower
    here) and counts each failed pass in flush_errors (at least 3 within 0.8 s); nothing is written to Redis."""
    p = Pair(tmp_path)
    heir_dir = tmp_path / "heir"
    heir_dir.mkdir()
    line = '{"rid":"bad","mode":"S","nano":7000000000,"held":null,"bids":["nobody|rolling:24h"],"at":%d,"owner":""}\n'
    (heir_dir / "4242-deadbeef.000000001.jsonl").write_text(line % p.store.now_ms())
    (heir_dir / "4242-deadbeef.lock").touch()
    heir = p.open("", heir_dir)
    heir.retry_interval_s = 0.01
    assert await heir.list_scopes() == []  # adopts the log and starts the flusher
    deadline = time.monotonic() + 0.8
    while heir.flush_errors < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert heir.flush_errors >= 3
    assert [k for k in await p.plain.client.keys("*") if b"nobody" in k] == []
    await heir.close()
    await p.close()
