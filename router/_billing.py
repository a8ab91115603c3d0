"""The bill of a served attempt in integer units on the request path (``Decimal`` only at the edges).

The cost engine (:func:`router.cost.compute_cost`) builds an itemised :class:`~router.cost.CostBreakdown`
with ``Decimal`` arithmetic, provenance text and validation: right for ``router cost`` and for an
auditor, but most of it is work nobody reads on a request. :func:`token_bill_units` computes the same total
for the common case (a token-billed model, no grounding, standard traffic, prices valid in the
request's region) as integers: each rate becomes an exact integer number of ``10**-18`` USD per token,
cached per model and day, and the bill is a sum of ``tokens * rate``. It returns None whenever it
cannot give exactly the engine's total (a rate that is not an exact number of units, a missing
price, a usage the engine would refuse, a case the engine words a warning for): the caller then asks
the engine. The itemised lines are built by the engine when someone reads them
(:attr:`router._routing.RoutingRecord.cost_lines`).

Exactness: the engine's total is ``sum(tokens * rate / 10**6)`` in ``Decimal`` (exact for these
magnitudes); with ``rate * 10**12`` an integer, ``tokens * rate * 10**12`` is that amount in ``10**-18``
USD, exactly (tests/router/test_fast_billing.py compares the two over every catalog model).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from router._transport.types import ProviderUsage
from router.catalog import CatalogModel

#: A bill in integer units is ``units * 10**-18`` USD.
UNIT_EXP = 18
_PER_TOKEN_EXP = UNIT_EXP - 6  # token rates are USD per 1M tokens

#: Per catalog model object and day: (the model, its rates). Keyed by the object, not the model id: two catalogs
#: in one process (an overlay, a custom catalog, a reloaded one) price the same id differently. The entry holds
#: the model, so its ``id()`` is not reused while the entry exists.
_RATES: dict[tuple[int, dt.date], tuple[CatalogModel, dict[str, int | None]]] = {}


def _unit_rate(model: CatalogModel, dimension: str, day: dt.date) -> int | None:
    """``dimension``'s rate on ``day`` as an exact integer of 10**-18 USD per token (None: not priced, or not exact)."""
    entry = _RATES.get((id(model), day))
    if entry is None:
        if len(_RATES) > 512:  # bounded: one table per model and day in use
            _RATES.clear()
        entry = _RATES[(id(model), day)] = (model, {})
    table = entry[1]
    if dimension in table:
        return table[dimension]
    found = model.rate(dimension, day)
    value: int | None = None
    if found is not None:
        scaled = found[0].scaleb(_PER_TOKEN_EXP)
        if scaled == scaled.to_integral_value() and scaled >= 0:
            value = int(scaled)
    table[dimension] = value
    return value


def token_bill_units(model: CatalogModel, usage: ProviderUsage, day: dt.date, location: str | None) -> int | None:
    """The engine's total for a token-billed model at standard online rates, in 10**-18 USD, or None
    when only the engine can say (see the module doc). Grounding and Priority PayGo are the caller's
    to exclude: this bills tokens only."""
    if model.billing_unit != "token":
        return None
    if location and location != "global" and not model.regional_prices_verified:
        return None  # the engine words a warning for this case
    counts = (
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.audio_input_tokens,
        usage.cache_write_5m_tokens,
        usage.cache_write_1h_tokens,
        usage.output_tokens,
        usage.thinking_tokens,
    )
    for count in counts:
        if type(count) is not int or count < 0:
            return None  # the engine refuses such a usage, with its own message
    prompt, cached, audio, write_5m, write_1h, output, thinking = counts
    produced = output + thinking
    plain = prompt - cached - audio - write_5m - write_1h
    if plain < 0:
        return None
    tier = model.long_context
    suffix = "_long" if tier is not None and tier.applies(prompt) else ""
    total = 0
    for base, quantity in (
        ("input", plain),
        ("audio_input", audio),
        ("cached_input", cached),
        ("cache_write_5m", write_5m),
        ("cache_write_1h", write_1h),
        ("output", produced),
    ):
        if quantity:
            rate = _unit_rate(model, base + suffix, day)
            if rate is None:
                return None
            total += quantity * rate
    return total


def units_to_usd(units: int) -> Decimal:
    """Integer 10**-18 USD -> Decimal USD (exact)."""
    return Decimal(units).scaleb(-UNIT_EXP).normalize() if units else Decimal(0)


__all__ = ["UNIT_EXP", "token_bill_units", "units_to_usd"]
