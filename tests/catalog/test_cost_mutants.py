"""Cost engine: the itemised bill (dimension, quantity, unit, rate, amount, source) and every usage error naming
its field, checked line by line (issue 12: the survivors of the full mutmut run of router/cost.py).

Rates by hand from the seeds (USD per 1M tokens; Gemini 1.x per 1K characters; grounding per 1K units):
seed 000 "Gemini 2.5" table, Gemini 2.5 Flash (the same figures in both tiers): input 0.30, cached input 0.030,
audio input 1, cached audio input 0.100, output 2.50, image output 30; Gemini 2.5 Pro: input 1.25 / 2.5, output
10 / 15, context-cache storage 4.5 per 1M token-hours; grounding (Gemini 2.5): Google Search $35, Maps $25,
your data $2.50 per 1,000; 1,500 free grounded prompts a day shared by the 2.x Flash models.
Claude Sonnet 4.5 (>= 200K tokens: every token long): input 6, output 22.50, cache write 5 min 7.50, 1 h 12; web
search $10 per 1,000. Gemini 3 Pro preview: search queries $14 per 1,000 beyond 5,000 free a month.
Gemini 1.5 Flash per 1K characters: input 0.00001875, cached input 0.0000046875, output 0.000075, cache storage
0.00025 per 1K character-hours (seed 001); Google Search $35 per 1,000 (no free pool).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from decimal import Decimal

import pytest

from router.catalog import default_catalog
from router.cost import Usage, compute_cost
from router.errors import PriceNotAvailableError, UsageError

DAY = dt.date(2026, 11, 2)
D = Decimal
G25 = "000_8191c03ed1050dc1.txt: Gemini 2.5 table"


@pytest.fixture(scope="module")
def catalog():
    return default_catalog()


def bill(catalog, model: str, pools: bool = False, **usage):
    usage.setdefault("at", DAY)
    return compute_cost(catalog.get(model), Usage(**usage), catalog.pools if pools else None)


def lines(breakdown) -> list[tuple[str, Decimal, Decimal, str, Decimal, Decimal]]:
    return [(x.dimension, x.quantity, x.per, x.unit, x.rate, x.amount) for x in breakdown.lines]


# ------------------------------------------------------------------ every usage error names its field
USAGE_ERRORS = [
    ("gemini-2.5-flash", {"input_tokens": 10, "cache_storage_token_hours": D(-1)}, "cache_storage_token_hours", "must not be negative"),
    ("gemini-1.5-flash", {"input_chars": 10, "cache_storage_char_hours": D(-1)}, "cache_storage_char_hours", "must not be negative"),
    ("claude-sonnet-4-5", {"input_tokens": 100, "cache_write_5m_tokens": 60, "cache_write_1h_tokens": 60}, "input_tokens",
     "cached + audio + cache-write tokens (120) exceed the prompt's input tokens (100)"),
    ("gemini-2.5-flash", {"input_tokens": 100, "cached_audio_input_tokens": 60, "cache_write_5m_tokens": 60}, "input_tokens",
     "cached + audio + cache-write tokens (120) exceed the prompt's input tokens (100)"),
    ("gemini-2.5-pro", {"input_tokens": 10, "cache_storage_char_hours": D(1)}, "cache_storage_char_hours", "gemini-2.5-pro is billed by tokens, not characters"),
    ("gemini-1.5-flash", {"input_chars": 10, "cache_storage_token_hours": D(1)}, "cache_storage_token_hours",
     "gemini-1.5-flash is billed by characters, not tokens"),
    ("gemini-2.5-flash", {"input_tokens": 10, "output_chars": 40}, "input_chars", "gemini-2.5-flash is billed by tokens, not characters"),
    ("gemini-2.5-flash", {"input_tokens": 10, "search_queries": 2}, "grounded_prompts",
     "gemini-2.5-flash bills google_search per grounded prompt: pass grounded prompts"),
    ("gemini-3-pro-preview", {"input_tokens": 10, "grounded_prompts": 1}, "search_queries",
     "gemini-3-pro-preview bills google_search per search query: pass search queries"),
]


@pytest.mark.parametrize(("model", "usage", "field", "message"), USAGE_ERRORS, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(USAGE_ERRORS)])
def test_a_usage_error_names_its_field_and_says_why(catalog, model, usage, field, message):
    with pytest.raises(UsageError) as info:
        bill(catalog, model, **usage)
    assert info.value.field == field
    assert str(info.value) == f"{field}: {message}"


MISSING_PRICES = [
    ("claude-sonnet-4-5", {"input_tokens": 10, "grounded_prompts": 1, "grounding_kind": "google_maps"}, "grounding_google_maps",
     "claude-sonnet-4-5 has no google_maps grounding"),
    ("gemini-2.5-flash", {"input_tokens": 10, "grounded_prompts": 1, "grounding_kind": "made_up"}, "made_up",
     "gemini-2.5-flash has no made_up grounding"),
    ("gemini-2.5-flash", {"input_tokens": 10, "traffic": "on_demand_priority"}, "priority_input",
     "on 2026-11-02; the seeds give no Priority PayGo rates: add them in a catalog overlay with provenance"),
]


@pytest.mark.parametrize(("model", "usage", "dimension", "detail"), MISSING_PRICES, ids=[c[2] for c in MISSING_PRICES])
def test_a_missing_price_names_the_model_and_the_dimension(catalog, model, usage, dimension, detail):
    with pytest.raises(PriceNotAvailableError) as info:
        bill(catalog, model, **usage)
    assert (info.value.model, info.value.dimension) == (model, dimension)
    assert str(info.value) == f"no price for {dimension!r} of {model!r} in the catalog ({detail})"


# ------------------------------------------------------------------ itemised token and character bills
def test_every_token_dimension_is_itemised_at_the_long_tier(catalog):
    # 300,000 input tokens (> 200K: long): 20,000 cached, 100,000 audio, 10,000 cached audio, 170,000 plain
    b = bill(catalog, "gemini-2.5-flash", input_tokens=300_000, cached_input_tokens=20_000, audio_input_tokens=100_000,
             cached_audio_input_tokens=10_000, output_tokens=1000, image_output_tokens=2000)
    M = D(1_000_000)
    assert b.long_context
    assert lines(b) == [
        ("input_long", D(170_000), M, "tokens", D("0.30"), D("0.051")),
        ("audio_input_long", D(100_000), M, "tokens", D(1), D("0.1")),
        ("cached_input_long", D(20_000), M, "tokens", D("0.030"), D("0.0006")),
        ("cached_audio_input_long", D(10_000), M, "tokens", D("0.100"), D("0.001")),
        ("output_long", D(1000), M, "tokens", D("2.50"), D("0.0025")),
        ("image_output_long", D(2000), M, "tokens", D(30), D("0.06")),
    ]
    assert b.total == D("0.2151")


def test_claude_cache_writes_are_itemised_at_the_long_tier(catalog):
    # exactly 200,000 input tokens (>= 200K: long): 100,000 written to the 5-minute cache, 50,000 to the 1-hour one
    b = bill(catalog, "claude-sonnet-4-5", input_tokens=200_000, cache_write_5m_tokens=100_000, cache_write_1h_tokens=50_000, output_tokens=1000)
    M = D(1_000_000)
    assert lines(b) == [
        ("input_long", D(50_000), M, "tokens", D(6), D("0.3")),
        ("cache_write_5m_long", D(100_000), M, "tokens", D("7.50"), D("0.75")),
        ("cache_write_1h_long", D(50_000), M, "tokens", D(12), D("0.6")),
        ("output_long", D(1000), M, "tokens", D("22.50"), D("0.0225")),
    ]
    assert b.total == D("1.6725")


def test_context_cache_storage_is_billed_per_token_hour(catalog):
    b = bill(catalog, "gemini-2.5-pro", input_tokens=1000, cache_storage_token_hours=D(200_000))
    assert lines(b)[-1] == ("cache_storage_token_hour", D(200_000), D(1_000_000), "token-hours", D("4.5"), D("0.9"))


def test_every_character_dimension_is_itemised(catalog):
    b = bill(catalog, "gemini-1.5-flash", input_chars=1000, cached_input_chars=400, output_chars=2000, cache_storage_char_hours=D(1000))
    K = D(1000)
    assert lines(b) == [
        ("input_chars", D(600), K, "characters", D("0.00001875"), D("0.00001125")),
        ("cached_input_chars", D(400), K, "characters", D("0.0000046875"), D("0.000001875")),
        ("output_chars", D(2000), K, "characters", D("0.000075"), D("0.00015")),
        ("cache_storage_char_hour", D(1000), K, "character-hours", D("0.00025"), D("0.00025")),
    ]


# ------------------------------------------------------------------ grounding lines
def test_grounding_lines_split_the_free_pool_from_the_billed_units(catalog):
    # 4 your-data requests ($2.50 / 1,000) and 3 grounded prompts with 2 left in the daily pool (1,498 of 1,500 used)
    b = bill(catalog, "gemini-2.5-flash", pools=True, input_tokens=10, grounding_requests=4, grounded_prompts=3, grounding_quota_used=1498)
    K = D(1000)
    assert lines(b)[1:] == [
        ("grounding_your_data", D(4), K, "requests", D("2.5"), D("0.01")),
        ("grounding_google_search (free: gemini-2x-flash-search-daily)", D(2), K, "grounded prompts", D(0), D(0)),
        ("grounding_google_search", D(1), K, "grounded prompts", D(35), D("0.035")),
    ]
    assert all(x.provenance.startswith(G25) for x in b.lines[1:])
    assert (b.grounding_free_units, b.grounding_billable_units) == (2, 5)


def test_units_not_granted_by_the_provider_come_from_the_free_quota(catalog):
    # Gemini 1.5 Flash has no free pool: the provider said 1 of the 3 grounded prompts is billable
    b = bill(catalog, "gemini-1.5-flash", input_chars=40, grounded_prompts=3, grounding_billable_units=1)
    K = D(1000)
    assert lines(b)[1:] == [
        ("grounding_google_search (free: free quota)", D(2), K, "grounded prompts", D(0), D(0)),
        ("grounding_google_search", D(1), K, "grounded prompts", D(35), D("0.035")),
    ]
    assert all(x.provenance.startswith("000_8191c03ed1050dc1.txt: Autres modèles Gemini") for x in b.lines[1:])


def test_web_searches_and_your_data_requests_are_billed_in_full_whatever_the_billable_grounding_count(catalog):
    claude = bill(catalog, "claude-sonnet-4-5", input_tokens=10, web_searches=3, grounding_billable_units=1)
    assert lines(claude)[1:] == [("web_search", D(3), D(1000), "web searches", D(10), D("0.03"))]
    flash = bill(catalog, "gemini-2.5-flash", input_tokens=10, grounding_requests=4, grounding_billable_units=0)
    assert lines(flash)[1:] == [("grounding_your_data", D(4), D(1000), "requests", D("2.5"), D("0.01"))]
    assert (flash.grounding_free_units, flash.grounding_billable_units) == (0, 4)


def test_with_both_counts_the_model_s_grounding_unit_decides_which_is_billed(catalog):
    # Gemini 3 bills search queries (3 here, none free: 5,000 used), Gemini 2.5 grounded prompts (1 here)
    g3 = bill(catalog, "gemini-3-pro-preview", pools=True, input_tokens=10, grounded_prompts=1, search_queries=3, grounding_quota_used=5000)
    assert lines(g3)[1:] == [("grounding_google_search", D(3), D(1000), "search queries", D(14), D("0.042"))]
    g25 = bill(catalog, "gemini-2.5-pro", input_tokens=10, grounded_prompts=1, search_queries=3)
    assert lines(g25)[1:] == [("grounding_google_search", D(1), D(1000), "grounded prompts", D(35), D("0.035"))]


@pytest.mark.parametrize(("kind", "dimension", "rate"), [
    (None, "grounding_google_search", D(35)),
    ("google_maps", "grounding_google_maps", D(25)),
    ("web_search", "grounding_google_search", D(35)),  # Claude's tool name on a Gemini count: Google Search
    ("your_data", "grounding_google_search", D(35)),
])
def test_grounded_prompts_are_billed_at_the_kind_reported(catalog, kind, dimension, rate):
    b = bill(catalog, "gemini-2.5-pro", input_tokens=10, grounded_prompts=2, grounding_kind=kind)
    assert lines(b)[1:] == [(dimension, D(2), D(1000), "grounded prompts", rate, 2 * rate / 1000)]


# ------------------------------------------------------------------ warnings and the pricing date
def test_only_a_regional_endpoint_warns_about_unverified_regional_prices(catalog):
    assert bill(catalog, "claude-sonnet-4-5", input_tokens=10, location="global").warnings == ()
    assert bill(catalog, "claude-sonnet-4-5", input_tokens=10, location="us-east5").warnings == (
        "claude-sonnet-4-5 in us-east5: the seed gives one set of prices for its region tabs; "
        "a regional premium, if any, is not in the seeds and is not billed here",
    )


def test_the_default_pricing_date_is_the_utc_date_whatever_the_machine_s_time_zone():
    # a zone where the local date differs from the UTC date right now (UTC-12 before noon UTC, UTC+14 after)
    zone = "Etc/GMT+12" if dt.datetime.now(dt.timezone.utc).hour < 12 else "Etc/GMT-14"
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        utc_day = dt.datetime.now(dt.timezone.utc).date()
        assert dt.datetime.now().date() != utc_day  # the zone does move the local date
        assert Usage(input_tokens=1).at == utc_day
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


# ------------------------------------------------------------------ more usage refusals (second mutmut pass)
MORE_USAGE_ERRORS = [
    # 60 cached + 60 audio tokens are 120 parts of a 100-token prompt: refused, never a negative plain-input line
    ("gemini-2.5-flash", {"input_tokens": 100, "cached_input_tokens": 60, "audio_input_tokens": 60}, "input_tokens",
     "cached + audio + cache-write tokens (120) exceed the prompt's input tokens (100)"),
    ("gemini-1.5-flash", {"input_chars": 10, "cached_input_chars": 20}, "cached_input_chars", "exceeds input_chars (10)"),
    # batch + Priority PayGo is a usage error on `traffic`, not a missing batch_priority_* price
    ("gemini-2.5-flash", {"input_tokens": 10, "batch": True, "traffic": "on_demand_priority"}, "traffic",
     "batch requests cannot use Priority PayGo"),
]


@pytest.mark.parametrize(("model", "usage", "field", "message"), MORE_USAGE_ERRORS, ids=[c[2] for c in MORE_USAGE_ERRORS])
def test_more_usage_refusals_name_their_field_and_say_why(catalog, model, usage, field, message):
    with pytest.raises(UsageError) as info:
        bill(catalog, model, **usage)
    assert info.value.field == field
    assert str(info.value) == f"{field}: {message}"


def test_usage_build_names_the_bad_field_and_says_why():
    with pytest.raises(UsageError) as info:
        Usage.build(input_tokens=-1)
    assert info.value.field == "input_tokens"
    assert str(info.value) == "input_tokens: must not be negative"


def test_grounding_totals_add_every_kind(catalog):
    # Gemini 2.5 Flash: 3 grounded prompts covered by the 1,500-a-day free pool, 2 "your data" requests paid at
    # $2.50 per 1,000 = $0.005 (no free pool for your data).
    b = bill(catalog, "gemini-2.5-flash", pools=True, input_tokens=10, grounded_prompts=3, grounding_requests=2)
    assert b.to_dict()["grounding"] == {"free_units": 3, "billable_units": 2}
    assert ("grounding_your_data", D(2), D(1000), "requests", D("2.5"), D("0.005")) in lines(b)


def test_free_grounding_units_of_every_kind_add_up(catalog):
    # A catalog whose "your data" grounding has its own free pool (a pool of kind your_data is valid catalog data;
    # the seeds have none): 4 your-data requests and 3 grounded prompts, both pools with 1,498 of 1,500 used, so
    # 2 of each are free and 2 requests + 1 prompt paid: $2.50 x 2 / 1,000 + $35 / 1,000 = $0.04.
    from router.catalog.models import GroundingOption

    base = catalog.get("gemini-2.5-flash")
    search_pool = catalog.pools["gemini-2x-flash-search-daily"]
    data_pool = search_pool.model_copy(update={"id": "your-data-daily", "kind": "your_data", "unit": "request"})
    grounding = {**base.grounding, "your_data": GroundingOption(unit="request", pool="your-data-daily")}
    model = base.model_copy(update={"grounding": grounding})
    pools = {search_pool.id: search_pool, data_pool.id: data_pool}
    b = compute_cost(model, Usage(input_tokens=10, grounding_requests=4, grounded_prompts=3, grounding_quota_used=1498, at=DAY), pools)
    assert (b.grounding_free_units, b.grounding_billable_units) == (4, 3)
    assert b.to_dict()["grounding"] == {"free_units": 4, "billable_units": 3}
    assert b.total - b.lines[0].amount == D("0.04")


def _with_pool(catalog, model: str, kind: str, free_units: int):
    """``model`` with its ``kind`` grounding drawn from a free pool of ``free_units`` a day (a custom catalog
    may give one; no bundled web search / your-data option has a pool), and the pools to bill it with."""
    from router.catalog.models import QuotaPoolSpec

    card = catalog.get(model)
    option = card.grounding[kind].model_copy(update={"pool": "custom-pool"})
    spec = QuotaPoolSpec(id="custom-pool", kind=kind, unit=option.unit, period="day", free_units=free_units,
                         models=[model], provenance={"source": "https://example.com/test-only-pool", "section": "test data"})
    return card.model_copy(update={"grounding": {**card.grounding, kind: option}}), {"custom-pool": spec}


@pytest.mark.parametrize(("model", "kind", "field", "rate"), [
    ("claude-sonnet-4-5", "web_search", "web_searches", D(10)),
    ("gemini-2.5-flash", "your_data", "grounding_requests", D("2.5")),
])
def test_a_pooled_web_search_or_your_data_option_bills_what_the_ledger_did_not_grant(catalog, model, kind, field, rate):
    card, pools = _with_pool(catalog, model, kind, free_units=5)
    dimension = "web_search" if kind == "web_search" else "grounding_your_data"
    unit = "web searches" if kind == "web_search" else "requests"
    # 3 units, the ledger's pool granted 1 (billable 2): 1 free line, 2 billed at the rate per 1,000
    b = compute_cost(card, Usage(at=DAY, input_tokens=10, grounding_kind=kind, grounding_billable_units=2, **{field: 3}), pools)
    assert lines(b)[1:] == [
        (f"{dimension} (free: custom-pool)", D(1), D(1000), unit, D(0), D(0)),
        (dimension, D(2), D(1000), unit, rate, rate * 2 / 1000),
    ]
    assert (b.grounding_free_units, b.grounding_billable_units) == (1, 2)
    # the pool used up: every unit billed, although the pool's 5 units would cover the 3 of one request
    spent = compute_cost(card, Usage(at=DAY, input_tokens=10, grounding_kind=kind, grounding_billable_units=3, **{field: 3}), pools)
    assert lines(spent)[1:] == [(dimension, D(3), D(1000), unit, rate, rate * 3 / 1000)]
