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


def test_a_batch_profile_batches_only_the_candidates_listed_with_batch() -> None:
    # gemini-2.5-flash can batch, but its entry does not ask for it: the choice is not marked batch.
    cp = compile_text("version: 1\ncandidates: [{model: gemini-2.5-flash}]\nprofiles: {offline: {batch: true}}\ndefault_profile: offline\n")
    assert cp.decide(feats()).primary.batch is False


def test_priority_needs_both_priority_rates_of_the_catalog(tmp_path: Path) -> None:
    # An overlay with a Priority PayGo input rate but no output rate cannot bill a priority answer: the
    # latency-sensitive request is sent as standard, and the decision says why.
    catalog = _overlay(tmp_path, "gemini-2.5-flash", 'rates: {priority_input: "0.60"}')
    cp = compile_text("version: 1\ncandidates: [{model: gemini-2.5-flash, priority: true}]\nprofiles: {p: {}}\ndefault_profile: p\n", catalog)
    d = cp.decide(feats(latency_sensitive=True))
    assert d.primary.priority is False
    assert any("no Priority PayGo price" in note for note in d.notes)


def test_quality_per_dollar_ranks_an_unscored_model_as_quality_zero() -> None:
    # claude-opus-4-1 (score 76.4; $15 / $75 per 1M) against gemini-1.5-flash (no quality score; per 1K
    # characters $0.00001875 / $0.000075 = $0.075 / $0.30 per 1M tokens). An unscored model brings no quality:
    # opus ranks first although flash is 225x cheaper (expected: 1,000 prompt + 250 output tokens, half of
    # max_tokens: 1,000 x 15 + 250 x 75 = 33,750 vs 1,000 x 0.075 + 250 x 0.30 = 150 millionths of a dollar).
    cp = compile_text("version: 1\ncandidates: [{model: gemini-1.5-flash}, {model: claude-opus-4-1}]\n"
                      "profiles: {p: {objective: quality_per_dollar}}\ndefault_profile: p\n")
    assert [c.model for c in cp.decide(feats()).choices] == ["claude-opus-4-1", "gemini-1.5-flash"]


def test_a_provisioned_only_policy_without_any_subscription_serves_nothing_on_paygo() -> None:
    # every candidate is `provisioned: only` and the policy has no subscription: refused, never PayGo.
    cp = compile_text("version: 1\ncandidates: [{model: gemini-2.0-flash, provisioned: only}]\nprofiles: {p: {}}\ndefault_profile: p\n")
    with pytest.raises(NoEligibleModelError) as refused:
        cp.decide(feats())
    assert refused.value.rejected == [("gemini-2.0-flash", "no active Provisioned Throughput subscription for gemini-2.0-flash in global (provisioned: only)")]


def test_a_policy_compiled_against_a_catalog_without_its_model_is_a_policy_error() -> None:
    # validated against the bundled catalog, compiled against one without claude-haiku-4-5: the catalog's
    # UnknownModelError is reported as the policy file's error (what `router` commands print), at line 1.
    from router.catalog import default_catalog
    from router.catalog.loader import Catalog
    from router.errors import PolicyError, UnknownModelError
    from router.policy import compile_policy, load_policy

    bundled = default_catalog()
    policy = load_policy(_policy("claude-haiku-4-5"), bundled, filename="p.yaml")
    other = Catalog([m for m in bundled.models.values() if m.id != "claude-haiku-4-5"],
                    [p for p in bundled.pools.values() if "claude-haiku-4-5" not in p.models], bundled.provisioned)
    with pytest.raises(PolicyError, match=r"^p\.yaml:1:1: unknown model 'claude-haiku-4-5'") as failed:
        compile_policy(policy, other)
    assert isinstance(failed.value.__cause__, UnknownModelError)
    # an error that is not the catalog's (here a missing catalog: a caller's bug) is not dressed up as the policy's
    with pytest.raises(AttributeError):
        compile_policy(policy, None)  # type: ignore[arg-type]


def test_an_objectives_cost_bound_bounds_best_quality_only() -> None:
    # `objective.max_cost_usd` is best_quality's bound (README: "best quality among candidates whose estimated
    # cost is at most the bound"); with cheapest it bounds nothing. gemini-2.5-flash's expected cost:
    # 1,000 x $0.30 + 250 x $2.50 per 1M = $0.000925, over the $0.000001 given.
    text = ("version: 1\ncandidates: [{model: gemini-2.5-flash}]\n"
            "profiles: {p: {objective: {type: %s, max_cost_usd: '0.000001'}}}\ndefault_profile: p\n")
    assert compile_text(text % "cheapest").decide(feats()).estimated_cost == Decimal("0.000925")
    with pytest.raises(NoEligibleModelError):
        compile_text(text % "best_quality").decide(feats())
