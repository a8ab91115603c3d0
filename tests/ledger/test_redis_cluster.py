"""The ledger on a real 3-primary Redis Cluster: every key of a ledger shares the ``{prefix}`` slot."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis

from router.ledger import BudgetScope, QuotaPool, Window, store_from_url
from tests.fixtures_redis import need_redis_server
from router.testing.redis_server import RedisClusterServers

pytestmark = [pytest.mark.redis_server, pytest.mark.slow]
D = Decimal


@pytest.fixture(scope="module")
def cluster():
    need_redis_server()
    with RedisClusterServers() as c:
        yield c


async def test_ledger_on_redis_cluster(cluster, unique_prefix):
    store = store_from_url(cluster.url, prefix=unique_prefix)
    budgets = [BudgetScope("global", Window.parse("rolling:1h"), D(1)), BudgetScope("tenant:x", Window.parse("calendar:day@Europe/Paris"), D("0.5"))]
    assert (await store.reserve("r", budgets, D("0.3"), 60)).granted
    denied = await store.reserve("r2", budgets, D("0.3"), 60)
    assert not denied.granted and denied.denied_scope == budgets[1].id
    assert await store.settle("r", D("0.2")) and not await store.settle("r", D("0.2"))
    pool = QuotaPool("p", 3, "day")
    c = await store.consume(pool, 4, "q")
    assert (c.free_units, c.billable_units) == (3, 1)
    await store.record_priority_tokens("flash", 5)
    snap = await store.snapshot(budgets, [pool], ["flash"])
    assert snap.spend == {budgets[0].id: D("0.2"), budgets[1].id: D("0.2")}
    assert snap.pools["p"].used == 4 and snap.ramp["flash"].tokens_last_minute == 5
    assert {s.budget.id for s in await store.list_scopes()} == {b.id for b in budgets}
    await store.close()
    # all of this ledger's keys live on one node, in one slot
    holders = []
    for server in cluster.servers:
        keys = list(redis.Redis(port=server.port).scan_iter(match="{" + unique_prefix + "}:*"))
        if keys:
            holders.append(server.port)
            slots = {redis.Redis(port=server.port).cluster("keyslot", k) for k in keys}
            assert len(slots) == 1
    assert len(holders) == 1
