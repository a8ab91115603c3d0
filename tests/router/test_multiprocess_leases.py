"""The multi-process Router tests again, with the ledger's budget leases and deferred settlement on
(``?leases=on``): the same hand-computed bills, the same never-exceeded cap."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.router.test_multiprocess import COST, _global_spend, _run_workers, _script

pytestmark = [pytest.mark.litellm, pytest.mark.redis_server, pytest.mark.slow]


def test_leased_ledger_leaves_the_hand_computed_bill(tmp_path, redis_server, vertex_stub, vertex_router_kwargs):
    _script(vertex_stub)
    url = f"{redis_server.url}?leases=on&settle_log={tmp_path / 'settles'}"
    results, prefix = _run_workers(tmp_path, url, vertex_router_kwargs, limit="100")
    assert len(results) == 60
    for tenant, cost in results:
        assert Decimal(cost) == COST[tenant]
    assert asyncio.run(_global_spend(redis_server.url, prefix)) == sum(COST[tenant] for tenant, _ in results)


def test_leased_ledger_never_exceeds_a_shared_cap(tmp_path, redis_server, vertex_stub, vertex_router_kwargs):
    _script(vertex_stub)
    url = f"{redis_server.url}?leases=on&settle_log={tmp_path / 'settles'}"
    results, prefix = _run_workers(tmp_path, url, vertex_router_kwargs, limit="0.05")
    served = [Decimal(cost) for _, cost in results if cost != "denied"]
    assert served and len(served) < len(results)
    total = asyncio.run(_global_spend(redis_server.url, prefix))
    assert total == sum(served) and total <= Decimal("0.05")
