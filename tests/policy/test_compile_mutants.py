"""The compiled policy's request-facing answers at their edges (issue 12, survivors of the full mutmut run of
router/policy/compile.py): which free grounding pools a request may draw on, which the Router snapshots and
consumes. Catalog facts: Claude's web search has no free pool; Gemini 3's monthly search pool starts counting on
2026-01-05 (the day Gemini 3 grounding billing starts, seed 000)."""

from __future__ import annotations

import datetime as dt

from tests.policy.conftest import compile_text, feats

G3 = "version: 1\ncandidates: [{model: gemini-3-flash-preview}]\nprofiles: {p: {}}\ndefault_profile: p\n"


def test_a_grounding_kind_without_any_free_pool_draws_on_none():
    cp = compile_text("version: 1\ncandidates: [{model: claude-sonnet-4-5}]\nprofiles: {p: {}}\ndefault_profile: p\n")
    assert cp.pools_for(feats(grounding="web_search")) == []
    assert compile_text(G3).pools_for(feats(grounding="web_search")) == []  # Gemini 3 has no web_search at all


def test_a_free_pool_counts_from_its_first_day():
    cp = compile_text(G3)
    assert cp.pools_for(feats(grounding="google_search", at=dt.date(2026, 1, 4))) == []
    assert [p.id for p in cp.pools_for(feats(grounding="google_search", at=dt.date(2026, 1, 5)))] == ["gemini-3-search-monthly"]
