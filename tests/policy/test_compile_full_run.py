"""Survivors of the full mutmut run of router/policy/compile.py (issue 12, docs/mutation-report.md).

The compiled rate table is what every decision prices candidates with: integer rates in 10**-18 USD, i.e. a
token rate of ``r`` USD per 1M tokens is ``r * 10**12`` per token, rounded UP when an operator's overlay gives
more decimals than that (a decision never under-estimates). Rates are looked up per date, so an overlay's
dated price block (a long-context rate, a one-sided batch price) must be read on the decision's day. Every
expected number is computed by hand from the seed rates named in each test and the overlay written here.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from router.catalog import load_catalog
from router.errors import NoEligibleModelError
from tests.policy.conftest import DAY, compile_text, feats

SOURCE = '{source: "https://example.com/test-only-overlay", section: "test data"}'


def _overlay(tmp_path: Path, model: str, block: str) -> object:
    """The bundled catalog plus one overlay price block (YAML flow mapping ``block``) for ``model``."""
    path = tmp_path / "overlay.yaml"
    path.write_text(f"overlay:\n  - model: {model}\n    prices:\n      - {{provenance: {SOURCE}, {block}}}\n")
    return load_catalog(overlays=[path])


def _policy(model: str) -> str:
    return f"version: 1\ncandidates: [{{model: {model}}}]\nprofiles: {{p: {{}}}}\ndefault_profile: p\n"


def test_a_dated_long_context_rate_of_an_overlay_counts_from_its_first_day(tmp_path: Path) -> None:
    # claude-haiku-4-5 (seed: $1 input / $5 output per 1M tokens, no long-context rate); the overlay adds
    # long-context rates of $2 / $10 from 2026-12-01. Before that day the long columns are the short rates.
    catalog = _overlay(tmp_path, "claude-haiku-4-5", 'effective_from: 2026-12-01, rates: {input_long: "2", output_long: "10"}')
    cp = compile_text(_policy("claude-haiku-4-5"), catalog)
    assert cp.rates_on(DAY)["claude-haiku-4-5"].std == (10**12, 5 * 10**12, 10**12, 5 * 10**12)
    assert cp.rates_on(dt.date(2026, 12, 1))["claude-haiku-4-5"].std == (10**12, 5 * 10**12, 2 * 10**12, 10 * 10**12)
    # The decision prices the request on its day: 1,000 prompt tokens at $1 + 500 output tokens at $5 per 1M.
    assert cp.decide(feats()).upper_bound_cost == Decimal("0.0035")


def test_a_rate_finer_than_the_rate_unit_is_rounded_up_never_down(tmp_path: Path) -> None:
    # An overlay long-context input rate of $2.0000000000001 per 1M tokens is 2,000,000,000,000.1 units a
    # token: the table holds 2,000,000,000,001 (rounded up by exactly one unit), the exact output rate as is.
    catalog = _overlay(tmp_path, "claude-haiku-4-5", 'rates: {input_long: "2.0000000000001", output_long: "10"}')
    row = compile_text(_policy("claude-haiku-4-5"), catalog).rates_on(DAY)["claude-haiku-4-5"]
    assert row.std[2:] == (2 * 10**12 + 1, 10 * 10**12)


def test_a_batch_price_with_only_one_side_leaves_the_model_without_a_batch_rate(tmp_path: Path) -> None:
    # claude-3-haiku has no batch price in the seeds; an overlay giving only batch_input is no batch rate
    # (not a crash): the model is still priced standard, $0.25 input / $1.25 output per 1M tokens.
    catalog = _overlay(tmp_path, "claude-3-haiku", 'rates: {batch_input: "0.125"}')
    cp = compile_text(_policy("claude-3-haiku"), catalog)
    assert cp.rates_on(DAY)["claude-3-haiku"].batch is None
    # 1,000 x $0.25 + 500 x $1.25 per 1M tokens = $0.00025 + $0.000625
    assert cp.decide(feats()).upper_bound_cost == Decimal("0.000875")


def test_a_budget_with_a_fixed_name_has_that_scope_before_any_request(tmp_path: Path) -> None:
    # `router spend --policy` lists a policy's fixed-name budgets (tenant:acme, tag team=ml) before any spend
    # from fixed_scope(), called without a name.
    cp = compile_text(
        "version: 1\ncandidates: [{model: gemini-2.5-flash}]\nprofiles: {p: {}}\ndefault_profile: p\n"
        "budgets:\n"
        "  - {scope: 'tenant:acme', window: 'calendar:month', limit_usd: 100}\n"
        "  - {scope: 'tag:team=ml', window: 'calendar:month', limit_usd: 50}\n"
        "  - {scope: global, window: 'calendar:month', limit_usd: 500}\n"
    )
    assert [b.fixed_scope() for b in cp.budgets] == ["tenant:acme", "tag:team=ml", "global"]


def test_a_character_billed_models_output_cap_price_is_per_1m_tokens_of_4_characters() -> None:
    # gemini-1.5-flash (seed: $0.000075 per 1K output characters, 4 characters a token) costs exactly
    # 0.000075 x 4,000 = $0.30 per 1M output tokens: a $0.30 cap keeps it, a $0.29 cap rules it out.
    def capped(cap: str) -> str:
        return ("version: 1\ncandidates: [{model: gemini-1.5-flash}]\n"
                f"profiles: {{p: {{constraints: {{max_output_usd_per_mtok: '{cap}'}}}}}}\ndefault_profile: p\n")

    assert compile_text(capped("0.30")).decide(feats()).model == "gemini-1.5-flash"
    with pytest.raises(NoEligibleModelError) as refused:
        compile_text(capped("0.29")).decide(feats())
    assert refused.value.rejected == [("gemini-1.5-flash", "output price $0.3 per 1M tokens > $0.29 cap")]
