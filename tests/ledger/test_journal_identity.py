"""Issue 11 items 2 and 10: a fail_open journal belongs to one ledger, and is replayed as soon as Redis answers.

Item 2 (before: the default journal depended on the key prefix only, so service A's outage spend on one Redis
was replayed into service B's Redis with the same prefix, and deleted): two real redis-servers, the default
prefix and the default journal path; A's outage spend never lands in B and is not deleted by B's process.
Item 10 (before: after an outage, fail_open kept bypassing Redis for ``retry_interval_s`` and reads never
replayed, so ``router spend`` under-reported until the next write)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from router.ledger import BudgetScope, Window, store_from_url
from router.ledger.journal import Journal, default_journal_path, ledger_identity
from router.testing.redis_server import RedisServer
from tests.fixtures_redis import need_redis_server

pytestmark = pytest.mark.redis_server
D = Decimal
BUDGET = BudgetScope("tenant:acme", Window.parse("calendar:month@UTC"), D("100"))
AOF = ("--appendonly", "yes", "--appendfsync", "always")  # a restart keeps what Redis had


@pytest.fixture
def tmpdir_journals(tmp_path, monkeypatch) -> Path:
    """The default journal directory ($TMPDIR) of every store in the test."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


@pytest.fixture
def two_servers():
    need_redis_server()
    with RedisServer(extra_args=AOF) as a, RedisServer(extra_args=AOF) as b:
        yield a, b


async def _spend_in_outage(store, server: RedisServer, rid: str, amount: str) -> None:
    """Reserve while Redis is up, then settle while it is down (the settle is journaled)."""
    assert (await store.reserve(rid, [BUDGET], D(amount), 60)).granted
    await asyncio.to_thread(server.kill)
    assert await store.settle(rid, D(amount))


async def _wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def test_default_journal_paths_differ_by_ledger_not_by_credentials():
    a = default_journal_path("redis://127.0.0.1:6379/0", "router")
    assert a != default_journal_path("redis://127.0.0.1:6380/0", "router")  # another server
    assert a != default_journal_path("redis://127.0.0.1:6379/1", "router")  # another db
    assert a != default_journal_path("redis://127.0.0.1:6379/0", "other")  # another prefix
    assert a == default_journal_path("redis://:s3cret@127.0.0.1:6379/0?socket_timeout=3", "router")
    assert ledger_identity("redis://u:pw@Cache.local:6379/2", "p") == "redis://cache.local:6379/2#p"
    assert "pw" not in ledger_identity("rediss+cluster://:pw@b:7001,a:7000", "p")


async def test_an_outage_journal_is_never_replayed_into_another_ledger(two_servers, tmpdir_journals):
    server_a, server_b = two_servers
    a = store_from_url(server_a.url, failure_mode="fail_open")  # default prefix "router", default journal
    b = store_from_url(server_b.url, failure_mode="fail_open")
    assert a.journal.path != b.journal.path
    await _spend_in_outage(a, server_a, "a-1", "2.50")
    assert a.journal_backlog() == 1
    # Service B keeps working on its own Redis: its operations never pick up A's journal.
    assert (await b.reserve("b-1", [BUDGET], D("1"), 60)).granted
    assert await b.settle("b-1", D("0.40"))
    assert await b.spend(BUDGET) == D("0.40")
    assert a.journal_backlog() == 1
    # Even a process of B pointed at A's journal file by mistake applies and deletes nothing of it.
    misplaced = store_from_url(server_b.url, failure_mode="fail_open", journal_path=str(a.journal.path))
    assert await misplaced.replay_journal() == 0
    assert await misplaced.spend(BUDGET) == D("0.40")
    assert a.journal_backlog() == 1
    await misplaced.close()
    # A's Redis comes back: A's spend lands in A (and only there).
    await asyncio.to_thread(server_a.start)
    assert await a.spend(BUDGET) == D("2.50")
    assert a.journal_backlog() == 0
    assert await b.spend(BUDGET) == D("0.40")
    await a.close()
    await b.close()


async def test_events_of_a_process_that_never_reached_redis_are_bound_by_url(two_servers, tmpdir_journals, tmp_path):
    """A process that started during the outage has no ledger id yet: its events carry the ledger identity."""
    server_a, server_b = two_servers
    shared = str(tmp_path / "shared.jsonl")
    await asyncio.to_thread(server_a.kill)
    a = store_from_url(server_a.url, failure_mode="fail_open", journal_path=shared)
    assert (await a.reserve("a-1", [BUDGET], D("1"), 60)).granted  # granted without a hold (Redis down)
    assert await a.settle("a-1", D("1"))
    (event,) = [json.loads(line) for line in Path(shared).read_text().splitlines()]
    assert event["ledger"] == ledger_identity(server_a.url, "router") and "lid" not in event
    b = store_from_url(server_b.url, failure_mode="fail_open", journal_path=shared)
    assert await b.replay_journal() == 0 and await b.spend(BUDGET) == 0
    await asyncio.to_thread(server_a.start)
    assert await a.spend(BUDGET) == D("1")  # replayed (by the probe or by this read) into A
    assert a.journal_backlog() == 0 and await b.spend(BUDGET) == 0
    await a.close()
    await b.close()


async def test_a_redis_that_came_back_empty_keeps_its_ledger_id(tmpdir_journals):
    """Without persistence a restarted Redis is empty; the store re-stores the id it knew, so its journal
    (bound to that id) is still replayed there."""
    need_redis_server()
    with RedisServer() as server:
        store = store_from_url(server.url, failure_mode="fail_open")
        await _spend_in_outage(store, server, "r1", "0.75")
        lid = store.ledger_id
        assert lid
        await asyncio.to_thread(server.start)
        assert await store.spend(BUDGET) == D("0.75")
        assert redis.Redis(port=server.port).get("{router}:id").decode() == lid
        await store.close()


async def test_replay_starts_as_soon_as_redis_answers_without_any_operation(tmpdir_journals):
    need_redis_server()
    with RedisServer(extra_args=AOF) as server:
        store = store_from_url(server.url, failure_mode="fail_open")
        store.retry_interval_s = 3600  # operations alone would skip Redis for an hour: only the probe can end it
        await _spend_in_outage(store, server, "r1", "2.50")
        assert (await store.reserve("r2", [BUDGET], D("1"), 60)).granted  # served without Redis
        await asyncio.to_thread(server.start)
        await _wait_for(lambda: store.journal_backlog() == 0)  # no call on the store meanwhile
        client = redis.Redis(port=server.port)
        assert (await store.reserve("r3", [BUDGET], D("1"), 60)).granted
        holds = client.get("{router}:ha:" + BUDGET.id)
        assert holds is not None and int(holds) == 1_000_000_000  # held in Redis again, not bypassed
        assert await store.spend(BUDGET) == D("2.50")
        await store.close()


async def test_reads_replay_the_journal_first(tmpdir_journals):
    """Another process sharing the journal that never saw the outage (a dashboard, ``router spend``) reads
    the spend journaled during it, not a figure without it."""
    need_redis_server()
    with RedisServer(extra_args=AOF) as server:
        writer = store_from_url(server.url, failure_mode="fail_open")
        writer.retry_interval_s = 3600
        await _spend_in_outage(writer, server, "r1", "2.50")
        await writer.close()  # no probe left to replay it
        await asyncio.to_thread(server.start)
        reader = store_from_url(server.url, failure_mode="fail_open")
        assert await reader.spend(BUDGET) == D("2.50")
        assert (await reader.snapshot([BUDGET], [], [])).spend[BUDGET.id] == D("2.50")
        assert reader.journal_backlog() == 0
        await reader.close()


async def test_router_spend_replays_the_journal_before_reading(tmpdir_journals):
    from typer.testing import CliRunner

    from router.cli import get_app

    need_redis_server()
    with RedisServer(extra_args=AOF) as server:
        writer = store_from_url(server.url, failure_mode="fail_open")
        writer.retry_interval_s = 3600
        await _spend_in_outage(writer, server, "r1", "2.50")
        await writer.close()
        await asyncio.to_thread(server.start)
        result = await asyncio.to_thread(CliRunner().invoke, get_app(), ["spend", "--store", server.url, "--json"])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.stdout)
        assert row["id"] == BUDGET.id and D(row["spent_usd"]) == D("2.50")


def test_a_replay_keeps_other_ledgers_events_in_place(tmp_path):
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    for i, ledger in enumerate(["A", "B", "A", "B"]):
        journal.append({"op": "settle", "rid": f"e{i}", "ledger": ledger})
    taken = journal.take(lambda e: e["ledger"] == "A")
    assert [e["rid"] for e in taken] == ["e0", "e2"]
    journal.done()
    assert journal.backlog() == 2 and not journal.pending  # B's events stay, but are not ours to replay
    other = Journal(path)
    assert [e["rid"] for e in other.take(lambda e: e["ledger"] == "B")] == ["e1", "e3"]
    other.done()
    assert other.backlog() == 0
