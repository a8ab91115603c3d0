"""Grounding: supported kinds, free pools with room preferred, and the three pool-empty behaviours."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from router.errors import NoEligibleModelError
from router.policy import StateSnapshot, compile_policy, load_policy
from tests.policy.conftest import POLICIES, compile_text, feats

FLASH_POOL = "gemini-2x-flash-search-daily"
PRO_POOL = "gemini-2.5-pro-search-daily"

TEXT = """
version: 1
candidates:
  - model: gemini-2.5-flash-lite
  - model: gemini-2.5-flash
  - model: gemini-2.5-pro
  - model: claude-haiku-4-5
  - model: deepseek-v3.2
profiles: {p: {objective: cheapest}}
default_profile: p
grounding:
  when_pool_empty: %s
"""


def test_grounding_kind_support_and_free_pool():
    cp = compile_text(TEXT % "pay")
    d = cp.decide(feats(grounding="google_search"))
    assert d.primary.model == "gemini-2.5-flash-lite" and d.primary.grounding == "google_search"
    assert dict(d.rejected)["deepseek-v3.2"] == "no google_search grounding"
    assert dict(d.rejected)["claude-haiku-4-5"] == "no google_search grounding"
    web = cp.decide(feats(grounding="web_search"))
    assert web.primary.model == "claude-haiku-4-5" and web.primary.grounding == "web_search"


def test_pools_for_and_quota_pool():
    cp = compile_text(TEXT % "pay")
    pools = cp.pools_for(feats(grounding="google_search"))
    assert {p.id for p in pools} == {FLASH_POOL, PRO_POOL}
    assert all(p.timezone == "America/Los_Angeles" for p in pools)
    assert cp.pools_for(feats()) == []
    q = cp.quota_pool(FLASH_POOL)
    assert (q.free_units, q.period) == (1500, "day")
    tz = compile_text((TEXT % "pay") + "settings: {quota_timezone: Europe/Berlin}\n")
    assert tz.quota_pool(FLASH_POOL).timezone == "Europe/Berlin"


def test_prefers_a_pool_with_room():
    cp = compile_text(TEXT % "pay")
    d = cp.decide(feats(grounding="google_search"), StateSnapshot(pools={FLASH_POOL: 1500}))
    # the flash pool is empty: 2.5 Pro's pool has room and is ranked first even though it is dearer
    assert d.primary.model == "gemini-2.5-pro" and d.primary.grounding == "google_search"


def test_pool_empty_pay():
    cp = compile_text(TEXT % "pay")
    state = StateSnapshot(pools={FLASH_POOL: 1500, PRO_POOL: 10_000})
    d = cp.decide(feats(grounding="google_search"), state)
    assert d.primary.model == "gemini-2.5-flash-lite" and d.primary.grounding == "google_search"
    room = cp.decide(feats(grounding="google_search"))
    assert d.primary.estimated_cost - room.primary.estimated_cost == Decimal("0.035")  # $35 / 1,000 grounded prompts


def test_pool_empty_drop():
    cp = compile_text(TEXT % "drop")
    state = StateSnapshot(pools={FLASH_POOL: 1500, PRO_POOL: 10_000})
    d = cp.decide(feats(grounding="google_search"), state)
    assert d.primary.model == "gemini-2.5-flash-lite" and d.primary.grounding is None
    assert any("grounding dropped" in n for n in d.notes)


def test_pool_empty_switch_family():
    cp = compile_text(TEXT % "switch_family")
    d = cp.decide(feats(grounding="google_search"), StateSnapshot(pools={FLASH_POOL: 1500}))
    assert d.primary.model == "gemini-2.5-pro"
    assert "exhausted" in dict(d.rejected)["gemini-2.5-flash"]
    with pytest.raises(NoEligibleModelError):
        cp.decide(feats(grounding="google_search"), StateSnapshot(pools={FLASH_POOL: 1500, PRO_POOL: 10_000}))


def test_grounding_aware_example(catalog):
    cp = compile_policy(load_policy(POLICIES / "grounding-aware.yaml", catalog), catalog)
    d = cp.decide(feats(grounding="google_search"))
    assert d.rule == "wants-grounding" and d.profile == "grounded"
    assert d.primary.model in {"gemini-2.5-flash-lite", "gemini-2.0-flash", "gemini-2.5-flash"}
    switched = cp.decide(feats(grounding="google_search"), StateSnapshot(pools={FLASH_POOL: 1500}))
    assert switched.primary.model in {"gemini-2.5-pro", "gemini-3-flash-preview"}
    assert all(c.model not in {"gemini-2.5-flash-lite", "gemini-2.0-flash", "gemini-2.5-flash"} for c in switched.choices)
    assert cp.decide(feats()).profile == "general"


def test_gemini3_pool_before_billing_start():
    cp = compile_text("version: 1\ncandidates: [{model: gemini-3-flash-preview}]\nprofiles: {p: {}}\ndefault_profile: p\n")
    before = cp.decide(feats(grounding="google_search", at=dt.date(2025, 12, 1)))
    assert before.primary.grounding == "google_search"
    assert cp.pools_for(feats(grounding="google_search", at=dt.date(2025, 12, 1))) == []
    assert [p.id for p in cp.pools_for(feats(grounding="google_search"))] == ["gemini-3-search-monthly"]
