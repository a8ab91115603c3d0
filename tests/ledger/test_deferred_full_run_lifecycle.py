"""Deferred settlement on fakeredis: the lifecycle, recovery and replication paths of
``router/ledger/deferred.py`` that the full mutation run found unseen by the fast profile (issue 12; verdicts in
bench/mutation/verdicts.tsv, the killed ones listed in bench/mutation/killed-mutd3.tsv): a reservation decided
while a flush waits on Redis, a dead process's log adopted and replayed, close, and the replication read that
confirms a batch.

Each test asserts what a user of the ledger relies on: what another process sees booked or held at a cap, what
is granted, what stays in the settle log for replay, and that calls return within their documented bound.
Amounts are worked out by hand (nano-USD = USD * 10^9)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from tests.ledger.test_deferred_fast import B, DAY, LEASES, Pair, Replication, _with_slice
from tests.ledger.test_deferred_mutants import _set_reachable

D = Decimal


class BlockingReplication(Replication):
    """``INFO replication`` that can be made to hang (a primary slow to answer) until ``go`` is set."""

    def __init__(self, replid: str, offset: int, replicas: list[int]) -> None:
        super().__init__(replid, offset, replicas)
        self.go = asyncio.Event()
        self.go.set()
        self.waiting = asyncio.Event()

    async def info(self, section: str | None = None, *args: object, **kwargs: object) -> dict:
        if not self.go.is_set():
            self.waiting.set()
            await self.go.wait()
        return await super().info(section, *args, **kwargs)


# ---------------------------------------------------------------- the request path never waits for the flusher
async def test_a_reservation_is_decided_while_a_flush_waits_on_redis(tmp_path):
    """The flusher's pass holds its lock while it waits for Redis (here its replication read hangs). A
    reservation, a release and a settle above its hold go to Redis without waiting for that pass (the orphan
    scan that precedes them was done by the first call and is not due for ``ORPHAN_SCAN_S``): r2 ($3) is
    granted, 2 + 3 = $5 held, r2 released and r1 billed $2.50 at once (above its $2 hold) while the pass
    still waits; once Redis answers, r0's $0.25 bill is applied too."""
    p = Pair(tmp_path)
    repl = BlockingReplication("primary-a", 100, [])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r0", [B], D("1"), 60)).granted
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r0", D("0.25"))
    repl.go.clear()
    flushing = asyncio.create_task(p.store.flush())
    await asyncio.wait_for(repl.waiting.wait(), 5)
    got = await asyncio.wait_for(p.store.reserve("r2", [B], D("3"), 60), 5)
    assert got.granted and got.amount == D("3")
    assert await p.taken() == D("6")  # r0's $1 hold (its settle not applied yet) + r1 $2 + r2 $3
    assert await asyncio.wait_for(p.store.release("r2"), 5) is True
    assert await asyncio.wait_for(p.store.settle("r1", D("2.5")), 5) is True
    assert await p.plain.spend(B) == D("2.5")
    assert not flushing.done()
    repl.go.set()
    assert await asyncio.wait_for(flushing, 5) == 1
    assert await p.plain.spend(B) == D("2.75")
    assert await p.taken() == D("2.75")
    await p.close()


# ---------------------------------------------------------------- close
async def test_close_with_an_explicit_timeout_returns_within_it_and_keeps_the_unconfirmed_settle(tmp_path):
    """``close_ms`` is 60 s, ``close(timeout_s=0.3)`` asks for 0.3 s: the $1.50 settle is applied but its
    replica never acknowledges it, so close gives up after 0.3 s (well within 10 s), not 60 s, and the
    settle stays in the log; the next process applies it again and Redis still books it once."""
    p = Pair(tmp_path, "&close_ms=60000", log="a")
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    await asyncio.wait_for(p.store.close(timeout_s=0.3), 10)
    assert p.store.backlog() == 1
    assert await p.plain.spend(B) == D("1.5")  # applied, not confirmed
    heir = p.open("", tmp_path / "a")
    assert await heir.spend(B) == D("1.5")  # the closed store's log replayed: booked once
    assert await heir.flush() == 0
    assert not list((tmp_path / "a").glob("*.jsonl"))
    await heir.close()
    await p.plain.close()


async def test_close_gives_back_a_free_part_of_one_nano(tmp_path):
    """The $4 slice serves l1 ($3.999999999) locally, leaving 1 nano-USD free. close gives that nano back
    too (leases never strand capacity): another process sees r1's $1 hold + l1's 3.999999999 taken, and
    exactly $95.000000001 still fits."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("l1", [B], D("3.999999999"), 60)).granted
    assert p.store.local_grants == 1
    await p.store.close()
    assert await p.taken() == D("4.999999999")
    assert (await p.plain.reserve("all", [B], D("95.000000001"), 60)).granted
    assert not (await p.plain.reserve("over", [B], D("0.000000001"), 60)).granted
    await p.plain.close()


async def test_close_with_everything_confirmed_returns_without_waiting_out_its_bound(tmp_path):
    """``close_ms`` is 60 s: a close whose settle Redis confirms at once (no replica) returns at once (within
    10 s here), with the log removed; it waits out its bound only for entries still unconfirmed."""
    p = Pair(tmp_path, "&close_ms=60000", log="a")
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    await asyncio.wait_for(p.store.close(), 10)
    assert p.store.backlog() == 0
    assert not list((tmp_path / "a").glob("*"))
    assert await p.plain.spend(B) == D("1.5")
    await p.plain.close()


async def test_close_polls_a_lagging_replica_often_enough_to_confirm_within_a_short_bound(tmp_path):
    """close(timeout_s=1) with the $1.50 settle applied but acknowledged by the replica only 50 ms later:
    close reads the replication state again every 50 ms, so it confirms the entry within its 1 s bound and
    the log is removed (nothing left to replay)."""
    p = Pair(tmp_path, log="a")
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))

    def catch_up() -> None:
        repl.replicas = [100]

    asyncio.get_running_loop().call_later(0.05, catch_up)
    await p.store.close(timeout_s=1.0)
    assert p.store.backlog() == 0
    assert not list((tmp_path / "a").glob("*.jsonl"))
    assert await p.plain.spend(B) == D("1.5")
    await p.plain.close()


async def test_close_still_flushes_when_redis_drops_the_give_back_call(tmp_path):
    """With leases, the connection drops during close's give-back of B's slice (Redis unreachable for that
    one call): close swallows it and still applies the pending $0.75 bill of d1 (a Redis hold on DAY);
    the slice, not given back, stays counted until it expires."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert (await p.store.reserve("d1", [DAY], D("1"), 3600)).granted
    assert await p.store.settle("d1", D("0.75"))
    give_back = p.store._give_back

    async def dropped(bids):  # noqa: ANN001, ANN202
        _set_reachable(p, False)
        try:
            await give_back(bids)
        finally:
            _set_reachable(p, True)

    p.store._give_back = dropped
    await p.store.close()
    assert p.store.backlog() == 0
    assert await p.plain.spend(DAY) == D("0.75")
    assert await p.taken() == D("5")  # r1's hold + the $4 slice, not given back
    await p.plain.close()


async def test_close_completes_and_flushes_even_when_a_background_task_died_of_an_error(tmp_path):
    """close must finish its work whatever state its background tasks are in. Here the lease keeper and
    the settle flusher have both died of an unexpected error (a bug, simulated: their loops guard every Redis
    call): close still returns, applies the pending $0.75 bill and gives the $4 slice's free part back,
    leaving r1's $1 hold + the bill."""
    p = Pair(tmp_path, LEASES)
    await _with_slice(p)
    assert await p.store.settle("r1", D("0.75"))

    async def broken() -> None:
        raise RuntimeError("a bug in a background loop")

    for name in ("_keeper", "_flusher"):
        old = getattr(p.store, name)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(broken())
        await asyncio.wait([task])
        setattr(p.store, name, task)
    await p.store.close()
    assert p.store.backlog() == 0
    assert await p.plain.spend(B) == D("0.75")
    assert await p.taken() == D("0.75")
    await p.plain.close()


async def test_close_with_redis_not_answering_returns_within_its_bound(tmp_path):
    """Redis is up but does not answer (its replication read hangs): close(timeout_s=0.3) still returns (well
    within 10 s) and the $1.50 settle stays in the log; the next process books it once."""
    p = Pair(tmp_path, log="a")
    repl = BlockingReplication("primary-a", 100, [])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    repl.go.clear()
    await asyncio.wait_for(p.store.close(timeout_s=0.3), 10)
    assert p.store.backlog() == 1
    repl.go.set()
    heir = p.open("", tmp_path / "a")
    assert await heir.spend(B) == D("1.5")
    assert await p.plain.spend(B) == D("1.5")
    await heir.close()
    await p.plain.close()


async def test_a_settle_after_close_is_booked_in_redis_at_once(tmp_path):
    """A request still in flight when the store closes settles afterwards: with the settle log closed, the
    bill goes to Redis synchronously (booked before settle returns: $1.25, the $2 hold gone), not into a
    log nobody flushes any more."""
    p = Pair(tmp_path, log="a")
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    await p.store.close()
    assert await p.store.settle("r1", D("1.25")) is True
    assert await p.plain.spend(B) == D("1.25")
    assert await p.taken() == D("1.25")
    assert p.store.backlog() == 0
    await p.plain.close()


async def test_close_returns_when_the_connection_pool_hangs_on_closing(tmp_path):
    """The settle is confirmed and the log removed, then closing the Redis connection pool hangs: close still
    returns after at most ``POOL_CLOSE_S`` (1 s; within 10 s here) with the $1.50 bill booked."""
    p = Pair(tmp_path, log="a")
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))

    async def hang() -> None:
        await asyncio.Event().wait()

    p.store.client.aclose = hang
    await asyncio.wait_for(p.store.close(), 10)
    assert p.store.backlog() == 0
    assert not list((tmp_path / "a").glob("*"))
    assert await p.plain.spend(B) == D("1.5")
    await p.plain.close()


# ---------------------------------------------------------------- construction
async def test_quick_send_swaps_only_redis_pys_own_connection_class_and_only_when_asked(tmp_path):
    """``DeferredRedisStore(client)`` must not change a client the caller may share with other code (the
    default); ``quick_send=True`` swaps redis-py's connection class for its quick-send subclass; a connection
    class from elsewhere (fakeredis's) is left alone even when asked, and a Redis Cluster client (no single
    connection pool) is taken as it is. No connection is opened here (the same
    behaviour against a real server: tests/ledger/test_quick_send.py)."""
    import fakeredis
    from redis.asyncio import Redis

    from router.ledger.deferred import DeferredRedisStore
    from router.ledger.quick_send import quick_send_class

    shared = Redis.from_url("redis://127.0.0.1:1")
    original = shared.connection_pool.connection_class
    assert original.__module__.startswith("redis.")
    kept = DeferredRedisStore(shared, prefix="qs1", settle_log_dir=str(tmp_path / "a"))
    assert shared.connection_pool.connection_class is original
    opted = Redis.from_url("redis://127.0.0.1:1")
    swapped = DeferredRedisStore(opted, prefix="qs2", settle_log_dir=str(tmp_path / "b"), quick_send=True)
    assert opted.connection_pool.connection_class is quick_send_class(original)
    assert opted.connection_pool.connection_class is not original
    fake = fakeredis.FakeAsyncRedis()
    fake_class = fake.connection_pool.connection_class
    other = DeferredRedisStore(fake, prefix="qs3", settle_log_dir=str(tmp_path / "c"), quick_send=True)
    assert fake.connection_pool.connection_class is fake_class
    from redis.asyncio import RedisCluster

    cluster = DeferredRedisStore(RedisCluster(host="127.0.0.1", port=1), prefix="qs4", settle_log_dir=str(tmp_path / "d"), quick_send=True)
    assert not hasattr(cluster.client, "connection_pool")  # a cluster client has no one pool: nothing to swap
    for store in (kept, swapped, other, cluster):
        await store.close(timeout_s=0.5)


# ---------------------------------------------------------------- dead processes' logs
_DEAD_LINE = '{"rid":"%s","mode":"S","nano":%d,"held":1000000000,"bids":["%s"],"at":%d,"owner":""}\n'


async def test_a_dead_processs_log_is_adopted_while_this_stores_own_batch_waits_for_its_replica(tmp_path, monkeypatch):
    """This store's $1.50 settle is applied but not confirmed (its replica is behind), so its batch waits in
    the store. A process that died left a log settling its $1 hold at $0.40: the next scan (ORPHAN_SCAN_S,
    50 ms here) adopts and applies it anyway (a batch of this store's own is no reason to skip a dead
    owner's log): 1.50 + 0.40 booked, and no hold left."""
    from router.ledger import deferred

    monkeypatch.setattr(deferred, "ORPHAN_SCAN_S", 0.05)
    p = Pair(tmp_path, log="a")
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    assert await p.store.flush() == 1
    assert p.store.backlog() == 1  # waits for the replica
    assert (await p.plain.reserve("dead1", [B], D("1"), 60)).granted
    (tmp_path / "a" / "4242-deadbeef.000000001.jsonl").write_text(_DEAD_LINE % ("dead1", 400_000_000, B.id, p.store.now_ms()))
    (tmp_path / "a" / "4242-deadbeef.lock").touch()
    await asyncio.sleep(0.1)
    assert await p.store.flush() == 1  # the dead process's entry
    assert await p.plain.spend(B) == D("1.9")
    assert await p.taken() == D("1.9")
    await p.close()


async def test_an_adopted_log_stays_on_disk_until_every_replica_has_its_settles(tmp_path):
    """A dead process left a log settling its $1 hold at $0.40. The heir applies it, but the replica has not
    acknowledged it yet: the dead process's log (segment and lock) stays on disk, so a crash of the heir now
    would leave it for the next process; once the replica catches up it is removed."""
    p = Pair(tmp_path, log="a")
    assert (await p.plain.reserve("dead1", [B], D("1"), 60)).granted
    heir_dir = tmp_path / "heir"
    heir_dir.mkdir()
    (heir_dir / "4242-deadbeef.000000001.jsonl").write_text(_DEAD_LINE % ("dead1", 400_000_000, B.id, p.store.now_ms()))
    (heir_dir / "4242-deadbeef.lock").touch()
    heir = p.open("", heir_dir)
    repl = Replication("primary-a", 100, [50])
    heir.client.info = repl.info
    assert await heir.flush() == 1
    assert await p.plain.spend(B) == D("0.4")
    assert heir.backlog() == 1
    assert sorted(f.name for f in heir_dir.glob("4242-deadbeef.*")) == ["4242-deadbeef.000000001.jsonl", "4242-deadbeef.lock"]
    repl.replicas = [100]
    assert await heir.flush() == 0
    assert heir.backlog() == 0
    assert not list(heir_dir.glob("4242-deadbeef.*"))
    assert await p.plain.spend(B) == D("0.4")
    await heir.close()
    await p.close()


async def test_every_dead_log_in_a_shared_directory_is_adopted_by_a_later_scan(tmp_path, monkeypatch):
    """Two live processes share one settle-log directory. A dead process ``aa-dead`` left a $0.25 settle: it is
    applied, but its replica lags, so it waits. Then three more lock files turn up: the other live process's
    (held: skipped), ``yy-empty`` (a process that died before logging anything: its lock is removed) and
    ``zz-dead`` with a $0.50 settle. The next scan (ORPHAN_SCAN_S, 50 ms here) gets past all of them and
    applies zz-dead's bill: 0.25 + 0.50 booked, both $1 holds gone."""
    from router.ledger import deferred

    monkeypatch.setattr(deferred, "ORPHAN_SCAN_S", 0.05)
    p = Pair(tmp_path, log="shared")
    shared = tmp_path / "shared"
    repl = Replication("primary-a", 100, [50])
    p.store.client.info = repl.info
    for rid in ("dead-a", "dead-z"):
        assert (await p.plain.reserve(rid, [B], D("1"), 60)).granted
    (shared / "aa-dead.000000001.jsonl").write_text(_DEAD_LINE % ("dead-a", 250_000_000, B.id, p.store.now_ms()))
    (shared / "aa-dead.lock").touch()
    assert await p.store.flush() == 1
    assert p.store.backlog() == 1  # aa-dead's entry waits for the replica
    other = p.open("", shared)  # a live process on the same directory (its lock is held)
    (shared / "yy-empty.lock").touch()
    (shared / "zz-dead.000000001.jsonl").write_text(_DEAD_LINE % ("dead-z", 500_000_000, B.id, p.store.now_ms()))
    (shared / "zz-dead.lock").touch()
    await asyncio.sleep(0.1)
    assert await p.store.flush() == 1  # zz-dead's entry
    assert await p.plain.spend(B) == D("0.75")
    assert await p.taken() == D("0.75")
    assert not (shared / "yy-empty.lock").exists()
    await other.close()
    await p.close()


async def test_an_idle_store_scans_for_dead_logs_once_per_orphan_scan_interval(tmp_path):
    """flush_ms 10: the flusher sends the $1.50 settle by itself and Redis confirms it; the store then has
    nothing to do, so its flusher sleeps until the next scan for dead processes' logs (ORPHAN_SCAN_S, 5 s)
    instead of scanning the directory over and over."""
    from router.ledger import store_from_url

    p = Pair(tmp_path)
    store = store_from_url(f"{p.server}?settle=deferred&settle_log={tmp_path / 'a'}&flush_ms=10", prefix=p.prefix, clock=p.clock)
    scans = []
    orphans = store.settle_log.orphans

    def counting() -> list:
        scans.append(1)
        return orphans()

    store.settle_log.orphans = counting
    assert (await store.reserve("r1", [B], D("2"), 60)).granted
    assert await store.settle("r1", D("1.5"))
    for _ in range(500):
        if store.backlog() == 0:
            break
        await asyncio.sleep(0.01)
    assert store.backlog() == 0
    assert await p.plain.spend(B) == D("1.5")
    scans.clear()
    await asyncio.sleep(0.3)
    assert len(scans) <= 1
    await store.close()
    await p.close()


# ---------------------------------------------------------------- the replication read
async def test_each_confirmed_flush_reads_the_replication_state_once(tmp_path):
    """``INFO replication`` is read once to learn the primary before the first batch, then once per
    confirmation: three settles flushed one by one cost 2 + 1 + 1 reads (the replication id read by a
    confirmation is the one the next batch is applied under), and every bill is booked once."""
    p = Pair(tmp_path)
    repl = Replication("primary-a", 100, [])
    reads = []

    async def info(section: str | None = None, *args: object, **kwargs: object) -> dict:
        reads.append(section)
        return await repl.info(section, *args, **kwargs)

    p.store.client.info = info
    for i, bill in enumerate(("0.25", "0.5", "0.75")):
        assert (await p.store.reserve(f"r{i}", [B], D("1"), 60)).granted
        assert await p.store.settle(f"r{i}", D(bill))
        assert await p.store.flush() == 1
        assert p.store.backlog() == 0
    assert len(reads) == 4
    assert await p.plain.spend(B) == D("1.5")
    await p.close()


class ClusterReplication:
    """A Redis Cluster client's view for the replication read: ``get_node_from_key`` names the shard that holds
    a key, and ``INFO replication`` is answered by the node ``target_nodes`` names. The ledger's shard (the
    node of ``ledger_key``) has a replica that lags; every other node answers for a shard whose replica has
    everything (a confirmation read there would be wrong)."""

    def __init__(self, ledger_key: str) -> None:
        self.ledger_key = ledger_key
        self.ledger_node, self.other_node = object(), object()
        self.ledger = Replication("shard-ledger", 100, [50])
        self.other = Replication("shard-other", 7, [7])

    def get_node_from_key(self, key: str) -> object:
        return self.ledger_node if key == self.ledger_key else self.other_node

    async def info(self, section: str | None = None, *args: object, target_nodes: object = None) -> dict:
        shard = self.ledger if target_nodes is self.ledger_node else self.other
        return await shard.info(section)


async def test_on_a_cluster_the_confirmation_is_read_from_the_node_that_holds_the_ledger(tmp_path):
    """On Redis Cluster the replication state that confirms a batch is the one of the shard holding the
    ledger's keys: its replica lags (50 < 100), so the $1.50 settle stays in the log although another shard's
    replica is fully caught up; once the ledger shard's replica reaches 100 it is confirmed and removed."""
    p = Pair(tmp_path, log="a")
    cluster = ClusterReplication(p.store.keys.meta)
    p.store.client.get_node_from_key = cluster.get_node_from_key
    p.store.client.info = cluster.info
    assert (await p.store.reserve("r1", [B], D("2"), 60)).granted
    assert await p.store.settle("r1", D("1.5"))
    assert await p.store.flush() == 1
    assert await p.plain.spend(B) == D("1.5")
    assert p.store.backlog() == 1
    assert list((tmp_path / "a").glob("*.jsonl"))
    cluster.ledger.replicas = [100]
    assert await p.store.flush() == 0
    assert p.store.backlog() == 0
    await p.close()


async def test_the_default_settle_log_is_next_to_the_ledgers_journal_one_per_redis_server(tmp_path, monkeypatch):
    """No ``settle_log``: the log is ``JOURNAL.settles`` next to the ledger's fail-open journal, whose name
    digests the Redis URL and the prefix. Two ledgers with the same prefix on two Redis servers therefore get
    two logs (one never adopts the other's dead process's settles and books them on the wrong server); a store
    built without a URL has its log next to its own journal too."""
    import tempfile

    import fakeredis

    from router.ledger import store_from_url
    from router.ledger.deferred import DeferredRedisStore

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    p = Pair(tmp_path)
    other = Pair(tmp_path, log="other")
    stores = [store_from_url(f"{pair.server}?settle=deferred", prefix="same", clock=p.clock) for pair in (p, other)]
    dirs = [Path(s.settle_log.dir) for s in stores]
    assert dirs[0] != dirs[1]
    assert [d.parent for d in dirs] == [tmp_path, tmp_path]
    assert [d.name.split("-")[2] for d in dirs] == ["same", "same"]
    bare = DeferredRedisStore(fakeredis.FakeAsyncRedis(), prefix="bare", failure_mode="fail_open")
    assert bare.journal is not None
    assert Path(bare.settle_log.dir) == Path(f"{bare.journal.path}.settles")
    assert Path(bare.settle_log.dir).parent == tmp_path
    for s in (*stores, bare):
        await s.close(timeout_s=0.5)
    await p.close()
    await other.close()


async def test_flush_interval_and_close_timeout_are_accepted_from_0_to_3600_seconds_and_nothing_else(tmp_path):
    """``flush_interval_s`` and ``close_timeout_s`` are numbers of seconds between 0 and 3600, both ends
    included: 0 (flush at once / do not wait for Redis at close) and 3600 are taken, a nano-step beyond
    either end, a bool or a string is refused with a ValueError naming the option."""
    import pytest

    from router.ledger.deferred import DeferredRedisStore

    p = Pair(tmp_path)
    taken = []
    for i, (flush, close) in enumerate(((0, 0), (3600, 3600), (0.5, 3599.5))):
        store = DeferredRedisStore(p.plain.client, prefix=p.prefix, settle_log_dir=str(tmp_path / f"ok{i}"),
                                   flush_interval_s=flush, close_timeout_s=close)
        assert (store.flush_interval_s, store.close_timeout_s) == (flush, close)
        taken.append(store)
    for option in ("flush_interval_s", "close_timeout_s"):
        for bad in (-0.000001, 3600.000001, True, False, "1"):
            with pytest.raises(ValueError, match=option):
                DeferredRedisStore(p.plain.client, prefix=p.prefix, settle_log_dir=str(tmp_path / "bad"), **{option: bad})
    for store in taken:
        store.settle_log.close(remove=True)
    await p.close()


async def test_fsync_always_syncs_each_settle_before_it_returns(tmp_path, monkeypatch):
    """``fsync=always``: a deferred settle is on disk (fsynced) before ``settle`` returns, one fsync per
    settle; the default (``batch``) fsyncs nothing at settle time (the flusher syncs the batch before sending)."""
    from router.ledger import wal

    synced: list[int] = []
    real_fsync = wal.os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(wal.os, "fsync", counting_fsync)
    always = Pair(tmp_path, "&fsync=always", log="always")
    assert (await always.store.reserve("r1", [B], D("2"), 60)).granted
    assert (await always.store.reserve("r2", [B], D("1"), 60)).granted
    before = len(synced)
    assert await always.store.settle("r1", D("1.5"))
    assert len(synced) == before + 1
    assert await always.store.settle("r2", D("0.5"))
    assert len(synced) == before + 2
    batch = Pair(tmp_path, log="batch")
    assert (await batch.store.reserve("r1", [B], D("2"), 60)).granted
    before = len(synced)
    assert await batch.store.settle("r1", D("1.5"))
    assert len(synced) == before
    await always.close()
    await batch.close()


async def test_leases_true_turns_budget_leases_on_with_the_default_sizing(tmp_path):
    """``DeferredRedisStore(client, leases=True)`` (no sizing given) runs with the default ``LeaseSizing``:
    a $2 reservation is granted and its $1.25 bill booked once, as with any store; ``leases=False`` has none."""
    import fakeredis

    from router.ledger.deferred import DeferredRedisStore
    from router.ledger.factory import _fake_server
    from router.ledger.leases import LeaseSizing

    p = Pair(tmp_path)

    def client() -> fakeredis.FakeAsyncRedis:
        return fakeredis.FakeAsyncRedis(server=_fake_server(p.server.removeprefix("fakeredis://")))

    store = DeferredRedisStore(client(), prefix=p.prefix, clock=p.clock, settle_log_dir=str(tmp_path / "l"), leases=True)
    assert store.sizing == LeaseSizing()
    got = await store.reserve("r1", [B], D("2"), 60)
    assert got.granted and got.amount == D("2")
    assert await store.settle("r1", D("1.25"))
    assert await store.flush() == 1
    assert await p.plain.spend(B) == D("1.25")
    plain = DeferredRedisStore(client(), prefix=p.prefix, settle_log_dir=str(tmp_path / "n"), leases=False)
    assert plain.sizing is None
    for s in (store, plain):
        await s.close(timeout_s=0.5)
    await p.close()
