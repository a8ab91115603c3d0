"""`router monitor`, `router metrics` and the Router's request metrics, against a real redis-server."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.catalog import default_catalog
from router.cli import get_app
from router.cli.ops_cmds import burn_projection
from router.ledger import BudgetScope, Window, quota_pool_from_spec, store_from_url
from router.metrics import RouterMetrics

pytestmark = pytest.mark.redis_server
REPO = Path(__file__).resolve().parents[2]


async def _seed(url: str, prefix: str) -> BudgetScope:
    """Settle $0.75 of a $1 monthly budget for tenant acme and use 3 units of the Flash search pool."""
    budget = BudgetScope("tenant:acme", Window.parse("calendar:month@UTC"), Decimal("1"))
    store = store_from_url(url, prefix=prefix)
    try:
        for i, amount in enumerate(("0.25", "0.5")):
            granted = await store.reserve(f"r{i}", [budget], Decimal("0.6"), 60)
            assert granted.granted
            await store.settle(f"r{i}", Decimal(amount))
        pool = quota_pool_from_spec(default_catalog().pool("gemini-2x-flash-search-daily"))
        await store.consume(pool, 3, "g1")
    finally:
        await store.close()
    return budget


def test_monitor_json_shows_budgets_burn_and_pools(redis_server):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    budget = asyncio.run(_seed(redis_server.url, prefix))
    result = CliRunner().invoke(get_app(), ["monitor", "--store", redis_server.url, "--prefix", prefix, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (row,) = data["budgets"]
    assert row["budget"] == budget.id
    assert (row["spend_usd"], row["limit_usd"], row["utilisation"]) == ("0.75", "1", "0.75")
    assert Decimal(row["burn_usd_per_hour"]) > 0 and Decimal(row["projected_at_window_end_usd"]) >= Decimal("0.75")
    pools = {p["pool"]: p for p in data["pools"]}
    assert pools["gemini-2x-flash-search-daily"]["used"] == 3
    assert pools["gemini-2x-flash-search-daily"]["remaining"] == 1497
    once = CliRunner().invoke(get_app(), ["monitor", "--store", redis_server.url, "--prefix", prefix, "--once"])
    assert once.exit_code == 0 and "tenant:acme" in once.stdout


def test_burn_projection_is_linear_in_elapsed_time():
    import datetime as dt

    start = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    now = start + dt.timedelta(days=10)
    per_hour, projected = burn_projection(Decimal("240"), start, end, now)
    assert per_hour == 1
    assert projected == 720  # 30 days x 24 h x $1


def test_monitor_reports_an_unreachable_store_clearly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(get_app(), ["monitor", "--store", f"redis://127.0.0.1:{port}/0", "--json"])
    assert result.exit_code == 2
    assert "unreachable" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_command_serves_ledger_gauges_and_policy_version(redis_server, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    asyncio.run(_seed(redis_server.url, prefix))
    policy = tmp_path / "policy.yaml"
    policy.write_text((REPO / "policies" / "demo.yaml").read_text())
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "metrics", "--store", redis_server.url, "--prefix", prefix, "--port", str(port), "--addr", "127.0.0.1", "--interval", "0.2", "--policy", str(policy)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        body = ""
        for _ in range(100):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
                if "router_budget_spend_usd{" in body:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert 'router_budget_spend_usd{budget="tenant:acme|calendar:month@UTC",scope="tenant:acme",window="calendar:month@UTC"} 0.75' in body
        assert 'router_budget_utilisation_ratio{budget="tenant:acme|calendar:month@UTC"' in body
        assert 'router_grounding_pool_used{pool="gemini-2x-flash-search-daily"} 3.0' in body
        assert "router_policy_reload_failing 0.0" in body
        # A broken edit raises the alert metric; the exporter keeps serving.
        policy.write_text(policy.read_text() + "\nbroken: [\n")
        for _ in range(50):
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
            if "router_policy_reload_failing 1.0" in body:
                break
            time.sleep(0.1)
        assert "router_policy_reload_failing 1.0" in body
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_router_metrics_render_counts_and_histograms():
    metrics = RouterMetrics()
    metrics.record_request("gemini-2.5-flash", "acme", "grounded", "ok", Decimal("0.001"))
    metrics.record_denial("tenant:acme|calendar:month@UTC")
    metrics.record_fallback("claude-sonnet-4-5", "rate_limited")
    metrics.decision_seconds.observe(0.00003)
    text = metrics.render().decode()
    assert 'router_requests_total{model="gemini-2.5-flash",outcome="ok",rule="grounded",tenant="acme"} 1.0' in text
    assert 'router_cost_usd_total{model="gemini-2.5-flash",rule="grounded",tenant="acme"} 0.001' in text
    assert 'router_reservation_denials_total{scope="tenant:acme|calendar:month@UTC"} 1.0' in text
    assert 'router_fallbacks_total{model="claude-sonnet-4-5",reason="rate_limited"} 1.0' in text
    assert "router_decision_seconds_bucket" in text
