"""Catalog lint: the bundled price catalog is complete, dated without overlaps, and sourced."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
import yaml

from router.catalog import default_catalog, load_catalog
from router.catalog.models import KNOWN_DIMENSIONS
from router.errors import CatalogError, UnknownModelError

REPO = Path(__file__).resolve().parents[2]
CATALOG_DIR = REPO / "price_catalog"
SEEDS = {"000_8191c03ed1050dc1.txt", "001_d051b4ad03054c83.txt", "002_fc2fbf5f1659a49d.txt", "003_da2c08c521b0db0e.txt"}
#: A verbatim copy of ../shared/quality-reference.md kept with the catalog (checked against the shared one when present).
QUALITY_REFERENCE = CATALOG_DIR / "quality-reference.md"
SHARED_QUALITY_REFERENCE = REPO.parent / "shared" / "quality-reference.md"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(CATALOG_DIR)


def _raw_price_blocks():
    """Every price block as written in the YAML (rates still as the strings in the file)."""
    for path in sorted(CATALOG_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for model in data.get("models", []) or []:
            for block in model.get("prices", []):
                yield path.name, model["id"], block


def test_every_seed_model_family_is_in_the_catalog(catalog):
    ids = set(catalog.models)
    expected = {
        # seed 000, Gemini
        "gemini-3-pro-preview", "gemini-3-flash-preview", "gemini-2.5-pro", "gemini-2.5-flash",
        "gemini-2.5-flash-lite", "gemini-2.0-flash", "gemini-2.0-flash-lite",
        # seed 001, character-billed
        "gemini-1.5-pro", "gemini-1.5-flash", "gemini-1.0-pro",
        # seed 000, Claude (4.5 family, 4.1, 4, 3.x incl. deprecated)
        "claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-opus-4",
        "claude-sonnet-4", "claude-3-7-sonnet", "claude-3-5-sonnet-v2", "claude-3-5-haiku", "claude-3-opus", "claude-3-haiku",
        # seed 000, partner MaaS
        "deepseek-v3.1", "deepseek-ocr", "minimax-m2", "kimi-k2-thinking", "qwen3-coder-480b",
        "gpt-oss-120b", "gpt-oss-20b", "llama-3.3-70b", "llama-4-maverick", "mistral-medium-3", "codestral-2", "jamba-1.5-large",
    }
    assert expected <= ids, f"missing from the catalog: {sorted(expected - ids)}"
    publishers = {m.publisher for m in catalog.models.values()}
    assert {"google", "anthropic", "deepseek", "minimax", "moonshot", "qwen", "openai", "meta", "mistral", "ai21"} <= publishers


def test_every_model_has_input_and_output_prices_on_every_date_it_is_priced(catalog):
    days = [dt.date(2024, 6, 1), dt.date(2025, 12, 16), dt.date(2025, 12, 17), dt.date(2026, 1, 5), dt.date(2026, 11, 25)]
    for model in catalog.models.values():
        base_in, base_out = ("input_chars", "output_chars") if model.billing_unit == "character" else ("input", "output")
        for day in days:
            assert model.rate(base_in, day) is not None, f"{model.id}: no {base_in} price on {day}"
            assert model.rate(base_out, day) is not None, f"{model.id}: no {base_out} price on {day}"


def test_no_overlapping_date_ranges_for_any_dimension(catalog):
    for model in catalog.models.values():
        by_dimension: dict[str, list[tuple[dt.date, dt.date]]] = {}
        for block in model.prices:
            start = block.effective_from or dt.date.min
            end = block.effective_until or dt.date.max
            assert start < end, f"{model.id}: empty date range {start}..{end}"
            for dimension in block.rates:
                by_dimension.setdefault(dimension, []).append((start, end))
        for dimension, ranges in by_dimension.items():
            ranges.sort()
            for (s1, e1), (s2, e2) in zip(ranges, ranges[1:]):
                assert e1 <= s2, f"{model.id}.{dimension}: {s1}..{e1} overlaps {s2}..{e2}"


def test_every_price_block_names_its_source(catalog):
    for model in catalog.models.values():
        for block in model.prices:
            p = block.provenance
            assert p.section.strip(), f"{model.id}: provenance without a section"
            assert p.seed in SEEDS or (p.source or "").startswith("https://"), f"{model.id}: provenance {p!r} is neither a seed nor a public URL"
        assert model.regions_provenance.section.strip()
    for pool in catalog.pools.values():
        assert pool.provenance.seed in SEEDS, pool.id


def test_every_rate_in_the_yaml_is_a_quoted_decimal_string():
    """Prices are parsed from strings: a bare YAML float (0.1) would already have lost exactness."""
    count = 0
    for filename, model_id, block in _raw_price_blocks():
        for dimension, raw in block["rates"].items():
            assert dimension in KNOWN_DIMENSIONS, f"{filename}:{model_id}: unknown dimension {dimension!r}"
            assert isinstance(raw, str), f"{filename}:{model_id}.{dimension} is {raw!r} ({type(raw).__name__}), quote it"
            try:
                value = Decimal(raw)
            except InvalidOperation:
                pytest.fail(f"{filename}:{model_id}.{dimension}: {raw!r} is not a decimal")
            assert value >= 0 and value.is_finite()
            count += 1
    assert count > 300


def test_no_priority_paygo_rate_without_a_source(catalog):
    """The seeds give no Priority PayGo price: the bundled catalog must not invent one."""
    for model in catalog.models.values():
        for block in model.prices:
            if any(d.startswith(("priority_", "batch_priority_")) for d in block.rates):
                assert block.provenance.source, f"{model.id}: a priority rate needs a public source"


def test_the_bundled_quality_reference_is_the_shared_one():
    if SHARED_QUALITY_REFERENCE.exists():
        assert QUALITY_REFERENCE.read_text() == SHARED_QUALITY_REFERENCE.read_text()


def test_quality_scores_match_the_quality_reference(catalog):
    text = QUALITY_REFERENCE.read_text()
    scored = [m for m in catalog.models.values() if m.quality is not None]
    assert len(scored) >= 20
    for model in scored:
        assert re.search(rf"\b{model.quality.arena_score}\b", text), f"{model.id}: score {model.quality.arena_score} not in the reference"
        assert 0 <= model.quality.score <= 100


def test_aliases_resolve_and_do_not_collide(catalog):
    seen: dict[str, str] = {}
    for model in catalog.models.values():
        for alias in [model.id, *model.aliases]:
            assert alias not in seen or seen[alias] == model.id, f"alias {alias!r} used by {seen.get(alias)} and {model.id}"
            seen[alias] = model.id
            assert catalog.get(alias).id == model.id
    assert catalog.get("claude-sonnet-4-5@20250929").id == "claude-sonnet-4-5"
    assert catalog.get("vertex_ai/gemini-2.5-pro").id == "gemini-2.5-pro"


def test_unknown_model_suggests_the_closest_ids(catalog):
    with pytest.raises(UnknownModelError) as info:
        catalog.get("gemini-2.5-prp")
    assert "gemini-2.5-pro" in info.value.suggestions


def test_grounding_pools_match_the_seed(catalog):
    pools = catalog.pools
    assert pools["gemini-2x-flash-search-daily"].free_units == 1500
    assert set(pools["gemini-2x-flash-search-daily"].models) == {"gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-flash-lite"}
    assert pools["gemini-2.5-pro-search-daily"].free_units == 10000
    assert pools["gemini-3-search-monthly"].period == "month"
    assert pools["gemini-3-search-monthly"].free_units == 5000
    assert pools["gemini-3-search-monthly"].effective_from == dt.date(2026, 1, 5)
    for pool in pools.values():
        for model_id in pool.models:
            model = catalog.get(model_id)
            assert any(option.pool == pool.id for option in model.grounding.values()), f"{model_id} does not point at {pool.id}"


def test_long_context_boundaries_are_the_seed_ones(catalog):
    assert (catalog.get("gemini-2.5-pro").long_context.threshold_tokens, catalog.get("gemini-2.5-pro").long_context.inclusive) == (200_000, False)
    assert (catalog.get("claude-sonnet-4-5").long_context.threshold_tokens, catalog.get("claude-sonnet-4-5").long_context.inclusive) == (200_000, True)
    assert (catalog.get("gemini-1.5-pro").long_context.threshold_tokens, catalog.get("gemini-1.5-pro").long_context.inclusive) == (128_000, False)


def test_a_malformed_catalog_file_is_a_clear_error_naming_the_file(tmp_path):
    for path in CATALOG_DIR.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "claude.yaml").write_text("models:\n  - id: x\n    prices: [\n")
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    assert "claude.yaml" in str(info.value)
    assert ":3" in str(info.value) or ":4" in str(info.value), "the error names the line"


def test_a_float_price_is_rejected_with_file_and_field(tmp_path):
    source = (CATALOG_DIR / "partners.yaml").read_text()
    (tmp_path / "partners.yaml").write_text(source.replace('input: "0.30"', "input: 0.30", 1))
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path)
    assert "partners.yaml" in str(info.value)


def test_default_catalog_is_the_bundled_one():
    assert set(default_catalog().models) == set(load_catalog(CATALOG_DIR).models)
