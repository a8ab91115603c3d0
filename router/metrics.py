"""Prometheus metrics (prometheus-client). A :class:`RouterMetrics` owns its own registry, so several
Routers (or tests) never collide; ``serve_metrics`` exposes one on ``/metrics``.

Request-path metrics are updated by the Router as calls happen; ledger gauges (budget utilisation,
grounding pools, priority ramp, journal backlog) are refreshed from the store by :meth:`router.Router.refresh_metrics` (or the standalone ``router metrics`` exporter)
at scrape time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, make_wsgi_app

if TYPE_CHECKING:
    from router.ledger.types import BudgetScope, LedgerSnapshot

DECISION_BUCKETS = (0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


class RouterMetrics:
    """All router metrics in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("router_requests", "Routed requests by outcome", ["model", "tenant", "rule", "outcome"], registry=r)
        self.cost = Counter("router_cost_usd", "Settled cost in USD", ["model", "tenant", "rule"], registry=r)
        self.decision_seconds = Histogram("router_decision_seconds", "Time to decide (policy evaluation)", buckets=DECISION_BUCKETS, registry=r)
        self.denials = Counter("router_reservation_denials", "Reservations denied, by scope", ["scope"], registry=r)
        self.fallbacks = Counter("router_fallbacks", "Attempts that fell through to the next model", ["model", "reason"], registry=r)
        self.overruns = Counter("router_reservation_overruns", "Bills that passed their reservation (prompt estimate too low)", registry=r)
        self.store_errors = Counter("router_store_errors", "Ledger store errors", ["operation"], registry=r)
        self.policy_reloads = Counter("router_policy_reloads", "Policy reloads by result", ["result"], registry=r)
        self.policy_reload_failing = Gauge("router_policy_reload_failing", "1 while the policy file on disk is invalid (old policy still serving)", registry=r)
        self.policy_version = Gauge("router_policy_version_info", "The serving policy version", ["version"], registry=r)
        self.budget_utilisation = Gauge("router_budget_utilisation_ratio", "Spend (settled + held) / limit", ["budget", "scope", "window"], registry=r)
        self.budget_spend = Gauge("router_budget_spend_usd", "Spend (settled + held) in the window", ["budget", "scope", "window"], registry=r)
        self.budget_limit = Gauge("router_budget_limit_usd", "The budget's limit", ["budget", "scope", "window"], registry=r)
        self.budget_burn = Gauge("router_budget_burn_usd_per_hour", "Spend per hour so far in the window", ["budget", "scope", "window"], registry=r)
        self.budget_projected = Gauge(
            "router_budget_projected_usd", "Spend projected at the end of the window at the current pace", ["budget", "scope", "window"], registry=r
        )
        self.pool_used = Gauge("router_grounding_pool_used", "Grounding units used this period", ["pool"], registry=r)
        self.pool_remaining = Gauge("router_grounding_pool_remaining", "Free grounding units left this period", ["pool"], registry=r)
        self.pool_free = Gauge("router_grounding_pool_free_units", "The pool's free quota per period", ["pool"], registry=r)
        self.priority_tokens = Gauge("router_priority_tokens_last_minute", "Priority PayGo tokens in the last minute", ["family"], registry=r)
        self.count_tokens = Counter("router_count_tokens", "Prompt sizes the policy wanted from Count Tokens, by outcome: counted, cache_hit, fallback (estimate + margin), unsupported (plain estimate)", ["outcome"], registry=r)
        self.count_pool_used = Gauge("router_count_tokens_pool_used", "Count Tokens requests in the last minute (the project's 3,000/min pool)", ["pool"], registry=r)
        self.count_pool_remaining = Gauge("router_count_tokens_pool_remaining", "Count Tokens requests left in the last minute", ["pool"], registry=r)
        self.pt_requests = Counter(
            "router_pt_requests", "Requests that could use Provisioned Throughput, by outcome (served, spilled, saturated)", ["model", "region", "outcome"], registry=r
        )
        self.pt_utilisation = Gauge("router_pt_utilisation_ratio", "Provisioned Throughput burndown-adjusted tokens in the 30 s window / capacity", ["model", "region"], registry=r)
        self.pt_served_share = Gauge("router_pt_served_share_ratio", "Share of this month's PT-eligible requests served by Provisioned Throughput", ["model", "region"], registry=r)
        self.pt_spilled = Gauge("router_pt_spilled_requests", "Requests spilled to PayGo this month (ledger)", ["model", "region"], registry=r)
        self.pt_amortised = Gauge("router_pt_amortised_usd", "Amortised subscription cost of the PT-served requests this month", ["model", "region"], registry=r)
        self.journal_backlog = Gauge("router_journal_backlog", "Spend events journaled locally, waiting for Redis (fail_open)", registry=r)

    # -- request path ---------------------------------------------------------------------------
    def record_request(self, model: str | None, tenant: str | None, rule: str | None, outcome: str, cost: Decimal = Decimal(0)) -> None:
        labels = (model or "-", tenant or "-", rule or "-")
        self.requests.labels(*labels, outcome).inc()
        if cost:
            self.cost.labels(*labels).inc(float(cost))  # Prometheus samples are floats; the ledger keeps Decimals

    def record_denial(self, scope: str) -> None:
        self.denials.labels(scope).inc()

    def record_fallback(self, model: str, reason: str) -> None:
        self.fallbacks.labels(model, reason).inc()

    def record_pt(self, key: str, outcome: str) -> None:
        """Count a PT-eligible request of ``MODEL@REGION``: ``served``, ``spilled`` or ``saturated``."""
        model, _, region = key.partition("@")
        self.pt_requests.labels(model, region, outcome).inc()

    def set_pt(self, key: str, used: int, capacity: int, totals: Any = None) -> None:
        """Set the PT gauges of ``MODEL@REGION``: window utilisation, and this month's totals if given."""
        model, _, region = key.partition("@")
        self.pt_utilisation.labels(model, region).set(used / capacity if capacity else 0.0)
        if totals is not None:
            self.pt_served_share.labels(model, region).set(float(totals.served_share))
            self.pt_spilled.labels(model, region).set(totals.spilled)
            self.pt_amortised.labels(model, region).set(float(totals.amortised_usd))

    def record_store_error(self, operation: str) -> None:
        self.store_errors.labels(operation).inc()

    def record_count_tokens(self, outcome: str) -> None:
        self.count_tokens.labels(outcome).inc()

    def set_count_pool(self, pool: str, used: int, remaining: int) -> None:
        self.count_pool_used.labels(pool).set(used)
        self.count_pool_remaining.labels(pool).set(remaining)

    def record_policy_reload(self, ok: bool, version: str | None = None) -> None:
        self.policy_reloads.labels("ok" if ok else "error").inc()
        self.policy_reload_failing.set(0 if ok else 1)
        if ok and version:
            self.policy_version.clear()
            self.policy_version.labels(version).set(1)

    # -- ledger gauges --------------------------------------------------------------------------
    def set_budget(
        self, budget: str, scope: str, window: str, spend: Decimal, limit: Decimal, burn_per_hour: Decimal | None = None, projected: Decimal | None = None
    ) -> None:
        labels = (budget, scope, window)
        self.budget_spend.labels(*labels).set(float(spend))
        self.budget_limit.labels(*labels).set(float(limit))
        self.budget_utilisation.labels(*labels).set(float(spend / limit) if limit else 0.0)
        if burn_per_hour is not None:
            self.budget_burn.labels(*labels).set(float(burn_per_hour))
        if projected is not None:
            self.budget_projected.labels(*labels).set(float(projected))

    def set_ledger(self, budgets: Sequence[BudgetScope], snapshot: LedgerSnapshot, now: dt.datetime | None = None) -> None:
        """Set the budget (spend, limit, burn rate, projection at window end), grounding pool and priority
        ramp gauges from a ledger snapshot taken at ``now`` (default: the current time)."""
        from router.burn import burn_projection, window_bounds

        now = now or dt.datetime.now(dt.timezone.utc)
        for budget in budgets:
            spend = snapshot.spend.get(budget.id, Decimal(0))
            start, end = window_bounds(budget.window, now)
            per_hour, projected = burn_projection(spend, start, end, now)
            self.set_budget(budget.id, budget.scope, str(budget.window), spend, budget.limit_usd, per_hour, projected)
        for usage in snapshot.pools.values():
            self.set_pool(usage.pool_id, usage.used, usage.remaining, usage.free_units)
        for usage in snapshot.ramp.values():
            self.set_priority(usage.family, usage.tokens_last_minute)

    def set_pool(self, pool: str, used: int, remaining: int, free_units: int | None = None) -> None:
        self.pool_used.labels(pool).set(used)
        self.pool_remaining.labels(pool).set(remaining)
        if free_units is not None:
            self.pool_free.labels(pool).set(free_units)

    def set_priority(self, family: str, tokens: int) -> None:
        self.priority_tokens.labels(family).set(tokens)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)

    def wsgi_app(self) -> Any:
        """A WSGI app serving ``/metrics`` that an application can mount."""
        return make_wsgi_app(self.registry)


def serve_metrics(metrics: RouterMetrics, port: int, addr: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a background thread; returns the server (``.shutdown()``)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return server
