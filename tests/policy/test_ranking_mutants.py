"""Ranking edges of the decision engine (issue 12, survivors of the full mutmut run of router/policy/decide.py):
the free-pool tiers of a grounded request under ``prefer_free_pool``, the ``listed`` fallback order, and the
Provisioned Throughput headroom of a subscription with no usage recorded yet or saturated.

Prices by hand from seed 000 (per 1M tokens unless said): Gemini 3 Pro preview $2 in / $12 out, Google Search
billed per search query at $14 per 1,000 beyond 5,000 free a month (pool gemini-3-search-monthly); Gemini 1.5
Flash per 1K characters $0.00001875 in / $0.000075 out (4 characters a token: $0.075 / $0.30 per 1M tokens),
Google Search $35 per 1,000 grounded prompts and no free pool. 1,000 prompt tokens, 250 expected output tokens.
"""

from __future__ import annotations

from decimal import Decimal

from router.policy import StateSnapshot
from tests.policy.conftest import compile_text, feats
from tests.policy.test_decide_mutants import PT_KEY, PT_POLICY

D = Decimal
POOL = "gemini-3-search-monthly"
GROUNDED = ("version: 1\nprofiles:\n  p: {objective: %s, fallbacks: 1, candidates: [{model: gemini-3-pro-preview}, "
            "{model: gemini-1.5-flash}]}\ndefault_profile: p\ngrounding: {expected_queries: 3}\n")
# Gemini 1.5 Flash: 0.000075 + 0.000075 tokens + $0.035 for its one paid grounded prompt
FLASH_15 = ("gemini-1.5-flash", D("0.03515"))


def _ranked(objective: str, used: int) -> list[tuple[str, Decimal]]:
    d = compile_text(GROUNDED % objective).decide(feats(grounding="google_search"), StateSnapshot(pools={POOL: used}))
    return [(c.model, c.estimated_cost) for c in d.choices]


def test_a_partly_free_pool_and_a_paid_model_without_a_pool_share_a_tier():
    # 1 of 3 queries free: Gemini 3 Pro pays 2 x $0.014 on top of $0.005; both pay something, so quality decides
    assert _ranked("best_quality", 4999) == [("gemini-3-pro-preview", D("0.033")), FLASH_15]


def test_an_exhausted_pool_and_a_paid_model_without_a_pool_share_a_tier():
    # no query free: Gemini 3 Pro pays 3 x $0.014 + $0.005 = $0.047; by quality it still ranks first ...
    assert _ranked("best_quality", 5000) == [("gemini-3-pro-preview", D("0.047")), FLASH_15]
    # ... and by cost the model without a pool ($0.03515) ranks first
    assert _ranked("cheapest", 5000) == [FLASH_15, ("gemini-3-pro-preview", D("0.047"))]
    # a pool that covers every query ranks first whatever the objective
    assert _ranked("cheapest", 4997) == [("gemini-3-pro-preview", D("0.005")), FLASH_15]


def test_listed_fallbacks_keep_the_second_ranked_model_when_it_is_listed_first():
    text = """
    version: 1
    candidates:
      - model: gemini-2.5-flash
      - model: claude-opus-4-5
      - model: gemini-2.5-pro
      - model: gemini-2.5-flash-lite
    profiles: {p: {objective: cheapest}}
    default_profile: p
    fallbacks: {max: 2, order: listed}
    """
    # cheapest first (Flash-Lite), then the others in the order listed: Flash (also the second cheapest), Opus
    assert [c.model for c in compile_text(text).decide(feats()).choices] == ["gemini-2.5-flash-lite", "gemini-2.5-flash", "claude-opus-4-5"]


# Provisioned Throughput: one GSU of gemini-2.0-flash gives 100,800 burndown-adjusted tokens per 30 s window;
# a request needs prompt + 4 x max_tokens of them. PayGo if it spills: 2.0 Flash $0.15 / $0.60, Flash-Lite
# $0.075 / $0.30 per 1M tokens.
def test_a_subscription_with_no_usage_recorded_covers_a_request_of_exactly_its_capacity():
    cp = compile_text(PT_POLICY)
    exact = cp.decide(feats(prompt_tokens=98_800, max_tokens=500), StateSnapshot())  # 98,800 + 2,000 = 100,800
    assert (exact.model, exact.estimated_cost, exact.upper_bound_cost) == ("gemini-2.0-flash", D(0), D(0))
    assert exact.primary.provisioned.headroom == 100_800
    over = cp.decide(feats(prompt_tokens=98_801, max_tokens=500), StateSnapshot())  # one token more: PayGo spill
    # Flash-Lite 98,801 x 0.075 + 250 x 0.30 per 1M = $0.007485075; 2.0 Flash twice that
    assert [(c.model, c.estimated_cost) for c in over.choices] == [("gemini-2.0-flash-lite", D("0.007485075")), ("gemini-2.0-flash", D("0.01497015"))]


def test_a_saturated_subscription_has_no_headroom():
    d = compile_text(PT_POLICY).decide(feats(), StateSnapshot(pt={PT_KEY: 200_000}))  # more than the capacity used
    assert d.fallbacks[0].provisioned.headroom == 0
    assert d.fallbacks[0].provisioned.to_dict()["headroom"] == 0
    assert ("gemini-2.0-flash: Provisioned Throughput gemini-2.0-flash@us-central1 (first): headroom 0 of 100,800 "
            "burndown-adjusted tokens in the 30 s window < this request's 3,000: estimated and reserved as a PayGo spill") in d.notes
