"""Integer cost units of the decision engine.

An integer cost ``u`` means ``u * 10**-18`` USD (token rates are stored as USD per 1M tokens times
``10**12``, which is exact for every rate in the catalog). ``Decimal`` only at the edges.
"""

from __future__ import annotations

from decimal import Decimal

RATE_SCALE = 10**12  # token rates: USD per 1M tokens * RATE_SCALE
UNIT_EXP = 18  # cost units are 10**-18 USD
UNIT = Decimal(1).scaleb(-UNIT_EXP)
GROUNDING_SCALE = 10**15  # grounding: USD per 1,000 units -> per unit in 10**-18 USD


def to_units(value: Decimal) -> int:
    """USD Decimal -> integer cost units (rounded up)."""
    scaled = value.scaleb(UNIT_EXP)
    as_int = int(scaled)
    return as_int if as_int == scaled else as_int + 1


#: Recent ``from_units`` results (bounded): a request's estimates repeat across requests of the same shape.
USD_OF_UNITS: dict[int, Decimal] = {}


def from_units(units: int) -> Decimal:
    """Integer cost units -> USD Decimal, exact and normalized (remembered in :data:`USD_OF_UNITS`)."""
    try:
        return USD_OF_UNITS[units]
    except (KeyError, TypeError):
        pass
    value = Decimal(units).scaleb(-UNIT_EXP).normalize() if units else Decimal(0)
    if type(units) is int:
        if len(USD_OF_UNITS) > 4096:
            USD_OF_UNITS.clear()
        USD_OF_UNITS[units] = value
    return value


__all__ = ["GROUNDING_SCALE", "RATE_SCALE", "UNIT", "UNIT_EXP", "from_units", "to_units"]
