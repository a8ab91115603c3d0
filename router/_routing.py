"""The ``routing`` record attached to every routed response: what was decided, tried, used and billed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class Attempt:
    """One try of the call: which model, what happened, and what was reserved / settled for it."""

    model: str
    location: str
    outcome: str  # "ok" | "rate_limited" | "server_error" | "timeout" | "context_overflow" | "bad_request" | "denied" | "interrupted"
    reserved_usd: Decimal = Decimal(0)
    settled_usd: Decimal = Decimal(0)
    detail: str = ""


@dataclass
class RoutingRecord:
    """Everything a caller (or an auditor) needs about one routed request."""

    request_id: str
    decision: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    model: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost_lines: list[dict[str, str]] = field(default_factory=list)
    cost_usd: Decimal = Decimal(0)
    grounding_free_units: int = 0
    grounding_billable_units: int = 0
    traffic_type: str | None = None
    warnings: list[str] = field(default_factory=list)
    policy_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (Decimals as exact strings)."""
        from router.cost import fmt

        def convert(value: Any) -> Any:
            if isinstance(value, Decimal):
                return fmt(value)
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [convert(v) for v in value]
            return value

        return convert(asdict(self))
