"""The policy document: pydantic v2 models of a ``version: 1`` policy YAML.

Every model forbids unknown keys (a typo is an error with its line and column, never silently ignored).
Money is ``Decimal``: write it as a string (``"0.05"``) or a plain number (``0.05`` is read from the
literal text, never through binary floating point arithmetic).
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, WithJsonSchema, field_validator, model_validator

from router.catalog.models import Capability, GroundingKind, Lifecycle
from router.ledger.money import MAX_USD
from router.ledger.windows import zone

FailureKind = Literal["rate_limited", "server_error", "timeout", "context_overflow"]
ObjectiveName = Literal["cheapest", "best_quality", "quality_per_dollar", "weighted"]
WhenPoolEmpty = Literal["pay", "drop", "switch_family"]
#: Provisioned Throughput use: first (PT, then spill to PayGo), only (PT or refuse), never (PayGo only).
ProvisionedMode = Literal["first", "only", "never"]
CountTokensMode = Literal["never", "near_limits", "always"]

ROLLING_SHORT = ("1h", "24h", "7d", "30d")
#: The largest token count a policy may give (far above any model's context window).
MAX_TOKENS = 100_000_000
CALENDAR_SHORT = ("day", "month")
#: Region groups usable in ``regions:`` (a prefix of the Vertex AI location name).
REGION_GROUPS: dict[str, str] = {"eu": "europe-", "us": "us-", "asia": "asia-", "me": "me-", "northamerica": "northamerica-", "southamerica": "southamerica-", "australia": "australia-"}


#: A number written as a string: digits, an optional fraction, an optional leading ``$`` and ``-``, ``_``
#: separators; no exponent (the JSON Schema's pattern, enforced here too).
_NUM_TEXT = re.compile(r"^\$?-?[0-9_]+(\.[0-9_]+)?$")
#: The largest amount (and number) a policy may give: what one ledger counter holds exactly.
MAX_POLICY_NUMBER = MAX_USD


def _parses(text: str) -> bool:
    """A number Decimal reads but the plain pattern refuses (an exponent, ``.5``); not inf / nan."""
    try:
        return Decimal(text.replace("_", "").removeprefix("$")).is_finite()
    except InvalidOperation:
        return False


def _bounded(number: Decimal, shown: Any) -> Decimal:
    if not number.is_finite():
        raise ValueError(f"{shown!r} is not a finite number")
    if abs(number) > MAX_POLICY_NUMBER:
        raise ValueError(f"{shown!r} is too large (at most {MAX_POLICY_NUMBER}, the largest amount the ledger holds exactly)")
    return number


def _number(value: Any) -> Any:
    """Decimals from str/int, and from a YAML float through its literal text (``0.1`` -> ``Decimal('0.1')``)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        try:
            return _bounded(Decimal(repr(value)), value)
        except InvalidOperation:  # pragma: no cover - repr of a float is always a Decimal literal
            raise ValueError(f"{value!r} is not a number") from None
    if isinstance(value, str):
        text = value.strip()
        if not _NUM_TEXT.match(text):
            if _parses(text):
                raise ValueError(f"{value!r} is not a plain decimal number (digits with an optional '.' and fraction, e.g. 0.5; no exponent)")
            if text.lower().lstrip("+-") in ("inf", "infinity", "nan", "snan"):
                raise ValueError(f"{value!r} is not a finite number")
            raise ValueError(f"{value!r} is not a number")
        return _bounded(Decimal(text.replace("_", "").removeprefix("$")), value)
    if isinstance(value, (int, Decimal)):
        return _bounded(Decimal(value), value)
    return value


def _percent(value: Any) -> Any:
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    return _number(value)


def _one_or_many(value: Any) -> Any:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value)]
    return value


_NUM_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\$?-?[0-9_]+(\.[0-9_]+)?$"}]}
_PCT_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?%?$"}]}

Money = Annotated[Decimal, BeforeValidator(_number), WithJsonSchema({**_NUM_SCHEMA, "description": "USD amount (a string such as \"0.05\" or a number)"})]
Number = Annotated[Decimal, BeforeValidator(_number), WithJsonSchema(_NUM_SCHEMA)]


def _quality_score(v: Decimal) -> Decimal:
    if not (0 <= v <= 100):
        raise ValueError("min_quality must be between 0 and 100")
    return v


#: A quality score bound (0-100), as ``min_quality`` takes in selectors and constraints.
QualityScore = Annotated[Number, AfterValidator(_quality_score)]
Percent = Annotated[Decimal, BeforeValidator(_percent), WithJsonSchema(_PCT_SCHEMA)]
Names = Annotated[list[str], BeforeValidator(_one_or_many), WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selector(_Base):
    """Select catalog models by attributes; every given attribute must match (lists mean any of)."""

    publisher: Optional[Names] = Field(None, description="google, anthropic, deepseek, ...")
    family: Optional[Names] = Field(None, description="Catalog family, e.g. gemini-2.5, claude-4.5, qwen3")
    tier: Optional[Names] = Field(None, description="pro, flash, flash-lite, opus, sonnet, haiku ...")
    lifecycle: Optional[Annotated[list[Lifecycle], BeforeValidator(_one_or_many)]] = None
    min_quality: Optional[QualityScore] = Field(None, description="Minimum quality score 0-100 (models without one are not selected)")
    region: Optional[Names] = Field(None, description="Available in any of these locations (or region groups: eu, us, asia, global)")
    capabilities: Optional[list[Capability]] = Field(None, description="Has all of these capabilities")


class CandidateSpec(_Base):
    """One candidate entry: an explicit ``model`` id (or alias) or a ``select``or, and endpoint options."""

    model: Optional[str] = Field(None, description="Catalog id or alias")
    select: Optional[Selector] = None
    location: Optional[Names] = Field(None, description="Endpoint location(s) in preference order: global or a region")
    batch: bool = Field(False, description="Batch API allowed (used by profiles with batch: true)")
    priority: bool = Field(False, description="Priority PayGo allowed for latency-sensitive requests (global endpoint only)")
    provisioned: Optional[ProvisionedMode] = Field(None, description="Provisioned Throughput use for this candidate (overrides the profile's and provisioned.mode)")

    @model_validator(mode="after")
    def _one_of(self) -> "CandidateSpec":
        if (self.model is None) == (self.select is None):
            raise ValueError("a candidate needs exactly one of 'model' or 'select'")
        return self


class Constraints(_Base):
    """Hard filters: a candidate failing any is rejected with the reason."""

    min_quality: Optional[QualityScore] = Field(None, description="Minimum quality score 0-100")
    max_cost_usd: Optional[Money] = Field(None, description="Maximum estimated (expected) cost of one request, USD")
    max_output_usd_per_mtok: Optional[Money] = Field(None, description="Only models whose output price is at most this, USD per 1M tokens")
    context_fit: bool = Field(True, description="The context window must hold the prompt plus max_tokens")
    capabilities: list[Capability] = Field(default_factory=list, description="Capabilities every request of this profile needs")
    regions: Optional[Names] = Field(None, description="Allowed endpoint locations (data residency): regions, 'global', or groups eu/us/asia")
    exclude_lifecycles: Annotated[list[Lifecycle], BeforeValidator(_one_or_many)] = Field(default_factory=list, description="e.g. [preview, deprecated]")
    exclude_models: Names = Field(default_factory=list)

    @field_validator("max_cost_usd", "max_output_usd_per_mtok")
    @classmethod
    def _positive(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and v <= 0:
            raise ValueError("must be a positive amount")
        return v


class Objective(_Base):
    """What to optimise among the eligible candidates."""

    type: ObjectiveName
    max_cost_usd: Optional[Money] = Field(None, description="best_quality: the cost bound (expected cost per request)")
    quality_weight: Number = Field(Decimal(1), description="weighted: weight of quality (score / 100)")
    cost_weight: Number = Field(Decimal(1), description="weighted: weight of cost (0 = cheapest eligible, 1 = dearest)")

    @model_validator(mode="after")
    def _check(self) -> "Objective":
        if self.max_cost_usd is not None and self.max_cost_usd <= 0:
            raise ValueError("max_cost_usd must be a positive amount")
        if self.quality_weight < 0 or self.cost_weight < 0:
            raise ValueError("weights must not be negative")
        if self.type == "weighted" and self.quality_weight == 0 and self.cost_weight == 0:
            raise ValueError("weighted objective needs a non-zero weight")
        return self


def _objective(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


ObjectiveField = Annotated[
    Objective,
    BeforeValidator(_objective),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": ["cheapest", "best_quality", "quality_per_dollar", "weighted"]},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["type"],
                    "properties": {
                        "type": {"type": "string", "enum": ["cheapest", "best_quality", "quality_per_dollar", "weighted"]},
                        "max_cost_usd": _NUM_SCHEMA,
                        "quality_weight": _NUM_SCHEMA,
                        "cost_weight": _NUM_SCHEMA,
                    },
                },
            ]
        }
    ),
]


class Profile(_Base):
    """A named way to choose: candidates (default: the policy's), constraints, objective."""

    description: Optional[str] = None
    candidates: Optional[list[CandidateSpec]] = Field(None, description="Overrides the policy's top-level candidates")
    constraints: Constraints = Field(default_factory=Constraints)
    objective: ObjectiveField = Field(default_factory=lambda: Objective(type="cheapest"))
    batch: bool = Field(False, description="Send as Batch API to candidates that allow it (never for latency-sensitive requests)")
    fallbacks: Optional[int] = Field(None, ge=0, le=10, description="Number of fallbacks (overrides fallbacks.max)")
    provisioned: Optional[ProvisionedMode] = Field(None, description="Provisioned Throughput use for this profile's candidates (overrides provisioned.mode)")


class TokenRange(_Base):
    """An inclusive range of estimated prompt tokens."""

    min: Optional[int] = Field(None, ge=0, le=MAX_TOKENS)
    max: Optional[int] = Field(None, ge=0, le=MAX_TOKENS)


class When(_Base):
    """Conditions on request attributes; all given conditions must hold (lists mean any of)."""

    tenant: Optional[Names] = None
    app: Optional[Names] = None
    task: Optional[Names] = None
    tags: Optional[dict[str, Names]] = Field(None, description="Every listed tag must be present with one of the values")
    prompt_tokens: Optional[TokenRange] = None
    grounding: Optional[bool | GroundingKind] = Field(None, description="true: wants grounding; false: does not; or a kind")
    latency_sensitive: Optional[bool] = None


class Rule(_Base):
    """Rules are tried in order; the first whose ``when`` matches selects ``profile``."""

    name: str
    when: When = Field(default_factory=When)
    profile: str


class BudgetAction(_Base):
    """What to do once spend reaches ``at_percent`` of the limit, or once the current pace would reach
    ``at_pace_percent`` of it by the end of the (calendar) window (all reached actions apply)."""

    at_percent: Optional[Percent] = Field(None, description="Spend so far, in percent of the limit, from which the action applies")
    at_pace_percent: Optional[Percent] = Field(
        None,
        description="Spend pacing (calendar windows): the action applies once spend so far, extrapolated at the current pace to the end of the window, reaches this percent of the limit",
    )
    switch_profile: Optional[str] = None
    max_output_usd_per_mtok: Optional[Money] = None
    max_cost_usd: Optional[Money] = None
    refuse: bool = False

    @model_validator(mode="after")
    def _check(self) -> "BudgetAction":
        if (self.at_percent is None) == (self.at_pace_percent is None):
            raise ValueError("an action needs exactly one of at_percent or at_pace_percent")
        threshold = self.at_percent if self.at_percent is not None else self.at_pace_percent
        if threshold is not None and threshold <= 0:
            raise ValueError("at_percent / at_pace_percent must be positive")
        if not (self.switch_profile or self.max_output_usd_per_mtok is not None or self.max_cost_usd is not None or self.refuse):
            raise ValueError("an action needs one of switch_profile, max_output_usd_per_mtok, max_cost_usd or refuse")
        for name in ("max_output_usd_per_mtok", "max_cost_usd"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive amount")
        return self


_SCOPE_TEMPLATE = re.compile(r"^(global|tenant|app|tag:[A-Za-z0-9_.\-@]{1,64}|(tenant|app):[A-Za-z0-9_.\-=@]{1,128}|tag:[A-Za-z0-9_.\-@]{1,64}=[A-Za-z0-9_.\-=@]{1,128})$")


@functools.lru_cache(maxsize=1)
def _known_zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def check_timezone(tz: str) -> str:
    """``tz`` if it is an IANA time zone; else ValueError naming it and the closest known zones."""
    try:
        zone(tz)
    except ValueError:
        zones = _known_zones()
        close = difflib.get_close_matches(tz, zones, n=3, cutoff=0.6) or [z for z in zones if z.startswith(tz.rstrip("/") + "/")][:3]
        folder = " (a folder of zones, not a zone)" if any(z.startswith(tz.rstrip("/") + "/") for z in zones) else ""
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown time zone {tz!r}{folder}{hint}") from None
    return tz


def parse_window(text: str) -> tuple[str, str, str]:
    """``rolling:24h`` / ``24h`` / ``calendar:month@Europe/Paris`` / ``month`` -> (kind, span, tz)."""
    raw = text.strip()
    kind, sep, rest = raw.partition(":")
    if not sep:
        rest, kind = raw, ""
    span, at, tz = rest.partition("@")
    if not kind:
        kind = "rolling" if span in ROLLING_SHORT else "calendar"
    if kind == "rolling":
        if span not in ROLLING_SHORT:
            raise ValueError(f"rolling window must be one of {', '.join(ROLLING_SHORT)}, not {span!r}")
        if tz:
            raise ValueError("a rolling window has no time zone")
        return kind, span, "UTC"
    if kind == "calendar":
        if span not in CALENDAR_SHORT:
            raise ValueError(f"calendar window must be day or month, not {span!r}")
        if at and not tz:
            raise ValueError(f"empty time zone after '@' in {text!r} (write e.g. calendar:{span}@UTC, or leave out '@' for UTC)")
        tz = tz or "UTC"
        check_timezone(tz)
        return kind, span, tz
    raise ValueError(f"window must be rolling:1h|24h|7d|30d or calendar:day|month[@TZ], not {text!r}")


class Budget(_Base):
    """A spend limit over a window, with graded actions by utilisation."""

    name: Optional[str] = None
    scope: str = Field(description="global, tenant, app, tag:KEY (one budget per tenant/app/tag value), or a fixed tenant:NAME, app:NAME, tag:KEY=VALUE")
    window: str = Field(description="rolling:1h|24h|7d|30d or calendar:day|month[@Time/Zone] (short forms: 24h, month, month@Europe/Paris)")
    limit_usd: Money
    actions: list[BudgetAction] = Field(default_factory=list)
    pace_min_elapsed_percent: Percent = Field(
        Decimal(10),
        description="at_pace_percent actions act only once this share of the calendar window has elapsed (an early projection is noise: $1 in the first hour of a month projects x744)",
    )
    pace_min_spend_percent: Percent = Field(
        Decimal(10),
        description="at_pace_percent actions act only once spend reaches this percent of the limit",
    )

    @field_validator("pace_min_elapsed_percent", "pace_min_spend_percent")
    @classmethod
    def _pace_minimum(cls, v: Decimal) -> Decimal:
        if not 0 <= v < 100:
            raise ValueError(f"must be a percent from 0 to less than 100, not {v}")
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        if not _SCOPE_TEMPLATE.match(v):
            raise ValueError(f"invalid scope {v!r}: use global, tenant, app, tag:KEY, tenant:NAME, app:NAME or tag:KEY=VALUE")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        parse_window(v)
        return v

    @field_validator("limit_usd")
    @classmethod
    def _limit(cls, v: Decimal) -> Decimal:
        if v <= 0:
            raise ValueError("limit_usd must be a positive amount")
        return v

    @model_validator(mode="after")
    def _pace_needs_calendar(self) -> "Budget":
        if any(a.at_pace_percent is not None for a in self.actions) and parse_window(self.window)[0] != "calendar":
            raise ValueError("at_pace_percent needs a calendar window (a rolling window has no end to pace towards)")
        pace_fields = {"pace_min_elapsed_percent", "pace_min_spend_percent"} & self.model_fields_set
        if pace_fields and not any(a.at_pace_percent is not None for a in self.actions):
            raise ValueError(f"{', '.join(sorted(pace_fields))} only applies to at_pace_percent actions, and this budget has none")
        return self


class Grounding(_Base):
    """How grounded requests choose: prefer a free pool with room; what to do when the pool is empty."""

    prefer_free_pool: bool = True
    when_pool_empty: WhenPoolEmpty = Field("pay", description="pay: keep it and pay the grounding; drop: send without grounding; switch_family: only models whose pool has room (or no pool)")
    expected_queries: int = Field(1, ge=1, le=100, description="Search queries (Gemini 3) or web searches (Claude) a grounded request is expected to run: the expected cost and the reservation count this many")


class Priority(_Base):
    """Priority PayGo for latency-sensitive requests (global endpoint only, capped per ramp family)."""

    enabled: bool = True
    max_tokens_per_minute: Optional[int] = Field(None, gt=0, le=MAX_TOKENS, description="Our cap on priority tokens per minute per ramp family (also kept under the ledger's ramp limit)")


class Subscription(_Base):
    """One Provisioned Throughput subscription: GSUs of a model in a region for ``[start, end)``."""

    name: Optional[str] = None
    model: str = Field(description="Catalog id or alias (needs burndown rates in the catalog)")
    region: str = Field(description="The endpoint location the GSUs were bought in (or global)")
    gsu: int = Field(gt=0, description="GSUs bought (a multiple of the model's minimal increment)")
    term: Literal["1w", "1m", "3m", "1y"] = Field(description="Commitment term, priced by the catalog (1w per week; 1m, 3m, 1y per month)")
    start: dt.date = Field(description="First day (UTC) of the subscription")
    end: dt.date = Field(description="Day (UTC) it ends, exclusive: start + whole terms")


class Provisioned(_Base):
    """Provisioned Throughput subscriptions and how requests use them."""

    subscriptions: list[Subscription] = Field(default_factory=list)
    mode: ProvisionedMode = Field("first", description="Default use of a subscription: first (spill to PayGo), only (PT or refuse), never (PayGo only)")
    wait_s: Number = Field(Decimal(0), description="Under 'only': wait up to this many seconds (at most 30) for PT capacity before refusing")

    @field_validator("wait_s")
    @classmethod
    def _wait(cls, v: Decimal) -> Decimal:
        if not (0 <= v <= 30):
            raise ValueError("wait_s must be between 0 and 30 seconds")
        return v


class Fallbacks(_Base):
    """Ordered fallbacks tried on these failures: the next best eligible candidates (distinct models)."""

    max: int = Field(2, ge=0, le=10)
    retry_on: list[FailureKind] = Field(default_factory=lambda: ["rate_limited", "server_error", "timeout", "context_overflow"])
    order: Literal["ranked", "listed"] = Field("ranked", description="ranked: by the objective; listed: in candidate order")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true: accept it as `retry_on`.
        if isinstance(data, dict) and True in data:
            data = {("retry_on" if k is True else k): v for k, v in data.items()}
        return data


class Settings(_Base):
    default_max_tokens: int = Field(1024, gt=0, le=MAX_TOKENS, description="max_tokens when a request gives none")
    quota_timezone: str = Field("America/Los_Angeles", description="Time zone in which free grounding pools reset")
    expected_output_ratio: Number = Field(Decimal("0.5"), description="Expected output tokens as a fraction of max_tokens (for the expected cost)")
    count_tokens: CountTokensMode = Field(
        "near_limits",
        description="Ask Vertex's Count Tokens API for the exact prompt size: never; near_limits (when the ~4 characters a token estimate is within count_tokens_margin of a candidate's long-context tier boundary or context window, when a budget's headroom is within the margin of the request's upper bound, or when the request has non-text parts); always",
    )
    count_tokens_margin: Percent = Field(
        Decimal(25),
        description="Percent: how far the prompt estimate may be off. near_limits counts when a limit lies within it; when a count cannot be made (quota spent, error, timeout) the estimate plus this margin is used",
    )

    @field_validator("quota_timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("count_tokens_margin")
    @classmethod
    def _margin(cls, v: Decimal) -> Decimal:
        if not (0 <= v <= 1000):
            raise ValueError("count_tokens_margin must be a percent between 0 and 1000")
        return v

    @field_validator("expected_output_ratio")
    @classmethod
    def _ratio(cls, v: Decimal) -> Decimal:
        if not (0 < v <= 1):
            raise ValueError("expected_output_ratio must be in (0, 1]")
        return v


def _version(value: Any) -> Any:
    if isinstance(value, bool):  # YAML true is a bool, and bool is an int in Python: refuse it explicitly
        raise ValueError(f"must be the integer 1, not {str(value).lower()}")
    return value


class Policy(_Base):
    """A routing policy (``version: 1``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Vertex policy router policy (version 1)")

    version: Annotated[Literal[1], BeforeValidator(_version)] = Field(description="Policy language version: 1")
    description: Optional[str] = None
    settings: Settings = Field(default_factory=Settings)
    candidates: list[CandidateSpec] = Field(default_factory=list, description="Candidates of every profile that has none of its own (empty: the whole catalog)")
    profiles: dict[str, Profile] = Field(min_length=1)
    default_profile: str
    rules: list[Rule] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)
    grounding: Grounding = Field(default_factory=Grounding)
    priority: Priority = Field(default_factory=Priority)
    provisioned: Provisioned = Field(default_factory=Provisioned)
    fallbacks: Fallbacks = Field(default_factory=Fallbacks)

    _source_text: Optional[str] = PrivateAttr(None)
    _filename: str = PrivateAttr("<policy>")
    _positions: dict = PrivateAttr(default_factory=dict)

    @property
    def source_text(self) -> str | None:
        return self._source_text

    @property
    def filename(self) -> str:
        return self._filename

    @property
    def positions(self) -> dict:
        return self._positions


__all__ = [
    "Budget",
    "BudgetAction",
    "CandidateSpec",
    "Constraints",
    "Fallbacks",
    "Grounding",
    "Objective",
    "Policy",
    "Priority",
    "Profile",
    "Provisioned",
    "REGION_GROUPS",
    "Rule",
    "Selector",
    "Settings",
    "Subscription",
    "TokenRange",
    "When",
    "parse_window",
]
