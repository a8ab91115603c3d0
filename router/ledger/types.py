"""Value types shared by the ledger, the policy engine and the Router (the ledger's contract).

A *budget scope* is a spend counter with a limit: ``scope`` names who spends (``global``,
``tenant:acme``, ``app:search``, ``tag:team=ml``), ``window`` how spend is summed over time.
A *quota pool* is a free-units counter (grounding) that resets each day or month in a time zone.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cached_property
from decimal import Decimal
from typing import Literal

from router.ledger.names import check_scope

ROLLING_SPANS: dict[str, int] = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
CALENDAR_SPANS = ("day", "month")
#: The shape of a scope: ``global``, ``tenant:NAME``, ``app:NAME`` or ``tag:KEY=VALUE``, each name in the
#: encoded form of :func:`router.ledger.names.encode_name` (so no input can escape its key prefix).
#: ``BudgetScope`` also checks that each name is canonically encoded (``check_scope``).
SCOPE_RE = re.compile(r"^(global|(tenant|app):(?:[A-Za-z0-9_.~@\-]|%[0-9A-F]{2}){1,1536}|tag:(?:[A-Za-z0-9_.~@\-]|%[0-9A-F]{2}){1,1536}=(?:[A-Za-z0-9_.~@\-]|%[0-9A-F]{2}){1,1536})\Z")


@dataclass(frozen=True)
class Window:
    """How spend is summed: ``rolling`` over ``1h|24h|7d|30d``, or ``calendar`` ``day|month`` in ``timezone``."""

    kind: Literal["rolling", "calendar"]
    span: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.kind == "rolling" and self.span not in ROLLING_SPANS:
            raise ValueError(f"rolling window span must be one of {sorted(ROLLING_SPANS)}, not {self.span!r}")
        if self.kind == "calendar" and self.span not in CALENDAR_SPANS:
            raise ValueError(f"calendar window span must be day or month, not {self.span!r}")
        if self.kind not in ("rolling", "calendar"):
            raise ValueError(f"window kind must be rolling or calendar, not {self.kind!r}")

    @classmethod
    def parse(cls, text: str) -> "Window":
        """``rolling:24h``, ``calendar:month@Europe/Paris``, ``calendar:day`` (UTC)."""
        kind, _, rest = text.partition(":")
        span, _, tz = rest.partition("@")
        return cls(kind, span, tz or "UTC")  # type: ignore[arg-type]

    def __str__(self) -> str:
        if self.kind == "rolling":
            return f"rolling:{self.span}"
        return f"calendar:{self.span}@{self.timezone}"


@dataclass(frozen=True)
class BudgetScope:
    """A spend limit: ``scope`` (``global`` / ``tenant:acme`` / ``app:x`` / ``tag:k=v``), ``window``, ``limit_usd``.

    Names in ``scope`` are encoded (:func:`router.ledger.names.scope_of` builds a scope from raw names:
    ``scope_of("tenant", "a/b")`` is ``tenant:a%2Fb``)."""

    scope: str
    window: Window
    limit_usd: Decimal

    def __post_init__(self) -> None:
        check_scope(self.scope)

    @cached_property
    def id(self) -> str:
        """Stable identity of the counter (scope + window), used as the key of snapshot results (computed once)."""
        return f"{self.scope}|{self.window}"


@dataclass(frozen=True)
class QuotaPool:
    """A free-units pool (grounding): ``free_units`` per ``period`` (day / month) reset in ``timezone``."""

    id: str
    free_units: int
    period: Literal["day", "month"]
    timezone: str = "America/Los_Angeles"


@dataclass(frozen=True)
class Reservation:
    """Result of ``reserve``: granted, or denied naming the budget (``denied_scope`` = BudgetScope.id)."""

    reservation_id: str
    granted: bool
    denied_scope: str | None = None
    amount: Decimal = Decimal(0)


@dataclass(frozen=True)
class Consumed:
    """Result of ``consume``: how many units fell inside the free quota and how many are billable."""

    free_units: int
    billable_units: int


@dataclass(frozen=True)
class PoolUsage:
    """One quota pool now: used units in the current period, its free units, remaining, next reset."""

    pool_id: str
    used: int
    free_units: int
    resets_at: dt.datetime

    @property
    def remaining(self) -> int:
        return max(0, self.free_units - self.used)


@dataclass(frozen=True)
class RampUsage:
    """Priority PayGo tokens in the last minute for a model family, against its current ramp limit."""

    family: str
    tokens_last_minute: int
    limit_tpm: int


@dataclass
class LedgerSnapshot:
    """One-round-trip read for the decision engine: spend by ``BudgetScope.id`` (settled + held),
    pool usage by pool id, priority ramp usage by family."""

    spend: dict[str, Decimal] = field(default_factory=dict)
    pools: dict[str, PoolUsage] = field(default_factory=dict)
    ramp: dict[str, RampUsage] = field(default_factory=dict)


@dataclass(frozen=True)
class ScopeInfo:
    """A budget the ledger has seen in a reservation (for ``router spend``): its definition and when
    a reservation last named it."""

    budget: BudgetScope
    last_seen: dt.datetime
