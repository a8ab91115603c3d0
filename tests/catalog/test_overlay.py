"""Catalog overlays: the way to add a price the seeds do not give, always with a public source."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from router.catalog import load_catalog
from router.cost import Usage, compute_cost
from router.errors import CatalogError

CATALOG_DIR = Path(__file__).resolve().parents[2] / "price_catalog"
# Test values, not prices: they only check that overlay rates are used exactly as written.
OVERLAY = """\
overlay:
  - model: gemini-2.5-flash
    prices:
      - effective_from: 2026-01-01
        provenance: {source: "https://example.com/operator-price-sheet", section: "test sheet"}
        rates: {priority_input: "0.5", priority_output: "4"}
"""


def test_an_overlay_adds_priority_rates_used_by_the_cost_engine(tmp_path: Path):
    (tmp_path / "overlay.yaml").write_text(OVERLAY)
    catalog = load_catalog(CATALOG_DIR, overlays=[tmp_path / "overlay.yaml"])
    model = catalog.get("gemini-2.5-flash")
    usage = Usage.build(input_tokens=100_000, output_tokens=1_000_000, traffic="on_demand_priority", at=dt.date(2026, 2, 1))
    bill = compute_cost(model, usage)
    assert bill.total == Decimal("4.05")  # 100,000 x 0.5 / 1M + 1M x 4 / 1M
    assert all(line.provenance.startswith("https://example.com/operator-price-sheet") for line in bill.lines)
    # Standard traffic is unchanged: a downgraded priority request bills the seed rates.
    standard = compute_cost(model, Usage.build(input_tokens=100_000, output_tokens=1_000_000, at=dt.date(2026, 2, 1)))
    assert standard.total == Decimal("2.53")  # seed 000: $0.30 in, $2.50 out


def test_an_overlay_price_without_a_public_source_is_refused(tmp_path: Path):
    path = tmp_path / "overlay.yaml"
    path.write_text(OVERLAY.replace('source: "https://example.com/operator-price-sheet", ', ""))
    with pytest.raises(CatalogError) as info:
        load_catalog(CATALOG_DIR, overlays=[path])
    assert f"{path}:5:" in str(info.value) and "provenance.source" in str(info.value)


def test_an_overlay_for_an_unknown_model_names_the_closest(tmp_path: Path):
    path = tmp_path / "overlay.yaml"
    path.write_text(OVERLAY.replace("gemini-2.5-flash", "gemini-2.5-flsh"))
    with pytest.raises(CatalogError) as info:
        load_catalog(CATALOG_DIR, overlays=[path])
    assert "gemini-2.5-flash" in str(info.value) and f"{path}:2:" in str(info.value)


def test_an_overlay_that_overlaps_an_existing_rate_is_refused(tmp_path: Path):
    path = tmp_path / "overlay.yaml"
    path.write_text(OVERLAY.replace("priority_input", "input"))
    with pytest.raises(CatalogError) as info:
        load_catalog(CATALOG_DIR, overlays=[path])
    assert "overlap" in str(info.value)
