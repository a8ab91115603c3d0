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

import pytest

from router.catalog import load_catalog
from router.errors import RequestRefusedError
from router.policy import StateSnapshot
from tests.catalog_copies import catalog_copy, catalog_with_gemini_3_flash_burndown
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


# ------------------------------------------------------------------ a candidate without a grounding price on the date
def test_a_candidate_without_a_grounding_price_on_the_date_is_rejected_and_the_next_one_still_ranked():
    # gemini-2.0-flash supports grounding on your data, billed only from 2025-06-16; listed first, cheapest.
    cp = compile_text("version: 1\nprofiles:\n  p: {objective: cheapest, fallbacks: 3, candidates: "
                      "[{model: gemini-2.0-flash}, {model: gemini-2.5-flash}]}\ndefault_profile: p\n")
    before = cp.decide(feats(grounding="your_data", at=dt.date(2025, 6, 15)))
    # 2.5 Flash: 1000 x 0.30 + 250 x 2.50 per 1M = $0.000925, + $2.50 / 1,000 requests = $0.003425
    assert [(c.model, c.estimated_cost, c.grounding) for c in before.choices] == [("gemini-2.5-flash", Decimal("0.003425"), "your_data")]
    assert before.rejected == [("gemini-2.0-flash", "no price for your_data grounding on 2025-06-15")]
    on = cp.decide(feats(grounding="your_data", at=dt.date(2025, 6, 16)))
    # 2.0 Flash priced from that day: 1000 x 0.15 + 250 x 0.60 per 1M = $0.0003, + $0.0025 = $0.0028
    assert [(c.model, c.estimated_cost) for c in on.choices] == [("gemini-2.0-flash", Decimal("0.0028")), ("gemini-2.5-flash", Decimal("0.003425"))]
    assert on.rejected == []


# ------------------------------------------------------------------ explain's whole output: keys and values
# Provisioned Throughput on gemini-2.0-flash@us-central1: 1 GSU = 100,800 burndown-adjusted tokens per 30 s
# window; this request needs 1,000 + 4 x 500 = 3,000. PayGo: 2.0 Flash 1000 x 0.15 + 250 x 0.60 per 1M =
# $0.0003 (bound 1000 x 0.15 + 500 x 0.60 = $0.00045); 2.0 Flash-Lite 1000 x 0.075 + 250 x 0.30 = $0.00015
# (bound $0.000225). Qualities from the seeds' model cards: 44.4 and 41.2.
PT_BUDGET_POLICY = """\
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
budgets:
  - name: tenant-monthly
    scope: tenant
    window: calendar:month@UTC
    limit_usd: "40"
    actions:
      - {at_percent: 90, refuse: true}
"""
PT_KEY = "gemini-2.0-flash@us-central1"
SCOPE = "tenant:acme|calendar:month@UTC"
WHY_COVERED = ("Provisioned Throughput gemini-2.0-flash@us-central1 (first): headroom 99,800 of 100,800 burndown-adjusted "
               "tokens in the 30 s window >= this request's 3,000: marginal cost $0")
PT_COVERED = {"mode": "first", "key": PT_KEY, "burndown_tokens": 3000, "headroom": 99_800, "capacity": 100_800, "covered": True,
              "paygo_estimated_cost_usd": "0.0003", "paygo_upper_bound_cost_usd": "0.00045", "why": WHY_COVERED}
FLASH_CHOICE = {"model": "gemini-2.0-flash", "location": "us-central1", "batch": False, "priority": False, "grounding": None,
                "estimated_cost_usd": "0", "upper_bound_cost_usd": "0", "quality": "44.4"}
LITE_CHOICE = {"model": "gemini-2.0-flash-lite", "location": "global", "batch": False, "priority": False, "grounding": None,
               "estimated_cost_usd": "0.00015", "upper_bound_cost_usd": "0.000225", "quality": "41.2"}


def test_explain_prints_every_field_of_the_decision_its_choices_the_budget_status_and_the_ranking():
    cp = compile_text(PT_BUDGET_POLICY)
    # 1,000 of the window's tokens used: 99,800 left >= 3,000, PT covers the request (marginal cost $0)
    out = cp.explain(feats(tenant="acme"), StateSnapshot(pt={PT_KEY: 1_000}, spend={SCOPE: Decimal("4.9")}))
    assert out == {
        "policy_version": cp.version,
        "request": {"tenant": "acme", "app": None, "tags": {}, "task": None, "prompt_tokens": 1000, "max_tokens": 500,
                    "grounding": None, "latency_sensitive": False, "required_capabilities": [], "at": "2026-11-02"},
        "prompt_size": None,
        **FLASH_CHOICE,
        "provisioned": PT_COVERED,
        "fallbacks": ["gemini-2.0-flash-lite"],
        "choices": [{**FLASH_CHOICE, "provisioned": PT_COVERED}, LITE_CHOICE],
        "rule": None,
        "profile": "q",
        "rule_profile": "q",
        "budgets": [SCOPE],
        "actions": [],
        "rejected": [],
        "notes": [f"gemini-2.0-flash: {WHY_COVERED}"],
        "retry_on": ["rate_limited", "server_error", "timeout", "context_overflow"],
        # $4.9 of $40: 12.25 %, printed to one decimal (half to even: 12.2)
        "budget_status": [{"scope": SCOPE, "budget": "tenant-monthly", "spend_usd": "4.9", "limit_usd": "40", "utilisation_percent": "12.2"}],
        "candidates": [
            {"model": "gemini-2.0-flash", "location": "us-central1", "estimated_cost_usd": "0", "upper_bound_cost_usd": "0",
             "quality": "44.4", "batch": False, "grounding": None, "free_pool_room": None, "provisioned": PT_COVERED},
            {"model": "gemini-2.0-flash-lite", "location": "global", "estimated_cost_usd": "0.00015", "upper_bound_cost_usd": "0.000225",
             "quality": "41.2", "batch": False, "grounding": None, "free_pool_room": None},
        ],
        "refused": None,
        "error": None,
    }


def test_explain_ranking_shows_the_provisioned_spill_of_a_saturated_subscription():
    cp = compile_text(PT_BUDGET_POLICY)
    # 97,801 used: 2,999 left < 3,000: 2.0 Flash is estimated as a PayGo spill ($0.0003) and ranks second
    out = cp.explain(feats(tenant="acme"), StateSnapshot(pt={PT_KEY: 97_801}))
    flash = out["candidates"][1]
    assert [c["model"] for c in out["candidates"]] == ["gemini-2.0-flash-lite", "gemini-2.0-flash"]
    assert "provisioned" not in out["candidates"][0]
    assert (flash["estimated_cost_usd"], flash["upper_bound_cost_usd"]) == ("0.0003", "0.00045")
    assert flash["provisioned"] == {
        "mode": "first", "key": PT_KEY, "burndown_tokens": 3000, "headroom": 2_999, "capacity": 100_800, "covered": False,
        "paygo_estimated_cost_usd": "0.0003", "paygo_upper_bound_cost_usd": "0.00045",
        "why": ("Provisioned Throughput gemini-2.0-flash@us-central1 (first): headroom 2,999 of 100,800 burndown-adjusted "
                "tokens in the 30 s window < this request's 3,000: estimated and reserved as a PayGo spill"),
    }
    assert out["provisioned"] is None  # the primary, 2.0 Flash-Lite, has no subscription


# ------------------------------------------------------------------ Provisioned Throughput: only (with a wait), never
PT_ONLY_WAIT = """\
version: 1
provisioned:
  mode: only
  wait_s: 5
  subscriptions:
    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}
candidates:
  - {model: gemini-2.0-flash, location: us-central1}
profiles:
  cheap: {objective: cheapest}
default_profile: cheap
"""


def test_only_with_a_wait_and_no_room_costs_nothing_and_says_it_waits_for_capacity():
    cp = compile_text(PT_ONLY_WAIT)
    # 97,801 used: 2,999 left < this request's 3,000; under only with wait_s the request is PT or nothing
    d = cp.decide(feats(), StateSnapshot(pt={PT_KEY: 97_801}))
    assert (d.model, d.estimated_cost, d.upper_bound_cost) == ("gemini-2.0-flash", 0, 0)
    assert d.notes == [
        "gemini-2.0-flash: Provisioned Throughput gemini-2.0-flash@us-central1 (only): headroom 2,999 of 100,800 burndown-adjusted "
        "tokens in the 30 s window < this request's 3,000: waits for capacity, else refused"
    ]
    # with room (3,000 left: exactly enough) the note says the subscription covers it
    ok = cp.decide(feats(), StateSnapshot(pt={PT_KEY: 97_800}))
    assert (ok.model, ok.estimated_cost) == ("gemini-2.0-flash", 0)
    assert ok.notes == [
        "gemini-2.0-flash: Provisioned Throughput gemini-2.0-flash@us-central1 (only): headroom 3,000 of 100,800 burndown-adjusted "
        "tokens in the 30 s window >= this request's 3,000: marginal cost $0"
    ]


def test_never_uses_paygo_and_the_choice_shows_the_subscription_it_skipped():
    cp = compile_text(PT_BUDGET_POLICY.replace("  mode: first\n", "  mode: never\n"))
    d = cp.decide(feats(tenant="acme"))
    why = "Provisioned Throughput gemini-2.0-flash@us-central1 skipped (provisioned: never): PayGo, sent as shared"
    assert d.notes == [f"gemini-2.0-flash: {why}"]
    flash = d.to_dict()["choices"][1]
    assert flash == {
        "model": "gemini-2.0-flash", "location": "us-central1", "batch": False, "priority": False, "grounding": None,
        "estimated_cost_usd": "0.0003", "upper_bound_cost_usd": "0.00045", "quality": "44.4",
        "provisioned": {"mode": "never", "key": PT_KEY, "burndown_tokens": 0, "headroom": 0, "capacity": 0, "covered": False,
                        "paygo_estimated_cost_usd": "0.0003", "paygo_upper_bound_cost_usd": "0.00045", "why": why},
    }


def test_a_primary_without_a_quality_score_shows_none():
    # claude-3-haiku has no quality score in the seeds: 1000 x 0.25 + 250 x 1.25 per 1M = $0.0005625
    d = compile_text("version: 1\nprofiles:\n  p: {objective: cheapest, candidates: [{model: claude-3-haiku}]}\ndefault_profile: p\n").decide(feats())
    out = d.to_dict()
    assert (out["model"], out["estimated_cost_usd"], out["upper_bound_cost_usd"], out["quality"]) == ("claude-3-haiku", "0.0005625", "0.000875", None)
    assert out["choices"][0]["quality"] is None


# ------------------------------------------------------------------ pacing: the first millisecond of the window
def test_pacing_projects_from_the_first_millisecond_when_the_policy_sets_no_minimum():
    from tests.policy.test_pacing import POLICY

    cp = compile_text(POLICY.replace('limit_usd: "300"', 'limit_usd: "300"\n    pace_min_elapsed_percent: 0\n    pace_min_spend_percent: 0'))

    def at(microsecond: int):
        now = dt.datetime(2026, 11, 1, 0, 0, 0, microsecond, tzinfo=dt.timezone.utc)
        return cp.decide(feats(tenant="acme"), StateSnapshot(spend={"tenant:acme": Decimal("0.01")}, now=now))

    assert at(0).actions == []  # the window's first instant: nothing elapsed, nothing to project
    # 1 ms of November's 2,592,000,000: $0.01 projects to $25,920,000, 8,640,000 % of $300: refused
    with pytest.raises(RequestRefusedError, match=r"on pace for 8640000% by window end >= 200%"):
        at(1000)


# ------------------------------------------------------------------ the decision's rule_profile and prompt_size
def test_the_decision_names_the_rule_profile_a_budget_switched_away_from():
    from tests.policy.test_budgets import SCOPE, TIERS

    d = compile_text(TIERS).decide(feats(tenant="acme"), StateSnapshot(spend={SCOPE: Decimal(80)}))  # 80 % of $100
    out = d.to_dict()
    assert (out["rule"], out["profile"], out["rule_profile"]) == (None, "cost-first", "standard")


def test_explain_shows_where_the_prompt_size_came_from():
    from router.policy.counting import PromptSize
    from router.policy.explain import explain

    cp = compile_text("version: 1\nprofiles:\n  p: {objective: cheapest, candidates: [{model: claude-3-haiku}]}\ndefault_profile: p\n")
    size = PromptSize(1000, "estimate", estimate=950, margin_percent=Decimal(5), reason="near the context window")
    out = explain(cp, feats(), StateSnapshot(), prompt=size)
    assert out["prompt_size"] == {"tokens": 1000, "source": "estimate", "estimate": 950, "margin_percent": "5",
                                  "reason": "near the context window", "fallback": None, "count_model": None, "cached": False,
                                  "billable_characters": None}


# ------------------------------------------------------------------ ranking: quality_per_dollar and weighted
def _order(objective: str, models: list[str], text: str = "", **kw) -> list[tuple[str, str, str]]:
    cands = ", ".join(m if m.startswith("{") else f"{{model: {m}}}" for m in models)
    cp = compile_text(f"version: 1\n{text}profiles:\n  p: {{objective: {objective}, fallbacks: 5, candidates: [{cands}]}}\ndefault_profile: p\n")
    state = kw.pop("state", StateSnapshot())
    return [(c.model, str(c.estimated_cost), str(c.upper_bound_cost)) for c in cp.decide(feats(**kw), state).choices]


def test_quality_per_dollar_can_prefer_the_dearer_candidate():
    # gpt-oss-20b: 1000 x 0.07 + 250 x 0.25 per 1M = $0.0001325 (bound 70 + 500 x 0.25: $0.000195) for quality 27.2
    # (205,283 points per $);
    # gemini-2.0-flash-lite: $0.00015 for 41.2 (274,667 per $): dearer, but more quality per dollar
    assert _order("quality_per_dollar", ["gpt-oss-20b", "gemini-2.0-flash-lite"]) == [
        ("gemini-2.0-flash-lite", "0.00015", "0.000225"), ("gpt-oss-20b", "0.0001325", "0.000195")]
    assert [m for m, _, _ in _order("cheapest", ["gpt-oss-20b", "gemini-2.0-flash-lite"])] == ["gpt-oss-20b", "gemini-2.0-flash-lite"]


def test_quality_per_dollar_divides_by_the_expected_cost_not_the_upper_bound():
    # Grounded, both free pools with room: the expected costs are the tokens only, the bounds add the full
    # $35 / 1,000 grounded prompt. 2.5 Flash: $0.000925 (bound 1000 x 0.30 + 500 x 2.50 per 1M + 0.035 = $0.03655),
    # 63.2 -> 68,324 per $; 2.5 Pro: $0.00375 (bound 0.00625 + 0.035 = $0.04125), 80.4 -> 21,440 per $.
    # (Per bound it would be 1,729 vs 1,949: Pro first.)
    assert _order("quality_per_dollar", ["gemini-2.5-pro", "gemini-2.5-flash"], grounding="google_search") == [
        ("gemini-2.5-flash", "0.000925", "0.03655"), ("gemini-2.5-pro", "0.00375", "0.04125")]


def test_quality_per_dollar_ranks_a_covered_grounded_subscription_first_although_its_bound_is_not_zero():
    # Provisioned Throughput covers 2.0 Flash's tokens (marginal $0) and its pool covers the grounded prompt:
    # expected $0, bound $0.035 (the grounded prompt billed in full). 2.5 Flash: $0.000925 / $0.03655.
    text = ("provisioned:\n  mode: first\n  subscriptions:\n"
            "    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n")
    assert _order("quality_per_dollar", ["{model: gemini-2.0-flash, location: us-central1}", "gemini-2.5-flash"], text,
                  grounding="google_search") == [("gemini-2.0-flash", "0", "0.035"), ("gemini-2.5-flash", "0.000925", "0.03655")]


def test_weighted_normalises_cost_between_the_cheapest_and_the_dearest_expected_cost():
    # Grounded as above: 2.5 Flash $0.000925 (63.2), 2.5 Pro $0.00375 (80.4); weights 1 / 1, cost scaled to
    # 0..1 over $0.000925..$0.00375: Flash 0.632 - 0 = 0.632, Pro 0.804 - 1 = -0.196: Flash first.
    assert _order("{type: weighted, quality_weight: 1, cost_weight: 1}", ["gemini-2.5-pro", "gemini-2.5-flash"], grounding="google_search") == [
        ("gemini-2.5-flash", "0.000925", "0.03655"), ("gemini-2.5-pro", "0.00375", "0.04125")]


def test_weighted_quality_is_the_score_over_100_against_the_cost_weight():
    # 2.0 Flash-Lite $0.00015 (41.2) and 2.5 Flash $0.000925 (63.2), two candidates: cost scaled to 0 and 1.
    # Flash-Lite scores 0.412; 2.5 Flash 0.632 - cost_weight: ahead at 0.219 (0.413), behind at 0.221 (0.411).
    models = ["gemini-2.0-flash-lite", "gemini-2.5-flash"]
    assert [m for m, _, _ in _order("{type: weighted, quality_weight: 1, cost_weight: 0.219}", models)] == ["gemini-2.5-flash", "gemini-2.0-flash-lite"]
    assert [m for m, _, _ in _order("{type: weighted, quality_weight: 1, cost_weight: 0.221}", models)] == ["gemini-2.0-flash-lite", "gemini-2.5-flash"]


# ------------------------------------------------------------------ expected output ratio, cost caps, no trace
def test_the_expected_output_is_max_tokens_times_the_ratio_rounded_up():
    cp = compile_text("version: 1\nsettings: {expected_output_ratio: 0.75}\n"
                      "profiles:\n  p: {candidates: [{model: gemini-2.5-flash}]}\ndefault_profile: p\n")
    # 500 x 3/4 = 375 output tokens: 1000 x 0.30 + 375 x 2.50 per 1M = $0.0012375; bound 500 x 2.50: $0.00155
    d = cp.decide(feats())
    assert (d.estimated_cost, d.upper_bound_cost) == (Decimal("0.0012375"), Decimal("0.00155"))
    # 501 x 3/4 = 375.75, rounded up to 376: 0.0003 + 0.00094 = $0.00124
    assert cp.decide(feats(max_tokens=501)).estimated_cost == Decimal("0.00124")


CAPS = """\
version: 1
profiles:
  p: {objective: cheapest, fallbacks: 3, constraints: {max_cost_usd: "%s"}, candidates: [{model: gemini-2.5-flash}, {model: gemini-2.0-flash-lite}]}
default_profile: p
budgets:
  - {name: g, scope: global, window: month, limit_usd: "10", actions: [{at_percent: 50, max_cost_usd: "%s"}]}
"""


def test_the_tighter_of_the_profile_bound_and_a_budget_cost_cap_applies():
    # 2.5 Flash $0.000925, 2.0 Flash-Lite $0.00015; the budget's $5 of $10 reaches its 50 % cap
    def choices(profile_max: str, budget_max: str) -> tuple[list[str], list]:
        d = compile_text(CAPS % (profile_max, budget_max)).decide(feats(), StateSnapshot(spend={"global": Decimal(5)}))
        return [c.model for c in d.choices], d.rejected

    # the profile's $0.0005 is tighter than the budget's $0.01: 2.5 Flash is out
    assert choices("0.0005", "0.01") == (["gemini-2.0-flash-lite"], [("gemini-2.5-flash", "estimated $0.000925 > max $0.0005 per request")])
    # the budget's $0.0005 is tighter than the profile's $0.01
    assert choices("0.01", "0.0005") == (["gemini-2.0-flash-lite"], [("gemini-2.5-flash", "estimated $0.000925 > max $0.0005 per request")])
    assert choices("0.01", "0.001") == (["gemini-2.0-flash-lite", "gemini-2.5-flash"], [])


def test_decide_keeps_no_ranking_trace_unless_explain_asks():
    cp = compile_text("version: 1\nprofiles:\n  p: {candidates: [{model: gemini-2.5-flash}]}\ndefault_profile: p\n")
    assert cp.decide(feats()).ranked is None


def test_weighted_scales_the_expected_cost_not_the_bound():
    # 2.5 Pro $0.00375 (80.4), 2.5 Flash $0.000925 (63.2), 2.0 Flash-Lite $0.00015 (41.2); weights 1 / 1, cost
    # scaled over $0.00015..$0.00375 (span $0.0036): Pro 0.804 - 1 = -0.196, Flash 0.632 - 0.000775 / 0.0036
    # = 0.417, Flash-Lite 0.412 - 0 = 0.412. (Scaling the bounds $0.00625 / $0.00155 / $0.000225 instead would
    # put Flash-Lite, 0.391, ahead of Flash, 0.243.)
    assert _order("{type: weighted, quality_weight: 1, cost_weight: 1}", ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash-lite"]) == [
        ("gemini-2.5-flash", "0.000925", "0.00155"), ("gemini-2.0-flash-lite", "0.00015", "0.000225"), ("gemini-2.5-pro", "0.00375", "0.00625")]


def test_weighted_ties_on_the_expected_cost_keep_the_listed_order():
    # Cost only (quality_weight 0). mistral-medium-3 $0.40 / $2: 400 + 500 = $0.0009 (bound 400 + 1000 = $0.0014);
    # llama-3.3-70b $0.72 / $0.72: 720 + 180 = $0.0009 (bound 720 + 360 = $0.00108): equal expected costs, the
    # listed order decides, not the bounds.
    assert _order("{type: weighted, quality_weight: 0, cost_weight: 1}", ["mistral-medium-3", "llama-3.3-70b"]) == [
        ("mistral-medium-3", "0.0009", "0.0014"), ("llama-3.3-70b", "0.0009", "0.00108")]


# ------------------------------------------------------------------ output price caps, context window edge, no price
def test_the_profile_output_price_cap_rejects_a_dearer_model_and_a_budget_cap_only_tightens_it():
    text = ("version: 1\nprofiles:\n  p: {objective: best_quality, fallbacks: 3, constraints: {max_output_usd_per_mtok: \"%s\"}, "
            "candidates: [{model: gemini-2.5-flash}, {model: gemini-2.0-flash}, {model: gemini-2.0-flash-lite}]}\ndefault_profile: p\n"
            "budgets:\n  - {name: g, scope: global, window: month, limit_usd: \"10\", actions: [{at_percent: 50, max_output_usd_per_mtok: \"%s\"}]}\n")

    def run(profile_cap: str, budget_cap: str, spend: int) -> tuple[list[str], list]:
        d = compile_text(text % (profile_cap, budget_cap)).decide(feats(), StateSnapshot(spend={"global": Decimal(spend)}))
        return [c.model for c in d.choices], d.rejected

    # output prices per 1M: 2.5 Flash $2.50, 2.0 Flash $0.60, 2.0 Flash-Lite $0.30. Budget below 50 %: the profile's $1
    assert run("1", "0.40", 4) == (["gemini-2.0-flash", "gemini-2.0-flash-lite"], [("gemini-2.5-flash", "output price $2.5 per 1M tokens > $1 cap")])
    # budget at 50 %: its $0.40 is tighter than the profile's $1
    assert run("1", "0.40", 5) == (["gemini-2.0-flash-lite"], [("gemini-2.5-flash", "output price $2.5 per 1M tokens > $0.4 cap"),
                                                               ("gemini-2.0-flash", "output price $0.6 per 1M tokens > $0.4 cap")])
    # a looser budget cap ($3) leaves the profile's $1; a cap equal to the price keeps the model
    assert run("1", "3", 5)[0] == ["gemini-2.0-flash", "gemini-2.0-flash-lite"]
    assert run("0.60", "3", 5)[0] == ["gemini-2.0-flash", "gemini-2.0-flash-lite"]


def test_a_prompt_exactly_the_context_window_fits_when_context_fit_is_off():
    # claude-3-haiku: 200,000-token context window; $0.25 / $1.25 per 1M
    cp = compile_text("version: 1\nprofiles:\n  p: {constraints: {context_fit: false}, candidates: [{model: claude-3-haiku}, {model: gemini-2.5-flash}]}\n"
                      "default_profile: p\n")
    d = cp.decide(feats(prompt_tokens=200_000))
    # 200,000 x 0.25 + 250 x 1.25 per 1M = 0.05 + 0.0003125
    assert (d.model, d.estimated_cost, d.rejected) == ("claude-3-haiku", Decimal("0.0503125"), [])
    over = cp.decide(feats(prompt_tokens=200_001))
    assert over.model == "gemini-2.5-flash"
    assert over.rejected == [("claude-3-haiku", "prompt 200,001 tokens > the model's context window of 200,000 tokens")]


def test_a_model_not_priced_yet_on_the_date_is_rejected_and_the_next_one_still_ranked(tmp_path):
    # A catalog copy in which gpt-oss-20b's token prices start on 2026-12-01.
    anchor = '      - provenance: {seed: 000_8191c03ed1050dc1.txt, section: "Modèles d\'OpenAI, gpt-oss-20b"}\n'
    root = catalog_copy(tmp_path, ("partners.yaml", anchor, "      - effective_from: 2026-12-01\n" + anchor.replace("- provenance", "  provenance", 1)))
    cp = compile_text("version: 1\nprofiles:\n  p: {objective: cheapest, fallbacks: 3, candidates: [{model: gpt-oss-20b}, {model: gemini-2.0-flash-lite}]}\n"
                      "default_profile: p\n", catalog=load_catalog(root))
    d = cp.decide(feats())  # 2026-11-02
    assert [c.model for c in d.choices] == ["gemini-2.0-flash-lite"]
    assert d.rejected == [("gpt-oss-20b", "no price for input/output on 2026-11-02")]
    # from its first day it is the cheaper one: 1000 x 0.07 + 250 x 0.25 per 1M = $0.0001325
    later = cp.decide(feats(at=dt.date(2026, 12, 1)))
    assert [(c.model, c.estimated_cost) for c in later.choices] == [("gpt-oss-20b", Decimal("0.0001325")), ("gemini-2.0-flash-lite", Decimal("0.00015"))]


# ------------------------------------------------------------------ grounding units, per-query billing, pool dates and size
def _one(model: str, extra: str = "", catalog=None):
    return compile_text(f"version: 1\nprofiles:\n  p: {{objective: cheapest, candidates: [{{model: {model}}}]}}\ndefault_profile: p\n{extra}", catalog=catalog)


def test_claude_web_searches_are_billed_per_search_and_reserved_as_units():
    cp = _one("claude-sonnet-4-5", "grounding: {expected_queries: 3}\n")
    d = cp.decide(feats(grounding="web_search"))
    # $3 / $15 per 1M: 3,000 + 3,750 = $0.00675 (bound 3,000 + 7,500 = $0.0105); 3 searches x $10 / 1,000 = $0.03
    assert (d.estimated_cost, d.upper_bound_cost, d.primary.grounding, d.primary.grounding_units) == (
        Decimal("0.03675"), Decimal("0.0405"), "web_search", 3)
    # no grounding asked: no grounding units reserved
    plain = cp.decide(feats())
    assert (plain.estimated_cost, plain.primary.grounding, plain.primary.grounding_units) == (Decimal("0.00675"), None, 0)


def test_the_gemini_3_free_pool_applies_from_its_first_day():
    cp = _one("gemini-3-pro-preview", "grounding: {expected_queries: 3}\n")
    # tokens 1000 x 2 + 250 x 12 per 1M = $0.005 (bound 2,000 + 6,000 = $0.008)
    # 2026-01-04: search queries not billed yet ($0); 2026-01-05: $14 / 1,000, the 5,000 free a month start that day
    day_before = cp.decide(feats(grounding="google_search", at=dt.date(2026, 1, 4)))
    first_day = cp.decide(feats(grounding="google_search", at=dt.date(2026, 1, 5)))
    assert (day_before.estimated_cost, day_before.upper_bound_cost) == (Decimal("0.005"), Decimal("0.008"))
    assert (first_day.estimated_cost, first_day.upper_bound_cost) == (Decimal("0.005"), Decimal("0.05"))  # bound + 3 x 0.014


def test_a_pool_with_exactly_the_expected_queries_left_covers_them_when_nothing_was_used(tmp_path):
    # A catalog copy whose Gemini 3 search pool grants 3 queries a month (the seeds: 5,000).
    anchor = "  - id: gemini-3-search-monthly\n    kind: google_search\n    unit: search_query\n    period: month\n    free_units: 5000\n"
    root = catalog_copy(tmp_path, ("grounding.yaml", anchor, anchor.replace("5000", "3")))
    cp = _one("gemini-3-pro-preview", "grounding: {expected_queries: 3}\n", catalog=load_catalog(root))
    # nothing used (the pool absent from the snapshot): 3 free >= 3 expected: tokens only, $0.005
    assert cp.decide(feats(grounding="google_search")).estimated_cost == Decimal("0.005")
    # one used: 2 free, 1 paid at $14 / 1,000: $0.019
    assert cp.decide(feats(grounding="google_search"), StateSnapshot(pools={"gemini-3-search-monthly": 1})).estimated_cost == Decimal("0.019")


def test_grounding_not_billed_yet_ranks_with_the_free_pool_tier():
    # 2026-01-04: Gemini 3 search queries are not billed yet ($0, before its pool starts), so with
    # prefer_free_pool it ranks with 2.5 Flash (pool room) and quality decides: Gemini 3 Pro (96.8) first.
    cp = compile_text("version: 1\nprofiles:\n  p: {objective: best_quality, fallbacks: 1, candidates: [{model: gemini-2.5-flash}, {model: gemini-3-pro-preview}]}\n"
                      "default_profile: p\ngrounding: {expected_queries: 3}\n")
    d = cp.decide(feats(grounding="google_search", at=dt.date(2026, 1, 4)))
    # Gemini 3 Pro: 1000 x 2 + 250 x 12 per 1M = $0.005; 2.5 Flash $0.000925
    assert [(c.model, c.estimated_cost) for c in d.choices] == [("gemini-3-pro-preview", Decimal("0.005")), ("gemini-2.5-flash", Decimal("0.000925"))]
    rooms = cp.explain(feats(grounding="google_search", at=dt.date(2026, 1, 4)))["candidates"]
    assert [(c["model"], c["free_pool_room"]) for c in rooms] == [("gemini-3-pro-preview", True), ("gemini-2.5-flash", True)]


def test_explain_measures_a_budget_without_actions_too():
    cp = compile_text("version: 1\nprofiles:\n  p: {candidates: [{model: gemini-2.5-flash}]}\ndefault_profile: p\n"
                      "budgets:\n  - {name: g, scope: global, window: month, limit_usd: \"8\"}\n")
    out = cp.explain(feats(), StateSnapshot(spend={"global": Decimal(2)}))
    # $2 of $8: 25 %
    assert out["budget_status"] == [{"scope": "global|calendar:month@UTC", "budget": "g", "spend_usd": "2", "limit_usd": "8", "utilisation_percent": "25"}]


def test_two_budgets_switching_at_the_same_percent_the_first_listed_wins():
    cp = compile_text("version: 1\nprofiles: {a: {}, b: {}, c: {}}\ndefault_profile: a\nbudgets:\n"
                      "  - {name: g, scope: global, window: month, limit_usd: \"10\", actions: [{at_percent: 80, switch_profile: b}]}\n"
                      "  - {name: t, scope: tenant, window: month, limit_usd: \"10\", actions: [{at_percent: 80, switch_profile: c}]}\n")
    d = cp.decide(feats(tenant="x"), StateSnapshot(spend={"global": Decimal(8), "tenant:x": Decimal(8)}))
    assert (d.rule_profile, d.profile) == ("a", "b")


def test_a_regional_candidate_notes_that_priority_is_global_only():
    from tests.policy.conftest import priced_catalog
    from tests.policy.test_priority_regions import PRIO

    d = compile_text(PRIO, catalog=priced_catalog()).decide(feats(latency_sensitive=True))
    assert (d.fallbacks[0].model, d.fallbacks[0].location, d.fallbacks[0].priority) == ("gemini-2.5-flash-lite", "us-central1", False)
    assert "gemini-2.5-flash-lite: no Priority PayGo on us-central1 (global endpoint only)" in d.notes


def test_best_quality_breaks_a_quality_tie_on_the_expected_cost_not_the_bound(tmp_path):
    # gpt-oss-120b and Gemini 2.0 Flash-Lite share a quality score (arena 1353). A catalog copy gives gpt-oss-120b
    # $0.01 in / $0.50 out per 1M: cheaper than Flash-Lite ($0.075 / $0.30) on the expected cost of the default
    # request (1,000 x 0.01 + 250 x 0.50 = $0.000135 against 75 + 75 = $0.00015) and dearer on the bound
    # (10 + 500 x 0.50 = $0.00026 against 75 + 150 = $0.000225): the expected cost decides.
    anchor = ('      - provenance: {seed: 000_8191c03ed1050dc1.txt, section: "Modèles d\'OpenAI, gpt-oss-120b"}\n'
              '        rates:\n          input: "0.09"\n          output: "0.36"\n')
    root = catalog_copy(tmp_path, ("partners.yaml", anchor, anchor.replace('"0.09"', '"0.01"').replace('"0.36"', '"0.50"')))
    cp = compile_text("version: 1\nprofiles:\n  p: {objective: best_quality, fallbacks: 1, candidates: "
                      "[{model: gemini-2.0-flash-lite}, {model: gpt-oss-120b}]}\ndefault_profile: p\n", catalog=load_catalog(root))
    d = cp.decide(feats())
    assert [(c.model, c.estimated_cost, c.upper_bound_cost) for c in d.choices] == [
        ("gpt-oss-120b", Decimal("0.000135"), Decimal("0.00026")),
        ("gemini-2.0-flash-lite", Decimal("0.00015"), Decimal("0.000225")),
    ]


def _catalog_without_quality(tmp_path, *models: str):
    """A catalog copy in which ``models`` have no quality score (a custom catalog may leave it out)."""
    root = catalog_copy(tmp_path)
    for name in ("gemini.yaml", "partners.yaml"):
        path = root / name
        lines = path.read_text().splitlines(keepends=True)
        current = None
        out = []
        for line in lines:
            if line.startswith("  - id: "):
                current = line.split("id: ", 1)[1].strip()
            if current in models and line.startswith("    quality: "):
                continue
            out.append(line)
        path.write_text("".join(out))
    catalog = load_catalog(root)
    assert all(catalog.get(m).quality is None for m in models)
    return catalog


PT_2_0_FLASH = ("provisioned:\n  mode: first\n  subscriptions:\n"
                "    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n")


def _qpd_order(catalog, models: list[str]) -> list[tuple[str, str]]:
    cands = ", ".join(models)
    cp = compile_text(f"version: 1\n{PT_2_0_FLASH}profiles:\n  p: {{objective: quality_per_dollar, fallbacks: 5, candidates: [{cands}]}}\n"
                      "default_profile: p\n", catalog=catalog)
    return [(c.model, str(c.estimated_cost)) for c in cp.decide(feats()).choices]


def test_quality_per_dollar_ranks_an_unscored_covered_subscription_after_a_scored_paid_candidate(tmp_path):
    # 2.0 Flash without a quality score, its tokens covered by Provisioned Throughput (marginal $0): no quality per
    # dollar to claim, so it ranks with the unscored ones (key 0), after Flash-Lite's 41.2 / $0.00015
    catalog = _catalog_without_quality(tmp_path, "gemini-2.0-flash")
    assert _qpd_order(catalog, ["{model: gemini-2.0-flash, location: us-central1}", "{model: gemini-2.0-flash-lite}"]) == [
        ("gemini-2.0-flash-lite", "0.00015"), ("gemini-2.0-flash", "0")]


def test_quality_per_dollar_ranks_unscored_candidates_by_cost_covered_subscription_first(tmp_path):
    # both unscored: the tie is broken by the expected cost, so the covered subscription ($0) goes before
    # gpt-oss-20b (1000 x 0.07 + 250 x 0.25 per 1M = $0.0001325)
    catalog = _catalog_without_quality(tmp_path, "gemini-2.0-flash", "gpt-oss-20b")
    assert _qpd_order(catalog, ["{model: gpt-oss-20b}", "{model: gemini-2.0-flash, location: us-central1}"]) == [
        ("gemini-2.0-flash", "0"), ("gpt-oss-20b", "0.0001325")]


def test_quality_per_dollar_keeps_the_listed_order_between_two_covered_subscriptions_whatever_their_bounds(tmp_path):
    # A catalog copy with burndown rates for Gemini 3 Flash too (test values, not rates: the seeds give them only
    # for 2.0 Flash). Both candidates' tokens covered by Provisioned Throughput and their grounding by free pools
    # with room: expected $0 each, so both rank first (-inf) and tie; the bounds differ (2.0 Flash's grounded
    # prompt $35 / 1,000 = $0.035; Gemini 3 Flash's 3 search queries x $14 / 1,000 = $0.042), and the tie keeps the
    # policy's order (it is on the expected cost, then the listing), not the bound.
    root = catalog_with_gemini_3_flash_burndown(tmp_path)
    subs = ("provisioned:\n  mode: first\n  subscriptions:\n"
            "    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n"
            "    - {model: gemini-3-flash-preview, region: global, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n"
            "grounding: {expected_queries: 3}\n")
    cp = compile_text(f"version: 1\n{subs}profiles:\n  p: {{objective: quality_per_dollar, fallbacks: 5, candidates: "
                      "[{model: gemini-3-flash-preview, location: global}, {model: gemini-2.0-flash, location: us-central1}]}\n"
                      "default_profile: p\n", catalog=load_catalog(root))
    d = cp.decide(feats(grounding="google_search"))
    assert [(c.model, str(c.estimated_cost), str(c.upper_bound_cost)) for c in d.choices] == [
        ("gemini-3-flash-preview", "0", "0.042"), ("gemini-2.0-flash", "0", "0.035")]
