"""The cost engine against bills computed by hand from the seeds (each row says where its rates are).

Rates quoted in the comments are seed 000 (French pricing page, USD per 1M tokens) unless noted;
seed 001 is the 2024 Korean page (USD per 1K characters for Gemini 1.x).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from router.catalog import default_catalog
from router.cost import Usage, compute_cost
from router.errors import PriceNotAvailableError, UsageError

TODAY = dt.date(2025, 11, 1)


@pytest.fixture(scope="module")
def catalog():
    return default_catalog()


def bill(catalog, model: str, *, pools: bool = True, **fields):
    fields.setdefault("at", TODAY)
    return compute_cost(catalog.get(model), Usage.build(**fields), catalog.pools if pools else None)


# (model, usage fields, expected total USD, what it checks)
HAND_COMPUTED = [
    # Gemini 2.5 Pro: $1.25 in / $10 out <= 200K; $2.50 / $15 > 200K (all tokens of the request).
    ("gemini-2.5-pro", dict(input_tokens=200_000, output_tokens=1_000), "0.26", "200,000 is still the standard tier"),
    ("gemini-2.5-pro", dict(input_tokens=200_001, output_tokens=1_000), "0.5150025", "200,001 bills every token long"),
    ("gemini-2.5-pro", dict(input_tokens=100_000, output_tokens=2_000), "0.145", "plain request"),
    ("gemini-2.5-pro", dict(input_tokens=100_000, cached_input_tokens=60_000, output_tokens=0), "0.0575", "cached part at $0.125"),
    ("gemini-2.5-pro", dict(input_tokens=100_000, output_tokens=100_000, batch=True), "0.5625", "batch: $0.625 / $5"),
    ("gemini-2.5-pro", dict(cache_storage_token_hours=2_000_000), "9", "context-cache storage $4.5 per 1M token-hours"),
    # Gemini 2.5 Flash: $0.30 in, $1 audio, $2.50 out (thinking billed as output), $30 image out.
    ("gemini-2.5-flash", dict(input_tokens=10_000, output_tokens=1_000, thinking_tokens=2_000), "0.0105", "thinking billed as output"),
    ("gemini-2.5-flash", dict(input_tokens=10_000, audio_input_tokens=4_000, output_tokens=0), "0.0058", "audio part at $1"),
    ("gemini-2.5-flash", dict(input_tokens=100, image_output_tokens=1_120), "0.03363", "one 1K image = 1,120 image tokens"),
    # Gemini 2.0 Flash: $0.15 / $0.60, no long tier.
    ("gemini-2.0-flash", dict(input_tokens=900_000, output_tokens=10_000), "0.141", "no long-context tier on 2.0"),
    # Gemini 3 Pro preview: $2 / $12 <= 200K, $4 / $18 > 200K.
    ("gemini-3-pro-preview", dict(input_tokens=200_000, output_tokens=10_000), "0.52", "standard tier"),
    ("gemini-3-pro-preview", dict(input_tokens=200_001, output_tokens=10_000), "0.980004", "long tier"),
    # Claude Sonnet 4.5: $3 / $15 below 200K, $6 / $22.50 from 200K (>=).
    ("claude-sonnet-4-5", dict(input_tokens=199_999, output_tokens=1_000), "0.614997", "199,999 standard"),
    ("claude-sonnet-4-5", dict(input_tokens=200_000, output_tokens=1_000), "1.2225", "200,000 is already long for Sonnet"),
    (
        "claude-sonnet-4-5",
        dict(input_tokens=10_000, cache_write_5m_tokens=2_000, cache_write_1h_tokens=1_000, cached_input_tokens=3_000, output_tokens=0),
        "0.0264",
        "4,000 plain x $3 + 2,000 x $3.75 + 1,000 x $6 + 3,000 x $0.30",
    ),
    ("claude-sonnet-4-5", dict(input_tokens=1_000, web_searches=3), "0.033", "web search $10 per 1,000"),
    # Claude Opus 4.1 (LiteLLM prices it $0 on Vertex): $15 / $75.
    ("claude-opus-4-1", dict(input_tokens=1_000, output_tokens=1_000), "0.09", "Opus 4.1 is not free"),
    ("claude-opus-4-1", dict(input_tokens=100_000, cache_write_5m_tokens=100_000, batch=True), "0.9375", "batch cache write 5 min ($9.375 per 1M)"),
    # MiniMax M2: $0.30 / $1.20 (196,608-token window).
    ("minimax-m2", dict(input_tokens=100_000, output_tokens=100_000), "0.15", "partner MaaS row"),
]


@pytest.mark.parametrize(("model", "usage", "expected", "why"), HAND_COMPUTED)
def test_bill_matches_the_hand_computed_total(catalog, model, usage, expected, why):
    assert bill(catalog, model, **usage).total == Decimal(expected), why


def test_batch_long_context_uses_the_batch_long_rates(catalog):
    # 1,000,000 input > 200K: batch long rates $1.25 in / $7.50 out.
    assert bill(catalog, "gemini-2.5-pro", input_tokens=1_000_000, output_tokens=1_000_000, batch=True).total == Decimal("8.75")


def test_the_total_is_the_exact_sum_of_its_lines(catalog):
    result = bill(catalog, "claude-sonnet-4-5", input_tokens=10_000, cache_write_5m_tokens=2_000, cached_input_tokens=3_000, output_tokens=777)
    assert sum((line.amount for line in result.lines), Decimal(0)) == result.total
    assert {line.dimension for line in result.lines} == {"input", "cache_write_5m", "cached_input", "output"}
    assert all(line.provenance.startswith("000_8191c03ed1050dc1.txt") for line in result.lines)


# --- grounding pools -------------------------------------------------------------------------------


@pytest.mark.parametrize(("used_before", "free", "billable", "total"), [(1498, 1, 0, "0"), (1499, 1, 0, "0"), (1500, 0, 1, "0.035"), (1501, 0, 1, "0.035")])
def test_gemini_2x_flash_grounded_prompt_inside_and_past_the_daily_pool(catalog, used_before, free, billable, total):
    result = bill(catalog, "gemini-2.5-flash", grounded_prompts=1, grounding_quota_used=used_before)
    assert (result.grounding_free_units, result.grounding_billable_units) == (free, billable)
    assert result.total == Decimal(total)  # $35 per 1,000 grounded prompts


def test_gemini_25_pro_has_its_own_10000_pool(catalog):
    assert bill(catalog, "gemini-2.5-pro", grounded_prompts=1, grounding_quota_used=9_999).total == 0
    assert bill(catalog, "gemini-2.5-pro", grounded_prompts=1, grounding_quota_used=10_000).total == Decimal("0.035")


def test_billable_units_from_the_ledger_win_over_the_local_pool_count(catalog):
    result = bill(catalog, "gemini-2.5-flash", grounded_prompts=1, grounding_billable_units=1)
    assert result.total == Decimal("0.035")


def test_gemini_3_search_queries_are_free_before_2026_01_05(catalog):
    before = bill(catalog, "gemini-3-pro-preview", search_queries=3, grounding_quota_used=10_000, at=dt.date(2026, 1, 4))
    assert before.total == 0


def test_gemini_3_search_queries_bill_past_the_monthly_pool_from_2026_01_05(catalog):
    on = bill(catalog, "gemini-3-pro-preview", search_queries=3, grounding_quota_used=4_999, at=dt.date(2026, 1, 5))
    assert (on.grounding_free_units, on.grounding_billable_units) == (1, 2)
    assert on.total == Decimal("0.028")  # 2 x $14 / 1,000


def test_gemini_3_grounding_needs_search_queries_not_prompts(catalog):
    with pytest.raises(UsageError) as info:
        bill(catalog, "gemini-3-flash-preview", grounded_prompts=1, at=dt.date(2026, 2, 1))
    assert info.value.field == "search_queries"


# --- effective dates ---------------------------------------------------------------------------------


def test_deepseek_ocr_is_free_until_2025_12_17(catalog):
    usage = dict(input_tokens=5_000, output_tokens=1_000)  # its window is 8,192 tokens
    assert bill(catalog, "deepseek-ocr", at=dt.date(2025, 12, 16), **usage).total == 0
    assert bill(catalog, "deepseek-ocr", at=dt.date(2025, 12, 17), **usage).total == Decimal("0.0027")  # 5K x $0.30 + 1K x $1.20 per 1M


# --- character-billed Gemini 1.x (seed 001) ---------------------------------------------------------


def test_seed_001_context_cache_example_per_request(catalog):
    """Seed 001's worked example, priced with its table (1.5 Pro output $0.00125 / 1K chars, per the seeds README).

    Cache creation: 250,000 chars x $0.0003125 / 1K = $0.078125; storage: 500,000 char-hours x
    $0.001125 / 1K = $0.5625; each of 20 requests: 200 chars x $0.0003125 + 250,000 cached chars x
    $0.000078125 + 400 output chars x $0.00125 (all per 1K) = $0.02009375.
    """
    creation = bill(catalog, "gemini-1.5-pro", input_chars=250_000)
    storage = bill(catalog, "gemini-1.5-pro", cache_storage_char_hours=500_000)
    request = bill(catalog, "gemini-1.5-pro", input_chars=250_200, cached_input_chars=250_000, output_chars=400)
    assert creation.total == Decimal("0.078125")
    assert storage.total == Decimal("0.5625")
    assert request.total == Decimal("0.02009375")
    # The seed prints $1.0625 with its outdated $0.00375 output price: $0.03 - $0.01 = $0.02 less here.
    assert creation.total + storage.total + 20 * request.total == Decimal("1.0425")


def test_gemini_1x_long_tier_starts_above_128k_tokens(catalog):
    # 512,000 chars ~ 128,000 tokens: standard ($0.00001875 in, $0.000075 out per 1K chars on 1.5 Flash)
    assert bill(catalog, "gemini-1.5-flash", input_chars=512_000, output_chars=4_000).total == Decimal("0.0099")
    # 512,004 chars ~ 128,001 tokens: doubled rates.
    assert bill(catalog, "gemini-1.5-flash", input_chars=512_004, output_chars=4_000).total == Decimal("0.01980015")


def test_token_usage_on_a_character_model_is_refused(catalog):
    with pytest.raises(UsageError):
        bill(catalog, "gemini-1.5-flash", cached_input_tokens=10, input_chars=100)


# --- traffic type ------------------------------------------------------------------------------------


def test_priority_traffic_has_no_seed_price_and_says_so(catalog):
    with pytest.raises(PriceNotAvailableError) as info:
        bill(catalog, "gemini-2.5-flash", input_tokens=1_000, traffic="on_demand_priority")
    assert info.value.dimension == "priority_input"
    assert "Priority PayGo" in str(info.value)


def test_a_downgraded_priority_request_bills_standard(catalog):
    """trafficType ON_DEMAND (downgraded) is billed like any standard request (seed 003)."""
    downgraded = bill(catalog, "gemini-2.5-flash", input_tokens=10_000, output_tokens=1_000, traffic="on_demand")
    assert downgraded.total == Decimal("0.0055")


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (dict(input_tokens=-1), "input_tokens"),
        (dict(output_tokens=1.5), "output_tokens"),
        (dict(input_tokens=10, cached_input_tokens=11), "input_tokens"),
        (dict(cache_storage_token_hours=0.5), "cache_storage_token_hours"),
        (dict(bogus=1), "bogus"),
    ],
)
def test_bad_usage_names_the_field(fields, field):
    with pytest.raises(UsageError) as info:
        Usage.build(**fields)
    assert info.value.field == field


def test_a_claude_4_5_regional_call_warns_that_regional_uplift_is_not_in_the_seeds(catalog):
    result = bill(catalog, "claude-sonnet-4-5", input_tokens=1_000, location="europe-west1")
    assert result.warnings and "regional" in result.warnings[0]
    assert not bill(catalog, "claude-opus-4-1", input_tokens=1_000, location="europe-west1").warnings


@pytest.mark.parametrize(("model", "cached", "cached_long"), [("gemini-2.5-pro", "0.125", "0.250"), ("gemini-3-pro-preview", "0.2", "0.4")])
def test_cached_audio_on_pro_models_uses_the_all_modalities_cached_rate(catalog, model, cached, cached_long):
    """Seed 000's Pro input rows cover text, image, video *and* audio, cached columns included."""
    short = bill(catalog, model, input_tokens=100_000, cached_audio_input_tokens=100_000)
    assert short.total == Decimal(cached) / 10
    long = bill(catalog, model, input_tokens=300_000, cached_audio_input_tokens=300_000)
    assert long.total == Decimal(cached_long) * 3 / 10
