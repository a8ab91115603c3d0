"""Issue 11 item 7: a prompt beyond a model's context window is refused, never priced.

Windows from the catalog's model cards: Claude Opus 4.1 200,000 tokens (the seed has no >= 200K column
for it), Gemini 1.0 Pro 32,760 tokens (seed 000 footnote: 32,000 at most; billed per character, about
4 characters a token).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from router import ContextWindowExceededError, NoEligibleModelError, RouterError, UsageError
from router.catalog import default_catalog
from router.cli import get_app
from router.cost import Usage, compute_cost
from tests.policy.conftest import compile_text, feats

runner = CliRunner()


def test_cost_engine_refuses_a_prompt_beyond_the_window():
    catalog = default_catalog()
    with pytest.raises(ContextWindowExceededError) as info:
        compute_cost(catalog.get("claude-opus-4-1"), Usage.build(input_tokens=300_000, output_tokens=100))
    err = info.value
    assert isinstance(err, UsageError) and isinstance(err, RouterError)
    assert (err.model, err.prompt_tokens, err.context_window, err.field) == ("claude-opus-4-1", 300_000, 200_000, "input_tokens")
    assert "context window of claude-opus-4-1 (200,000 tokens)" in str(err) and "300,000 tokens" in str(err)
    # exactly the window is a valid request: $15 per 1M input
    assert compute_cost(catalog.get("claude-opus-4-1"), Usage.build(input_tokens=200_000)).total == Decimal("3")


def test_cost_engine_refuses_a_character_billed_prompt_beyond_the_window():
    catalog = default_catalog()
    with pytest.raises(ContextWindowExceededError) as info:
        compute_cost(catalog.get("gemini-1.0-pro"), Usage.build(input_chars=200_000))  # about 50,000 tokens
    assert info.value.field == "input_chars" and "200,000 characters (about 50,000 tokens" in str(info.value)
    assert "gemini-1.0-pro (32,760 tokens)" in str(info.value)
    # 120,000 characters (30,000 tokens) fit: $0.000125 per 1,000 characters
    assert compute_cost(catalog.get("gemini-1.0-pro"), Usage.build(input_chars=120_000)).total == Decimal("0.015")


@pytest.mark.parametrize(
    ("args", "window"),
    [
        (["claude-opus-4-1", "--input-tokens", "300000"], "claude-opus-4-1 (200,000 tokens)"),
        (["gemini-1.0-pro", "--input-chars", "200000"], "gemini-1.0-pro (32,760 tokens)"),
    ],
)
def test_router_cost_prints_one_line_and_exits_2(args, window):
    result = runner.invoke(get_app(), ["cost", *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and window in lines[0] and "context window" in lines[0]


def test_the_decision_rejects_the_candidate_naming_the_window_even_without_context_fit():
    cp = compile_text(
        "version: 1\ncandidates: [{model: claude-opus-4-1}, {model: gemini-1.0-pro}]\n"
        "profiles: {p: {constraints: {context_fit: false}}}\ndefault_profile: p\n"
    )
    with pytest.raises(NoEligibleModelError) as info:
        cp.decide(feats(prompt_tokens=300_000))
    assert dict(info.value.rejected) == {
        "claude-opus-4-1": "prompt 300,000 tokens > the model's context window of 200,000 tokens",
        "gemini-1.0-pro": "prompt 300,000 tokens > the model's context window of 32,760 tokens",
    }
    # context_fit: false still lets a prompt that fits run with max_tokens past the window
    assert cp.decide(feats(prompt_tokens=199_000, max_tokens=5_000)).primary.model == "claude-opus-4-1"


def test_router_explain_names_the_window(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\ncandidates: [{model: claude-opus-4-1}]\nprofiles: {p: {constraints: {context_fit: false}}}\ndefault_profile: p\n",
        encoding="utf-8",
    )
    result = runner.invoke(get_app(), ["explain", "-p", str(policy), "--prompt-tokens", "300000", "--json"])
    out = json.loads(result.output)
    assert out["model"] is None
    assert out["rejected"] == [{"model": "claude-opus-4-1", "reason": "prompt 300,000 tokens > the model's context window of 200,000 tokens"}]
