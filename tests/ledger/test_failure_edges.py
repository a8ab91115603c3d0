"""Edge cases found in review: a saturated pool is not an outage, transient server errors are journaled in
fail_open, concurrent journal replays never delete events they did not read, and a release never shortens a
long hold's record."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
import redis
import redis.exceptions as rexc

from router.errors import StoreError
from router.ledger import BudgetScope, Window, store_from_url
from router.ledger.journal import Journal

pytestmark = pytest.mark.redis_server
D = Decimal


def _budget() -> BudgetScope:
    return BudgetScope("tenant:a", Window.parse("rolling:24h"), D("1"))


def _failing(store, name: str, exc: Exception) -> None:
    async def boom(keys=None, args=None):
        raise exc

    store._scripts[name] = boom


async def test_a_saturated_pool_is_an_error_not_an_outage_even_in_fail_open(redis_server, tmp_path):
    store = store_from_url(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}", failure_mode="fail_open", journal_path=str(tmp_path / "j"))
    _failing(store, "reserve", rexc.ConnectionError("No connection available."))
    with pytest.raises(StoreError) as info:
        await store.reserve("r1", [_budget()], D("0.9"), 60)
    assert "pool exhausted" in str(info.value)
    assert not (tmp_path / "j").exists()  # nothing granted without a hold, nothing journaled
    await store.close()


@pytest.mark.parametrize("message", ["OOM command not allowed when used memory > 'maxmemory'.", "READONLY You can't write against a read only replica."])
async def test_transient_server_errors_are_journaled_in_fail_open(redis_server, tmp_path, message):
    store = store_from_url(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}", failure_mode="fail_open", journal_path=str(tmp_path / "j"))
    assert (await store.reserve("r1", [_budget()], D("0.5"), 60)).granted
    _failing(store, "settle", rexc.ResponseError(message))
    assert await store.settle("r1", D("0.25")) is True
    events = [json.loads(line) for line in (tmp_path / "j").read_text().splitlines()]
    assert [(e["op"], e["rid"]) for e in events] == [("settle", "r1")]
    await store.close()


async def test_a_bad_request_is_still_an_error_in_fail_open(redis_server, tmp_path):
    store = store_from_url(redis_server.url, prefix=f"t{uuid.uuid4().hex[:8]}", failure_mode="fail_open", journal_path=str(tmp_path / "j"))
    _failing(store, "reserve", rexc.ResponseError("ERR wrong number of arguments"))
    with pytest.raises(StoreError):
        await store.reserve("r1", [_budget()], D("0.5"), 60)
    await store.close()


def test_concurrent_replays_never_delete_events_they_did_not_read(tmp_path):
    path = tmp_path / "journal.jsonl"
    a, b = Journal(path), Journal(path)
    a.append({"op": "settle", "rid": "batch1"})
    assert [e["rid"] for e in a.take()] == ["batch1"]
    assert [e["rid"] for e in b.take()] == ["batch1"]  # B reads the same (idempotent) batch
    a.done()
    a.append({"op": "settle", "rid": "batch2"})
    assert [e["rid"] for e in a.take()] == ["batch2"]
    b.done()  # B finishing batch 1 must not delete batch 2, which A has taken but not applied
    assert a.backlog() == 1
    assert [e["rid"] for e in Journal(path).take()] == ["batch2"]


async def test_releasing_a_long_hold_keeps_its_record_as_long_as_the_hold(redis_server):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    store = store_from_url(redis_server.url, prefix=prefix)
    assert (await store.reserve("long", [_budget()], D("0.1"), 6 * 86400)).granted
    await store.release("long")
    client = redis.Redis.from_url(redis_server.url)
    ttl_h = client.pttl("{" + prefix + "}:h:long") / 3_600_000
    assert ttl_h > 6 * 24  # not cut down to the 48 h idempotency window
    assert await store.settle("long", D("0.05"))  # a late settle still finds the record and books
    assert await store.spend(_budget()) == D("0.05")
    await store.close()


async def test_budgets_nobody_reserves_against_are_pruned_from_the_registry(redis_server):
    """High-cardinality scopes (a tag per request, say) must not grow the ledger's budget registry forever."""
    from router.ledger.memory import META_TTL_MS

    prefix = f"t{uuid.uuid4().hex[:8]}"
    clock = [1_800_000_000.0]
    store = store_from_url(redis_server.url, prefix=prefix, clock=lambda: clock[0])
    old = BudgetScope("tag:req=1", Window.parse("rolling:1h"), D("1"))
    assert (await store.reserve("a", [old], D("0.1"), 60)).granted
    clock[0] += META_TTL_MS / 1000 + 60
    fresh = BudgetScope("tag:req=2", Window.parse("rolling:1h"), D("1"))
    assert (await store.reserve("b", [fresh], D("0.1"), 60)).granted
    assert [info.budget.id for info in await store.list_scopes()] == [fresh.id]
    client = redis.Redis.from_url(redis_server.url)
    assert client.hkeys("{" + prefix + "}:meta") == [fresh.id.encode()]
    await store.close()


def test_events_appended_to_a_file_another_replay_read_are_not_deleted(tmp_path):
    path = tmp_path / "journal.jsonl"
    a, b = Journal(path), Journal(path)
    a.append({"op": "settle", "rid": "e1"})
    a.take()  # a's replay fails (Redis down): a keeps its file
    b.take()  # b reads the same file (e1)
    a.append({"op": "settle", "rid": "e2"})
    a.take()  # a moves e2 into its own file, which b has read before e2 arrived
    b.done()  # b applied e1 only: the file grew since b read it, so it must stay
    assert sorted(e["rid"] for e in Journal(path).take()) == ["e1", "e2"]
