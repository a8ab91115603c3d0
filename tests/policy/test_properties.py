"""Property tests (hypothesis): the chosen model satisfies every constraint, no cheaper satisfying
model exists (cost-first), fallbacks are distinct, rejected and eligible partition the candidates."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from router.catalog import default_catalog
from router.cost import Usage, compute_cost
from router.errors import NoEligibleModelError
from router.policy import RequestFeatures, StateSnapshot
from router.policy.decide import decide
from tests.policy.conftest import compile_text

POLICY = """
version: 1
profiles:
  p:
    objective: cheapest
    constraints:
      min_quality: 30
      max_cost_usd: "0.05"
      exclude_lifecycles: [deprecated]
      regions: [global, us, eu]
default_profile: p
budgets:
  - scope: tenant
    window: month
    limit_usd: 10
    actions:
      - {at_percent: 50, max_output_usd_per_mtok: "2.5"}
"""
_CP = {}


def cp():
    if "cp" not in _CP:
        _CP["cp"] = compile_text(POLICY)
    return _CP["cp"]


def region_ok(region: str) -> bool:
    return region == "global" or region.startswith(("us-", "europe-"))


def expected_cost(model, prompt, max_tokens, day):
    out = int((Decimal(max_tokens) * Decimal("0.5")).to_integral_value(rounding=ROUND_CEILING))
    if model.billing_unit == "character":
        usage = Usage.build(input_chars=prompt * 4, output_chars=out * 4, at=day)
    else:
        usage = Usage.build(input_tokens=prompt, output_tokens=out, at=day)
    return compute_cost(model, usage).total


def satisfies(model, f: RequestFeatures, spend: Decimal) -> bool:
    """An independent statement of the policy's constraints."""
    day = f.at
    out_key = "output_chars" if model.billing_unit == "character" else "output"
    out = model.rate(out_key, day)
    inp = model.rate("input_chars" if model.billing_unit == "character" else "input", day)
    if out is None or inp is None:
        return False
    if model.lifecycle == "deprecated" or model.quality is None or model.quality.score < 30:
        return False
    if f.prompt_tokens + f.max_tokens > model.context_window or f.max_tokens > model.max_output_tokens:
        return False
    if not f.required_capabilities <= set(model.capabilities):
        return False
    if not any(region_ok(r) for r in model.regions):
        return False
    if spend * 100 >= 50 * 10:
        per_mtok = out[0] * (4000 if model.billing_unit == "character" else 1)
        if per_mtok > Decimal("2.5"):
            return False
    return expected_cost(model, f.prompt_tokens, f.max_tokens, day) <= Decimal("0.05")


requests = st.builds(
    RequestFeatures,
    tenant=st.sampled_from([None, "acme"]),
    prompt_tokens=st.integers(0, 1_200_000),
    max_tokens=st.integers(1, 70_000),
    required_capabilities=st.frozensets(st.sampled_from(["vision", "tools", "json_output", "audio", "thinking"]), max_size=2),
    at=st.sampled_from([dt.date(2025, 10, 1), dt.date(2026, 11, 2)]),
)


@settings(max_examples=300, deadline=None)
@given(f=requests, spend=st.decimals(0, 12, places=2))
def test_cheapest_satisfies_constraints_and_nothing_cheaper_qualifies(f, spend):
    catalog = default_catalog()
    compiled = cp()
    state = StateSnapshot(spend={"tenant:acme": spend})
    spend_applied = spend if f.tenant else Decimal(0)
    qualifying = {m.id: expected_cost(m, f.prompt_tokens, f.max_tokens, f.at) for m in catalog if satisfies(m, f, spend_applied)}
    try:
        d = decide(compiled, f, state, trace=True)
    except NoEligibleModelError as exc:
        assert qualifying == {}
        assert {m for m, _ in exc.rejected} == set(catalog.models)
        return
    chosen = d.primary
    assert chosen.model in qualifying, (chosen, d.rejected)
    assert chosen.estimated_cost == qualifying[chosen.model]
    assert chosen.estimated_cost == min(qualifying.values())
    assert region_ok(chosen.location) and chosen.location in catalog.get(chosen.model).regions
    # fallbacks: distinct models, each qualifying, in non-decreasing cost order
    models = [c.model for c in d.choices]
    assert len(models) == len(set(models))
    assert all(m in qualifying for m in models)
    costs = [c.estimated_cost for c in d.choices]
    assert costs == sorted(costs)
    # rejected and eligible partition the candidates
    eligible = {row["model"] for row in d.ranked}
    rejected = {m for m, _ in d.rejected}
    assert eligible.isdisjoint(rejected)
    assert eligible | rejected == set(catalog.models)
    assert eligible == set(qualifying)


@settings(max_examples=100, deadline=None)
@given(
    f=requests,
    objective=st.sampled_from(["best_quality", "quality_per_dollar", "{type: weighted, cost_weight: 0.3}"]),
)
def test_every_objective_respects_constraints(f, objective):
    compiled = compile_text(POLICY.replace("objective: cheapest", f"objective: {objective}"))
    catalog = default_catalog()
    try:
        d = compiled.decide(f, StateSnapshot.empty())
    except NoEligibleModelError:
        return
    for choice in d.choices:
        assert satisfies(catalog.get(choice.model), f, Decimal(0))
    assert len({c.model for c in d.choices}) == len(d.choices)
