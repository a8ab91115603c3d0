"""Decisions at the boundaries where a plausible bug changes the chosen model (issue 12's surviving mutations):
quality thresholds met exactly, the tightest of several budget caps, the long-context edge of the estimate,
a cost bound met exactly, the last free grounding unit, and every documented tie-break.

Prices by hand from seed 000 (USD per 1M tokens, <= 200K / > 200K input): Gemini 2.5 Pro 1.25 / 2.5 in,
10 / 15 out; 2.5 Flash 0.30 in, 2.50 out; 2.5 Flash-Lite 0.1 in, 0.4 out; Claude Sonnet 4.5 3 / 6 (>= 200K)
in, 15 / 22.50 out. Google Search grounding: 1,500 free grounded prompts a day shared by the 2.x Flash
family, then $35 per 1,000. Estimates use the default expected output of half of max_tokens.
Quality scores (catalog, from price_catalog/quality-reference.md): claude-sonnet-4-5 78, claude-sonnet-4 55.6.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.errors import PolicyError
from router.policy import StateSnapshot
from tests.policy.conftest import compile_text, feats

D = Decimal


def one_profile(profile: str, extra: str = "") -> str:
    return f"version: 1\nprofiles:\n  p: {profile}\ndefault_profile: p\n{extra}"


def ranking(cp, **kw) -> list[str]:
    d = cp.decide(feats(**kw))
    return [c.model for c in d.choices]


# ------------------------------------------------------------------ quality thresholds are inclusive
def test_selector_min_quality_includes_a_model_exactly_at_the_threshold():
    cp = compile_text(one_profile("{candidates: [{select: {family: claude-4.5, tier: sonnet, min_quality: 78}}]}"))
    assert ranking(cp) == ["claude-sonnet-4-5"]  # quality 78 >= 78
    with pytest.raises(PolicyError):
        compile_text(one_profile("{candidates: [{select: {family: claude-4.5, tier: sonnet, min_quality: 78.1}}]}"))


def test_constraint_min_quality_keeps_a_model_exactly_at_the_threshold():
    cp = compile_text(one_profile("{candidates: [{model: claude-sonnet-4-5}, {model: claude-sonnet-4}], constraints: {min_quality: 78}, fallbacks: 3}"))
    d = cp.decide(feats())
    assert [c.model for c in d.choices] == ["claude-sonnet-4-5"]
    assert [m for m, _ in d.rejected] == ["claude-sonnet-4"]


# ------------------------------------------------------------------ the tightest cap of several budgets wins
CAPS = """
budgets:
  - scope: global
    window: month
    limit_usd: 10
    actions:
      - {{at_percent: 50, {global_cap}}}
  - scope: tenant
    window: month
    limit_usd: 10
    actions:
      - {{at_percent: 50, {tenant_cap}}}
"""
FAMILY = "{objective: best_quality, fallbacks: 0, candidates: [{model: gemini-2.5-pro}, {model: gemini-2.5-flash}, {model: gemini-2.5-flash-lite}]}"
BOTH_REACHED = StateSnapshot(spend={"global": 5, "tenant:t": 5})


@pytest.mark.parametrize("loose_on", ["global", "tenant"])
def test_tightest_output_price_cap_wins(loose_on):
    # output prices: pro $10, flash $2.50, flash-lite $0.40 per 1M tokens. A $3 cap leaves flash the best;
    # a $1 cap leaves only flash-lite. Both caps reached: the $1 cap must apply, whichever budget has it.
    loose, tight = "max_output_usd_per_mtok: '3.00'", "max_output_usd_per_mtok: '1.00'"
    caps = {"global_cap": loose, "tenant_cap": tight} if loose_on == "global" else {"global_cap": tight, "tenant_cap": loose}
    cp = compile_text(one_profile(FAMILY, CAPS.format(**caps)))
    assert cp.decide(feats(tenant="t"), StateSnapshot(spend={"global": 0, "tenant:t": 0})).primary.model == "gemini-2.5-pro"
    assert cp.decide(feats(tenant="t"), BOTH_REACHED).primary.model == "gemini-2.5-flash-lite"


@pytest.mark.parametrize("loose_on", ["global", "tenant"])
def test_tightest_per_request_cost_cap_wins(loose_on):
    # 1,000 prompt + 250 expected output tokens: pro 0.00125 + 0.0025 = $0.00375, flash 0.0003 + 0.000625 =
    # $0.000925, flash-lite 0.0001 + 0.0001 = $0.0002. $0.001 leaves flash the best; $0.0005 only flash-lite.
    loose, tight = "max_cost_usd: '0.001'", "max_cost_usd: '0.0005'"
    caps = {"global_cap": loose, "tenant_cap": tight} if loose_on == "global" else {"global_cap": tight, "tenant_cap": loose}
    cp = compile_text(one_profile(FAMILY, CAPS.format(**caps)))
    d = cp.decide(feats(tenant="t"), BOTH_REACHED)
    assert (d.primary.model, d.primary.estimated_cost) == ("gemini-2.5-flash-lite", D("0.0002"))


# ------------------------------------------------------------------ the estimate's long-context edge
@pytest.mark.parametrize(
    "model,prompt,expected,upper",
    [
        # Gemini: long only when input > 200,000. 500 expected / 1,000 max output tokens.
        ("gemini-2.5-pro", 200_000, D("0.255"), D("0.26")),  # 0.25 + 500 * 10/1M; 0.25 + 1000 * 10/1M
        ("gemini-2.5-pro", 200_001, D("0.5075025"), D("0.5150025")),  # 200,001 * 2.5/1M = 0.5000025 + 0.0075 / + 0.015
        # Claude Sonnet 4.5: long from 200,000 input tokens (inclusive).
        ("claude-sonnet-4-5", 199_999, D("0.607497"), D("0.614997")),  # 0.599997 + 500 * 15/1M; + 1000 * 15/1M
        ("claude-sonnet-4-5", 200_000, D("1.21125"), D("1.2225")),  # 1.2 + 500 * 22.5/1M; + 1000 * 22.5/1M
    ],
)
def test_estimate_switches_tier_exactly_at_the_threshold(model, prompt, expected, upper):
    cp = compile_text(one_profile(f"{{candidates: [{{model: {model}}}]}}"))
    c = cp.decide(feats(prompt_tokens=prompt, max_tokens=1000)).primary
    assert (c.model, c.estimated_cost, c.upper_bound_cost) == (model, expected, upper)


# ------------------------------------------------------------------ a cost bound met exactly is allowed
@pytest.mark.parametrize("where", ["objective", "constraint"])
def test_a_model_whose_estimate_equals_the_bound_is_eligible(where):
    # gemini-2.5-pro: 1,000 * 1.25/1M + 250 * 10/1M = $0.00375 exactly
    if where == "objective":
        profile = "{objective: {type: best_quality, max_cost_usd: '0.00375'}, candidates: [{model: gemini-2.5-pro}, {model: gemini-2.5-flash}]}"
    else:
        profile = "{objective: best_quality, constraints: {max_cost_usd: '0.00375'}, candidates: [{model: gemini-2.5-pro}, {model: gemini-2.5-flash}]}"
    cp = compile_text(one_profile(profile))
    d = cp.decide(feats())
    assert (d.primary.model, d.primary.estimated_cost) == ("gemini-2.5-pro", D("0.00375"))
    tighter = compile_text(one_profile(profile.replace("0.00375", "0.003749")))
    assert tighter.decide(feats()).primary.model == "gemini-2.5-flash"


# ------------------------------------------------------------------ the last free grounding unit is free
def test_the_last_free_grounded_prompt_of_the_day_is_free():
    cp = compile_text(one_profile("{objective: cheapest, fallbacks: 2, candidates: [{model: gemini-2.5-flash-lite}, {model: gemini-2.5-pro}]}"))
    pool = "gemini-2x-flash-search-daily"
    # 1,499 of 1,500 used: this prompt is the 1,500th, free. flash-lite: 0.0001 + 0.0001 = $0.0002, no grounding.
    last = cp.decide(feats(grounding="google_search"), StateSnapshot(pools={pool: 1499}))
    assert [(c.model, c.estimated_cost) for c in last.choices] == [("gemini-2.5-flash-lite", D("0.0002")), ("gemini-2.5-pro", D("0.00375"))]
    # 1,500 used: billed $35 / 1,000 = $0.035, so the model whose own pool (2.5 Pro: 10,000 a day) has room goes first
    over = cp.decide(feats(grounding="google_search"), StateSnapshot(pools={pool: 1500}))
    assert [(c.model, c.estimated_cost) for c in over.choices] == [("gemini-2.5-pro", D("0.00375")), ("gemini-2.5-flash-lite", D("0.0352"))]


# ------------------------------------------------------------------ documented tie-breaks
# Equal prices: claude-sonnet-4-5 / claude-sonnet-4 / claude-3-7-sonnet / claude-3-5-sonnet ($3 / $15;
# the 3.x have no quality score = 0), codestral-2501 / codestral-2 ($0.30 / $0.90, no score).
# 1,000 prompt + 250 expected output tokens: Claude 0.003 + 0.00375 = $0.00675; Codestral 0.0003 + 0.000225 = $0.000525.
TIES = "[{model: claude-sonnet-4}, {model: claude-sonnet-4-5}, {model: claude-3-7-sonnet}, {model: claude-3-5-sonnet}, {model: codestral-2501}, {model: codestral-2}]"


def test_cheapest_ties_go_to_higher_quality_then_list_order():
    cp = compile_text(one_profile(f"{{objective: cheapest, fallbacks: 5, candidates: {TIES}}}"))
    assert ranking(cp) == ["codestral-2501", "codestral-2", "claude-sonnet-4-5", "claude-sonnet-4", "claude-3-7-sonnet", "claude-3-5-sonnet"]


def test_best_quality_ties_go_to_the_cheaper_then_list_order():
    cp = compile_text(one_profile(f"{{objective: best_quality, fallbacks: 5, candidates: {TIES}}}"))
    assert ranking(cp) == ["claude-sonnet-4-5", "claude-sonnet-4", "codestral-2501", "codestral-2", "claude-3-7-sonnet", "claude-3-5-sonnet"]


def test_weighted_ranks_by_score_then_cheaper_then_list_order():
    # cost_weight 0: the score is quality alone, so equal quality ties break on cost, then list order
    cp = compile_text(one_profile(f"{{objective: {{type: weighted, quality_weight: 1, cost_weight: 0}}, fallbacks: 5, candidates: {TIES}}}"))
    assert ranking(cp) == ["claude-sonnet-4-5", "claude-sonnet-4", "codestral-2501", "codestral-2", "claude-3-7-sonnet", "claude-3-5-sonnet"]
    # both weights 1: score = quality/100 - (cost - cheapest)/(dearest - cheapest): sonnet-4-5 0.78 - 1 = -0.22,
    # sonnet-4 0.556 - 1 = -0.444, codestral 0 - 0 = 0, claude 3.x 0 - 1 = -1
    both = compile_text(one_profile(f"{{objective: {{type: weighted, quality_weight: 1, cost_weight: 1}}, fallbacks: 5, candidates: {TIES}}}"))
    assert ranking(both) == ["codestral-2501", "codestral-2", "claude-sonnet-4-5", "claude-sonnet-4", "claude-3-7-sonnet", "claude-3-5-sonnet"]


def test_a_capability_selector_selects_only_models_that_have_it():
    # some Claude models cannot think (claude-3-5-haiku ...): they must not be candidates
    cp = compile_text(one_profile("{objective: cheapest, fallbacks: 10, candidates: [{select: {publisher: anthropic, capabilities: [thinking]}}]}"))
    d = cp.decide(feats())
    assert d.choices and all("thinking" in cp.catalog.get(c.model).capabilities for c in d.choices)


def test_a_choice_as_json():
    cp = compile_text(one_profile("{candidates: [{model: gemini-2.5-pro}]}"))
    data = cp.decide(feats()).primary.to_dict()
    # 1,000 x 1.25 + 250 x 10 per 1M = $0.00375 expected; 1,000 x 1.25 + 500 x 10 = $0.00625 upper bound
    assert (data["model"], data["estimated_cost_usd"], data["upper_bound_cost_usd"]) == ("gemini-2.5-pro", "0.00375", "0.00625")


def test_weighted_costs_are_scaled_between_the_cheapest_and_the_dearest():
    # quality_weight 1, cost_weight 0.9: codestral (cheapest, c = 0) scores 0; claude-sonnet-4-5 (dearest,
    # c = 1) scores 0.78 - 0.9 = -0.12: the cheap unscored model wins. (Scaled by anything but the
    # cheapest..dearest span, sonnet-4-5 would score above 0.)
    cp = compile_text(one_profile(f"{{objective: {{type: weighted, quality_weight: 1, cost_weight: 0.9}}, fallbacks: 5, candidates: {TIES}}}"))
    assert ranking(cp)[:3] == ["codestral-2501", "codestral-2", "claude-sonnet-4-5"]


def test_a_model_listed_twice_keeps_its_first_entry():
    cp = compile_text(one_profile("{fallbacks: 3, candidates: [{model: gemini-2.5-flash, location: europe-west4}, {model: gemini-2.5-flash, location: us-east1}]}"))
    assert [(c.model, c.location) for c in cp.decide(feats()).choices] == [("gemini-2.5-flash", "europe-west4")]


def test_grounded_upper_bounds_include_one_paid_grounded_prompt():
    # the upper bound never counts on the free pool: + $35 / 1,000 grounded prompts = $0.035 (seed 000).
    # flash-lite 1,000 x 0.1 + 500 x 0.4 per 1M = 0.0003; gemini-2.5-pro 1,000 x 1.25 + 500 x 10 = 0.00625
    cp = compile_text(one_profile("{objective: cheapest, fallbacks: 2, candidates: [{model: gemini-2.5-flash-lite}, {model: gemini-2.5-pro}]}"))
    d = cp.decide(feats(grounding="google_search"), StateSnapshot(pools={"gemini-2x-flash-search-daily": 1499}))
    assert [(c.model, c.upper_bound_cost) for c in d.choices] == [("gemini-2.5-flash-lite", D("0.0353")), ("gemini-2.5-pro", D("0.04125"))]
