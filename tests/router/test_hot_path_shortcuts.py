"""The request path's shortcuts give exactly what the general code gives.

* ``plain_text_tokens``: one pass over plain ``{role, content: str}`` messages equals
  ``estimate_prompt_tokens``, and anything else (parts, names, tool calls, cache marks) is left to the
  general estimator (None);
* ``CompiledPolicy.budget_scopes``: the per-shape cache equals each budget's own ``scope_for``;
* ``StateSnapshot.from_ledger`` fast path: the same spend / pools / ramp as the general constructor;
* ``RequestFeatures`` still refuses bad counts and names after the same name was accepted once.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.catalog import default_catalog
from router.errors import RequestError
from router.ledger.types import LedgerSnapshot
from router.policy import RequestFeatures, StateSnapshot, estimate_prompt_tokens
from router.policy.compile import compile_policy
from router.policy.features import plain_text_tokens
from router.policy.validate import load_policy

text = st.text(max_size=60)
plain_message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]), "content": text})
other_message = st.one_of(
    st.fixed_dictionaries({"role": st.just("user"), "content": text, "name": st.text(min_size=1, max_size=8)}),
    st.fixed_dictionaries({"role": st.just("user"), "content": st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": text}), max_size=3)}),
    st.fixed_dictionaries({"role": st.just("user"), "content": text, "cache_control": st.just({"type": "ephemeral"})}),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": st.none(), "tool_calls": st.just([{"id": "1", "function": {"name": "f", "arguments": "{}"}}])}),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(plain_message, max_size=6))
def test_plain_messages_one_pass_equals_the_estimator(messages):
    assert plain_text_tokens(messages) == estimate_prompt_tokens(messages)


@settings(max_examples=200, deadline=None)
@given(st.lists(plain_message, max_size=3), other_message, st.lists(plain_message, max_size=3))
def test_any_other_message_is_left_to_the_general_estimator(before, other, after):
    assert plain_text_tokens([*before, other, *after]) is None


def test_worked_example_by_hand():
    # 3 (reply) + per message 4 + ceil(chars / 4): "Hello!" 6 chars -> 2; 9 chars -> 3; "" -> 0
    messages = [{"role": "system", "content": "Hello!"}, {"role": "user", "content": "What now?"}, {"role": "user", "content": ""}]
    assert plain_text_tokens(messages) == 3 + (4 + 2) + (4 + 3) + (4 + 0)
    assert plain_text_tokens([]) == 0


POLICY = """version: 1
candidates:
  - {model: gemini-2.5-flash}
profiles:
  default: {objective: cheapest}
default_profile: default
budgets:
  - {name: g, scope: global, window: calendar:day@UTC, limit_usd: "10"}
  - {name: t, scope: tenant, window: rolling:24h, limit_usd: "5"}
  - {name: acme, scope: tenant:acme, window: rolling:1h, limit_usd: "1"}
  - {name: app, scope: app, window: calendar:month@Europe/Paris, limit_usd: "3"}
  - {name: team, scope: tag:team, window: rolling:7d, limit_usd: "2"}
  - {name: ml, scope: tag:team=ml, window: rolling:30d, limit_usd: "4"}
"""


@pytest.fixture(scope="module")
def compiled():
    catalog = default_catalog()
    return compile_policy(load_policy(POLICY, catalog), catalog)


names = st.one_of(st.none(), st.sampled_from(["acme", "globex", "ml", "a/b"]))


@settings(max_examples=200, deadline=None)
@given(names, names, st.dictionaries(st.sampled_from(["team", "env"]), st.sampled_from(["ml", "web", "x y"]), max_size=2))
def test_budget_scopes_cache_equals_each_budgets_scope_for(compiled, tenant, app, tags):
    features = RequestFeatures(tenant=tenant, app=app, tags=tags)
    expected = [(b, b.scope_for(features)) for b in compiled.budgets if b.scope_for(features) is not None]
    for _ in range(2):  # computed, then from the cache
        shape = compiled.budget_scopes(features)
        assert list(shape.pairs) == expected
        assert compiled.budgets_for(features) == [scope for _, scope in expected]


def test_budget_scopes_by_hand(compiled):
    features = RequestFeatures(tenant="acme", tags={"team": "ml"})
    assert [s.id for s in compiled.budgets_for(features)] == [
        "global|calendar:day@UTC",
        "tenant:acme|rolling:24h",
        "tenant:acme|rolling:1h",
        "tag:team=ml|rolling:7d",
        "tag:team=ml|rolling:30d",
    ]
    other = RequestFeatures(tenant="globex", tags={"team": "web"})
    assert [s.id for s in compiled.budgets_for(other)] == ["global|calendar:day@UTC", "tenant:globex|rolling:24h", "tag:team=web|rolling:7d"]
    scopes = compiled.budgets_for(features)
    scopes.append("mutated")  # the caller's copy: the cache is not touched
    assert len(compiled.budgets_for(features)) == 5


def test_from_ledger_fast_path_equals_the_general_constructor(compiled):
    features = RequestFeatures(tenant="acme")
    budgets = compiled.budgets_for(features)
    snap = LedgerSnapshot(spend={budgets[0].id: Decimal("1.5"), "other|rolling:1h": Decimal("0.000000001")})
    fast = StateSnapshot.from_ledger(snap, budgets)
    general = StateSnapshot(dict(snap.spend, **{b.id: Decimal(0) for b in budgets[1:]}))
    assert fast.spend == general.spend and fast.pools == general.pools == {} and fast.ramp == general.ramp == {} and fast.pt == {}
    assert fast.now is not None
    assert fast.spend_for(budgets[0].id, budgets[0].scope) == Decimal("1.5")
    assert snap.spend == {budgets[0].id: Decimal("1.5"), "other|rolling:1h": Decimal("0.000000001")}  # not mutated


def test_features_still_refuse_bad_values_after_a_good_name():
    RequestFeatures(tenant="acme")
    with pytest.raises(RequestError, match="app"):
        RequestFeatures(tenant="acme", app="")
    with pytest.raises(RequestError, match="max_tokens"):
        RequestFeatures(tenant="acme", max_tokens=True)
    with pytest.raises(RequestError, match="prompt_tokens"):
        RequestFeatures(tenant="acme", prompt_tokens=-1)
    with pytest.raises(RequestError, match="tenant"):
        RequestFeatures(tenant="x" * 129)
    with pytest.raises(RequestError, match="tags"):
        RequestFeatures(tags={"team": ""})
    assert RequestFeatures(max_tokens=5, prompt_tokens=0).max_tokens == 5
