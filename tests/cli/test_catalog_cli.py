"""`router cost`, `router catalog`, `router plan-gsu`: output, --json shape, exit codes, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from router.cli import get_app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(get_app(), list(args))


def test_cost_json_is_exact_and_itemised():
    result = run("cost", "gemini-2.5-pro", "--input-tokens", "200001", "--output-tokens", "1000", "--at", "2025-11-01", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total_usd"] == "0.5150025"
    assert data["long_context"] is True
    assert {line["dimension"] for line in data["lines"]} == {"input_long", "output_long"}
    assert all(line["provenance"].startswith("000_") for line in data["lines"])


def test_cost_table_output_shows_total_and_provenance():
    result = run("cost", "claude-opus-4-1", "--input-tokens", "1000", "--output-tokens", "1000")
    assert result.exit_code == 0, result.output
    assert "0.09" in result.stdout
    assert "000_8191c03ed1050dc1.txt" in result.stdout


def test_cost_accepts_vertex_aliases():
    result = run("cost", "claude-sonnet-4-5@20250929", "--input-tokens", "100000", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_usd"] == "0.3"


def test_cost_grounding_past_the_pool():
    result = run("cost", "gemini-2.5-flash", "--grounded-prompts", "1", "--grounding-quota-used", "1500", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["grounding"] == {"free_units": 0, "billable_units": 1}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["cost", "gemini-2.5-prp", "--input-tokens", "10"], "gemini-2.5-pro"),
        (["cost", "gemini-2.5-pro", "--input-tokens", "10", "--cached-input-tokens", "11"], "input_tokens"),
        (["cost", "gemini-2.5-flash", "--input-tokens", "10", "--traffic", "on_demand_priority"], "priority_input"),
        (["cost", "gemini-2.5-pro", "--at", "2025-13-01"], "--at"),
        (["cost", "gemini-1.5-pro", "--input-tokens", "1000"], "billed by characters"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(args, needle):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_negative_tokens_are_rejected_by_the_cli():
    result = run("cost", "gemini-2.5-pro", "--input-tokens", "-5")
    assert result.exit_code == 2
    assert "--input-tokens" in result.output


def test_catalog_json_lists_every_model_with_prices():
    result = run("catalog", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_id = {row["id"]: row for row in rows}
    assert len(by_id) >= 40
    assert by_id["gemini-2.5-pro"]["publisher"] == "google"


def test_catalog_filters_by_publisher():
    result = run("catalog", "--publisher", "anthropic", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and {row["publisher"] for row in rows} == {"anthropic"}


def test_plan_gsu_reproduces_the_seed_worked_example():
    """Seed 000's Provisioned Throughput example: 17 GSUs for Gemini 2.0 Flash."""
    result = run("plan-gsu", "gemini-2.0-flash", "--rps", "10", "--input-tokens", "1500", "--output-tokens", "300", "--audio-input-tokens", "500", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["gsu"] == 17
    assert json.dumps(data).count("20400") >= 1 and "34000" in json.dumps(data)


def test_cli_commands_do_not_import_litellm():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from router.cli import get_app\n"
        "r = CliRunner().invoke(get_app(), ['cost', 'gemini-2.5-pro', '--input-tokens', '10', '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('litellm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_python_dash_m_router_works():
    out = subprocess.run([sys.executable, "-m", "router", "cost", "minimax-m2", "--input-tokens", "100000", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["total_usd"] == "0.03"
