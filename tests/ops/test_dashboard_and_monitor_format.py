"""The Grafana dashboard only queries metrics the exporter serves; `router monitor` shows money as money and
never truncates ids; the exporter binds loopback unless told otherwise."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import socket
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from router.burn import format_usd
from router.cli import get_app
from router.ledger import BudgetScope, Window, store_from_url
from router.ledger.types import LedgerSnapshot, PoolUsage, RampUsage
from router.metrics import RouterMetrics, serve_metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "docker" / "grafana" / "dashboards" / "router.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exercised_metrics() -> RouterMetrics:
    """A registry in which every metric the router records has at least one sample."""
    metrics = RouterMetrics()
    metrics.record_request("gemini-2.5-flash", "acme", "default", "ok", Decimal("0.001"))
    metrics.record_denial("tenant:acme|calendar:month@UTC")
    metrics.record_fallback("claude-sonnet-4-5", "rate_limited")
    metrics.record_store_error("reserve")
    metrics.record_policy_reload(True, "abc123")
    metrics.overruns.inc()
    metrics.decision_seconds.observe(0.00003)
    metrics.journal_backlog.set(0)
    metrics.record_pt("gemini-2.0-flash@us-central1", "spilled")
    metrics.set_pt("gemini-2.0-flash@us-central1", 10, 100)
    metrics.pt_served_share.labels("gemini-2.0-flash", "us-central1").set(0.5)
    metrics.pt_amortised.labels("gemini-2.0-flash", "us-central1").set(1.0)
    metrics.record_count_tokens("counted")
    metrics.set_count_pool("router-stub-project", 1, 2999)
    budget = BudgetScope("tenant:acme", Window.parse("calendar:month@UTC"), Decimal("100"))
    now = dt.datetime(2026, 11, 11, tzinfo=dt.timezone.utc)
    snapshot = LedgerSnapshot(
        spend={budget.id: Decimal("101")},
        pools={"p": PoolUsage("p", 3, 1500, now)},
        ramp={"flash": RampUsage("flash", 1000, 4_000_000)},
    )
    metrics.set_ledger([budget], snapshot, now)
    return metrics


def _served_names(metrics: RouterMetrics) -> set[str]:
    """Sample names as a Prometheus scrape of the exporter over HTTP sees them."""
    port = _free_port()
    server = serve_metrics(metrics, port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    return {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")}


def _queries() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in data["panels"] for target in panel["targets"]]


def test_every_dashboard_query_names_a_metric_the_exporter_serves():
    served = _served_names(_exercised_metrics())
    queries = _queries()
    assert len(queries) >= 12
    for expr in queries:
        names = set(re.findall(r"\brouter_[a-z_]+", expr))
        assert names, f"query names no router metric: {expr}"
        assert names <= served, f"{expr}: not served: {sorted(names - served)}"


def test_dashboard_covers_what_operators_watch():
    text = " ".join(_queries())
    for needed in (
        "router_budget_spend_usd", "router_budget_utilisation_ratio", "router_budget_burn_usd_per_hour",
        "router_budget_projected_usd", "router_grounding_pool_used", "router_grounding_pool_free_units",
        "router_priority_tokens_last_minute", "router_reservation_denials_total", "router_fallbacks_total",
        "router_policy_reload_failing", "router_pt_utilisation_ratio", "router_pt_requests_total",
        "router_count_tokens_pool_used",
    ):
        assert needed in text, needed


def test_exporter_gauges_burn_rate_and_projection_are_exact():
    metrics = _exercised_metrics()
    text = metrics.render().decode()
    labels = 'budget="tenant:acme|calendar:month@UTC",scope="tenant:acme",window="calendar:month@UTC"'
    # $101 spent in the first 10 days of a 30-day month: $101 / 240 h = 0.420833.. $/h; x 720 h = $303.
    assert f"router_budget_projected_usd{{{labels}}} 303.0" in text
    assert f"router_budget_burn_usd_per_hour{{{labels}}} 0.42083" in text
    assert f"router_budget_limit_usd{{{labels}}} 100.0" in text
    assert 'router_grounding_pool_free_units{pool="p"} 1500.0' in text


def test_compose_provisions_grafana_with_the_dashboard_and_prometheus():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    assert (REPO / "docker" / mounts_key(mounts, "dashboards")).is_dir()
    provisioning = REPO / "docker" / mounts_key(mounts, "provisioning")
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    uids = {t["datasource"]["uid"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}
    provider = yaml.safe_load((provisioning / "dashboards" / "router.yaml").read_text())["providers"][0]
    assert provider["options"]["path"] == mounts[f"./{mounts_key(mounts, 'dashboards')}"]
    # Prometheus scrapes the demo's request metrics as well as the ledger exporter.
    prom = yaml.safe_load((REPO / "docker" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    demo = compose["services"]["demo"]["command"]
    assert f"demo:{demo[demo.index('--metrics-port') + 1]}" in targets


def mounts_key(mounts: dict[str, str], suffix: str) -> str:
    (key,) = [k for k in mounts if k.endswith(suffix)]
    return key.removeprefix("./")


@pytest.mark.parametrize(
    ("amount", "shown"),
    [("10", "$10.00"), ("10.000000000", "$10.00"), ("0.75", "$0.75"), ("0.00152", "$0.00152"), ("1234.5", "$1,234.50"), ("0.000000001", "$0.000000001"), ("0", "$0.00"), ("-1.5", "-$1.50")],
)
def test_money_is_shown_as_money(amount, shown):
    assert format_usd(Decimal(amount)) == shown


def test_metrics_exporter_binds_loopback_by_default():
    import inspect

    from router.cli.demo_cmd import demo
    from router.cli.ops_cmds import metrics

    # Binding every interface must be asked for (--addr 0.0.0.0), for the exporter and the demo's metrics.
    assert inspect.signature(metrics).parameters["addr"].default == "127.0.0.1"
    assert inspect.signature(demo).parameters["metrics_addr"].default == "127.0.0.1"
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    for service in ("metrics", "demo"):
        assert "0.0.0.0" in compose["services"][service]["command"], service


LONG_TENANT = "acme-corporation-analytics-platform-eu"


async def _seed(url: str, prefix: str) -> BudgetScope:
    budget = BudgetScope(f"tenant:{LONG_TENANT}", Window.parse("calendar:month@Europe/Paris"), Decimal("10"))
    store = store_from_url(url, prefix=prefix)
    try:
        assert (await store.reserve("r1", [budget], Decimal("3"), 60)).granted
        await store.settle("r1", Decimal("2.5"))
    finally:
        await store.close()
    return budget


def _first_column(output: str) -> str:
    """The text of the first column of the first table, its folded lines joined."""
    cells = []
    for line in output.splitlines():
        parts = line.split("│")
        if len(parts) > 2:
            cells.append(parts[1].strip())
        elif cells and line.startswith("└"):
            break
    return "".join(cells)


@pytest.mark.redis_server
def test_monitor_in_80_columns_wraps_ids_and_shows_money(redis_server):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    budget = asyncio.run(_seed(redis_server.url, prefix))
    result = CliRunner().invoke(get_app(), ["monitor", "--store", redis_server.url, "--prefix", prefix, "--once"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert all(len(line) <= 80 for line in result.output.splitlines())
    assert budget.id in _first_column(result.output)
    assert "$2.50 / $10.00" in result.output.replace("\n", "") or "$2.50" in result.output
    assert "000000" not in result.output
    wide = CliRunner().invoke(get_app(), ["monitor", "--store", redis_server.url, "--prefix", prefix, "--once", "--wide"], env={"COLUMNS": "80"})
    assert wide.exit_code == 0, wide.output
    assert any(budget.id in line for line in wide.output.splitlines())


@pytest.mark.litellm
@pytest.mark.parametrize("columns", [80, 160])
def test_demo_follows_the_terminal_width_without_truncating(columns):
    result = CliRunner().invoke(get_app(), ["demo"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= columns
    assert "…" not in result.output
    assert "tenant:acme|calendar:month@UTC" in result.output  # budget ids whole
    assert "total billed: $" in result.output and "00000000" not in result.output
