"""Every example policy in policies/ validates, carries the schema line, and decides as described."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.errors import NoEligibleModelError
from router.policy import StateSnapshot, compile_policy, load_policy
from tests.policy.conftest import POLICIES, feats

EXAMPLES = ["cost-first", "quality-first", "balanced", "budget-tiers", "grounding-aware", "eu-only", "demo"]


def compiled(name, catalog):
    return compile_policy(load_policy(POLICIES / f"{name}.yaml", catalog), catalog)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_is_valid_and_decides(name, catalog):
    path = POLICIES / f"{name}.yaml"
    assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=../router/policy_schema.json\n")
    cp = compiled(name, catalog)
    d = cp.decide(feats(tenant="acme"))
    assert d.primary.model in catalog.models
    assert d.policy_version == cp.version


def test_cost_first(catalog):
    cp = compiled("cost-first", catalog)
    d = cp.decide(feats(prompt_tokens=2000, max_tokens=800))
    assert d.primary.model == "gemini-2.0-flash-lite"
    assert len(d.fallbacks) == 2
    assert all(catalog.get(c.model).lifecycle == "ga" for c in d.choices)
    big = cp.decide(feats(prompt_tokens=900_000, max_tokens=800))
    assert all(catalog.get(c.model).context_window >= 900_800 for c in big.choices)


def test_quality_first(catalog):
    cp = compiled("quality-first", catalog)
    d = cp.decide(feats())
    assert d.primary.model == "gemini-3-pro-preview"
    assert [c.model for c in d.fallbacks] == ["gemini-3-flash-preview", "claude-opus-4-5", "gemini-2.5-pro"]
    long = cp.decide(feats(prompt_tokens=500_000, max_tokens=1000))
    assert long.rule == "huge-prompts" and long.profile == "long-context"
    assert catalog.get(long.primary.model).context_window >= 501_000


def test_balanced(catalog, priority_catalog):
    cp = compiled("balanced", catalog)
    fast = cp.decide(feats(latency_sensitive=True))
    assert fast.profile == "interactive" and not fast.primary.priority, "no Priority PayGo without a priority price"
    assert any("no Priority PayGo price" in note for note in fast.notes)
    cp = compiled("balanced", priority_catalog)
    assert cp.decide(feats(tenant="acme")).profile == "premium"
    code = cp.decide(feats(task="code"))
    assert code.profile == "code" and code.primary.model == "qwen3-coder-480b"
    fast = cp.decide(feats(latency_sensitive=True))
    assert fast.profile == "interactive" and fast.primary.priority and fast.primary.location == "global"
    assert cp.ramp_families == ["flash", "flash-lite", "pro"]
    d = cp.decide(feats())
    assert d.profile == "balanced" and d.rule is None


def test_demo_policy_downgrades_as_the_budget_fills(priority_catalog):
    """The demo's mix: acme's 60K-token analytics reports fill its tiny monthly budget and get downgraded."""
    catalog = priority_catalog
    cp = compiled("demo", catalog)
    spend: dict[str, Decimal] = {}
    seen = []
    for i in range(14):
        f = feats(tenant="acme", app="analytics", task="analysis", prompt_tokens=60_000, max_tokens=4_000)
        d = cp.decide(f, StateSnapshot(spend=spend))
        for scope in d.budgets:
            spend[scope.id] = spend.get(scope.id, Decimal(0)) + d.primary.estimated_cost
        seen.append((d.profile, d.primary.model, len(d.actions)))
    assert seen[0] == ("quality", "gemini-2.5-pro", 0)
    switched = [i for i, (profile, _, _) in enumerate(seen) if profile == "cost-first"]
    assert 3 <= switched[0] <= 8, seen
    assert all(profile == "cost-first" for profile, _, _ in seen[switched[0]:])
    assert seen[switched[0]][2] >= 1
    globex = cp.decide(feats(tenant="globex", app="support", task="summarise", prompt_tokens=3_000, max_tokens=400))
    assert (globex.rule, globex.profile) == (None, "cost-first")
    grounded = cp.decide(feats(tenant="globex", grounding="google_search"))
    assert grounded.rule == "grounded" and grounded.primary.grounding == "google_search"
    fast = cp.decide(feats(tenant="acme", latency_sensitive=True, prompt_tokens=300, max_tokens=200))
    assert fast.rule == "latency-sensitive" and fast.primary.priority and fast.primary.model == "gemini-2.5-flash"
    code = cp.decide(feats(tenant="globex", task="code", prompt_tokens=8_000, max_tokens=1_500))
    assert code.primary.model == "claude-sonnet-4-5" and [c.model for c in code.fallbacks] == ["gemini-2.5-flash", "qwen3-coder-480b"]


def test_demo_tenants_have_separate_budgets(catalog):
    cp = compiled("demo", catalog)
    assert [s.id for s in cp.budgets_for(feats(tenant="acme"))] == ["tenant:acme|calendar:month@UTC"]
    assert [s.id for s in cp.budgets_for(feats(tenant="globex"))] == ["tenant:globex|calendar:month@UTC"]


def test_eu_only_rejects_requests_no_eu_model_can_serve(catalog):
    cp = compiled("eu-only", catalog)
    with pytest.raises(NoEligibleModelError):
        cp.decide(feats(prompt_tokens=3_000_000))
