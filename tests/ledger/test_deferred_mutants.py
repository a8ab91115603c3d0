"""Deferred settlement and budget leases on fakeredis: the paths the mutation run of ``router/ledger/deferred.py``
found unseen by the fast profile (issue 12; verdicts in bench/mutation/verdicts.tsv): reserving while Redis is
unreachable (fail_closed / fail_open), the leases of the second budget of a multi-budget reply, the slices left
after a keeper's give-back of two budgets, a slice taken after an expired one, a failover that loses an applied
settle batch, a tampered settle log, and close with Redis down or a failing give-back.

Each test asserts what the ledger shows at a cap (what another process sees taken, what is still granted or
denied to the nano), with amounts worked out by hand from the lease sizing described in test_deferred_fast.py
(a first $1 reservation on a $100 budget takes a $4 slice: 4 s of $1/s demand, under 1/8 of the $99 free)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
import redis.exceptions

from router.errors import StoreUnavailableError
from router.ledger import BudgetScope, Window, store_from_url
from router.ledger.base import IDEMPOTENCY_TTL_MS
from router.ledger.factory import _fake_server
from tests.ledger.test_deferred_fast import B, DAY, LEASES, Pair, Replication, _with_slice

D = Decimal
#: a second rolling budget with its own cap (the second slot of a two-budget script call)
B2 = BudgetScope("tenant:fast2", Window.parse("rolling:24h"), D("60"))


def _set_reachable(p: Pair, up: bool) -> None:
    """Make the pair's fakeredis server reachable or not (every command then fails to connect)."""
    _fake_server(p.server.removeprefix("fakeredis://")).connected = up


def _open_mode(p: Pair, mode: str, tmp_path: Path):  # noqa: ANN202 - a DeferredRedisStore
    """A deferred store on the pair's server in failure mode ``mode``, with its own settle log and journal
    (fail_open skips Redis for ``retry_interval_s`` after a failure: 10 ms here)."""
    url = f"{p.server}?settle=deferred&settle_log={tmp_path / mode}&flush_ms=600000"
    store = store_from_url(url, prefix=p.prefix, clock=p.clock, failure_mode=mode, journal_path=str(tmp_path / f"{mode}.journal"))
    store.retry_interval_s = 0.01
    return store


# ---------------------------------------------------------------- reserving while Redis is unreachable
async def test_fail_closed_refuses_a_deferred_reservation_while_redis_is_unreachable(tmp_path):
    """fail_closed: nothing is granted without Redis; once it is back, the whole $100 cap is still free."""
    p = Pair(tmp_path)
    store = _open_mode(p, "fail_closed", tmp_path)
    _set_reachable(p, False)
    with pytest.raises(StoreUnavailableError):
        await store.reserve("down", [B], D("2"), 60)
    _set_reachable(p, True)
    assert await p.taken() == 0
    got = await store.reserve("all", [B], D("100"), 60)
    assert got.granted is True and got.amount == D("100")
    await store.close()
    await p.close()


async def test_fail_open_grants_a_deferred_reservation_without_a_hold_and_books_its_bill_later(tmp_path):
    """fail_open: the $2 request is granted in full with no hold (Redis is down); settled at $1.50 once Redis
    is back, the bill is booked exactly once, on both budgets; reserving the same id again returns the $2
    reservation (its record keeps the amount granted, not the bill) and holds nothing more."""
    p = Pair(tmp_path)
    store = _open_mode(p, "fail_open", tmp_path)
    _set_reachable(p, False)
    got = await store.reserve("down", [B, DAY], D("2"), 60)
    assert got.granted is True and got.denied_scope is None and got.amount == D("2")
    _set_reachable(p, True)
    await asyncio.sleep(0.05)  # past retry_interval_s
    assert await p.taken() == 0  # no hold was taken
    assert await store.settle("down", D("1.5")) is True
    assert await store.flush() == 1
    assert await p.plain.spend(B) == D("1.5")
    assert await p.plain.spend(DAY) == D("1.5")
    assert await store.settle("down", D("1.5")) is False
    assert await p.plain.spend(B) == D("1.5")
    again = await store.reserve("down", [B, DAY], D("2"), 60)  # the same id again: the reservation as granted
    assert again.granted is True and again.amount == D("2")
    assert await p.taken() == D("1.5")  # no new hold
    await store.close()
    await p.close()


async def test_a_deferred_denial_reports_granted_false(tmp_path):
    p = Pair(tmp_path)
    assert (await p.store.reserve("most", [B], D("99"), 60)).granted
    got = await p.store.reserve("over", [B], D("1.000000001"), 60)
    assert got.granted is False and got.denied_scope == B.id and got.amount == 0
    await p.close()


# ---------------------------------------------------------------- the leases of every budget of a reply
async def test_the_second_budget_of_a_reply_gets_its_slice(tmp_path):
    """r1 ($1 on B and DAY) takes a $4 slice on each. DAY's slice is this process's: $4 more on DAY are granted
    from it (no round trip). With $41 of DAY's $50 held elsewhere (1 + 4 + 41 = 46 taken), an $8 request fits
    only once the slice's $4 went back: granted, to the cap; not denied by this process's own slice."""
    p = Pair(tmp_path, LEASES)
    assert (await p.store.reserve("r1", [B, DAY], D("1"), 60)).granted
    assert await p.taken(DAY) == D("5")
    assert (await p.store.reserve("d1", [DAY], D("4"), 60)).granted
    assert p.store.local_grants == 1
    assert await p.taken(DAY) == D("5")
    assert await p.store.release("d1")
    assert (await p.plain.reserve("other", [DAY], D("41"), 60)).granted
    assert await p.taken(DAY) == D("46")
    got = await p.store.reserve("d2", [DAY], D("8"), 60)
    assert got.granted is True and got.amount == D("8")
    assert await p.taken(DAY) == D("50")
    assert not (await p.plain.reserve("over", [DAY], D("0.000000001"), 60)).granted
    await p.close()


async def test_reservations_granted_from_a_slice_while_queued_report_their_amounts(tmp_path):
    """r1 goes to Redis and takes the $4 slice; r2 ($1.25) and r3 ($2) arrive while that call is in flight and
    are granted from the slice once its reply is in: each reports its own amount, and the slice's last $0.75
    is granted locally too (5 taken: r1's hold and the slice). r2 billed $1 and r3 released: $1 booked, the
    slice $3."""
    p = Pair(tmp_path, LEASES)
    first = asyncio.ensure_future(p.store.reserve("r1", [B], D("1"), 60))
    for _ in range(3):
        await asyncio.sleep(0)  # r1 queued, its batch sent
    rest = [asyncio.ensure_future(p.store.reserve(rid, [B], amount, 60)) for rid, amount in (("r2", D("1.25")), ("r3", D("2")))]
    got = await asyncio.gather(first, *rest)
    assert [(r.granted, r.denied_scope, r.amount) for r in got] == [(True, None, D("1")), (True, None, D("1.25")), (True, None, D("2"))]
    assert p.store.local_grants == 2
    assert (await p.store.reserve("r4", [B], D("0.75"), 60)).granted
    assert p.store.local_grants == 3
    assert await p.taken() == D("5")
    assert await p.store.settle("r2", D("1")) is True  # from the slice: booked by the flush, the slice shrinks
    assert await p.store.release("r3") is True
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("1")
    assert await p.taken() == D("5")  # r1 + $1 billed + the $3 slice
    await p.close()


# ---------------------------------------------------------------- a dead process's settle log, tampered with
async def test_a_settle_log_entry_with_an_invalid_budget_id_is_refused(tmp_path):
    """A dead process's log names a budget id no ledger writes (``nobody|rolling:24h``: no such scope kind):
    the heir refuses to apply it (ValueError) and writes nothing to Redis, neither under that id nor the valid
    bill logged with it; the valid ledger keeps its $2 hold. close still completes (it raised the ValueError,
    leaving the flusher running and the adopted log locked) and the log stays for inspection."""
    p = Pair(tmp_path)
    assert (await p.store.reserve("ok", [B], D("2"), 60)).granted
    heir_dir = tmp_path / "heir"
    heir_dir.mkdir()
    lines = [
        '{"rid":"ok","mode":"S","nano":1500000000,"held":2000000000,"bids":["%s"],"at":%d,"owner":""}' % (B.id, p.store.now_ms()),
        '{"rid":"bad","mode":"S","nano":7000000000,"held":null,"bids":["nobody|rolling:24h"],"at":%d,"owner":""}' % p.store.now_ms(),
    ]
    (heir_dir / "4242-deadbeef.000000001.jsonl").write_text("\n".join(lines) + "\n")
    (heir_dir / "4242-deadbeef.lock").touch()
    heir = p.open("", heir_dir)
    with pytest.raises(ValueError, match="nobody"):
        await heir.flush()
    for _ in range(100):  # the background flusher (started by the adoption) fails the same way
        if heir.flush_errors:
            break
        await asyncio.sleep(0.01)
    assert heir.flush_errors == 1  # one failed pass (the next is retry_interval_s, 0.5 s, later)
    assert [k for k in await p.plain.client.keys("*") if b"nobody" in k] == []
    assert await p.plain.spend(B) == 0
    assert await p.taken() == D("2")
    await heir.close()
    assert heir.backlog() == 2
    assert sorted(f.name for f in heir_dir.glob("4242-deadbeef.*")) == ["4242-deadbeef.000000001.jsonl", "4242-deadbeef.lock"]
    await p.close()


# ---------------------------------------------------------------- close
async def test_close_with_redis_down_keeps_the_settle_log_for_the_next_process(tmp_path):
    """Redis is unreachable at close (a 0.2 s bound passed to close): the $1.50 settle stays in the log, and
    the next process on that directory books it, once."""
    p = Pair(tmp_path, log="a")
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    _set_reachable(p, False)
    await p.store.close(timeout_s=0.2)
    assert p.store.backlog() == 1
    _set_reachable(p, True)
    assert await p.plain.spend(B) == 0
    assert await p.taken() == D("2")
    heir = p.open("", tmp_path / "a")
    assert await heir.spend(B) == D("1.5")
    assert await heir.flush() == 0
    assert await p.plain.spend(B) == D("1.5")
    assert await p.taken() == D("1.5")
    await heir.close()
    await p.plain.close()


async def test_close_still_flushes_when_giving_a_slice_back_fails(tmp_path):
    """Giving B's slice back at close fails with a script error (its lease key holds a string: WRONGTYPE); close
    swallows it and still applies the pending $0.75 bill on DAY, a Redis hold."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("d1", [DAY], D("1"), 3600)).granted
    assert await p.store.settle("d1", D("0.75"))
    await p.plain.client.delete(p.store.keys.lease(B.id))
    await p.plain.client.set(p.store.keys.lease(B.id), "not a hash")
    await p.store.close()
    assert p.store.backlog() == 0
    assert await p.plain.spend(DAY) == D("0.75")
    await p.plain.close()


# ---------------------------------------------------------------- what is left of two slices after a give-back
async def _drained_pair(tmp_path: Path) -> Pair:
    """Slices of $4 on B ($100) and B2 ($60), each taken by a $1 Redis hold (r1, q1). From B's slice r2 and r3
    ($1 each), from B2's q2 ($1); r2 is billed $1 (logged, not applied: $1 of B's slice is its pending bill).
    Another process then needs both budgets (their drain flags are set): the keeper gives both free parts back
    in one call ($2 of B's slice, $3 of B2's). Left in Redis: B's slice $2 (r3 + r2's bill), B2's $1 (q2)."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("q1", [B2], D("1"), 60)).granted
    assert await p.taken(B2) == D("5")
    for rid, budget in (("r2", B), ("r3", B), ("q2", B2)):
        assert (await p.store.reserve(rid, [budget], D("1"), 60)).granted
    assert p.store.local_grants == 3
    assert await p.store.settle("r2", D("1"))
    for budget in (B, B2):
        await p.plain.client.set(p.store.keys.drain_flag(budget.id), "1")
    p.clock.advance(0.1)  # the flags read with the last reply are stale now: the keeper polls them
    for _ in range(200):
        if (await p.taken(), await p.taken(B2)) == (D("3"), D("2")):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # more keeper ticks: nothing more may go back
    assert (await p.taken(), await p.taken(B2)) == (D("3"), D("2"))
    await p.plain.client.delete(*(p.store.keys.drain_flag(budget.id) for budget in (B, B2)))
    p.clock.advance(1)  # the drain (lease drain_s, 1 s) is over
    return p


async def test_a_slice_given_back_keeps_its_pending_bill_counted_until_it_is_applied(tmp_path):
    """After the give-back B's pending $1 bill is still counted in Redis (inside the slice): another process
    can take exactly the $97 left, not a nano more, until and after the bill is applied."""
    p = await _drained_pair(tmp_path)
    await asyncio.sleep(0.2)
    assert not (await p.plain.reserve("over", [B], D("97.000000001"), 60)).granted
    assert (await p.plain.reserve("rest", [B], D("97"), 60)).granted
    assert await p.store.flush(confirm=False) == 1
    assert await p.plain.spend(B) == D("1")
    assert await p.taken() == D("100")
    await p.close()


async def test_what_is_left_of_two_slices_after_a_give_back_serves_their_released_reservations(tmp_path):
    """Both budgets are then filled to their caps elsewhere (B: 3 + 97, B2: 2 + 58). r3 and q2 are released:
    their $1 goes back to this process's slices, which Redis still holds, so $1 more on each is granted
    (from the slice, no round trip) and one nano more on either is denied."""
    p = await _drained_pair(tmp_path)
    assert (await p.plain.reserve("fill-b", [B], D("97"), 60)).granted
    assert (await p.plain.reserve("fill-b2", [B2], D("58"), 60)).granted
    assert await p.store.release("r3") is True
    assert await p.store.release("q2") is True
    for rid, budget in (("r4", B), ("q3", B2)):
        got = await p.store.reserve(rid, [budget], D("1"), 60)
        assert got.granted is True and got.amount == D("1")
    assert p.store.local_grants == 5
    for rid, budget in (("r5", B), ("q4", B2)):
        assert (await p.store.reserve(rid, [budget], D("0.000000001"), 60)).granted is False
    assert (await p.taken(), await p.taken(B2)) == (D("100"), D("60"))
    await p.close()


# ---------------------------------------------------------------- a slice after an expired one
async def test_a_slice_taken_after_an_expired_one_grants_its_whole_size(tmp_path):
    """The $4 slice expires (60 s hold + 30 s lease TTL) and the keeper forgets it; r4 ($1) then takes a new $4
    slice. With the rest of the cap taken elsewhere ($95), a $4 reservation is granted from the new slice in
    full (nothing of the old slice may still count as used), and a nano more is denied."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    p.clock.advance(91)
    await asyncio.sleep(0.2)  # the keeper's ticks: the expired slice is reset
    assert await p.taken() == 0
    assert (await p.store.reserve("r4", [B], D("1"), 60)).granted
    assert await p.taken() == D("5")
    assert (await p.plain.reserve("fill", [B], D("95"), 60)).granted
    got = await p.store.reserve("r5", [B], D("4"), 60)
    assert got.granted is True and got.amount == D("4")
    assert p.store.local_grants == 1
    assert (await p.store.reserve("r6", [B], D("0.000000001"), 60)).granted is False
    assert await p.taken() == D("100")
    await p.close()


# ---------------------------------------------------------------- a failover that loses an applied settle batch
async def _dump(client) -> dict[bytes, tuple[bytes, int]]:  # noqa: ANN001 - a redis client
    """Every key of the server with its serialized value and TTL (what a replica had replicated)."""
    return {key: (await client.dump(key), await client.pttl(key)) for key in await client.keys("*")}


async def _promote(client, data: dict[bytes, tuple[bytes, int]]) -> None:  # noqa: ANN001
    """The replica holding ``data`` becomes the primary: everything written since is lost."""
    await client.flushall()
    for key, (value, ttl) in data.items():
        await client.restore(key, max(ttl, 0), value)


@pytest.mark.parametrize("reply_first", [False, True], ids=["failover-seen-first", "reply-from-new-primary-first"])
async def test_a_failover_that_lost_a_slice_settle_never_lets_the_slice_grant_beyond_the_cap(tmp_path, reply_first):
    """r2 ($1 from the $4 slice) is billed $1; the batch is applied (slice $3, $1 booked) on primary-a but not yet
    acknowledged by its replica, which is promoted without it (slice $4 again, nothing booked). The store
    applies the batch again when it reads the new replication id. r3 ($1, also on DAY) goes to Redis and
    grows the slice by 4 s of $3/s demand minus what is free here.

    failover-seen-first: the store cannot tell whether the new primary has the batch, so until the next reply
    its $1 is taken off the slice's free part here (2 free): the slice grows by $10 to $13 (16 taken).
    reply-from-new-primary-first: r3's reply comes from the new primary before the store knows, showing the
    slice at $4 + $9 = $13 without the lost bill; applied again, the slice is $12 (15 taken), and its $1 must
    not be granted twice (it was: the slice granted $13 while Redis held $12 for it, beyond the cap).
    With the rest of the cap taken elsewhere, the slice's whole free part is granted locally, a nano more is
    denied."""
    p = Pair(tmp_path, LEASES)
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert await p.store.settle("r2", D("1"))
    replica = await _dump(p.plain.client)
    assert await p.store.flush() == 1
    assert p.store.backlog() == 1  # the replica is behind
    assert await p.plain.spend(B) == D("1")
    await _promote(p.plain.client, replica)
    repl.replid, repl.offset, repl.replicas = "primary-b", 10, []
    assert await p.plain.spend(B) == 0
    if reply_first:
        assert (await p.store.reserve("r3", [B, DAY], D("1"), 60)).granted
        assert await p.taken() == D("15")  # r1 + r3 + the $13 slice; the bill is lost so far
        assert await p.store.flush() == 1  # the new replication id: applied again
        free, taken = D("12"), D("15")
    else:
        assert await p.store.flush() == 1
        assert (await p.store.reserve("r3", [B, DAY], D("1"), 60)).granted
        free, taken = D("13"), D("16")
    assert p.store.backlog() == 0
    assert await p.plain.spend(B) == D("1")
    assert await p.taken() == taken  # r1 + r3 + $1 billed + the slice
    assert (await p.plain.reserve("fill", [B], D("100") - taken, 60)).granted
    got = await p.store.reserve("rest", [B], free, 60)
    assert got.granted is True and got.amount == free
    assert p.store.local_grants == 2  # from the slice
    assert (await p.store.reserve("over", [B], D("0.000000001"), 60)).granted is False
    assert await p.taken() == D("100")
    await p.close()


@pytest.mark.parametrize(("free", "day"), [(D("1"), D("50")), (D("0.000000001"), D("49.000000004"))], ids=["one-dollar", "one-nano"])
async def test_a_request_on_two_budgets_is_granted_from_this_processs_own_free_slice_at_the_cap(tmp_path, free, day):
    """B's $4 slice has ``free`` left (reservations from it use the rest); the rest of B's cap is taken elsewhere
    ($95: 100 taken), and $49 of DAY's $50 (too little left for a DAY slice). r2 (``free`` on B and DAY) cannot
    be granted locally (no slice on DAY), so Redis decides it, and Redis counts the whole slice as held: B
    looks full. The free part is this process's own unused capacity, so it goes back and r2 is granted (it was
    denied while the slice kept it stranded), to B's cap: a nano more is denied. (DAY: 49 + r2; for the 1-nano
    request the first decision also took a DAY slice of 4 s of its demand, 4 nano, and r2 is granted from both
    slices when decided again.)"""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    for i, amount in enumerate((D("1"), D("1"), D("1"), D("1") - free)):
        if amount:
            assert (await p.store.reserve(f"l{i}", [B], amount, 60)).granted
    assert (await p.plain.reserve("fill", [B], D("95"), 60)).granted
    assert (await p.plain.reserve("fill-day", [DAY], D("49"), 60)).granted
    assert await p.taken() == D("100")
    got = await p.store.reserve("r2", [B, DAY], free, 60)
    assert got.granted is True and got.amount == free
    assert (await p.taken(), await p.taken(DAY)) == (D("100"), day)
    assert (await p.store.reserve("r3", [B, DAY], D("0.000000001"), 60)).granted is False
    assert (await p.store.reserve("r4", [B], D("0.000000001"), 60)).granted is False
    await p.close()


async def test_a_slice_whose_drain_ends_exactly_now_is_kept_and_grown(tmp_path):
    """Share 64: r1 ($1) takes a slice of 1/64 of the $99 free ($1.546875); r2 ($1) is granted from it. Another
    process needs B (its drain flag is read at t = 0.1 s): the keeper gives the free $0.546875 back, and the
    slice is draining until t = 1.1 s. r2 is released ($1 free again). At exactly t = 1.1 s the drain is over:
    x ($1, also on DAY) goes to Redis with the slice kept ($1 free fits it) and grown by 1/64 of the $97 then
    free, $1.515625: 1 + 1 + 2.515625 taken (giving the $1 back first would leave 1 + 1 + 1/64 of $98), and
    all $2.515625 are granted from the slice."""
    p = Pair(tmp_path, LEASES + "&lease_share=64")
    assert (await p.store.reserve("r1", [B], D("1"), 60)).granted
    assert await p.taken() == D("2.546875")
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert p.store.local_grants == 1
    await p.plain.client.set(p.store.keys.drain_flag(B.id), "1")
    p.clock.advance(0.1)
    for _ in range(200):
        if await p.taken() == D("2"):
            break
        await asyncio.sleep(0.01)
    assert await p.taken() == D("2")  # r1 + what is left of the slice: r2's $1
    await asyncio.sleep(0.1)  # the keeper takes the reply in
    await p.plain.client.delete(p.store.keys.drain_flag(B.id))
    assert await p.store.release("r2") is True
    p.clock.advance(1)
    assert (await p.store.reserve("x", [B, DAY], D("1"), 60)).granted
    assert await p.taken() == D("4.515625")
    got = await p.store.reserve("all", [B], D("2.515625"), 60)
    assert got.granted is True and p.store.local_grants == 2
    assert await p.taken() == D("4.515625")
    await p.close()


# ---------------------------------------------------------------- the background flusher and the defaults
async def _seen_within(p: Pair, amount: Decimal, seconds: float) -> bool:
    """Whether another process sees ``amount`` booked on B within ``seconds`` (no read through the store)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await p.plain.spend(B) == amount:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_the_default_flush_interval_books_a_bill_within_a_fraction_of_a_second(tmp_path):
    """No ``flush_ms``: the default 20 ms interval. Another process sees r1's $1.50 well within 0.8 s. The
    flusher then sleeps until its next look for dead processes' logs (5 s); r2's $0.25 logged 1.1 s later
    moves its wake-up earlier and is seen within 0.8 s too, and that background pass closed the log segment
    (older than a second) and deleted it once Redis confirmed its settles."""
    p = Pair(tmp_path)
    log_dir = tmp_path / "default"
    store = store_from_url(f"{p.server}?settle=deferred&settle_log={log_dir}", prefix=p.prefix, clock=p.clock)
    assert store.flush_interval_s == 0.02
    assert (await store.reserve("r1", [B], D("2"), 60)).granted
    assert (await store.reserve("r2", [B], D("1"), 60)).granted
    assert await store.settle("r1", D("1.5"))
    first = sorted(log_dir.glob("*.jsonl"))
    assert await _seen_within(p, D("1.5"), 0.8)
    await asyncio.sleep(1.1)
    assert await store.settle("r2", D("0.25"))
    assert await _seen_within(p, D("1.75"), 0.8)
    for _ in range(80):  # rolled over, and deleted once its settles were confirmed (no replica)
        if not first[0].exists():
            break
        await asyncio.sleep(0.01)
    assert len(first) == 1 and not first[0].exists()
    await store.close()
    await p.close()


async def test_close_ms_0_is_accepted_and_close_then_leaves_the_settle_for_replay(tmp_path):
    """``close_ms=0``: close does not wait for Redis (down here); the $1.50 settle stays in the log."""
    p = Pair(tmp_path, "&close_ms=0", log="a")
    assert p.store.close_timeout_s == 0
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    _set_reachable(p, False)
    await p.store.close()
    assert p.store.backlog() == 1
    _set_reachable(p, True)
    heir = p.open("", tmp_path / "a")
    assert await heir.spend(B) == D("1.5")
    await heir.close()
    await p.plain.close()


async def test_two_ledgers_on_one_redis_get_their_own_default_settle_log(tmp_path, monkeypatch):
    """No ``settle_log``: the log lives next to the ledger's fail-open journal, named after its prefix, so a
    second ledger (another prefix) on the same Redis never adopts this one's settles into its own keys."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    p = Pair(tmp_path)
    stores = [store_from_url(f"{p.server}?settle=deferred", prefix=prefix, clock=p.clock) for prefix in ("ledgera", "ledgerb")]
    dirs = [Path(s.settle_log.dir) for s in stores]
    assert dirs[0] != dirs[1]
    assert [d.parent for d in dirs] == [tmp_path, tmp_path]
    assert [d.name.split("-")[2] for d in dirs] == ["ledgera", "ledgerb"]
    for s in stores:
        await s.close()
    await p.close()


async def test_a_dead_processs_log_found_by_a_later_scan_is_applied_at_once(tmp_path, monkeypatch):
    """The flusher sleeps (flush_ms 600 s after r0's settle); a process that died leaves a log in the
    directory after the first scan. The next scan (ORPHAN_SCAN_S, 50 ms here) comes with a reservation: the
    log is adopted there and the flusher woken, so another process sees the dead process's $0.40 bill booked
    (its $1 hold gone) with no read through this store (it waited for r0's pending settle, 600 s)."""
    from router.ledger import deferred

    monkeypatch.setattr(deferred, "ORPHAN_SCAN_S", 0.05)
    p = Pair(tmp_path, log="a")
    assert (await p.store.reserve("r0", [B], D("1"), 60)).granted
    assert await p.store.settle("r0", D("1"))  # the flusher starts and sleeps for flush_ms
    assert (await p.plain.reserve("dead1", [B], D("1"), 60)).granted
    line = '{"rid":"dead1","mode":"S","nano":400000000,"held":1000000000,"bids":["%s"],"at":%d,"owner":""}\n'
    (tmp_path / "a" / "4242-deadbeef.000000001.jsonl").write_text(line % (B.id, p.store.now_ms()))
    (tmp_path / "a" / "4242-deadbeef.lock").touch()
    await asyncio.sleep(0.1)
    assert (await p.store.reserve("r1", [B], D("1"), 60)).granted
    assert await _seen_within(p, D("1.4"), 0.8)  # with it, the pending settles (r0's $1)
    assert await p.taken() == D("2.4")  # + r1's hold
    await p.close()


async def test_a_slice_whose_give_back_failed_grants_only_what_redis_holds_for_it(tmp_path):
    """r2 ($1) is held from the $4 slice; the slice sits idle (lease_idle_ms 1) and the keeper's give-back of its
    $3 free part fails (Redis unreachable), so Redis still holds all $4 while this process counts none of it
    free. With the rest of the cap taken elsewhere ($95), a $3 request goes to Redis, whose reply shows the
    slice's $3 free again: they go back and the request is granted; a nano more is denied (the slice never
    grants beyond the $4 Redis holds for it)."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=1")
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert p.store.local_grants == 1
    _set_reachable(p, False)
    p.clock.advance(0.01)  # idle for 10 ms; the drain flag read with the last reply is still fresh
    await asyncio.sleep(0.3)  # the keeper's ticks: the give-back fails
    _set_reachable(p, True)
    assert await p.taken() == D("5")  # r1's hold + the whole slice
    assert (await p.plain.reserve("fill", [B], D("95"), 60)).granted
    got = await p.store.reserve("r3", [B], D("3"), 60)
    assert got.granted is True and got.amount == D("3")
    assert (await p.store.reserve("r4", [B], D("0.000000001"), 60)).granted is False
    assert await p.taken() == D("100")
    await p.close()


class _SlowGiveBacks:
    """Wraps a client's ``evalsha`` so a give-back (``reserve_batch`` with no request) takes ``delay`` seconds
    longer; ``started`` is set when one is in flight."""

    def __init__(self, client, delay: float) -> None:  # noqa: ANN001 - a redis client
        self.evalsha, self.delay, self.started = client.evalsha, delay, asyncio.Event()
        client.evalsha = self

    async def __call__(self, sha: str, numkeys: int, *keys_and_args: object) -> object:
        args = keys_and_args[numkeys:]
        if len(args) > 6 and str(args[6]) == "0":  # reserve_batch with n_requests 0: a give-back
            self.started.set()
            await asyncio.sleep(self.delay)
        return await self.evalsha(sha, numkeys, *keys_and_args)


async def test_a_reservation_made_while_a_give_back_is_in_flight_never_uses_the_part_going_back(tmp_path):
    """r2 ($1) is held from the $4 slice, and the rest of the cap is taken elsewhere ($95). The idle slice's $3
    free part is being given back (the call takes 0.2 s) when r3 ($2) arrives: it must not be granted from the
    $3 on their way back (Redis would then hold $1 of slice for $3 of reservations); it is decided by Redis
    after the give-back, granted from the returned room, and another process can take exactly the last $1."""
    p = Pair(tmp_path, "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=1")
    await _with_slice(p)
    assert (await p.store.reserve("r2", [B], D("1"), 60)).granted
    assert (await p.plain.reserve("fill", [B], D("95"), 60)).granted
    slow = _SlowGiveBacks(p.store.client, 0.2)
    p.clock.advance(0.01)  # idle now: the keeper's next tick gives the free part back
    await asyncio.wait_for(slow.started.wait(), 5)
    got = await p.store.reserve("r3", [B], D("2"), 60)
    assert got.granted is True and got.amount == D("2")
    assert p.store.local_grants == 1  # r2 only
    assert await p.taken() == D("99")  # r1 + r3 held, r2's $1 of slice, the $95
    assert not (await p.plain.reserve("over", [B], D("1.000000001"), 60)).granted
    assert (await p.plain.reserve("last", [B], D("1"), 60)).granted
    await p.close()


async def test_a_background_pass_that_cannot_reach_redis_counts_one_flush_error(tmp_path):
    """flush_ms 20, Redis unreachable: the flusher's failed pass counts one error and retries after
    retry_interval_s (0.5 s); the settle stays pending and is booked once Redis answers."""
    p = Pair(tmp_path, "&flush_ms=20")
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    _set_reachable(p, False)
    assert await p.store.settle("r1", D("1.5"))
    for _ in range(100):
        if p.store.flush_errors:
            break
        await asyncio.sleep(0.01)
    assert p.store.flush_errors == 1
    _set_reachable(p, True)
    assert await _seen_within(p, D("1.5"), 2)
    await p.close()


class _FailingSettleBatches:
    """Wraps a client's ``evalsha`` so ``settle_batch`` calls (six arguments, the second the idempotency TTL)
    fail as if the connection dropped: every one, or (``entries``) only the first one with that many entries;
    the other scripts, reads among them, still answer."""

    def __init__(self, client, entries: int = 0) -> None:  # noqa: ANN001 - a redis client
        self.evalsha, self.entries = client.evalsha, entries
        client.evalsha = self

    async def __call__(self, sha: str, numkeys: int, *keys_and_args: object) -> object:
        args = keys_and_args[numkeys:]
        if len(args) == 6 and str(args[1]) == str(IDEMPOTENCY_TTL_MS) and self.entries in (0, int(args[2])):
            if self.entries:
                self.entries = -1  # once
            raise redis.exceptions.ConnectionError("connection dropped")
        return await self.evalsha(sha, numkeys, *keys_and_args)


async def test_fail_closed_reads_refuse_a_view_without_this_stores_pending_settles(tmp_path):
    """fail_closed: r1's $1.50 settle is pending and cannot be applied (settle_batch cannot reach Redis), while
    reads would still answer: spend() must refuse (StoreUnavailableError) rather than report Redis's view
    without the bill (r1's $2 hold, $0 billed)."""
    p = Pair(tmp_path)
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    _FailingSettleBatches(p.store.client)
    with pytest.raises(StoreUnavailableError):
        await p.store.spend(B)
    assert await p.plain.spend(B) == 0
    await p.store.close(timeout_s=0.1)
    assert p.store.backlog() == 1  # kept in the log for replay
    await p.plain.close()


async def test_a_settle_batch_applied_in_two_calls_after_a_failed_second_call_counts_its_slice_settles_once(tmp_path):
    """130 reservations of $0.01 from the $4 slice are billed $0.01 each (logged: the slice is $2.70 here, $1.30
    pending). Applying them takes two script calls (128 + 2); the second fails, so the flush is retried and the
    first 128 are sent again (Redis answers them as already settled). Their $1.28 of slice decrements must be
    taken off the pending part once: r3 ($1, also on DAY) then grows the slice by 4 s of the $3.30/s demand
    minus the $2.70 free = $10.50 to $13.20, all of it free here, and with the rest of the cap taken elsewhere
    ($83.50) a nano more than $13.20 is denied (it was granted: the slice looked $1.28 bigger)."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    for i in range(130):
        assert (await p.store.reserve(f"s{i}", [B], D("0.01"), 60)).granted
        assert await p.store.settle(f"s{i}", D("0.01"))
    assert p.store.local_grants == 130
    _FailingSettleBatches(p.store.client, entries=2)
    with pytest.raises(StoreUnavailableError):
        await p.store.flush(confirm=False)
    assert await p.plain.spend(B) == D("1.28")
    await p.store.flush(confirm=False)  # (or the background flusher, which retries a failed batch at once)
    assert await p.plain.spend(B) == D("1.3")
    assert (await p.store.reserve("r3", [B, DAY], D("1"), 60)).granted
    assert await p.taken() == D("16.5")  # r1 + r3 + $1.30 billed + the $13.20 slice
    assert (await p.plain.reserve("fill", [B], D("83.5"), 60)).granted
    got = await p.store.reserve("rest", [B], D("13.2"), 60)
    assert got.granted is True and p.store.local_grants == 131
    assert (await p.store.reserve("over", [B], D("0.000000001"), 60)).granted is False
    assert await p.taken() == D("100")
    await p.close()


async def test_close_waits_within_its_bound_for_a_replica_to_acknowledge(tmp_path):
    """The $1.50 settle is applied at close but its replica acknowledges it only 0.2 s later: close (bound 3 s)
    waits for that, so the log is confirmed and removed (nothing left to replay)."""
    p = Pair(tmp_path, log="a")
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))

    def catch_up() -> None:
        repl.replicas = [100]

    asyncio.get_running_loop().call_later(0.2, catch_up)
    await p.store.close()
    assert p.store.backlog() == 0
    assert not list((tmp_path / "a").glob("*.jsonl"))
    assert await p.plain.spend(B) == D("1.5")
    await p.plain.close()


async def test_close_with_an_adopted_two_segment_log_and_redis_down_keeps_it_for_the_next_process(tmp_path):
    """A dead process left two log segments ($0.25 and $0.50 bills of Redis holds). Its heir adopts them while
    Redis is down and closes: close completes (the adopted log's lock is given back once) and the next process
    books both bills, once."""
    p = Pair(tmp_path, log="a")
    for rid in ("s1", "s2"):
        assert (await p.plain.reserve(rid, [B], D("1"), 60)).granted
    heir_dir = tmp_path / "heir"
    heir_dir.mkdir()
    line = '{"rid":"%s","mode":"S","nano":%d,"held":1000000000,"bids":["%s"],"at":%d,"owner":""}\n'
    for i, (rid, nano) in enumerate((("s1", 250_000_000), ("s2", 500_000_000)), 1):
        (heir_dir / f"4242-deadbeef.{i:09d}.jsonl").write_text(line % (rid, nano, B.id, p.store.now_ms()))
    (heir_dir / "4242-deadbeef.lock").touch()
    heir = p.open("", heir_dir)
    _set_reachable(p, False)
    with pytest.raises(StoreUnavailableError):
        await heir.flush()
    assert heir.backlog() == 2
    await heir.close(timeout_s=0.1)
    _set_reachable(p, True)
    assert await p.plain.spend(B) == 0
    third = p.open("", heir_dir)
    assert await third.spend(B) == D("0.75")
    assert await p.taken() == D("0.75")
    await third.close()
    await p.close()


async def test_after_a_reserve_call_failed_on_redis_the_slices_grant_nothing_until_it_answers(tmp_path):
    """fail_closed with a $4 slice on B: r2 (also on DAY, no slice there) goes to Redis, which is unreachable:
    refused. Nothing is known about the slice any more (Redis may have lost it), so r3 ($1 on B only) is not
    granted from it but refused too; once Redis answers, r4 is decided by Redis (no local grant) and the
    slice is known again."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    _set_reachable(p, False)
    with pytest.raises(StoreUnavailableError):
        await p.store.reserve("r2", [B, DAY], D("1"), 60)
    with pytest.raises(StoreUnavailableError):
        await p.store.reserve("r3", [B], D("1"), 60)
    assert p.store.local_grants == 0
    _set_reachable(p, True)
    assert (await p.store.reserve("r4", [B], D("1"), 60)).granted
    assert p.store.local_grants == 0
    assert (await p.store.reserve("r5", [B], D("1"), 60)).granted
    assert p.store.local_grants == 1
    await p.close()


async def test_with_leases_a_request_over_the_cap_that_no_drain_can_help_is_denied_at_once(tmp_path):
    """drain_wait_ms 3000: a request beyond the cap with no other process holding a slice of the budget is denied
    at once (it was requeued for the whole drain wait as if another process could give capacity back)."""
    p = Pair(tmp_path, LEASES + "&drain_wait_ms=3000")
    assert (await p.plain.reserve("fill", [B], D("100"), 60)).granted
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await p.store.reserve("over", [B], D("0.000000001"), 60)).granted is False
    assert loop.time() - started < 1.5
    await p.close()


@pytest.mark.parametrize("rolls_over", [False, True], ids=["same segment", "segment rolled over"])
async def test_a_flush_fsyncs_the_settle_log_before_it_sends(tmp_path, monkeypatch, rolls_over):
    """fsync=batch: a settle is written without fsync; the flush that sends it (confirm) fsyncs the segment first,
    also when the segment is due to roll over (SEGMENT_S 0): the flush closes the segment holding the settle and
    fsyncs it before sending, so a settle Redis has is never one a machine crash could lose."""
    import os

    from router.ledger import deferred

    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    p = Pair(tmp_path)
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    monkeypatch.setattr(os, "fsync", fsync)
    if rolls_over:
        monkeypatch.setattr(deferred, "SEGMENT_S", 0.0)
    assert await p.store.settle("r1", D("1.5"))
    assert synced == []
    assert await p.store.flush() == 1
    assert len(synced) == 1
    assert await p.plain.spend(B) == D("1.5")
    await p.close()


async def test_the_store_options_are_checked_at_their_bounds_and_the_log_follows_the_journal(tmp_path):
    """close_timeout_s True (a bool) is refused; flush_ms 3600000 (the 3600 s bound) is accepted; with a
    journal_path and no settle_log, the settle log is the journal's ``.settles`` directory."""
    from router.ledger.deferred import DeferredRedisStore

    p = Pair(tmp_path)
    with pytest.raises(ValueError, match="close_timeout_s"):
        DeferredRedisStore(p.plain.client, settle_log_dir=str(tmp_path / "x"), close_timeout_s=True)
    slow = p.open("&flush_ms=3600000", tmp_path / "slow")
    assert slow.flush_interval_s == 3600
    journal = tmp_path / "j" / "ledger.jsonl"
    journal.parent.mkdir()
    store = store_from_url(f"{p.server}?settle=deferred", prefix=p.prefix, clock=p.clock, journal_path=str(journal))
    assert Path(store.settle_log.dir) == tmp_path / "j" / "ledger.jsonl.settles"
    for s in (slow, store):
        await s.close()
    await p.close()
