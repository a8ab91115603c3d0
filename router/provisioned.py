"""Provisioned Throughput at request time: burndown-adjusted tokens, subscription capacity, amortised cost.

Numbers from the seeds (``000_8191c03ed1050dc1.txt``, "Débit provisionné"): the GSU price per term
(1 week: $1,200 per week; 1 month: $2,700, 3 months: $2,400, 1 year: $2,000 per month), and for
gemini-2.0-flash the burndown rates (text input 1, audio input 7, text output 4 tokens) and 3,360
burndown-adjusted tokens per second per GSU. Other models need an overlay with a public source.

Assumptions the seeds do not settle (also in the README):

* **Enforcement window.** Vertex checks PT usage over a *quota enforcement period* of up to 30 seconds
  for Gemini models (https://cloud.google.com/vertex-ai/generative-ai/docs/use-provisioned-throughput);
  the router counts burndown-adjusted tokens over a rolling :data:`WINDOW_S` = 30 s window in 1-second
  buckets, so a subscription's capacity per window is ``GSUs x tokens/s per GSU x 30``.
* **Burndown of other token kinds.** Thinking tokens burn as output tokens (they are billed as output);
  cached input burns as text input (the seeds give no separate rate).
* **Amortised cost.** A subscription costs ``price per term unit x units x GSUs`` for ``[start, end)``
  (whole weeks for the 1-week term, whole calendar months for the others); a request that burns ``B``
  adjusted tokens uses ``B / (tokens/s per GSU)`` GSU-seconds, and its amortised cost is that times the
  price per GSU-second (the subscription's price / (GSUs x its seconds)), rounded to the nano-dollar.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

#: PT quota enforcement window (seconds) and the bucket size of the ledger's rolling counter.
WINDOW_S = 30
BUCKET_S = 1
#: Term id -> (unit, units per term): the catalog's terms are priced per week (1w) or per month.
TERM_UNITS: dict[str, tuple[str, int]] = {"1w": ("week", 1), "1m": ("month", 1), "3m": ("month", 3), "1y": ("month", 12)}
TRAFFIC_PT = "PROVISIONED_THROUGHPUT"
NANO = Decimal("0.000000001")


def burndown_tokens(rates: Any, input_tokens: int, output_tokens: int, audio_input_tokens: int = 0, thinking_tokens: int = 0) -> int:
    """Burndown-adjusted tokens of one request: text input x ``input_text`` + audio input x
    ``input_audio`` + (output + thinking) x ``output_text`` (``input_tokens`` is the whole prompt)."""
    audio = min(max(0, audio_input_tokens), max(0, input_tokens))
    text = max(0, input_tokens) - audio
    return text * rates.input_text + audio * rates.input_audio + (max(0, output_tokens) + max(0, thinking_tokens)) * rates.output_text


def add_months(day: dt.date, months: int) -> dt.date | None:
    """``day`` plus ``months`` calendar months (None when that day does not exist, e.g. 31 -> 30-day month)."""
    total = day.year * 12 + (day.month - 1) + months
    try:
        return dt.date(total // 12, total % 12 + 1, day.day)
    except ValueError:
        return None


def term_units(term: str, start: dt.date, end: dt.date) -> int:
    """How many priced units (weeks or months) ``[start, end)`` holds for ``term``; ValueError unless the
    span is a whole, positive number of terms."""
    if term not in TERM_UNITS:
        raise ValueError(f"unknown term {term!r}: one of {', '.join(TERM_UNITS)}")
    unit, per_term = TERM_UNITS[term]
    if end <= start:
        raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
    if unit == "week":
        days = (end - start).days
        if days % 7:
            raise ValueError(f"a {term} subscription spans whole weeks: {days} days from {start.isoformat()} to {end.isoformat()}")
        return days // 7
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if months <= 0 or add_months(start, months) != end or months % per_term:
        raise ValueError(f"a {term} subscription spans whole terms of {per_term} month(s) from its start day: {start.isoformat()} to {end.isoformat()} is not")
    return months


@dataclass(frozen=True)
class ActiveSubscription:
    """The PT capacity of one (model, region) on a day: the sum of its subscriptions active that day."""

    model: str
    region: str
    gsu: int
    tokens_per_second_per_gsu: int
    #: USD per GSU-second (exact fraction; GSU-weighted over the active subscriptions).
    price_per_gsu_second: Fraction
    rates: Any

    @property
    def key(self) -> str:
        return f"{self.model}@{self.region}"

    @property
    def tokens_per_second(self) -> int:
        return self.gsu * self.tokens_per_second_per_gsu

    @property
    def capacity(self) -> int:
        """Burndown-adjusted tokens per enforcement window (:data:`WINDOW_S`)."""
        return self.tokens_per_second * WINDOW_S

    def burndown(self, input_tokens: int, output_tokens: int, audio_input_tokens: int = 0, thinking_tokens: int = 0) -> int:
        return burndown_tokens(self.rates, input_tokens, output_tokens, audio_input_tokens, thinking_tokens)

    def gsu_seconds(self, tokens: int) -> Decimal:
        """GSU-seconds a request burning ``tokens`` adjusted tokens uses (to the nano)."""
        return _dec(Fraction(tokens, self.tokens_per_second_per_gsu))

    def amortised_cost(self, tokens: int) -> Decimal:
        """The subscription's cost of ``tokens`` adjusted tokens: GSU-seconds x price per GSU-second."""
        return _dec(Fraction(tokens, self.tokens_per_second_per_gsu) * self.price_per_gsu_second)


def _dec(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(NANO, rounding=ROUND_HALF_EVEN).normalize()


def subscription_price(catalog: Any, term: str, gsu: int, start: dt.date, end: dt.date) -> Decimal:
    """What a subscription costs in all: price per term unit x units x GSUs."""
    pt = catalog.provisioned
    return pt.terms[term].price_usd * term_units(term, start, end) * gsu


def active_subscriptions(subscriptions: Any, catalog: Any, day: dt.date) -> dict[tuple[str, str], ActiveSubscription]:
    """(model id, region) -> the capacity active on ``day`` (subscriptions with ``start <= day < end``)."""
    pt = catalog.provisioned
    grouped: dict[tuple[str, str], list[Any]] = {}
    for sub in subscriptions:
        if sub.start <= day < sub.end:
            grouped.setdefault((catalog.resolve(sub.model), sub.region), []).append(sub)
    out: dict[tuple[str, str], ActiveSubscription] = {}
    for (model, region), subs in grouped.items():
        rates = next(b for b in pt.burndown if b.model == model)
        gsu = sum(s.gsu for s in subs)
        per_second = sum(
            (Fraction(subscription_price(catalog, s.term, s.gsu, s.start, s.end)) / ((s.end - s.start).days * 86400) for s in subs),
            Fraction(0),
        )
        out[(model, region)] = ActiveSubscription(model, region, gsu, rates.tokens_per_second_per_gsu, per_second / gsu, rates)
    return out


__all__ = [
    "ActiveSubscription",
    "BUCKET_S",
    "TERM_UNITS",
    "TRAFFIC_PT",
    "WINDOW_S",
    "active_subscriptions",
    "add_months",
    "burndown_tokens",
    "subscription_price",
    "term_units",
]
