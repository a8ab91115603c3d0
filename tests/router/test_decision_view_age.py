"""Issue 13: "a decision never uses a view staler than the bound". On a shared store a Router decides from
a ledger snapshot it caches for at most ``snapshot_max_age_s`` (default 0.05 s); spend that another process
books must steer the very next decision once that age has passed."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from router import Router
from router.ledger import store_from_url
from router.testing import MockTransport

pytestmark = [pytest.mark.litellm, pytest.mark.redis_server]
HELLO = [{"role": "user", "content": "hello"}]
POLICY = """\
version: 1
candidates: [{model: gemini-2.5-flash}, {model: gemini-2.0-flash-lite}]
profiles:
  standard: {objective: best_quality}
  cost-first: {objective: cheapest}
default_profile: standard
budgets:
  - name: month
    scope: global
    window: calendar:month@UTC
    limit_usd: "10"
    actions:
      - {at_percent: 80, switch_profile: cost-first}
"""


@pytest.mark.parametrize("options", ["", "?leases=on"])
async def test_spend_booked_by_another_process_steers_the_decision_after_the_snapshot_age(redis_server, tmp_path, options):
    prefix = "age" + uuid.uuid4().hex[:10]
    url = redis_server.url + (f"{options}&settle_log={tmp_path / 'log'}" if options else "")
    router = Router(POLICY, store=url, key_prefix=prefix, transport=MockTransport(), watch_policy=False)
    assert router.snapshot_max_age_s == 0.05  # the documented default
    other = store_from_url(redis_server.url, prefix=prefix)  # another process's view of the same ledger
    try:
        await router.acomplete(HELLO, max_tokens=20)  # the first call pays litellm's import
        assert (await router.acomplete(HELLO, max_tokens=20)).routing.model == "gemini-2.5-flash"  # a fresh view
        budgets = [info.budget for info in await other.list_scopes()]
        assert [b.id for b in budgets] == ["global|calendar:month@UTC"]
        assert (await other.reserve("elsewhere", budgets, Decimal("8"), 60)).granted
        assert await other.settle("elsewhere", Decimal("8"))  # $8 of $10: the 80 % switch applies
        await asyncio.sleep(0.06)  # past the snapshot's maximum age: the next decision reads afresh
        assert (await router.acomplete(HELLO, max_tokens=20)).routing.model == "gemini-2.0-flash-lite"
    finally:
        await other.close()
        await router.aclose()
