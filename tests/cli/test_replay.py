"""`router replay`: a request log re-decided under a policy. Under the policy that produced it, the replay
reproduces every decision and the exact bill; under a cost-first policy it moves traffic and costs less."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.cli import get_app

pytestmark = [pytest.mark.litellm]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def request_log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "requests.jsonl"
    result = CliRunner().invoke(get_app(), ["demo", "--json", "--request-log", str(path)])
    assert result.exit_code == 0, result.output
    return path


def _replay(policy: str, log: Path) -> dict:
    result = CliRunner().invoke(get_app(), ["replay", "--policy", str(REPO / "policies" / policy), "--log", str(log), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_log_has_one_line_per_served_request_with_its_bill(request_log):
    lines = [json.loads(line) for line in request_log.read_text().splitlines()]
    assert len(lines) >= 25
    assert all(line["model"] and Decimal(line["cost_usd"]) > 0 and line["usage"]["input_tokens"] > 0 for line in lines)


def test_replaying_under_the_same_policy_reproduces_every_decision_and_the_bill(request_log):
    report = _replay("demo.yaml", request_log)
    assert report["changed_model"] == 0 and report["refused"] == 0
    # The demo's code review hit a 429 and a fallback served it; replay sends it to the first choice.
    assert report["served_by_fallback"] == 1
    # acme had no fallback: its replayed bill is its logged bill, to the nano-dollar.
    assert report["by_tenant"]["acme"]["replayed_usd"] == report["by_tenant"]["acme"]["logged_usd"]


def test_replaying_under_cost_first_moves_traffic_and_costs_less(request_log):
    report = _replay("cost-first.yaml", request_log)
    assert report["changed_model"] > 0
    assert Decimal(report["replayed_usd"]) < Decimal(report["logged_usd"])
    assert report["by_model"]["gemini-2.5-pro"]["replayed"] == 0 < report["by_model"]["gemini-2.5-pro"]["logged"]


def test_a_malformed_log_line_is_named(tmp_path):
    log = tmp_path / "bad.jsonl"
    log.write_text('{"at": "2026-11-25T10:00:00+00:00", "prompt_tokens": 10}\nnot json\n')
    result = CliRunner().invoke(get_app(), ["replay", "--policy", str(REPO / "policies" / "demo.yaml"), "--log", str(log)])
    assert result.exit_code == 2
    assert f"{log}:2" in result.output
