"""Budgets: scopes, windows, graded actions at exact thresholds, refusal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.errors import RequestRefusedError
from router.ledger.types import Window
from router.policy import StateSnapshot, compile_policy, explain, load_policy
from tests.policy.conftest import POLICIES, compile_text, feats

TIERS = """
version: 1
candidates: [{select: {lifecycle: ga, min_quality: 30}}]
profiles:
  standard: {objective: best_quality}
  cost-first: {objective: cheapest, constraints: {min_quality: 40}}
default_profile: standard
budgets:
  - name: tenant-monthly
    scope: tenant
    window: calendar:month@UTC
    limit_usd: "100"
    actions:
      - {at_percent: 80, switch_profile: cost-first}
      - {at_percent: 100, max_output_usd_per_mtok: "1.00"}
      - {at_percent: 120, refuse: true}
"""
SCOPE = "tenant:acme|calendar:month@UTC"


def at_spend(cp, amount):
    return cp.decide(feats(tenant="acme"), StateSnapshot(spend={SCOPE: Decimal(amount)}))


def test_budgets_for_resolves_tenant_scope():
    cp = compile_text(TIERS)
    (scope,) = cp.budgets_for(feats(tenant="acme"))
    assert scope.scope == "tenant:acme" and scope.window == Window("calendar", "month", "UTC")
    assert scope.limit_usd == Decimal(100) and scope.id == SCOPE
    assert cp.budgets_for(feats(tenant="globex"))[0].scope == "tenant:globex"
    assert cp.budgets_for(feats()) == []  # no tenant: a tenant budget does not apply
    d = cp.decide(feats(tenant="acme"))
    assert d.budgets == [scope]


def test_below_threshold_no_action():
    d = at_spend(compile_text(TIERS), "79.9")
    assert d.profile == "standard" and d.actions == []


def test_at_80_percent_switches_profile():
    d = at_spend(compile_text(TIERS), "80")
    assert d.profile == "cost-first"
    assert d.actions == [f"{SCOPE} at 80% >= 80%: profile cost-first"]


def test_at_100_percent_restricts_output_price(catalog):
    d = at_spend(compile_text(TIERS), "100")
    assert d.profile == "cost-first"
    assert len(d.actions) == 2 and d.actions[1] == f"{SCOPE} at 100% >= 100%: only models <= $1 per 1M output tokens"
    for choice in d.choices:
        assert catalog.get(choice.model).rate("output", feats().at)[0] <= Decimal("1.00")
    assert any("output price" in r for _, r in d.rejected)


def test_just_below_100_percent():
    d = at_spend(compile_text(TIERS), "99.99")
    assert d.profile == "cost-first" and len(d.actions) == 1


def test_refuse_at_120_percent():
    cp = compile_text(TIERS)
    with pytest.raises(RequestRefusedError) as info:
        at_spend(cp, "120")
    assert "tenant:acme|calendar:month@UTC" in str(info.value)
    other = cp.decide(feats(tenant="globex"), StateSnapshot(spend={SCOPE: Decimal(500)}))
    assert other.profile == "standard"  # another tenant's counter


def test_bare_scope_spend_key():
    cp = compile_text(TIERS)
    d = cp.decide(feats(tenant="acme"), StateSnapshot(spend={"tenant:acme": "85"}))
    assert d.profile == "cost-first"
    assert d.actions[0].startswith(f"{SCOPE} at 85% >= 80%")


def test_scopes_app_tag_fixed_global_rolling():
    cp = compile_text(
        """
        version: 1
        profiles: {p: {}, q: {objective: best_quality}}
        default_profile: p
        budgets:
          - {scope: global, window: rolling:24h, limit_usd: 1000}
          - {scope: app, window: 7d, limit_usd: 10}
          - {scope: "tag:team", window: calendar:day@Europe/Paris, limit_usd: 5}
          - {scope: "tenant:acme", window: 1h, limit_usd: 2, actions: [{at_percent: 50, switch_profile: q}]}
          - {scope: "tag:env=prod", window: 30d, limit_usd: 3}
        """
    )
    scopes = cp.budgets_for(feats(tenant="acme", app="search", tags={"team": "ml", "env": "prod"}))
    assert [s.id for s in scopes] == [
        "global|rolling:24h",
        "app:search|rolling:7d",
        "tag:team=ml|calendar:day@Europe/Paris",
        "tenant:acme|rolling:1h",
        "tag:env=prod|rolling:30d",
    ]
    assert [s.id for s in cp.budgets_for(feats(tenant="globex", tags={"env": "dev"}))] == ["global|rolling:24h"]
    d = cp.decide(feats(tenant="acme"), StateSnapshot(spend={"tenant:acme|rolling:1h": 1}))
    assert d.profile == "q"


def test_unsafe_names_are_encoded_reversibly():
    cp = compile_text(TIERS)
    (scope,) = cp.budgets_for(feats(tenant="acme corp/../x"))
    assert scope.scope == "tenant:acme%20corp%2F..%2Fx"


def test_highest_switch_wins_and_tightest_caps():
    cp = compile_text(
        """
        version: 1
        profiles: {a: {}, b: {}, c: {objective: best_quality}}
        default_profile: a
        budgets:
          - scope: global
            window: month
            limit_usd: 10
            actions:
              - {at_percent: 50, switch_profile: b, max_cost_usd: "0.01"}
              - {at_percent: 90, switch_profile: c}
          - scope: tenant
            window: month
            limit_usd: 10
            actions:
              - {at_percent: 60, switch_profile: b, max_cost_usd: "0.001"}
        """
    )
    # Estimates by hand from seed 000, 1,000 prompt + 250 expected output tokens (half of max_tokens 500).
    # Only the global budget's $0.01 cap reached: the best model under it is gemini-3-pro-preview
    # ($2 / $12 per 1M: 2,000 + 3,000 = $0.005).
    loose = cp.decide(feats(tenant="t"), StateSnapshot(spend={"global": 9, "tenant:t": 5}))
    assert (loose.profile, loose.primary.model, loose.primary.estimated_cost) == ("c", "gemini-3-pro-preview", Decimal("0.005"))
    # Both reached: the highest switch (90 % -> c) wins and the tightest cap ($0.001) applies:
    # qwen3-235b-2507 $0.22 / $0.88: 220 + 220 = $0.00044; deepseek-v3.2 $0.56 / $1.68: 560 + 420 = $0.00098;
    # gemini-2.5-flash $0.30 / $2.50: 300 + 625 = $0.000925 (by quality: 68.4, 66.4, 63.2).
    d = cp.decide(feats(tenant="t"), StateSnapshot(spend={"global": 9, "tenant:t": 6}))
    assert d.profile == "c"
    assert len(d.actions) == 3
    assert [(c.model, c.estimated_cost) for c in d.choices] == [
        ("qwen3-235b-2507", Decimal("0.00044")), ("deepseek-v3.2", Decimal("0.00098")), ("gemini-2.5-flash", Decimal("0.000925")),
    ]


def test_budget_tiers_example_policy(catalog):
    import datetime as dt

    cp = compile_policy(load_policy(POLICIES / "budget-tiers.yaml", catalog), catalog)
    tenant = "tenant:acme|calendar:month@UTC"
    # Late on the last day of the month the pace is the spend itself: only the at_percent tiers act.
    end = dt.datetime(2026, 11, 30, 23, tzinfo=dt.timezone.utc)
    assert cp.decide(feats(tenant="acme"), StateSnapshot(spend={tenant: "79.99"}, now=end)).profile == "standard"
    assert cp.decide(feats(tenant="acme"), StateSnapshot(spend={tenant: "80"}, now=end)).profile == "cost-first"
    # On the 11th (a third of November gone), $37 is on pace for $111 of $100: the pacing tier downgrades early.
    eleventh = dt.datetime(2026, 11, 11, tzinfo=dt.timezone.utc)
    assert cp.decide(feats(tenant="acme"), StateSnapshot(spend={tenant: "36"}, now=eleventh)).profile == "standard"
    early = cp.decide(feats(tenant="acme"), StateSnapshot(spend={tenant: "37"}, now=eleventh))
    assert early.profile == "cost-first" and "on pace for 111% by window end >= 110%" in early.actions[0]
    d = cp.decide(feats(tenant="acme"), StateSnapshot(spend={tenant: "100"}))
    assert all(catalog.get(c.model).rate("output", feats().at)[0] <= 1 for c in d.choices)
    with pytest.raises(RequestRefusedError):
        cp.decide(feats(tenant="acme"), StateSnapshot(spend={tenant: "120"}))
    with pytest.raises(RequestRefusedError):
        cp.decide(feats(tenant="acme"), StateSnapshot(spend={"global|calendar:day@America/New_York": "2000"}))
    e = explain(cp, feats(tenant="acme"), StateSnapshot(spend={tenant: "130"}))
    assert e["model"] is None and "refused by budget" in e["refused"]
    assert e["budget_status"][0]["utilisation_percent"] == "130"
