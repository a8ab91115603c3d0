"""CLI: router validate / explain / schema (typer CliRunner), the shipped schema, no litellm import."""

from __future__ import annotations

import json
import subprocess
import sys

import typer
from typer.testing import CliRunner

from router.cli import app
from router.cli.policy_cmds import register
from router.policy.schema import SCHEMA_PATH, policy_json_schema, schema_text
from tests.policy.conftest import POLICIES, ROOT

runner = CliRunner()
register(app)  # idempotent (the module registers itself on import too)


def test_validate_ok():
    result = runner.invoke(app, ["validate", *[str(p) for p in sorted(POLICIES.glob("*.yaml"))]])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (version ") == 7


def test_validate_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nprofiles:\n  a: {objective: cheapest}\ndefault_profile: a\ncandidates:\n  - model: gemini-2.5-flsh\n", encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nprofiles: [\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(bad), str(POLICIES / "demo.yaml"), str(broken)])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{bad}:6:5: unknown model 'gemini-2.5-flsh'")
    assert any(line.startswith(f"{broken}:3:1: ") for line in lines)


def test_register_on_another_app():
    other = typer.Typer()
    register(other)
    register(other)
    assert CliRunner().invoke(other, ["schema"]).exit_code == 0


def test_explain_json():
    result = runner.invoke(
        app,
        ["explain", "--policy", str(POLICIES / "demo.yaml"), "--tenant", "acme", "--prompt-tokens", "800", "--at", "2026-11-02", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("model", "fallbacks", "estimated_cost_usd", "rule", "profile", "rejected"):
        assert key in data
    assert data["model"] == "gemini-2.5-pro" and data["rule"] == "acme-quality"


def test_explain_matches_decide(catalog):
    from router.policy import RequestFeatures, StateSnapshot, compile_policy, load_policy
    import datetime as dt
    from decimal import Decimal

    args = ["explain", "-p", str(POLICIES / "demo.yaml"), "--tenant", "acme", "--prompt-tokens", "500", "--max-tokens", "256",
            "--spend", "tenant:acme=0.75", "--at", "2026-11-02", "--json"]
    data = json.loads(runner.invoke(app, args).output)
    cp = compile_policy(load_policy(POLICIES / "demo.yaml", catalog), catalog)
    d = cp.decide(RequestFeatures(tenant="acme", prompt_tokens=500, max_tokens=256, at=dt.date(2026, 11, 2)), StateSnapshot(spend={"tenant:acme": Decimal("0.75")}))
    assert data["model"] == d.primary.model and data["fallbacks"] == [c.model for c in d.fallbacks]
    assert data["actions"] == d.actions and len(d.actions) == 2
    assert data["estimated_cost_usd"] == d.to_dict()["estimated_cost_usd"]


def test_explain_readable_trace(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("x" * 4000, encoding="utf-8")
    result = runner.invoke(
        app,
        ["explain", "--policy", str(POLICIES / "grounding-aware.yaml"), "--prompt-file", str(prompt), "--grounding",
         "--quota", "gemini-2x-flash-search-daily=1500", "--tag", "team=ml", "--at", "2026-11-02"],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "rule wants-grounding -> profile grounded" in out
    assert "1,007 prompt tokens" in out
    assert "decision gemini-3-flash-preview" in out
    assert "rejected" in out and "exhausted" in out


def test_explain_grounding_kind_and_refusal():
    result = runner.invoke(app, ["explain", "-p", str(POLICIES / "grounding-aware.yaml"), "--grounding", "web_search", "--json"])
    assert json.loads(result.output)["grounding"] == "web_search"
    result = runner.invoke(app, ["explain", "-p", str(POLICIES / "budget-tiers.yaml"), "--tenant", "acme", "--spend", "tenant:acme=150", "--json"])
    data = json.loads(result.output)
    assert result.exit_code == 0 and data["model"] is None and data["refused"]


def test_explain_bad_inputs(tmp_path):
    assert runner.invoke(app, ["explain", "-p", str(POLICIES / "demo.yaml"), "--spend", "nope"]).exit_code == 2
    assert runner.invoke(app, ["explain", "-p", str(POLICIES / "demo.yaml"), "--quota", "nopool=1"]).exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\n", encoding="utf-8")
    result = runner.invoke(app, ["explain", "-p", str(bad)])
    assert result.exit_code == 2 and f"{bad}:1:1: missing required key" in result.output


def test_schema_command_and_shipped_file_up_to_date():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == policy_json_schema()
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "run: python -m router.policy.schema"
    assert SCHEMA_PATH == ROOT / "router" / "policy_schema.json"


def test_schema_accepts_the_examples():
    import yaml

    schema = policy_json_schema()
    props = schema["properties"]
    for path in POLICIES.glob("*.yaml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(data) <= set(props), path


def test_policy_commands_do_not_import_litellm():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from router.cli import app, _register\n"
        "_register()\n"
        f"r = CliRunner().invoke(app, ['validate', {str(POLICIES / 'demo.yaml')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        f"r = CliRunner().invoke(app, ['explain', '-p', {str(POLICIES / 'demo.yaml')!r}, '--json'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['schema'])\n"
        "assert r.exit_code == 0\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('litellm', 'redis', 'fakeredis')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
