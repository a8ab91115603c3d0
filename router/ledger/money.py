"""Money at the ledger's edge: ``Decimal`` USD outside, integer nano-USD inside.

Every counter (memory or Redis) holds integers of nano-USD (1e-9 USD), so sums are exact and no float
ever touches money. Amounts finer than a nano-USD (the cost engine can produce e.g. 4.6875e-12 USD for one
cached token) are rounded *up* (``ROUND_CEILING``) when they enter the ledger: the ledger can over-count a
request by less than one nano-USD, never under-count it, and a cap is never exceeded by rounding.

Redis runs Lua with IEEE doubles, which are exact for integers up to 2**53; so one counter (a budget's
spend plus holds) is exact up to :data:`MAX_USD` (about 9 million USD). Limits and amounts above it are
refused with ``ValueError``.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

NANO = Decimal("1e-9")
#: Largest integer exactly representable in a Lua (double) number.
MAX_NANO = 2**53 - 1
#: Largest USD amount a single counter can hold exactly.
MAX_USD = Decimal(MAX_NANO).scaleb(-9)


def to_nano(amount: Decimal | int | str, *, what: str = "amount") -> int:
    """USD (Decimal, int or decimal string; never float or bool) to integer nano-USD, rounded up; refuses
    negative, non-finite and out-of-range values."""
    if type(amount) is Decimal and amount.is_finite() and amount >= 0:  # the request path: a plain Decimal
        scaled = amount.scaleb(9)
        nano = int(scaled)
        if nano != scaled:
            nano += 1  # rounded up (ROUND_CEILING) for a non-negative amount
        if nano <= MAX_NANO:
            return nano
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int, str)):
        raise TypeError(f"{what}: money must be a Decimal (or int / decimal string), not {type(amount).__name__} ({amount!r})")
    if isinstance(amount, str):
        try:
            amount = Decimal(amount.strip())
        except ArithmeticError:
            raise ValueError(f"{what}: {amount!r} is not a decimal amount") from None
    value = amount if isinstance(amount, Decimal) else Decimal(amount)
    if not value.is_finite():
        raise ValueError(f"{what}: {value} is not a finite amount")
    if value < 0:
        raise ValueError(f"{what}: {value} is negative")
    nano = int(value.scaleb(9).to_integral_value(rounding=ROUND_CEILING))
    if nano > MAX_NANO:
        raise ValueError(f"{what}: {value} USD exceeds the ledger's exact range ({MAX_USD} USD)")
    return nano


def from_nano(nano: int | str | bytes) -> Decimal:
    """Integer nano-USD (as stored) to a Decimal USD amount, exactly."""
    return Decimal(int(nano)).scaleb(-9)
