"""Cost engine at the boundaries where a plausible bug changes the bill (issue 12's surviving mutations).

Every expected bill is written by hand from the seeds (USD per 1M tokens, or per 1K characters for Gemini 1.x):
seed 000 "Gemini 2.5" table, Gemini 2.5 Pro: input 1.25 / > 200K 2.5, cached input 0.125 / 0.250, output 10 / 15;
seed 000 "Autres modèles Gemini", Gemini 1.5 Flash text: input 0.00001875 / > 128K 0.0000375 per 1K characters,
output 0.000075 / 0.00015 per 1K characters.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from router.catalog import default_catalog
from router.cost import Usage, compute_cost
from router.policy.compile import to_units

DAY = dt.date(2026, 11, 2)
D = Decimal


@pytest.fixture(scope="module")
def catalog():
    return default_catalog()


def test_cached_tokens_are_billed_at_the_long_context_rate(catalog):
    # 200,001 input tokens (> 200K: every token long), 100,000 of them cached, 1,000 output:
    # 100,001 * 2.5 / 1M = 0.2500025; 100,000 * 0.250 / 1M = 0.025; 1,000 * 15 / 1M = 0.015
    bill = compute_cost(catalog.get("gemini-2.5-pro"), Usage.build(input_tokens=200_001, cached_input_tokens=100_000, output_tokens=1000, at=DAY))
    assert bill.long_context
    assert {line.dimension: line.amount for line in bill.lines} == {"input_long": D("0.2500025"), "cached_input_long": D("0.025"), "output_long": D("0.015")}
    assert bill.total == D("0.2900025")


def test_exactly_200k_tokens_is_still_the_short_tier(catalog):
    # 100,000 * 1.25 / 1M = 0.125; 100,000 * 0.125 / 1M = 0.0125; 1,000 * 10 / 1M = 0.01
    bill = compute_cost(catalog.get("gemini-2.5-pro"), Usage.build(input_tokens=200_000, cached_input_tokens=100_000, output_tokens=1000, at=DAY))
    assert not bill.long_context and bill.total == D("0.1475")


@pytest.mark.parametrize(
    "chars,long,total",
    [
        # 512,000 characters = 128,000 tokens (4 a token): not > 128K.
        # 512,000 * 0.00001875 / 1K = 0.0096; 1,000 * 0.000075 / 1K = 0.000075
        (512_000, False, D("0.009675")),
        # 512,001 characters round UP to 128,001 tokens: > 128K, every character long.
        # 512,001 * 0.0000375 / 1K = 0.0192000375; 1,000 * 0.00015 / 1K = 0.00015
        (512_001, True, D("0.0193500375")),
    ],
)
def test_character_billed_tier_rounds_characters_up_to_tokens(catalog, chars, long, total):
    bill = compute_cost(catalog.get("gemini-1.5-flash"), Usage.build(input_chars=chars, output_chars=1000, at=DAY))
    assert (bill.long_context, bill.total) == (long, total)


def test_cost_units_round_up():
    # cost units are 10**-18 USD: a cap finer than a unit rounds up, an exact one stays exact
    assert to_units(D("0.05")) == 5 * 10**16
    assert to_units(D("0.0000000000000000011")) == 2
    assert to_units(D("0.000000000000000001")) == 1
    assert to_units(D("0.0000000000000000001")) == 1


def test_the_bill_as_json(catalog):
    # seed 000, Gemini 2.5 Flash per 1M: 800 plain x 0.30 = 0.00024; 200 cached x 0.030 = 0.000006; 100 x 2.50 = 0.00025
    bill = compute_cost(catalog.get("gemini-2.5-flash"), Usage.build(input_tokens=1000, cached_input_tokens=200, output_tokens=100, at=DAY))
    source = "000_8191c03ed1050dc1.txt: Gemini 2.5 table, Gemini 2.5 Flash rows"

    def line(dimension, quantity, rate, amount):
        return {"dimension": dimension, "quantity": quantity, "unit": "tokens", "rate_usd": rate, "per": "1000000", "amount_usd": amount, "provenance": source}

    assert bill.to_dict() == {
        "model": "gemini-2.5-flash",
        "at": "2026-11-02",
        "long_context": False,
        "total_usd": "0.000496",
        "lines": [line("input", "800", "0.3", "0.00024"), line("cached_input", "200", "0.03", "0.000006"), line("output", "100", "2.5", "0.00025")],
        "grounding": {"free_units": 0, "billable_units": 0},
        "warnings": [],
    }


@pytest.mark.parametrize(
    "field,hint",
    [
        ("cached_input_tokens", "pass --cached-input-chars"),
        ("audio_input_tokens", "pass --cached-input-chars"),
        ("cache_write_5m_tokens", "pass --cached-input-chars"),
        ("cache_write_1h_tokens", "pass --cached-input-chars"),
        ("output_tokens", "pass output_chars"),
        ("thinking_tokens", "pass output_chars"),
        ("image_output_tokens", "pass output_chars"),
    ],
)
def test_token_counts_on_a_character_billed_model_name_the_field(catalog, field, hint):
    from router.errors import UsageError

    extra = {"input_tokens": 10} if field in ("cached_input_tokens", "audio_input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens") else {}
    with pytest.raises(UsageError) as info:
        compute_cost(catalog.get("gemini-1.5-flash"), Usage.build(input_chars=40, at=DAY, **extra, **{field: 5}))
    assert info.value.field == field and hint in str(info.value) and "gemini-1.5-flash" in str(info.value)


def test_cached_characters_are_billed_at_the_long_tier(catalog):
    # gemini-1.5-flash, 600,000 characters = 150,000 tokens (> 128K): every character long. Seed 000: input
    # 0.0000375 / 1K; seed 001 (2024 context caching): cached input 0.000009375 / 1K characters (> 128K).
    # 500,000 x 0.0000375 / 1K = 0.01875; 100,000 x 0.000009375 / 1K = 0.0009375
    bill = compute_cost(catalog.get("gemini-1.5-flash"), Usage.build(input_chars=600_000, cached_input_chars=100_000, at=DAY))
    assert {line.dimension: line.amount for line in bill.lines} == {"input_chars_long": D("0.01875"), "cached_input_chars_long": D("0.0009375")}


def test_usage_errors_name_the_field_without_pydantic_noise(catalog):
    from router.errors import UsageError

    with pytest.raises(UsageError) as info:
        compute_cost(catalog.get("gemini-2.5-flash"), Usage.build(input_chars=40, at=DAY))
    assert info.value.field == "input_chars" and "billed by tokens, not characters" in str(info.value)
    with pytest.raises(UsageError) as info:
        Usage.build(input_tokens=-1)
    assert info.value.field == "input_tokens" and "Value error" not in str(info.value)
