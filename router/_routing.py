"""The ``routing`` record attached to every routed response: what was decided, tried, used and billed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from collections.abc import Callable
from typing import Any


@dataclass
class Attempt:
    """One try of the call: which model, what happened, and what was reserved / settled for it."""

    model: str
    location: str
    outcome: str  # "ok" | "rate_limited" | "server_error" | "timeout" | "context_overflow" | "bad_request" | "denied" | "interrupted" | "pt_saturated"
    reserved_usd: Decimal = Decimal(0)
    settled_usd: Decimal = Decimal(0)
    detail: str = ""


class RoutingRecord:
    """Everything a caller (or an auditor) needs about one routed request.

    ``decision`` is the decision as ``router explain --json`` prints it (a dict; built on first access,
    so that requests nobody inspects do not pay for it); ``attempts`` what each try did; ``usage`` the
    provider's usage; ``cost_lines`` / ``cost_usd`` the exact bill; grounding units counted free / billable;
    ``traffic_type`` as the provider reported it; ``provisioned`` the Provisioned Throughput use (a
    PT-served request costs $0 in budgets; its amortised subscription cost is recorded here);
    ``policy_version`` the policy that decided.
    """

    def __init__(self, request_id: str, decision: Any) -> None:
        self.request_id = request_id
        self._decision_source = decision
        self._decision: dict[str, Any] | None = decision if isinstance(decision, dict) else None
        self.attempts: list[Attempt] = []
        self.model: str | None = None
        self._usage: dict[str, Any] | None = {}
        self._usage_source: Any = None
        self._cost_lines: list[dict[str, str]] | None = []
        self._cost_lines_source: Callable[[], list[dict[str, str]]] | None = None
        self.cost_usd: Decimal = Decimal(0)
        self.grounding_free_units = 0
        self.grounding_billable_units = 0
        self.traffic_type: str | None = None
        #: Provisioned Throughput use (None: the request could not use any): key MODEL@REGION, mode,
        #: traffic served | spilled, and when served the burndown-adjusted tokens, GSU-seconds, the
        #: amortised subscription cost and what PayGo would have cost; when spilled its PayGo cost.
        self.provisioned: dict[str, Any] | None = None
        self.warnings: list[str] = []
        self.policy_version: str | None = None

    @property
    def usage(self) -> dict[str, Any]:
        """The provider's usage of the served attempt (a dict; built on first access)."""
        if self._usage is None:
            source = self._usage_source
            self._usage = source.to_dict() if hasattr(source, "to_dict") else dict(source or {})
        return self._usage

    @usage.setter
    def usage(self, value: dict[str, Any]) -> None:
        self._usage, self._usage_source = value, None

    def usage_from(self, source: Any) -> None:
        """Take the usage from ``source`` (a ``ProviderUsage`` or a mapping) when it is first read."""
        self._usage, self._usage_source = None, source

    @property
    def cost_lines(self) -> list[dict[str, str]]:
        """The itemised bill (one dict per line, as ``router cost --json`` prints them; built on first access)."""
        if self._cost_lines is None:
            source, self._cost_lines_source = self._cost_lines_source, None
            self._cost_lines = source() if source is not None else []
        return self._cost_lines

    @cost_lines.setter
    def cost_lines(self, value: list[dict[str, str]]) -> None:
        self._cost_lines, self._cost_lines_source = value, None

    def cost_lines_from(self, build: Callable[[], list[dict[str, str]]]) -> None:
        """Build the itemised lines with ``build()`` when they are first read (most requests never read them)."""
        self._cost_lines, self._cost_lines_source = None, build

    @property
    def decision(self) -> dict[str, Any]:
        if self._decision is None:
            self._decision = self._decision_source.to_dict()
        return self._decision

    @property
    def rule(self) -> str | None:
        """The policy rule that matched (None: the default profile)."""
        if self._decision is None:
            return getattr(self._decision_source, "rule", None)
        return self._decision.get("rule")

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

        return convert(
            {
                "request_id": self.request_id,
                "policy_version": self.policy_version,
                "decision": self.decision,
                "attempts": [asdict(a) for a in self.attempts],
                "model": self.model,
                "usage": self.usage,
                "cost_lines": self.cost_lines,
                "cost_usd": self.cost_usd,
                "grounding_free_units": self.grounding_free_units,
                "grounding_billable_units": self.grounding_billable_units,
                "traffic_type": self.traffic_type,
                "provisioned": self.provisioned,
                "warnings": self.warnings,
            }
        )

    def __repr__(self) -> str:
        return f"RoutingRecord(request_id={self.request_id!r}, model={self.model!r}, cost_usd={self.cost_usd}, attempts={len(self.attempts)})"
