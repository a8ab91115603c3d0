"""The request path's shortcuts give exactly what the general code gives.

* ``plain_text_tokens``: one pass over plain ``{role, content: str}`` messages equals
  ``estimate_prompt_tokens``, and anything else (parts, names, tool calls, cache marks) is left to the
  general estimator (None);
* ``CompiledPolicy.budget_scopes``: the per-shape cache equals each budget's own ``scope_for``;
* ``StateSnapshot.from_ledger`` fast path: the same spend / pools / ramp as the general constructor;
* ``RequestFeatures`` still refuses bad counts and names after the same name was accepted once;
* ``usage_from_response`` (one read per usage field) equals the general ``_get`` / ``_int`` formula;
* ``from_units`` (remembered Decimals) equals the exact normalized Decimal;
* the request path reads capabilities / cache marks of params only when ``tools``, ``functions`` or
  ``response_format`` is present: without them both readers find nothing.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router._client import _cache_write_ttl
from router._transport import usage as usage_mod
from router._transport.types import ProviderUsage
from router.catalog import default_catalog
from router.errors import RequestError
from router.ledger.types import LedgerSnapshot
from router.policy import RequestFeatures, StateSnapshot, estimate_prompt_tokens
from router.policy.compile import compile_policy
from router.policy.features import plain_text_tokens
from router.policy.units import UNIT_EXP, USD_OF_UNITS, from_units
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


# --- usage mapping, USD of units, the params the capability / cache-mark readers look at -------------------

_get, _int = usage_mod._get, usage_mod._int


def reference_usage_numbers(usage):
    """The general formula (one ``_get`` / ``_int`` per number), as the module had it before the shortcut."""
    prompt = _int(_get(usage, "prompt_tokens"))
    completion = _int(_get(usage, "completion_tokens"))
    ptd = _get(usage, "prompt_tokens_details")
    ctd = _get(usage, "completion_tokens_details")
    reasoning = _int(_get(ctd, "reasoning_tokens")) or _int(_get(usage, "reasoning_tokens"))
    reasoning = min(reasoning, completion) if completion else reasoning
    cached = _int(_get(ptd, "cached_tokens")) or _int(_get(usage, "cache_read_input_tokens"))
    audio = _int(_get(ptd, "audio_tokens"))
    creation = _int(_get(usage, "cache_creation_input_tokens")) or _int(_get(ptd, "cache_creation_tokens"))
    details = _get(ptd, "cache_creation_token_details")
    write_1h = _int(_get(details, "ephemeral_1h_input_tokens"))
    write_5m = _int(_get(details, "ephemeral_5m_input_tokens"))
    if creation:
        write_1h = min(write_1h, creation)
        write_5m = creation - write_1h
    web_searches = _int(_get(_get(usage, "server_tool_use"), "web_search_requests"))
    return {
        "input_tokens": prompt,
        "output_tokens": max(0, completion - reasoning),
        "thinking_tokens": reasoning,
        "cached_input_tokens": cached,
        "audio_input_tokens": audio,
        "cache_write_5m_tokens": write_5m,
        "cache_write_1h_tokens": write_1h,
        "web_searches": web_searches,
    }


def reference_usage_from_response(response):
    numbers = reference_usage_numbers(_get(response, "usage"))
    urls, queries = usage_mod._grounding_counts(usage_mod._grounding_metadata(response))
    return ProviderUsage(**numbers, traffic_type=usage_mod._traffic_type(response), grounding_web_urls=urls, search_queries=queries, complete=True)


number = st.one_of(st.none(), st.integers(-5, 10_000), st.booleans(), st.just("12"), st.just("x"), st.just(3.7))


def shaped(fields):
    """The same fields as a dict or as an object (litellm's Usage is an object)."""
    return st.one_of(st.none(), st.fixed_dictionaries({}, optional=fields), st.builds(lambda d: SimpleNamespace(**d), st.fixed_dictionaries({}, optional=fields)))


details = shaped({"ephemeral_1h_input_tokens": number, "ephemeral_5m_input_tokens": number})
ptd = shaped({"cached_tokens": number, "audio_tokens": number, "cache_creation_tokens": number, "cache_creation_token_details": details})
ctd = shaped({"reasoning_tokens": number})
tool_use = shaped({"web_search_requests": number})
usage_shape = shaped(
    {
        "prompt_tokens": number,
        "completion_tokens": number,
        "prompt_tokens_details": ptd,
        "completion_tokens_details": ctd,
        "reasoning_tokens": number,
        "cache_read_input_tokens": number,
        "cache_creation_input_tokens": number,
        "server_tool_use": tool_use,
    }
)


@settings(max_examples=400, deadline=None)
@given(usage_shape)
def test_usage_numbers_shortcut_equals_the_general_formula(usage):
    assert usage_mod._usage_numbers(usage) == reference_usage_numbers(usage)


grounding = st.one_of(
    st.none(),
    st.just([]),
    st.just({"groundingChunks": [{"web": {"uri": "https://a"}}, {"web": {}}], "webSearchQueries": ["q", "q", "r"]}),
    st.just([{"grounding_chunks": [{"web": {"uri": "https://b"}}], "web_search_queries": ["s"]}]),
)
hidden = st.one_of(
    st.none(),
    st.just("not a mapping"),
    st.fixed_dictionaries(
        {},
        optional={
            "provider_specific_fields": st.one_of(st.none(), st.just({"traffic_type": "ON_DEMAND_PRIORITY"}), st.just({"traffic_type": ""}), st.just("x")),
            "vertex_ai_grounding_metadata": grounding,
        },
    ),
)


@settings(max_examples=300, deadline=None)
@given(usage_shape, hidden, grounding)
def test_usage_from_response_shortcut_equals_the_general_code(usage, hidden_params, metadata):
    response = SimpleNamespace(usage=usage, _hidden_params=hidden_params, vertex_ai_grounding_metadata=metadata)
    assert usage_mod.usage_from_response(response) == reference_usage_from_response(response)
    bare = SimpleNamespace(usage=usage)  # no hidden params, no grounding attribute
    assert usage_mod.usage_from_response(bare) == reference_usage_from_response(bare)


@pytest.mark.litellm
def test_usage_from_a_litellm_response_by_hand():
    litellm = pytest.importorskip("litellm")
    response = litellm.ModelResponse(usage=litellm.Usage(prompt_tokens=120, completion_tokens=40, completion_tokens_details={"reasoning_tokens": 15}, prompt_tokens_details={"cached_tokens": 20}))
    response._hidden_params = {"provider_specific_fields": {"traffic_type": "ON_DEMAND"}}
    got = usage_mod.usage_from_response(response)
    assert got == reference_usage_from_response(response)
    assert (got.input_tokens, got.output_tokens, got.thinking_tokens, got.cached_input_tokens, got.traffic_type) == (120, 25, 15, 20, "ON_DEMAND")


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10**30))
def test_usd_of_units_is_the_exact_normalized_decimal_every_time(units):
    expected = Decimal(units).scaleb(-UNIT_EXP).normalize() if units else Decimal(0)
    for _ in range(2):  # computed, then remembered
        got = from_units(units)
        assert got == expected and str(got) == str(expected)
    assert USD_OF_UNITS[units] == expected
    assert len(USD_OF_UNITS) <= 4097  # bounded


def test_usd_of_units_by_hand():
    assert from_units(10**UNIT_EXP) == Decimal(1) and str(from_units(10**UNIT_EXP)) == "1"
    assert str(from_units(5 * 10 ** (UNIT_EXP - 3))) == "0.005"
    assert from_units(0) == 0


other_params = st.dictionaries(st.sampled_from(["temperature", "top_p", "stop", "seed", "n", "user", "metadata", "extra_headers"]), st.one_of(st.none(), st.integers(), st.text(max_size=5), st.just([{"cache_control": {"type": "ephemeral"}}])), max_size=5)


@settings(max_examples=200, deadline=None)
@given(other_params)
def test_params_without_tools_functions_or_response_format_need_no_capability_and_mark_no_cache(params):
    # the request path skips both readers for plain messages unless one of these three params is present
    assert RequestFeatures.capabilities_from((), params) == frozenset()
    assert _cache_write_ttl((), params) is None


def test_the_three_params_the_readers_look_at():
    assert RequestFeatures.capabilities_from((), {"tools": [{"type": "function"}]}) == {"tools"}
    assert RequestFeatures.capabilities_from((), {"functions": [{"name": "f"}]}) == {"tools"}
    assert RequestFeatures.capabilities_from((), {"response_format": {"type": "json_object"}}) == {"json_output"}
    assert _cache_write_ttl((), {"tools": [{"name": "f", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}) == "1h"


async def test_negative_or_bool_max_tokens_is_still_refused_on_the_request_path(tmp_path):
    from router import Router
    from router.testing import MockTransport

    mock = MockTransport(lightweight=True)
    mock.script("gemini-2.5-flash", usage={"input_tokens": 10, "output_tokens": 5})
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\ncandidates: [{model: gemini-2.5-flash}]\nprofiles: {p: {objective: cheapest}}\ndefault_profile: p\n", encoding="utf-8")
    r = Router(policy=str(path), store="memory://", transport=mock, watch_policy=False)
    try:
        with pytest.raises(RequestError, match="max_tokens: must not be negative"):
            await r.acomplete([{"role": "user", "content": "hi"}], max_tokens=-3)
        with pytest.raises(RequestError, match="max_tokens: must be a whole number of tokens, not bool"):
            await r.acomplete([{"role": "user", "content": "hi"}], max_tokens=False)
        response = await r.acomplete([{"role": "user", "content": "hi"}], max_tokens=7, latency_sensitive=None)
        assert response.routing.cost_usd > 0
        assert await r.store().list_scopes() == []  # no budgets: nothing to book, the refused calls included
    finally:
        await r.aclose()
