"""``settle_batch.lua`` on a real redis-server (issue 12, the Lua mutation survivors of deferred settlement):
a settle batch applied twice counts each bill once and redoes no release (the script's own idempotency: the
second line of defence when a process died after Redis applied its batch but before the log was deleted),
and a settle of a reservation granted from a lease (slice) shrinks the slice by the bill, so what other
processes see taken from the cap is bills + the slice's unbilled rest, never more.

Amounts by hand: nano-USD = USD * 10^9."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from router.ledger import BudgetScope, Window, store_from_url
from tests.fixtures_redis import FakeClock

pytestmark = pytest.mark.redis_server
D = Decimal
B = BudgetScope("tenant:batch", Window.parse("rolling:24h"), D("100"))


def _deferred(server, log_dir: Path, extra: str = "") -> str:  # noqa: ANN001
    return f"{server.url}?settle=deferred&settle_log={log_dir}&flush_ms=600000{extra}"


def _as_dead_process(src: Path, dst: Path, owner: str = "4242-deadbeef") -> int:
    """Copy the settle-log segments in ``src`` into ``dst`` as the log of a process that died (its lock
    file exists, nobody holds it); returns how many entries were copied."""
    dst.mkdir(parents=True, exist_ok=True)
    entries = 0
    for i, seg in enumerate(sorted(src.glob("*.jsonl")), 1):
        shutil.copy(seg, dst / f"{owner}.{i:09d}.jsonl")
        entries += sum(1 for line in seg.read_text().splitlines() if line.strip())
    (dst / f"{owner}.lock").touch()
    return entries


async def test_a_settle_log_applied_again_by_the_next_process_counts_each_bill_once(redis_server, unique_prefix, tmp_path):
    """A process applied its settles to Redis, then died before deleting its log; the next process adopts
    the log and applies it again: the bills count once (the script skips reservations already settled)."""
    clock = FakeClock()
    first = store_from_url(_deferred(redis_server, tmp_path / "a"), prefix=unique_prefix, clock=clock)
    plain = store_from_url(redis_server.url, prefix=unique_prefix, clock=clock)
    for rid in ("s1", "s2"):
        assert (await first.reserve(rid, [B], D("1"), 60)).granted
    assert await first.settle("s1", D("0.25"))
    assert await first.settle("s2", D("0.5"))
    assert await first.flush(confirm=False) == 2  # in Redis now; the log still holds both entries
    assert await plain.spend(B) == D("0.75")
    copied = _as_dead_process(tmp_path / "a", tmp_path / "b")
    assert copied == 2
    heir = store_from_url(_deferred(redis_server, tmp_path / "b"), prefix=unique_prefix, clock=clock)
    assert await heir.spend(B) == D("0.75")  # the adopted log was applied again: still 0.25 + 0.5
    assert await plain.spend(B) == D("0.75")
    assert (await plain.snapshot([B], [], [])).spend[B.id] == D("0.75")  # and no hold is left
    await heir.close()
    assert not list((tmp_path / "b").glob("4242-deadbeef.*"))  # the adopted log is gone once confirmed
    await first.close()
    await plain.close()


async def test_a_repeated_settle_batch_books_once_and_redoes_no_release(redis_server, unique_prefix, tmp_path):
    """The same batch entries (the settle log's format) sent to the script twice: the first time each is
    done (code 1), the second time nothing is (code 0), and the spend is booked once."""
    clock = FakeClock()
    store = store_from_url(_deferred(redis_server, tmp_path / "log"), prefix=unique_prefix, clock=clock)
    plain = store_from_url(redis_server.url, prefix=unique_prefix, clock=clock)
    assert (await store.reserve("settled", [B], D("2"), 60)).granted
    assert (await store.reserve("released", [B], D("3"), 60)).granted
    assert (await plain.snapshot([B], [], [])).spend[B.id] == D("5")  # the two holds
    now = int(clock.now * 1000)
    entries = [
        {"rid": "settled", "mode": "S", "nano": 1_250_000_000, "held": 2_000_000_000, "bids": [B.id], "at": now, "owner": ""},
        {"rid": "released", "mode": "R", "nano": 0, "held": 3_000_000_000, "bids": [B.id], "at": now, "owner": ""},
    ]
    assert await store._settle_batch(entries, now) == [1, 1]
    assert await plain.spend(B) == D("1.25")
    assert (await plain.snapshot([B], [], [])).spend[B.id] == D("1.25")  # both holds gone
    clock.advance(5)
    assert await store._settle_batch(entries, now + 5000) == [0, 0]  # already settled / already released
    assert await plain.spend(B) == D("1.25")  # not 2.50
    assert (await plain.snapshot([B], [], [])).spend[B.id] == D("1.25")
    assert await plain.settle("settled", D("1.25")) is False  # the store's own view agrees
    assert await plain.release("released") is False
    await store.close()
    await plain.close()


async def test_a_batched_settle_from_a_slice_shrinks_the_slice_by_the_bill(redis_server, unique_prefix, tmp_path):
    """With leases: r1 ($1) goes to Redis and this process takes a slice of 4 requests' worth ($4: horizon
    4 s of $1/s demand, under 1/8 of the $99 free); r2 ($1) is granted from the slice and billed $0.50.
    After the batch, other processes see $0.25 + $0.50 billed plus the slice's rest $3.50 = $4.25 taken
    (the slice shrank by r2's bill), so exactly $95.75 more fits under the $100 cap."""
    clock = FakeClock()
    knobs = "&leases=on&lease_horizon_ms=4000&lease_min=1&lease_idle_ms=3600000"
    store = store_from_url(_deferred(redis_server, tmp_path / "log", knobs), prefix=unique_prefix, clock=clock)
    plain = store_from_url(redis_server.url, prefix=unique_prefix, clock=clock)
    assert (await store.reserve("r1", [B], D("1"), 60)).granted
    assert store.local_grants == 0
    assert (await plain.snapshot([B], [], [])).spend[B.id] == D("5")  # r1's hold + the $4 slice
    assert await store.settle("r1", D("0.25"))
    assert (await store.reserve("r2", [B], D("1"), 60)).granted
    assert store.local_grants == 1  # from the slice, no round trip
    assert await store.settle("r2", D("0.5"))
    assert await store.flush(confirm=False) == 2
    assert await plain.spend(B) == D("0.75")
    assert (await plain.snapshot([B], [], [])).spend[B.id] == D("4.25")  # 0.75 billed + 3.50 slice left
    assert (await plain.reserve("too-much", [B], D("95.750000001"), 60)).granted is False
    assert (await plain.reserve("exactly", [B], D("95.75"), 60)).granted  # the cap is used to the last nano
    await store.close()
    await plain.close()
