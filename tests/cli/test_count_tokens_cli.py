"""``router quota`` shows the Count Tokens pool; ``router explain`` says where the prompt size came from
and, with ``--count-tokens``, asks the (stub) Count Tokens API as the Router would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import pytest
from typer.testing import CliRunner

from router.ledger import count_tokens_pool, store_from_url

runner = CliRunner()

POLICY = """\
version: 1
profiles:
  a:
    candidates:
      - model: gemini-2.5-pro
        location: us-central1
default_profile: a
"""


def test_quota_shows_the_count_tokens_pool_and_todays_outcomes():
    from router.cli import app, ledger_cmds

    ledger_cmds.register(app)
    url = f"fakeredis://cli-{uuid.uuid4().hex}"

    async def fill() -> None:
        store = store_from_url(url)
        pool = count_tokens_pool("acme-prod")
        await store.take_rate(pool, 120)
        for outcome in ("counted", "counted", "cache_hit", "fallback"):
            await store.rate_outcomes(pool, outcome)
        await store.close()

    asyncio.run(fill())
    result = runner.invoke(app, ["quota", "--store", url, "--project", "acme-prod", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["count_tokens"]
    assert row == {
        "pool": "count_tokens.acme-prod",
        "used_last_minute": 120,
        "limit_per_minute": 3000,
        "remaining": 2880,
        "today_utc": {"counted": 2, "cache_hit": 1, "fallback": 1, "unsupported": 0},
    }
    table = runner.invoke(app, ["quota", "--store", url, "--project", "acme-prod"], env={"COLUMNS": "220"})
    assert table.exit_code == 0 and "count_tokens.acme-prod" in table.stdout and "2,880" in table.stdout


def _explain(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "router", "explain", *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def test_explain_reports_the_estimate_and_its_margin(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("abcd" * 20, encoding="utf-8")
    out = _explain(["--policy", str(policy), "--prompt-file", str(prompt), "--json"])
    assert out.returncode == 0, out.stderr
    size = json.loads(out.stdout)["prompt_size"]
    assert size["source"] == "estimate" and size["tokens"] == 27 and size["margin_percent"] == "0"  # 20 + 4 + 3
    out = _explain(["--policy", str(policy), "--prompt-tokens", "500", "--json"])
    assert json.loads(out.stdout)["prompt_size"]["source"] == "caller"
    out = _explain(["--policy", str(policy), "--count-tokens"])
    assert out.returncode == 2 and "--prompt-file" in out.stderr


@pytest.mark.litellm
def test_explain_count_tokens_asks_vertex_the_same_way(tmp_path, vertex_stub, vertex_settings):
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("abcd" * (190_000 - 7), encoding="utf-8")
    vertex_stub.script_count("gemini-2.5-pro", total_tokens=210_000)
    env = {
        "VERTEXAI_PROJECT": vertex_settings.vertex_project,
        "VERTEXAI_LOCATION": vertex_settings.vertex_location,
        "VERTEXAI_CREDENTIALS": vertex_settings.vertex_credentials,
        "VERTEXAI_API_BASE": vertex_settings.api_base,
    }
    out = _explain(["--policy", str(policy), "--prompt-file", str(prompt), "--max-tokens", "1000", "--count-tokens", "--json"], env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["prompt_size"]["source"] == "count_tokens" and result["request"]["prompt_tokens"] == 210_000
    assert result["upper_bound_cost_usd"] == "0.54"  # 210,000 x 2.5/1M + 1,000 x 15/1M (long context)
    assert len(vertex_stub.count_requests("gemini-2.5-pro")) == 1
    text = _explain(["--policy", str(policy), "--prompt-file", str(prompt), "--max-tokens", "1000", "--count-tokens"], {**env, "COLUMNS": "200"})
    assert "prompt size 210,000 tokens from count_tokens" in text.stdout


def test_explain_without_count_tokens_never_imports_litellm_or_httpx(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    code = (
        "import sys\n"
        "from router.cli import main\n"
        f"sys.argv = ['router', 'explain', '--policy', {str(policy)!r}, '--prompt-tokens', '100', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('litellm', 'httpx')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"
