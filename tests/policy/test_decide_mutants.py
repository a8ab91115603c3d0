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
