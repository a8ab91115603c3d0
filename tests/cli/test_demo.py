"""`router demo` (the README's first command): every request served, the budget downgrade shows, and the
ledger counters it prints add up to the per-request bills."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from router.cli import get_app

pytestmark = [pytest.mark.litellm]


@pytest.fixture(scope="module")
def demo() -> dict:
    result = CliRunner().invoke(get_app(), ["demo", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_request_is_served(demo):
    assert len(demo["rows"]) >= 25
    assert all(row["outcome"] == "ok" for row in demo["rows"])


def test_acme_is_downgraded_once_its_budget_passes_80_percent(demo):
    analytics = [row for row in demo["rows"] if row["request"].startswith("analytics")]
    profiles = [row["profile"] for row in analytics]
    assert profiles[0] == "quality" and profiles[-1] == "cost-first"
    switch = profiles.index("cost-first")
    assert all(p == "cost-first" for p in profiles[switch:])
    assert ">= 80%" in analytics[switch]["why"]
    assert Decimal(analytics[switch]["cost_usd"]) < Decimal(analytics[0]["cost_usd"])


def test_the_429_falls_back_and_is_not_billed(demo):
    (code,) = [row for row in demo["rows"] if row["request"].startswith("code")]
    assert [a["outcome"] for a in code["attempts"]] == ["rate_limited", "ok"]
    assert code["model"] != code["attempts"][0]["model"]


def test_ledger_counters_equal_the_sum_of_the_bills(demo):
    per_tenant: Counter = Counter()
    for row in demo["rows"]:
        per_tenant[row["tenant"]] += Decimal(row["cost_usd"])
    budgets = {b["budget"]: Decimal(b["spend_usd"]) for b in demo["counters"]["budgets"]}
    assert budgets == {f"tenant:{t}|calendar:month@UTC": total for t, total in per_tenant.items()}


def test_grounded_requests_use_the_free_pool(demo):
    grounded = [row for row in demo["rows"] if row["grounding"]]
    assert grounded and all(row["grounding"] == "1 free / 0 billed" for row in grounded)
    pools = {p["pool"]: p for p in demo["counters"]["pools"]}
    assert sum(p["used"] for p in pools.values()) == len(grounded)
