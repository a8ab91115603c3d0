"""Provisioned Throughput planning: GSUs needed for a steady load, and the price of each commitment term."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from router.catalog.loader import Catalog
from router.errors import CatalogError, PriceNotAvailableError, UsageError


@dataclass(frozen=True)
class GsuPlan:
    """GSUs (rounded up to the purchase increment), the exact need, and USD per term (1w per week, others per month)."""

    model: str
    gsu: int
    exact_gsu: Decimal
    burndown_tokens_per_second: Decimal
    price_usd: dict[str, Decimal]
    provenance: str


def plan_gsu(
    catalog: Catalog,
    model: str,
    rps: Decimal,
    input_tokens: int,
    output_tokens: int,
    audio_input_tokens: int = 0,
) -> GsuPlan:
    """Plan Provisioned Throughput: ``input_tokens`` is the whole prompt, of which ``audio_input_tokens`` are audio."""
    model_id = catalog.resolve(model)
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens), ("audio_input_tokens", audio_input_tokens)):
        if value < 0:
            raise UsageError(name, "must not be negative")
    if rps <= 0:
        raise UsageError("rps", "must be positive")
    if audio_input_tokens > input_tokens:
        raise UsageError("audio_input_tokens", f"exceeds input_tokens ({input_tokens})")
    pt = catalog.provisioned
    if pt is None:
        raise CatalogError("the catalog has no Provisioned Throughput data")
    rates = next((b for b in pt.burndown if b.model == model_id), None)
    if rates is None:
        known = ", ".join(b.model for b in pt.burndown)
        raise PriceNotAvailableError(model_id, "provisioned_throughput.burndown", f"the seeds give burndown rates only for: {known}")
    text = input_tokens - audio_input_tokens
    per_request = text * rates.input_text + audio_input_tokens * rates.input_audio + output_tokens * rates.output_text
    per_second = Decimal(per_request) * rps
    exact = per_second / rates.tokens_per_second_per_gsu
    increments = (exact / rates.min_gsu_increment).to_integral_value(rounding=ROUND_CEILING)
    gsu = max(int(increments) * rates.min_gsu_increment, rates.min_gsu_increment)
    prices = {term: t.price_usd * gsu for term, t in pt.terms.items()}
    prov = f"{rates.provenance.seed}: {rates.provenance.section}; {pt.terms_provenance.section}"
    return GsuPlan(model_id, gsu, exact, per_second, prices, prov)
