"""vertex-policy-router: a policy-driven model router for Vertex AI.

Public API (everything else is private)::

    import router
    r = router.Router(policy="policies/balanced.yaml", store="memory://")
    response = r.complete(messages=[{"role": "user", "content": "hi"}], tenant="acme")
    response.routing.cost_usd

Names are imported lazily so that ``import router`` (and the ``router cost`` / ``validate`` /
``explain`` commands) never pay for litellm or redis.
"""

from __future__ import annotations

from router._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "BudgetExceededError": "router.errors",
    "Catalog": "router.catalog",
    "CatalogError": "router.errors",
    "ContextWindowExceededError": "router.errors",
    "CostBreakdown": "router.cost",
    "CostLine": "router.cost",
    "NoEligibleModelError": "router.errors",
    "PolicyError": "router.errors",
    "PriceNotAvailableError": "router.errors",
    "RequestError": "router.errors",
    "RequestRefusedError": "router.errors",
    "Router": "router._client",
    "RouterError": "router.errors",
    "RouterMetrics": "router.metrics",
    "RoutingRecord": "router._routing",
    "StoreError": "router.errors",
    "StoreUnavailableError": "router.errors",
    "TransportError": "router.errors",
    "UnknownModelError": "router.errors",
    "Usage": "router.cost",
    "UsageError": "router.errors",
    "acomplete": "router._default",
    "complete": "router._default",
    "compute_cost": "router.cost",
    "default_catalog": "router.catalog",
    "load_catalog": "router.catalog",
    "load_policy": "router.policy",
    "plan_gsu": "router.gsu",
    "store_from_url": "router.ledger",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports('router', globals(), _EXPORTS)
