"""Issue 11 items 1 and 2 on a real 3-primary Redis Cluster: encoded names (braces, separators, UTF-8) and the
ledger id key stay in the ledger's ``{prefix}`` slot, so every script still touches one slot."""

from __future__ import annotations

from decimal import Decimal

import pytest
import redis

from router.ledger import BudgetScope, Window, store_from_url
from router.ledger.names import scope_of
from router.testing.redis_server import RedisClusterServers
from tests.fixtures_redis import need_redis_server

pytestmark = [pytest.mark.redis_server, pytest.mark.slow]
D = Decimal


async def test_hostile_names_and_the_ledger_id_share_the_prefix_slot(unique_prefix, tmp_path):
    need_redis_server()
    with RedisClusterServers() as cluster:
        store = store_from_url(cluster.url, prefix=unique_prefix, failure_mode="fail_open", journal_path=str(tmp_path / "j"))
        names = ["{a}", "a}:b|c=d", "Müller", "a/b", "a_b.c14cddc0"]
        budgets = [BudgetScope(scope_of("tenant", n), Window.parse("calendar:month@UTC"), D("1")) for n in names]
        budgets.append(BudgetScope(scope_of("tag", "{x}", "team"), Window.parse("rolling:1h"), D("1")))
        assert (await store.reserve("r1", budgets, D("0.25"), 60)).granted
        assert await store.settle("r1", D("0.25"))
        assert store.ledger_id  # learnt on first contact (ledger_id.lua ran on the cluster)
        assert {s.budget.id for s in await store.list_scopes()} == {b.id for b in budgets}
        for b in budgets:
            assert await store.spend(b) == D("0.25")
        await store.close()
        holders = []
        for server in cluster.servers:
            client = redis.Redis(port=server.port)
            keys = list(client.scan_iter(match="{" + unique_prefix + "}:*"))
            if keys:
                holders.append(server.port)
                assert {client.cluster("keyslot", k) for k in keys} == {client.cluster("keyslot", unique_prefix)}
                assert ("{" + unique_prefix + "}:id").encode() in keys
        assert len(holders) == 1
