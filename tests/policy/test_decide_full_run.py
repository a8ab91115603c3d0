"""Kills survivors of the full mutmut run of router/policy/decide.py (issue 12, docs/mutation-report.md).

Prices by hand from the seeds (USD per 1M tokens unless said): gemini-2.5-pro $1.25 / $10, gemini-2.5-flash
$0.30 / $2.50, gemini-2.0-flash $0.15 / $0.60, gemini-2.0-flash-lite $0.075 / $0.30; Google Search grounding
on 2.5 models $35 per 1,000 grounded prompts beyond the daily free pool; grounding on your data $2.50 per
1,000 requests (for gemini-2.0-flash only from 2025-06-16). The default request: 1,000 prompt tokens,
max_tokens 500, 250 expected output tokens (the policy's default ratio 0.5).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from router.policy import StateSnapshot
from tests.policy.conftest import compile_text, feats

PRO_POOL = "gemini-2.5-pro-search-daily"


# ------------------------------------------------------------------ explain: free_pool_room without the preference
def _grounded_policy(prefer: str) -> str:
    return ("version: 1\nprofiles:\n  p: {objective: best_quality, fallbacks: 1, candidates: [{model: gemini-2.5-pro}, {model: gemini-2.5-flash}]}\n"
            f"default_profile: p\ngrounding: {{expected_queries: 3{prefer}}}\n")


def _rooms(prefer: str, **pools: int) -> list[tuple[str, str, bool | None]]:
    out = compile_text(_grounded_policy(prefer)).explain(feats(grounding="google_search"), StateSnapshot(pools=pools))
    return [(c["model"], c["estimated_cost_usd"], c["free_pool_room"]) for c in out["candidates"]]


def test_explain_shows_an_exhausted_free_pool_also_when_ranking_ignores_it():
    # Pro's daily pool (10,000 grounded prompts) used up: Pro pays $35 / 1,000 = $0.035 for the grounded prompt,
    # 1000 x 1.25 + 250 x 10 per 1M = $0.00375 for the tokens. Flash's shared pool has room: tokens only,
    # 1000 x 0.30 + 250 x 2.50 per 1M = $0.000925.
    used = {PRO_POOL: 10_000}
    # prefer_free_pool off: quality ranks Pro first, but its pool has no room and explain must say so
    assert _rooms(", prefer_free_pool: false", **used) == [
        ("gemini-2.5-pro", "0.03875", False),
        ("gemini-2.5-flash", "0.000925", True),
    ]
    # with the preference (the default), the same rooms, Flash ranked first
    assert _rooms("", **used) == [("gemini-2.5-flash", "0.000925", True), ("gemini-2.5-pro", "0.03875", False)]
    # both pools with room: both true either way
    assert _rooms(", prefer_free_pool: false") == [("gemini-2.5-pro", "0.00375", True), ("gemini-2.5-flash", "0.000925", True)]
