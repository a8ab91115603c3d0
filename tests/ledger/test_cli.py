"""``router spend`` and ``router quota`` through typer's CliRunner (on a shared in-process fakeredis)."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import pytest
import typer
from typer.testing import CliRunner

from router.cli import ledger_cmds
from router.ledger import BudgetScope, QuotaPool, Window, store_from_url

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    ledger_cmds.register(app)
    return app


@pytest.fixture
def url() -> str:
    url = f"fakeredis://cli-{uuid.uuid4().hex}"

    async def fill() -> None:
        store = store_from_url(url)
        day = BudgetScope("tenant:acme", Window.parse("calendar:day@Europe/Paris"), Decimal("10"))
        hour = BudgetScope("global", Window.parse("rolling:1h"), Decimal("100"))
        await store.reserve("a", [day, hour], Decimal("2.5"), 600)
        await store.settle("a", Decimal("1.25"))
        await store.reserve("b", [hour], Decimal("0.75"), 600)
        await store.consume(QuotaPool("gemini-2x-flash-search-daily", 1500, "day"), 1501, "g")
        await store.record_priority_tokens("pro", 1234)
        await store.close()

    asyncio.run(fill())
    return url


def test_spend_json(app, url):
    result = runner.invoke(app, ["spend", "--store", url, "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    acme = rows["tenant:acme|calendar:day@Europe/Paris"]
    assert acme["spent_usd"] == "1.25" and acme["held_usd"] == "0" and acme["limit_usd"] == "10"
    assert acme["utilisation_pct"] == "12.5" and acme["remaining_usd"] == "8.75"
    glob = rows["global|rolling:1h"]
    assert glob["spent_usd"] == "1.25" and glob["held_usd"] == "0.75" and glob["utilisation_pct"] == "2"


def test_spend_scope_filter_and_table(app, url):
    result = runner.invoke(app, ["spend", "--store", url, "--scope", "tenant:acme", "--json"])
    assert [r["scope"] for r in json.loads(result.stdout)] == ["tenant:acme"]
    result = runner.invoke(app, ["spend", "--store", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "tenant:acme" in result.stdout and "12.5%" in result.stdout
    result = runner.invoke(app, ["spend", "--store", url, "--scope", "tenant:nobody"])
    assert result.exit_code == 2 and "no budget" in result.output


def test_quota_json(app, url):
    result = runner.invoke(app, ["quota", "--store", url, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    pools = {p["pool"]: p for p in data["pools"]}
    flash = pools["gemini-2x-flash-search-daily"]
    assert (flash["used"], flash["free_units"], flash["remaining"]) == (1501, 1500, 0)
    assert flash["timezone"] == "America/Los_Angeles" and flash["resets_at"].endswith(("07:00:00+00:00", "08:00:00+00:00"))
    assert pools["gemini-3-search-monthly"]["used"] == 0 and pools["gemini-3-search-monthly"]["period"] == "month"
    ramp = {r["family"]: r for r in data["priority_ramp"]}
    assert ramp["pro"]["tokens_last_minute"] == 1234 and ramp["pro"]["limit_tpm"] == 1_000_000
    assert ramp["flash"]["limit_tpm"] == 4_000_000


def test_quota_table(app, url):
    result = runner.invoke(app, ["quota", "--store", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "gemini-2.5-pro-search-daily" in result.stdout and "flash-lite" in result.stdout


def test_errors_exit_2(app):
    result = runner.invoke(app, ["spend", "--store", "nope"])
    assert result.exit_code == 2 and "--store" in result.output
    result = runner.invoke(app, ["quota", "--store", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 2 and "127.0.0.1:1" in result.output
    result = runner.invoke(app, ["quota", "--store", "memory://", "--timezone", "Mars/Olympus"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["spend", "--store", "memory://", "--policy", "/no/such/file.yaml"])
    assert result.exit_code == 2


def test_registered_on_the_main_app():
    from router.cli import _register, app as main_app

    _register()
    names = {c.name for c in main_app.registered_commands}
    assert {"spend", "quota"} <= names


def test_spend_with_policy(app, url, tmp_path):
    from pathlib import Path

    policy = Path(__file__).resolve().parents[2] / "policies" / "budget-tiers.yaml"

    async def tenant_spend() -> None:
        store = store_from_url(url)
        b = BudgetScope("tenant:zeta", Window.parse("calendar:month@UTC"), Decimal("100"))
        await store.reserve("z", [b], Decimal("5"), 600)
        await store.settle("z", Decimal("5"))
        await store.close()

    asyncio.run(tenant_spend())
    result = runner.invoke(app, ["spend", "--store", url, "--policy", str(policy), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert rows["tenant:zeta|calendar:month@UTC"]["spent_usd"] == "5"
    assert "tenant:acme|calendar:day@Europe/Paris" not in rows  # not a budget of this policy
    assert any(r["scope"] == "global" for r in rows.values())  # declared, shown before any spend
