"""Kills decision-engine mutation survivors (issue 12, docs/mutation-report.md section 3).

Prices by hand from seed 000: Gemini 3 Pro preview $2 in / $12 out per 1M tokens (<= 200K); Google Search
grounding on Gemini 3 billed per search query, $14 per 1,000, 5,000 free queries a month shared by Gemini 3.
1,000 prompt tokens, 250 expected output tokens: 0.002 + 0.003 = $0.005 before grounding.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.errors import PolicyError
from router.policy import StateSnapshot
from tests.policy.conftest import compile_text, feats

POOL = "gemini-3-search-monthly"
POLICY = ("version: 1\nprofiles:\n  p: {candidates: [{model: gemini-3-pro-preview}]}\ndefault_profile: p\n"
          "grounding: {expected_queries: 3}\n")


def test_per_query_grounding_with_exactly_one_free_query_left_pays_only_the_rest():
    cp = compile_text(POLICY)

    def cost(used: int) -> Decimal:
        return cp.decide(feats(grounding="google_search"), StateSnapshot(pools={POOL: used})).primary.estimated_cost

    assert cost(4998) == Decimal("0.019")  # 2 free, 1 paid: 0.005 + 0.014
    assert cost(4999) == Decimal("0.033")  # exactly 1 free, 2 paid: 0.005 + 0.028
    assert cost(5000) == Decimal("0.047")  # none free, 3 paid: 0.005 + 0.042


def test_a_selector_region_excludes_a_model_without_an_endpoint_there():
    # Catalog regions: the Gemini 3 previews are served on the global endpoint only (seed model cards).
    from tests.policy.test_decide_boundaries import one_profile, ranking

    anywhere = compile_text(one_profile("{objective: cheapest, fallbacks: 5, candidates: [{select: {family: gemini-3}}]}"))
    assert sorted(ranking(anywhere)) == ["gemini-3-flash-preview", "gemini-3-pro-preview"]
    in_global = compile_text(one_profile("{objective: cheapest, fallbacks: 5, candidates: [{select: {family: gemini-3, region: [global]}}]}"))
    assert sorted(ranking(in_global)) == ["gemini-3-flash-preview", "gemini-3-pro-preview"]
    with pytest.raises(PolicyError):  # no Gemini 3 model in europe-west4: the selector selects nothing
        compile_text(one_profile("{objective: cheapest, fallbacks: 5, candidates: [{select: {family: gemini-3, region: [europe-west4]}}]}"))


# ------------------------------------------------------------------ prefer_free_pool: the free-pool tier ranks first
# Google Search grounding, gemini-2.5-*: $35 per 1,000 grounded prompts (one per request) beyond the daily pool
# (2.5 Pro: 10,000 a day, its own pool; 2.5 Flash: 1,500 a day shared with the 2.0 / Flash-Lite models).
PREFER = ("version: 1\nprofiles:\n  p: {objective: best_quality, fallbacks: 1, candidates: [{model: %s}, {model: gemini-2.5-flash}]}\n"
          "default_profile: p\ngrounding: {expected_queries: 3%s}\n")


def _ranked(text: str, **pools: int) -> list[tuple[str, Decimal]]:
    d = compile_text(text).decide(feats(grounding="google_search"), StateSnapshot(pools=pools))
    return [(c.model, c.estimated_cost) for c in d.choices]


def test_a_model_whose_free_pool_has_room_ranks_before_a_better_one_that_pays():
    pro = PREFER % ("gemini-2.5-pro", "")
    # both pools have room: the better model first (Pro: 1000 x 1.25 + 250 x 10 per 1M = $0.00375)
    assert _ranked(pro)[0] == ("gemini-2.5-pro", Decimal("0.00375"))
    # Pro's pool exhausted: Pro pays $0.035 for the grounded prompt, Flash's is free, so Flash ranks first
    # (Flash: 1000 x 0.30 + 250 x 2.50 per 1M = $0.000925)
    used = {"gemini-2.5-pro-search-daily": 10_000}
    assert _ranked(pro, **used) == [("gemini-2.5-flash", Decimal("0.000925")), ("gemini-2.5-pro", Decimal("0.03875"))]
    # without the preference, quality decides again
    assert [m for m, _ in _ranked(PREFER % ("gemini-2.5-pro", ", prefer_free_pool: false"), **used)] == ["gemini-2.5-pro", "gemini-2.5-flash"]


def test_a_partly_free_per_query_model_ranks_after_one_whose_pool_covers_the_request():
    g3 = PREFER % ("gemini-3-pro-preview", "")
    # 3 queries expected; 3 free left: Gemini 3 Pro (better) first at 1000 x 2 + 250 x 12 per 1M = $0.005
    assert _ranked(g3, **{POOL: 4997})[0] == ("gemini-3-pro-preview", Decimal("0.005"))
    # 1 free left, 2 paid at $14 / 1,000: $0.033; Flash's pool covers its grounded prompt: Flash first
    assert _ranked(g3, **{POOL: 4999}) == [("gemini-2.5-flash", Decimal("0.000925")), ("gemini-3-pro-preview", Decimal("0.033"))]


# ------------------------------------------------------------------ quality_per_dollar with a $0 candidate
# Provisioned Throughput on gemini-2.0-flash (the only burndown in the seeds): 1,000 prompt + 500 max_tokens
# need 1,000 + 4 x 500 = 3,000 adjusted tokens of the 100,800 a GSU gives per 30 s window.
# PayGo: 2.0 Flash 1000 x 0.15 + 250 x 0.60 per 1M = $0.0003; 2.0 Flash-Lite 1000 x 0.075 + 250 x 0.30 = $0.00015.
PT_POLICY = """\
version: 1
provisioned:
  mode: first
  subscriptions:
    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}
candidates:
  - {model: gemini-2.0-flash, location: us-central1}
  - {model: gemini-2.0-flash-lite}
profiles:
  q: {objective: quality_per_dollar, fallbacks: 1}
default_profile: q
"""
PT_KEY = "gemini-2.0-flash@us-central1"


def test_quality_per_dollar_ranks_a_zero_cost_candidate_first():
    cp = compile_text(PT_POLICY)

    def ranked(pt_used: int) -> list[tuple[str, Decimal]]:
        d = cp.decide(feats(), StateSnapshot(pt={PT_KEY: pt_used}))
        return [(c.model, c.estimated_cost) for c in d.choices]

    # PT covers the request: 2.0 Flash costs $0 at the margin, infinitely many quality points per dollar
    assert ranked(0) == [("gemini-2.0-flash", Decimal(0)), ("gemini-2.0-flash-lite", Decimal("0.00015"))]
    assert ranked(97_800) == [("gemini-2.0-flash", Decimal(0)), ("gemini-2.0-flash-lite", Decimal("0.00015"))]  # exactly enough
    # PT saturated: 2.0 Flash pays $0.0003 for about the quality Flash-Lite gives for $0.00015
    assert ranked(97_801) == [("gemini-2.0-flash-lite", Decimal("0.00015")), ("gemini-2.0-flash", Decimal("0.0003"))]


# ------------------------------------------------------------------ the profile's regions constraint
REGIONS = ("version: 1\nprofiles:\n  p: {fallbacks: 2, %s candidates: [{model: gemini-3-pro-preview%s}, {model: gemini-2.5-flash}]}\n"
           "default_profile: p\n")


def test_a_regions_constraint_rejects_a_model_without_an_endpoint_there_and_says_so():
    d = compile_text(REGIONS % ("constraints: {regions: [europe-west4]},", "")).decide(feats())
    assert [(c.model, c.location) for c in d.choices] == [("gemini-2.5-flash", "europe-west4")]
    assert ("gemini-3-pro-preview", "no endpoint in the allowed regions (europe-west4); available: global") in d.rejected
    # the constraint allows global (or there is none): both are candidates, on the global endpoint
    for constraint in ("constraints: {regions: [global]},", ""):
        d = compile_text(REGIONS % (constraint, "")).decide(feats())
        assert sorted((c.model, c.location) for c in d.choices) == [("gemini-2.5-flash", "global"), ("gemini-3-pro-preview", "global")]
        assert d.rejected == []


def test_a_zero_cost_estimate_after_the_remembered_estimates_were_dropped():
    # The Router remembers the USD value of recent estimates and drops them all past 4,096 distinct ones: a
    # long-running process then meets a PT-covered request ($0 at the margin) with nothing remembered.
    from router.policy.units import USD_OF_UNITS, from_units

    cp = compile_text(PT_POLICY)
    for units in range(1, 4200):  # distinct estimates: the remembered values are dropped once on the way
        from_units(units * 10**12)
    assert 0 not in USD_OF_UNITS
    d = cp.decide(feats(), StateSnapshot(pt={PT_KEY: 0}))
    assert [(c.model, c.estimated_cost, c.upper_bound_cost) for c in d.choices][0] == ("gemini-2.0-flash", Decimal(0), Decimal(0))
    assert d.to_dict()["estimated_cost_usd"] == "0"
