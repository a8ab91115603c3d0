"""The cost engine: usage in, itemised Decimal cost lines out. Pure; no I/O, no floats.

Rules it applies (all from the seeds, see ``price_catalog/``):

* ``input_tokens`` is the whole prompt; ``cached_input_tokens``, ``audio_input_tokens``,
  ``cached_audio_input_tokens`` and Claude cache writes are parts of it, each billed at its own rate,
  and the rest at the input rate.
* Thinking tokens are billed as output tokens.
* Long context: when the prompt crosses the model's boundary (Gemini: > 200,000 tokens; Claude Sonnet:
  >= 200,000; Gemini 1.x: > 128,000) *every* token of the request is billed at the ``_long`` rate.
* Batch requests use the ``batch_`` rates; Priority PayGo requests use ``priority_`` rates, but only
  when the response's ``trafficType`` says ``ON_DEMAND_PRIORITY``: a downgraded request is billed standard.
* Grounding: the units the free pool still covers are free; only the overflow is billed (per 1,000).
* A price the catalog does not have raises :class:`~router.errors.PriceNotAvailableError`; never 0.
* A prompt longer than the model's context window raises
  :class:`~router.errors.ContextWindowExceededError` (the model refuses it; it has no price).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router.catalog.models import GROUNDING_DIMENSION_OF, CatalogModel, QuotaPoolSpec
from router.errors import ContextWindowExceededError, PriceNotAvailableError, UsageError

MILLION = Decimal(1_000_000)
THOUSAND = Decimal(1_000)
Traffic = Literal["on_demand", "on_demand_priority"]

_INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "thinking_tokens",
    "cached_input_tokens",
    "audio_input_tokens",
    "cached_audio_input_tokens",
    "image_output_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "input_chars",
    "output_chars",
    "cached_input_chars",
    "grounded_prompts",
    "search_queries",
    "web_searches",
    "grounding_requests",
)


#: The Usage field that counts each grounding billing unit.
USAGE_FIELD_OF_UNIT: dict[str, str] = {
    "grounded_prompt": "grounded_prompts",
    "search_query": "search_queries",
    "web_search": "web_searches",
    "request": "grounding_requests",
}

#: How each grounding billing unit reads in a bill's lines (plural).
GROUNDING_UNIT_TEXT: dict[str, str] = {
    "grounded_prompt": "grounded prompts",
    "search_query": "search queries",
    "web_search": "web searches",
    "request": "requests",
}


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


class Usage(BaseModel):
    """What one request used (or is estimated to use). All counts are non-negative integers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_input_tokens: int = 0
    audio_input_tokens: int = 0
    cached_audio_input_tokens: int = 0
    image_output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    input_chars: int = 0
    output_chars: int = 0
    cached_input_chars: int = 0
    cache_storage_token_hours: Decimal = Decimal(0)
    cache_storage_char_hours: Decimal = Decimal(0)
    batch: bool = False
    traffic: Traffic = "on_demand"
    location: str | None = None
    grounding_kind: str | None = None
    grounded_prompts: int = 0
    search_queries: int = 0
    web_searches: int = 0
    grounding_requests: int = 0
    grounding_quota_used: int = Field(default=0, ge=0)
    grounding_billable_units: int | None = Field(default=None, ge=0)
    at: dt.date = Field(default_factory=_utc_today)

    @field_validator(*_INT_FIELDS, mode="before")
    @classmethod
    def _strict_count(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("+").isdigit():
                return int(value)
            raise ValueError("must be a whole number")
        if value < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("cache_storage_token_hours", "cache_storage_char_hours", mode="before")
    @classmethod
    def _decimal_hours(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("pass token/char-hours as an int, str or Decimal, not a float")
        return value

    @classmethod
    def build(cls, **fields: object) -> "Usage":
        """Like the constructor, but raises :class:`UsageError` naming the first bad field."""
        try:
            usage = cls(**fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            name = ".".join(str(p) for p in err["loc"]) or "usage"
            raise UsageError(name, err["msg"].removeprefix("Value error, ")) from None
        usage.check()
        return usage

    def check(self) -> None:
        """Raise :class:`UsageError` if the parts of the prompt add up to more than the prompt."""
        for name in ("cache_storage_token_hours", "cache_storage_char_hours"):
            if getattr(self, name) < 0:
                raise UsageError(name, "must not be negative")
        parts = (
            self.cached_input_tokens
            + self.audio_input_tokens
            + self.cached_audio_input_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
        )
        if parts > self.input_tokens:
            raise UsageError(
                "input_tokens",
                f"cached + audio + cache-write tokens ({parts}) exceed the prompt's input tokens ({self.input_tokens})",
            )
        if self.cached_input_chars > self.input_chars:
            raise UsageError("cached_input_chars", f"exceeds input_chars ({self.input_chars})")
        if self.batch and self.traffic == "on_demand_priority":
            raise UsageError("traffic", "batch requests cannot use Priority PayGo")


@dataclass(frozen=True)
class CostLine:
    """One itemised part of a bill: ``quantity`` units at ``rate`` USD per ``per`` units."""

    dimension: str
    quantity: Decimal
    per: Decimal
    unit: str
    rate: Decimal
    amount: Decimal
    provenance: str

    def to_dict(self) -> dict[str, str]:
        return {
            "dimension": self.dimension,
            "quantity": fmt(self.quantity),
            "unit": self.unit,
            "rate_usd": fmt(self.rate),
            "per": fmt(self.per),
            "amount_usd": fmt(self.amount),
            "provenance": self.provenance,
        }


@dataclass(frozen=True)
class CostBreakdown:
    """The bill of one request: the lines, their exact total, and what tier/date applied."""

    model: str
    at: dt.date
    long_context: bool
    lines: tuple[CostLine, ...]
    warnings: tuple[str, ...] = ()
    grounding_free_units: int = 0
    grounding_billable_units: int = 0
    total: Decimal = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", sum((line.amount for line in self.lines), Decimal(0)))

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "at": self.at.isoformat(),
            "long_context": self.long_context,
            "total_usd": fmt(self.total),
            "lines": [line.to_dict() for line in self.lines],
            "grounding": {"free_units": self.grounding_free_units, "billable_units": self.grounding_billable_units},
            "warnings": list(self.warnings),
        }


def fmt(value: Decimal) -> str:
    """A Decimal as a plain string without exponent or trailing zeros (``0.145``, ``20400``)."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def _provenance_text(block) -> str:  # noqa: ANN001 - PriceBlock
    p = block.provenance
    where = p.seed or p.source
    return f"{where}: {p.section}"


class _Biller:
    def __init__(self, model: CatalogModel, usage: Usage) -> None:
        self.model, self.usage = model, usage
        self.lines: list[CostLine] = []
        self.prefix = ("batch_" if usage.batch else "") + ("priority_" if usage.traffic == "on_demand_priority" else "")

    def rate(self, dimension: str) -> tuple[Decimal, str]:
        found = self.model.rate(dimension, self.usage.at)
        if found is None:
            detail = f"on {self.usage.at.isoformat()}"
            if dimension.startswith(("priority_", "batch_priority_")):
                detail += "; the seeds give no Priority PayGo rates: add them in a catalog overlay with provenance"
            raise PriceNotAvailableError(self.model.id, dimension, detail)
        rate, block = found
        return rate, _provenance_text(block)

    def add(self, dimension: str, quantity: Decimal | int, per: Decimal, unit: str) -> None:
        if not quantity:
            return
        qty = Decimal(quantity)
        rate, provenance = self.rate(dimension)
        self.lines.append(CostLine(dimension, qty, per, unit, rate, qty * rate / per, provenance))

    def tiered(self, base: str, quantity: int, long: bool, per: Decimal, unit: str) -> None:
        self.add(f"{self.prefix}{base}{'_long' if long else ''}", quantity, per, unit)


def _prompt_tokens_for_tier(usage: Usage) -> int:
    if usage.input_tokens:
        return usage.input_tokens
    # Character-billed models: about 4 characters a token (Count Tokens seed).
    return (usage.input_chars + 3) // 4


def compute_cost(
    model: CatalogModel, usage: Usage, pools: dict[str, QuotaPoolSpec] | None = None, *, check_context_window: bool = True
) -> CostBreakdown:
    """Bill ``usage`` on ``model``: itemised lines and an exact Decimal total.

    ``pools`` (``catalog.pools``) lets grounding units inside a free pool be billed at 0; without it,
    grounding units are billed unless ``usage.grounding_billable_units`` says otherwise.
    A prompt longer than the model's context window raises :class:`ContextWindowExceededError`, unless
    ``check_context_window`` is False (billing a response the provider did serve: its usage is the bill).
    """
    usage.check()
    prompt_tokens = _prompt_tokens_for_tier(usage)
    if check_context_window and prompt_tokens > model.context_window:
        chars = usage.input_chars if not usage.input_tokens else None
        raise ContextWindowExceededError(model.id, prompt_tokens, model.context_window, chars)
    biller = _Biller(model, usage)
    long = bool(model.long_context and model.long_context.applies(prompt_tokens))
    warnings: list[str] = []
    if usage.location and usage.location != "global" and not model.regional_prices_verified:
        warnings.append(
            f"{model.id} in {usage.location}: the seed gives one set of prices for its region tabs; "
            "a regional premium, if any, is not in the seeds and is not billed here"
        )
    if model.billing_unit == "character":
        _bill_characters(biller, usage, long)
    else:
        if usage.input_chars or usage.output_chars or usage.cached_input_chars:
            raise UsageError("input_chars", f"{model.id} is billed by tokens, not characters")
        _bill_tokens(biller, usage, long)
    free, billable = _bill_grounding(biller, model, usage, pools)
    return CostBreakdown(model.id, usage.at, long, tuple(biller.lines), tuple(warnings), free, billable)


def _bill_tokens(b: _Biller, u: Usage, long: bool) -> None:
    per, unit = MILLION, "tokens"
    plain = (
        u.input_tokens
        - u.cached_input_tokens
        - u.audio_input_tokens
        - u.cached_audio_input_tokens
        - u.cache_write_5m_tokens
        - u.cache_write_1h_tokens
    )
    b.tiered("input", plain, long, per, unit)
    b.tiered("audio_input", u.audio_input_tokens, long, per, unit)
    b.tiered("cached_input", u.cached_input_tokens, long, per, unit)
    b.tiered("cached_audio_input", u.cached_audio_input_tokens, long, per, unit)
    b.tiered("cache_write_5m", u.cache_write_5m_tokens, long, per, unit)
    b.tiered("cache_write_1h", u.cache_write_1h_tokens, long, per, unit)
    b.tiered("output", u.output_tokens + u.thinking_tokens, long, per, unit)
    b.tiered("image_output", u.image_output_tokens, long, per, unit)
    b.add("cache_storage_token_hour", u.cache_storage_token_hours, MILLION, "token-hours")
    if u.cache_storage_char_hours:
        raise UsageError("cache_storage_char_hours", f"{b.model.id} is billed by tokens, not characters")


def _bill_characters(b: _Biller, u: Usage, long: bool) -> None:
    per, unit = THOUSAND, "characters"
    for name in ("cached_input_tokens", "audio_input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"):
        if getattr(u, name):
            raise UsageError(name, f"{b.model.id} is billed by characters: pass --cached-input-chars")
    for name in ("input_tokens", "output_tokens", "thinking_tokens", "image_output_tokens"):
        if getattr(u, name):
            chars = name.replace("_tokens", "_chars").replace("thinking", "output").replace("image_output", "output")
            raise UsageError(name, f"{b.model.id} is billed by characters, not tokens: pass {chars} (about 4 characters a token)")
    b.tiered("input_chars", u.input_chars - u.cached_input_chars, long, per, unit)
    b.tiered("cached_input_chars", u.cached_input_chars, long, per, unit)
    b.tiered("output_chars", u.output_chars, long, per, unit)
    b.add("cache_storage_char_hour", u.cache_storage_char_hours, THOUSAND, "character-hours")
    if u.cache_storage_token_hours:
        raise UsageError("cache_storage_token_hours", f"{b.model.id} is billed by characters, not tokens")


def _grounding_units(model: CatalogModel, u: Usage) -> list[tuple[str, int]]:
    """(kind, units) pairs this usage asks to bill."""
    out: list[tuple[str, int]] = []
    if u.web_searches:
        out.append(("web_search", u.web_searches))
    if u.grounding_requests:
        out.append(("your_data", u.grounding_requests))
    search_units = u.grounded_prompts or u.search_queries
    if u.grounded_prompts and u.search_queries:
        kind = u.grounding_kind or "google_search"
        option = model.grounding.get(kind)  # type: ignore[call-overload]
        search_units = u.search_queries if option and option.unit == "search_query" else u.grounded_prompts
    if search_units:
        kind = u.grounding_kind if u.grounding_kind not in (None, "web_search", "your_data") else "google_search"
        out.append((kind, search_units))
    return out


def _bill_grounding(
    b: _Biller, model: CatalogModel, u: Usage, pools: dict[str, QuotaPoolSpec] | None
) -> tuple[int, int]:
    total_free = total_billable = 0
    for kind, units in _grounding_units(model, u):
        option = model.grounding.get(kind)  # type: ignore[call-overload]
        if option is None:
            raise PriceNotAvailableError(model.id, GROUNDING_DIMENSION_OF.get(kind, kind), f"{model.id} has no {kind} grounding")
        expected_field = USAGE_FIELD_OF_UNIT[option.unit]
        if expected_field == "search_queries" and not u.search_queries:
            raise UsageError("search_queries", f"{model.id} bills {kind} per search query: pass search queries")
        if expected_field == "grounded_prompts" and not u.grounded_prompts:
            raise UsageError("grounded_prompts", f"{model.id} bills {kind} per grounded prompt: pass grounded prompts")
        pool = pools.get(option.pool) if (pools and option.pool) else None
        # The ledger's billable count (units its free pool did not grant) decides for search grounding, whose
        # free quota may also be the provider's own, and for a web search / your-data option only when it has a
        # pool: without one each of those units is billed (a count below them would bill low).
        if u.grounding_billable_units is not None and (kind not in ("web_search", "your_data") or option.pool is not None):
            billable = min(units, u.grounding_billable_units)
        elif pool is not None and (pool.effective_from is None or u.at >= pool.effective_from):
            remaining = max(0, pool.free_units - u.grounding_quota_used)
            billable = max(0, units - remaining)
        else:
            billable = units
        free = units - billable
        dimension = GROUNDING_DIMENSION_OF[kind]
        rate, provenance = b.rate(dimension)
        unit = GROUNDING_UNIT_TEXT[option.unit]
        if free:
            pool_name = option.pool or "free quota"
            b.lines.append(CostLine(f"{dimension} (free: {pool_name})", Decimal(free), THOUSAND, unit, Decimal(0), Decimal(0), provenance))
        if billable:
            qty = Decimal(billable)
            b.lines.append(CostLine(dimension, qty, THOUSAND, unit, rate, qty * rate / THOUSAND, provenance))
        total_free += free
        total_billable += billable
    return total_free, total_billable
