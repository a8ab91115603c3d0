"""Issue 11 item 15: `router cost` expresses every priced dimension of the engine (grounding kinds, cached
audio input, image output, grounding with your data, granted billable units), and refuses contradictory
combinations instead of silently ignoring a flag.

Every expected total is computed by hand from seed 000 (the French pricing page, USD; per 1M tokens, per
1,000 grounded prompts / search queries / requests) and written as a literal; the comment quotes the row."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from router.cli import get_app

G3 = ["--at", "2026-02-01"]  # Gemini 3 grounding is billed from 2026-01-05


def cost(*args: str) -> dict:
    result = CliRunner().invoke(get_app(), ["cost", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def refused(*args: str) -> str:
    result = CliRunner().invoke(get_app(), ["cost", *args])
    assert result.exit_code == 2, result.output
    return result.output


SEED_ROWS = [
    # -- Web Grounding for Enterprise ("Ancrage Web pour entreprise 45$ pour 1 000 requêtes ancrées", no free quota)
    (["gemini-2.5-pro", "--grounded-prompts", "3", "--grounding-kind", "enterprise_web_search"], "0.135"),  # 3 x 45 / 1000
    (["gemini-2.5-flash", "--grounded-prompts", "2000", "--grounding-kind", "enterprise_web_search"], "90"),  # 2000 x 45 / 1000, no pool
    (["gemini-2.5-flash-lite", "--grounded-prompts", "1", "--grounding-kind", "enterprise_web_search"], "0.045"),
    (["gemini-2.0-flash", "--grounded-prompts", "10", "--grounding-kind", "enterprise_web_search"], "0.45"),  # Gemini 2.0 table
    (["gemini-1.5-pro", "--grounded-prompts", "1", "--grounding-kind", "enterprise_web_search"], "0.045"),  # "Autres modèles Gemini" table
    (["gemini-1.0-pro", "--grounded-prompts", "2", "--grounding-kind", "enterprise_web_search"], "0.09"),
    # Gemini 3: "5 000 requêtes de recherche par mois sans frais ... 14$ pour 1 000", shared with Google Search
    (["gemini-3-pro-preview", "--search-queries", "3", "--grounding-kind", "enterprise_web_search", "--grounding-quota-used", "4999", *G3], "0.028"),  # 2 x 14 / 1000
    (["gemini-3-flash-preview", "--search-queries", "1000", "--grounding-kind", "enterprise_web_search", "--grounding-quota-used", "5000", *G3], "14"),
    (["gemini-3-flash-preview", "--search-queries", "3", "--grounding-kind", "enterprise_web_search", "--at", "2026-01-04"], "0"),  # billing starts 2026-01-05
    # -- Grounding with your data ("Ancrage basé sur vos données 2,5 $ par tranche de 1 000 requêtes")
    (["gemini-3-pro-preview", "--grounding-requests", "10"], "0.025"),  # "2,50 $ par ensemble de 1 000 requêtes"
    (["gemini-3-flash-preview", "--grounding-requests", "1"], "0.0025"),
    (["gemini-2.5-pro", "--grounding-requests", "4"], "0.01"),
    (["gemini-2.5-flash", "--grounding-requests", "1000"], "2.5"),
    (["gemini-2.5-flash-lite", "--grounding-requests", "2"], "0.005"),
    (["gemini-2.0-flash", "--grounding-requests", "3", "--at", "2025-06-16"], "0.0075"),  # "à partir du 16 juin 2025"
    (["gemini-1.0-pro", "--grounding-requests", "3", "--at", "2025-06-16"], "0.0075"),
    # -- Google Maps. Gemini 3: 5,000 queries a month free (its own pool), then 14 $ / 1,000 queries
    (["gemini-3-pro-preview", "--search-queries", "7", "--grounding-kind", "google_maps", "--grounding-quota-used", "4998", *G3], "0.07"),  # 5 x 14 / 1000
    (["gemini-3-flash-preview", "--search-queries", "1", "--grounding-kind", "google_maps", *G3], "0"),
    # Gemini 2.x: "25$ pour 1 000 requêtes ancrées" past 1,500 a day (Flash, Flash-Lite) or 10,000 (Pro)
    (["gemini-2.5-flash", "--grounded-prompts", "2000", "--grounding-kind", "google_maps", "--grounding-quota-used", "1000"], "37.5"),  # 1500 x 25 / 1000
    (["gemini-2.5-pro", "--grounded-prompts", "10", "--grounding-kind", "google_maps", "--grounding-quota-used", "9995"], "0.125"),  # 5 x 25 / 1000
    (["gemini-2.5-flash-lite", "--grounded-prompts", "1", "--grounding-kind", "google_maps", "--grounding-quota-used", "1500"], "0.025"),
    (["gemini-2.0-flash", "--grounded-prompts", "4", "--grounding-kind", "google_maps", "--grounding-quota-used", "1500"], "0.1"),
    # -- Cached audio input
    (["gemini-3-pro-preview", "--input-tokens", "1000", "--cached-audio-input-tokens", "400"], "0.00128"),  # 600 x 2 + 400 x 0.2, per 1M
    (["gemini-3-pro-preview", "--input-tokens", "300000", "--cached-audio-input-tokens", "100000"], "0.84"),  # > 200K: 200000 x 4 + 100000 x 0.4
    (["gemini-3-flash-preview", "--input-tokens", "1000", "--cached-audio-input-tokens", "1000"], "0.0001"),  # audio cached 0,1 $
    (["gemini-2.5-pro", "--input-tokens", "1000", "--cached-audio-input-tokens", "1000"], "0.000125"),  # cached 0,125 $ (all modalities)
    (["gemini-2.5-pro", "--input-tokens", "300000", "--cached-audio-input-tokens", "300000"], "0.075"),  # > 200K cached 0,250 $
    (["gemini-2.5-flash", "--input-tokens", "2000", "--audio-input-tokens", "1000", "--cached-audio-input-tokens", "1000"], "0.0011"),  # 1000 x 1 + 1000 x 0.1
    (["gemini-2.5-flash-lite", "--input-tokens", "10000", "--cached-audio-input-tokens", "10000"], "0.0003"),  # audio cached 0,030 $
    # -- Image output
    (["gemini-3-pro-preview", "--input-tokens", "1000", "--image-output-tokens", "1120"], "0.1364"),  # 1000 x 2 + 1120 x 120 (a 1K image: 0,134 $)
    (["gemini-3-pro-preview", "--image-output-tokens", "2000"], "0.24"),  # a 4K image: "0,24 $ par image"
    (["gemini-3-pro-preview", "--image-output-tokens", "1120", "--batch"], "0.0672"),  # batch 60 $
    (["gemini-2.5-flash", "--image-output-tokens", "1290"], "0.0387"),  # "1 024 x 1 024 consomme 1 290 jetons" x 30 $
    (["gemini-2.5-flash", "--image-output-tokens", "1290", "--batch"], "0.01935"),  # batch 15 $
    (["gemini-2.5-flash", "--input-tokens", "300000", "--image-output-tokens", "1000"], "0.12"),  # > 200K: 0,30 $ and 30 $ both tiers
    # -- Billable units as the ledger granted them (the Router's path): 1 of 3 grounded prompts billable at 35 $
    (["gemini-2.5-flash", "--grounded-prompts", "3", "--grounding-billable-units", "1"], "0.035"),
]


@pytest.mark.parametrize(("args", "total"), SEED_ROWS, ids=[" ".join(a) for a, _ in SEED_ROWS])
def test_each_seed_row_bills_as_computed_by_hand(args, total):
    assert cost(*args)["total_usd"] == total


def test_grounding_lines_name_their_kind_pool_and_unit():
    out = cost("gemini-3-pro-preview", "--search-queries", "7", "--grounding-kind", "google_maps", "--grounding-quota-used", "4998", *G3)
    assert [(x["dimension"], x["quantity"], x["unit"], x["amount_usd"]) for x in out["lines"]] == [
        ("grounding_google_maps (free: gemini-3-maps-monthly)", "2", "search queries", "0"),
        ("grounding_google_maps", "5", "search queries", "0.07"),
    ]
    assert out["grounding"] == {"free_units": 2, "billable_units": 5}


def test_an_image_price_the_seed_gives_as_na_is_refused():
    # Gemini 3 Pro image output > 200K input: N/A in the seed.
    assert "image_output_long" in refused("gemini-3-pro-preview", "--input-tokens", "300000", "--image-output-tokens", "10")
    # Grounding with your data on Gemini 2.0 only from 2025-06-16.
    assert "grounding_your_data" in refused("gemini-2.0-flash", "--grounding-requests", "3", "--at", "2025-06-15")


def test_contradictory_grounding_flags_are_refused():
    out = refused("gemini-2.5-flash", "--grounded-prompts", "3", "--search-queries", "5")
    assert "--grounded-prompts and --search-queries: give one" in out and "gemini-2.5-flash bills google_search by --grounded-prompts" in out
    out = refused("gemini-3-flash-preview", "--grounded-prompts", "3", "--search-queries", "5", *G3)
    assert "gemini-3-flash-preview bills google_search by --search-queries" in out
    assert "--grounding-kind: says what --grounded-prompts / --search-queries count" in refused("gemini-2.5-flash", "--grounding-kind", "google_maps")
    assert "bills google_search per grounded prompt" in refused("gemini-2.5-flash", "--search-queries", "5")
    assert "bills google_maps per search query" in refused("gemini-3-pro-preview", "--grounded-prompts", "5", "--grounding-kind", "google_maps", *G3)
    assert "give one" in refused("gemini-2.5-flash", "--grounded-prompts", "3", "--grounding-billable-units", "1", "--grounding-quota-used", "10")
    assert "more than the grounding units given (3)" in refused("gemini-2.5-flash", "--grounded-prompts", "3", "--grounding-billable-units", "4")
    assert "has no google_maps grounding" in refused("claude-sonnet-4-5", "--grounded-prompts", "1", "--grounding-kind", "google_maps")
    assert "your_data" in refused("gemini-2.5-flash", "--grounded-prompts", "1", "--grounding-kind", "your_data")  # not a choice: --grounding-requests
