"""``explain``: the decision the engine makes, with its trace (what ``router explain --json`` prints).

It runs the very same code path as :meth:`CompiledPolicy.decide`, only asking it to keep the ranking
and the budget measurements, so the explanation can never differ from the run-time decision.
"""

from __future__ import annotations

from typing import Any

from router.errors import NoEligibleModelError, RequestRefusedError
from router.policy.decide import decide
from router.policy.features import RequestFeatures, StateSnapshot


def features_dict(f: RequestFeatures) -> dict[str, Any]:
    return {
        "tenant": f.tenant,
        "app": f.app,
        "tags": dict(f.tags or {}),
        "task": f.task,
        "prompt_tokens": f.prompt_tokens,
        "max_tokens": f.max_tokens,
        "grounding": f.grounding,
        "latency_sensitive": f.latency_sensitive,
        "required_capabilities": sorted(f.required_capabilities),
        "at": f.at.isoformat(),
    }


def explain(compiled: Any, features: RequestFeatures, state: StateSnapshot | None = None, prompt: Any = None) -> dict[str, Any]:
    """The decision as a JSON-ready dict plus its trace: ``request``, ``budget_status``, ranked
    ``candidates``; ``refused`` / ``error`` (and ``model: None``) when the request would be refused or
    no candidate qualifies. ``prompt``: where the prompt size came from (a
    :class:`~router.policy.counting.PromptSize`, shown as ``prompt_size``)."""
    state = state if state is not None else StateSnapshot()
    status: list[dict[str, Any]] = []
    base: dict[str, Any] = {"policy_version": compiled.version, "request": features_dict(features), "prompt_size": prompt.to_dict() if prompt is not None else None}
    def undecided(exc: Exception, rejected: list[dict[str, str]], refused: str | None, error: str | None) -> dict[str, Any]:
        return {
            **base,
            "model": None,
            "fallbacks": [],
            "estimated_cost_usd": None,
            "rule": getattr(exc, "rule", None),
            "profile": getattr(exc, "profile", None),
            "budgets": [b.id for b in getattr(exc, "budgets", [])],
            "budget_status": status,
            "actions": list(getattr(exc, "actions", [])),
            "candidates": [],
            "rejected": rejected,
            "notes": [],
            "refused": refused,
            "error": error,
        }

    try:
        decision = decide(compiled, features, state, trace=True, status=status)
    except RequestRefusedError as exc:
        return undecided(exc, [], str(exc), None)
    except NoEligibleModelError as exc:
        return undecided(exc, [{"model": m, "reason": r} for m, r in exc.rejected], None, str(exc))
    decision.prompt = prompt
    out = {**base, **decision.to_dict()}
    out["budget_status"] = status
    out["candidates"] = decision.ranked or []
    out["refused"] = None
    out["error"] = None
    return out


__all__ = ["explain", "features_dict"]
