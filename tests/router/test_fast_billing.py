"""The request path bills in integers (router/_billing.py) and leaves the itemised lines for whoever reads
them: the total must be exactly the cost engine's, to the last 10**-18 USD, for every model and usage."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router import Router
from router._billing import token_bill_units, units_to_usd
from router._transport import ProviderUsage
from router.catalog import default_catalog
from router.cost import Usage, compute_cost
from router.testing import MockTransport

CATALOG = default_catalog()
TOKEN_MODELS = [m for m in CATALOG if m.billing_unit == "token"]
DAY = dt.date(2026, 6, 1)


def engine_total(model, usage: ProviderUsage, day: dt.date, location: str) -> Decimal:
    fields = {
        "at": day,
        "batch": False,
        "location": location,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "thinking_tokens": usage.thinking_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "audio_input_tokens": usage.audio_input_tokens,
        "cache_write_5m_tokens": usage.cache_write_5m_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
    }
    return compute_cost(model, Usage.build(**fields), CATALOG.pools, check_context_window=False).total  # as the Router bills


usages = st.builds(
    lambda prompt, cached, audio, w5, w1, out, think: ProviderUsage(
        input_tokens=prompt + cached + audio + w5 + w1,
        cached_input_tokens=cached,
        audio_input_tokens=audio,
        cache_write_5m_tokens=w5,
        cache_write_1h_tokens=w1,
        output_tokens=out,
        thinking_tokens=think,
    ),
    st.integers(0, 400_000),
    st.one_of(st.just(0), st.integers(0, 50_000)),
    st.one_of(st.just(0), st.integers(0, 5_000)),
    st.one_of(st.just(0), st.integers(0, 20_000)),
    st.one_of(st.just(0), st.integers(0, 20_000)),
    st.integers(0, 70_000),
    st.one_of(st.just(0), st.integers(0, 30_000)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(usage=usages, index=st.integers(0, len(TOKEN_MODELS) - 1), regional=st.booleans())
def test_integer_bill_is_exactly_the_engines_or_steps_aside(usage, index, regional):
    model = TOKEN_MODELS[index]
    location = next((r for r in model.regions if r != "global"), "global") if regional else "global"
    units = token_bill_units(model, usage, DAY, location)
    try:
        expected = engine_total(model, usage, DAY, location)
    except Exception:  # the engine refuses (no price for a part, ...): the fast path must have stepped aside
        assert units is None
        return
    if units is not None:
        assert units_to_usd(units) == expected
        assert Decimal(units) == expected.scaleb(18)  # not rounded anywhere


def test_every_token_model_with_plain_usage_takes_the_integer_path():
    usage = ProviderUsage(input_tokens=1_000, output_tokens=200, thinking_tokens=50)
    priced = [m for m in TOKEN_MODELS if m.rate("input", DAY) and m.rate("output", DAY)]
    assert len(priced) > 20
    for model in priced:
        units = token_bill_units(model, usage, DAY, "global")
        assert units is not None, model.id
        assert units_to_usd(units) == engine_total(model, usage, DAY, "global"), model.id


def test_hand_computed_gemini_bill():
    # seed 000, Gemini 2.5 Flash: 10,000 x $0.30 + 2,000 cached x $0.03 + (300 + 700 thinking) x $2.50, per 1M tokens
    usage = ProviderUsage(input_tokens=12_000, cached_input_tokens=2_000, output_tokens=300, thinking_tokens=700)
    units = token_bill_units(CATALOG.get("gemini-2.5-flash"), usage, DAY, "global")
    assert units_to_usd(units) == Decimal("0.00556")


@pytest.mark.parametrize(
    "usage, why",
    [
        (ProviderUsage(input_tokens=10, cached_input_tokens=20, output_tokens=1), "parts exceed the prompt"),
        (ProviderUsage(input_tokens=-1, output_tokens=1), "negative"),
        (ProviderUsage(input_tokens=1.5, output_tokens=1), "not a whole number"),  # type: ignore[arg-type]
    ],
)
def test_usage_the_engine_refuses_is_left_to_the_engine(usage, why):
    assert token_bill_units(CATALOG.get("gemini-2.5-flash"), usage, DAY, "global") is None, why


def test_unverified_regional_prices_and_character_models_go_to_the_engine():
    usage = ProviderUsage(input_tokens=100, output_tokens=10)
    claude = CATALOG.get("claude-sonnet-4-5")
    assert not claude.regional_prices_verified
    assert token_bill_units(claude, usage, DAY, "us-east5") is None  # the engine warns about regional premiums
    assert token_bill_units(claude, usage, DAY, "global") is not None
    assert token_bill_units(CATALOG.get("gemini-1.5-flash"), usage, DAY, "global") is None  # billed by characters


POLICY = """version: 1
candidates: [{model: gemini-2.5-flash}]
profiles:
  p: {objective: cheapest}
default_profile: p
"""


async def test_routed_call_bills_the_integer_total_and_builds_lines_on_demand(tmp_path):
    mock = MockTransport(lightweight=True)
    mock.script("gemini-2.5-flash", usage={"input_tokens": 12_000, "cached_input_tokens": 2_000, "output_tokens": 300, "thinking_tokens": 700})
    path = tmp_path / "p.yaml"
    path.write_text(POLICY, encoding="utf-8")
    r = Router(policy=str(path), store="memory://", transport=mock, watch_policy=False)
    response = await r.acomplete([{"role": "user", "content": "hi"}], max_tokens=2_000, prompt_tokens=12_000)
    record = response.routing
    assert record.cost_usd == Decimal("0.00556")
    assert record._cost_lines is None  # not built yet: nobody asked
    lines = {line["dimension"]: line["amount_usd"] for line in record.cost_lines}
    assert lines == {"input": "0.003", "cached_input": "0.00006", "output": "0.0025"}
    assert record.usage["input_tokens"] == 12_000 and record.usage["thinking_tokens"] == 700
    assert record.to_dict()["cost_lines"] == record.cost_lines
    await r.aclose()


def test_two_catalogs_in_one_process_bill_the_same_model_at_their_own_rates(tmp_path):
    """The integer path caches each model's rates per day. A custom catalog (here a copy where Gemini 2.0 Flash's
    input / output rates are $0.30 / $1.20 per 1M instead of the seed's $0.15 / $0.60) used after the bundled one in
    the same process, on the same day, bills its own rates: 1,000 x $0.30 + 10 x $1.20 per 1M = $0.000312 (the
    bundled catalog: 1,000 x $0.15 + 10 x $0.60 = $0.000156). Keyed by the model id, the cache answered the first
    catalog's rates to the second."""
    from router.catalog import load_catalog
    from tests.catalog_copies import catalog_copy

    root = catalog_copy(tmp_path, ("gemini.yaml", '          input: "0.15"\n          batch_input: "0.075"\n          audio_input: "1.00"\n'
                                   '          batch_audio_input: "0.50"\n          output: "0.60"\n',
                                   '          input: "0.30"\n          batch_input: "0.075"\n          audio_input: "1.00"\n'
                                   '          batch_audio_input: "0.50"\n          output: "1.20"\n'))
    usage = ProviderUsage(input_tokens=1_000, output_tokens=10)
    bundled = token_bill_units(CATALOG.get("gemini-2.0-flash"), usage, DAY, "global")
    custom = token_bill_units(load_catalog(root).get("gemini-2.0-flash"), usage, DAY, "global")
    assert (units_to_usd(bundled), units_to_usd(custom)) == (Decimal("0.000156"), Decimal("0.000312"))
