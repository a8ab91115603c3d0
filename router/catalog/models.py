"""Pydantic models of the price catalog (data lives in ``price_catalog/*.yaml``).

Prices are ``Decimal`` parsed from strings. A price dimension's unit is fixed by its name:

* token dimensions (``input``, ``output``, ``cached_input`` ...): USD per 1,000,000 tokens;
* character dimensions (``input_chars`` ...): USD per 1,000 characters (Gemini 1.x);
* ``cache_storage_token_hour``: USD per 1,000,000 token-hours; ``cache_storage_char_hour``: per 1,000 char-hours;
* grounding dimensions (``grounding_*``, ``web_search``): USD per 1,000 billable units.

Variants are spelled with prefixes and suffixes: ``batch_`` (Batch API), ``priority_`` (Priority PayGo;
the seeds give no such rate, so the bundled catalog has none), ``_long`` (the long-context tier).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_BASE_TOKEN_DIMENSIONS = (
    "input",
    "output",
    "cached_input",
    "audio_input",
    "cached_audio_input",
    "image_output",
    "cache_write_5m",
    "cache_write_1h",
)
_BASE_CHAR_DIMENSIONS = ("input_chars", "output_chars", "cached_input_chars")
GROUNDING_DIMENSIONS = (
    "grounding_google_search",
    "grounding_enterprise_web_search",
    "grounding_your_data",
    "grounding_google_maps",
    "web_search",
)
FLAT_DIMENSIONS = ("cache_storage_token_hour", "cache_storage_char_hour", *GROUNDING_DIMENSIONS)


def _variants(base: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for name in base:
        for prefix in ("", "batch_", "priority_"):
            for suffix in ("", "_long"):
                out.add(f"{prefix}{name}{suffix}")
    return out


TOKEN_DIMENSIONS = frozenset(_variants(_BASE_TOKEN_DIMENSIONS))
CHAR_DIMENSIONS = frozenset(_variants(_BASE_CHAR_DIMENSIONS))
KNOWN_DIMENSIONS = TOKEN_DIMENSIONS | CHAR_DIMENSIONS | frozenset(FLAT_DIMENSIONS)

Publisher = Literal["google", "anthropic", "deepseek", "minimax", "moonshot", "qwen", "openai", "meta", "mistral", "ai21"]
Api = Literal["gemini", "anthropic", "openai_maas", "mistral", "ai21"]
Lifecycle = Literal["ga", "preview", "deprecated"]
GroundingKind = Literal["google_search", "enterprise_web_search", "your_data", "google_maps", "web_search"]
GroundingUnit = Literal["grounded_prompt", "search_query", "request", "web_search"]
#: What a model is for. ``chat`` models serve any chat request; a model of another task (OCR) is a
#: candidate only for requests that ask for that task (``task="ocr"``).
Task = Literal["chat", "ocr"]
Capability = Literal["vision", "audio", "video", "pdf", "tools", "json_output", "grounding", "thinking", "image_output", "ocr", "batch", "caching"]

GROUNDING_DIMENSION_OF: dict[str, str] = {
    "google_search": "grounding_google_search",
    "enterprise_web_search": "grounding_enterprise_web_search",
    "your_data": "grounding_your_data",
    "google_maps": "grounding_google_maps",
    "web_search": "web_search",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Strict):
    """Where a number comes from: a seed file and the table/section in it, or a named public source."""

    seed: str | None = None
    section: str
    source: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _needs_origin(self) -> "Provenance":
        if not (self.seed or self.source):
            raise ValueError("provenance needs a seed file or a named public source")
        return self


class PriceBlock(_Strict):
    """A set of rates valid on ``[effective_from, effective_until)`` taken from one table."""

    effective_from: dt.date | None = None
    effective_until: dt.date | None = None
    provenance: Provenance
    rates: dict[str, Decimal]

    @field_validator("rates", mode="before")
    @classmethod
    def _rates_from_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            for key, raw in value.items():
                if isinstance(raw, float):
                    raise ValueError(f"rate {key!r} must be a quoted decimal string, not a float ({raw!r})")
        return value

    @model_validator(mode="after")
    def _check(self) -> "PriceBlock":
        unknown = sorted(set(self.rates) - KNOWN_DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown price dimension(s): {', '.join(unknown)}")
        for key, rate in self.rates.items():
            if not rate.is_finite() or rate < 0:
                raise ValueError(f"rate {key!r} must be a finite, non-negative decimal")
        if self.effective_from and self.effective_until and self.effective_until <= self.effective_from:
            raise ValueError("effective_until must be after effective_from")
        return self

    def covers(self, day: dt.date) -> bool:
        """True if this block is in force on ``day``."""
        if self.effective_from and day < self.effective_from:
            return False
        return not (self.effective_until and day >= self.effective_until)


class LongContextTier(_Strict):
    """The long-context boundary: Gemini bills all tokens long when input > 200,000 (``inclusive: false``);
    Claude Sonnet when input >= 200,000 (``inclusive: true``); Gemini 1.x when > 128,000."""

    threshold_tokens: int = Field(gt=0)
    inclusive: bool
    provenance: Provenance

    def applies(self, input_tokens: int) -> bool:
        """Whether a request with ``input_tokens`` prompt tokens is billed at the long-context rate."""
        return input_tokens >= self.threshold_tokens if self.inclusive else input_tokens > self.threshold_tokens


class Quality(_Strict):
    """An LMArena style-controlled score and its source; ``score`` maps it to 0-100."""

    arena_score: int
    source: str

    @property
    def score(self) -> Decimal:
        value = Decimal(100) * (Decimal(self.arena_score) - 1250) / 250
        return min(Decimal(100), max(Decimal(0), value))


class GroundingOption(_Strict):
    """One grounding tool a model supports: the unit it is billed in and its free pool, if any."""

    unit: GroundingUnit
    pool: str | None = None


class ModelCard(_Strict):
    """Limits from the model's public card (not prices)."""

    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(gt=0)
    source: str


class CatalogModel(_Strict):
    """One model of the catalog with everything the router needs to price, filter and call it."""

    id: str
    display_name: str
    publisher: Publisher
    family: str
    tier: str | None = None
    api: Api
    vertex_model: str
    lifecycle: Lifecycle
    billing_unit: Literal["token", "character"] = "token"
    card: ModelCard
    input_modalities: list[str]
    output_modalities: list[str] = ["text"]
    capabilities: list[Capability] = []
    task: Task = "chat"
    regions: list[str]
    regions_provenance: Provenance
    regional_prices_verified: bool = True
    quality: Quality | None = None
    aliases: list[str] = []
    long_context: LongContextTier | None = None
    grounding: dict[GroundingKind, GroundingOption] = {}
    priority_ramp_family: Literal["flash", "flash-lite", "pro"] | None = None
    prices: list[PriceBlock]

    @model_validator(mode="after")
    def _no_overlapping_rates(self) -> "CatalogModel":
        seen: dict[str, list[tuple[dt.date, dt.date]]] = {}
        for block in self.prices:
            start, end = block.effective_from or dt.date.min, block.effective_until or dt.date.max
            for dimension in block.rates:
                for other_start, other_end in seen.get(dimension, []):
                    if start < other_end and other_start < end:
                        raise ValueError(f"{self.id}: two prices for {dimension!r} overlap in time ({start}..{end} and {other_start}..{other_end})")
                seen.setdefault(dimension, []).append((start, end))
        return self

    @property
    def context_window(self) -> int:
        return self.card.context_window

    @property
    def max_output_tokens(self) -> int:
        return self.card.max_output_tokens

    def blocks_on(self, day: dt.date) -> list[PriceBlock]:
        """The price blocks in force on ``day``."""
        return [b for b in self.prices if b.covers(day)]

    def rate(self, dimension: str, day: dt.date) -> tuple[Decimal, PriceBlock] | None:
        """The rate of ``dimension`` on ``day`` and the block it comes from, or None if not priced."""
        for block in self.prices:
            if dimension in block.rates and block.covers(day):
                return block.rates[dimension], block
        return None


class QuotaPoolSpec(_Strict):
    """A free grounding quota shared by several models (e.g. 1,500 grounded prompts/day for Flash)."""

    id: str
    kind: GroundingKind
    unit: GroundingUnit
    period: Literal["day", "month"]
    free_units: int = Field(ge=0)
    models: list[str]
    effective_from: dt.date | None = None
    provenance: Provenance


class GsuTerm(_Strict):
    price_usd: Decimal
    per: Literal["week", "month"]


class BurndownRates(_Strict):
    """Provisioned Throughput burndown for one model: tokens/s per GSU and per-token multipliers."""

    model: str
    tokens_per_second_per_gsu: int = Field(gt=0)
    min_gsu_increment: int = Field(gt=0)
    input_text: int
    input_audio: int
    output_text: int
    provenance: Provenance


class ProvisionedThroughput(_Strict):
    terms: dict[str, GsuTerm]
    terms_provenance: Provenance
    burndown: list[BurndownRates]
