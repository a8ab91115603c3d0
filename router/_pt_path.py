"""Provisioned Throughput on the request path: read capacity for the decision, claim it before sending,
set the request-type headers, bill a PT-served response at $0 with its amortised cost, reconcile.

Headers (seed 003): without ``X-Vertex-AI-LLM-Request-Type`` Vertex uses the project's PT first and spills
to PayGo (``first``); ``dedicated`` uses PT only (``only``: a 429 when it is used up); ``shared`` skips PT
(``never``, sent only for a model and region the policy has a subscription for). The priority header
(``X-Vertex-AI-LLM-Shared-Request-Type: priority``) keeps working on top: the spill goes to Priority PayGo.

The claim mirrors Vertex's own check: before sending, the request's burndown-adjusted estimate (prompt +
``max_tokens``) is claimed in the ledger's 30 s window (:meth:`router.ledger.Store.pt_claim`); the
response's actual tokens replace it (:meth:`~router.ledger.Store.pt_settle`). A claim of an attempt that
failed is given back; a claim of a cancelled call is left to age out of the window (30 s).
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from router._routing import Attempt, RoutingRecord

REQUEST_TYPE_HEADER = "X-Vertex-AI-LLM-Request-Type"
#: How often an ``only`` request waiting for capacity tries its claim again (seconds).
WAIT_POLL_S = 0.25


def _store(router: Any, request: dict[str, Any]) -> Any:
    """The request's store (resolved once per request by the Router), else the Router's."""
    found = request.get("store")
    return found if found is not None else router.store()


def _is_grounding(dimension: str) -> bool:
    return dimension.startswith("grounding") or dimension == "web_search"


async def read_usage(store: Any, compiled: Any, state: Any) -> None:
    """Put the burndown-adjusted tokens of every subscription's window into ``state.pt`` (one read)."""
    if compiled.pt_keys:
        state.pt = await store.pt_usage(compiled.pt_keys)


def with_headers(choice: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the request-type header the choice's PT mode asks for."""
    pt = choice.provisioned
    if pt is None or pt.key is None or pt.mode == "first":
        return params
    out = dict(params)
    headers = dict(out.get("extra_headers") or {})
    headers[REQUEST_TYPE_HEADER] = "dedicated" if pt.mode == "only" else "shared"
    out["extra_headers"] = headers
    return out


async def claim(router: Any, choice: Any, request: dict[str, Any], attempt_id: str, upper: Decimal, record: RoutingRecord) -> Decimal | None:
    """The amount to reserve for this attempt, after claiming PT capacity; None: ``only`` and PT stayed
    saturated up to ``provisioned.wait_s`` (the attempt is recorded as ``pt_saturated``)."""
    from router.policy.compile import from_units

    pt = choice.provisioned
    if pt.key is None or pt.mode == "never" or not pt.covered:
        return upper  # no subscription / never / first with too little headroom: the PayGo estimate stands
    token_ub = from_units(pt.paygo_ub)
    recomputed = bool(choice.grounding or choice.priority)  # _upper_bound priced the whole PayGo call
    pt_upper = max(Decimal(0), upper - token_ub) if recomputed else upper
    paygo_upper = upper if recomputed else upper + token_ub
    store = _store(router, request)
    wait = float(request["compiled"].pt_wait_s) if pt.mode == "only" else 0.0
    deadline = time.monotonic() + wait
    while True:
        got = await store.pt_claim(pt.key, pt.tokens, pt.capacity)
        if got.granted:
            request.setdefault("pt_claims", {})[attempt_id] = (pt.key, got.bucket, pt.tokens)
            return pt_upper
        if pt.mode == "first":
            record.warnings.append(
                f"{choice.model}: Provisioned Throughput {pt.key} filled up since the decision (headroom {got.headroom:,} < {pt.tokens:,}): reserved as a PayGo spill"
            )
            return paygo_upper
        left = deadline - time.monotonic()
        if left <= 0:
            detail = f"Provisioned Throughput {pt.key} saturated: headroom {got.headroom:,} < {pt.tokens:,} burndown-adjusted tokens"
            detail += f" after waiting {wait:g} s" if wait else ""
            record.attempts.append(Attempt(choice.model, choice.location, "pt_saturated", Decimal(0), detail=detail + " (provisioned: only)"))
            if router.metrics is not None:
                router.metrics.record_pt(pt.key, "saturated")
            return None
        await asyncio.sleep(min(WAIT_POLL_S, left))


async def release(router: Any, request: dict[str, Any], attempt_id: str) -> None:
    """Give back the claim of an attempt that failed (it used no capacity)."""
    found = request.get("pt_claims", {}).pop(attempt_id, None)
    if found is not None:
        key, bucket, tokens = found
        await _store(router, request).pt_adjust(key, bucket, -tokens)


async def bill(router: Any, choice: Any, request: dict[str, Any], usage: Any, attempt_id: str, record: RoutingRecord, breakdown: Any) -> Decimal:
    """What a successful attempt books in budgets: $0 for its tokens when Provisioned Throughput served it
    (grounding is still billed), its PayGo bill otherwise; records PT use and reconciles the counter."""
    found = request.get("pt_claims", {}).pop(attempt_id, None)
    pt = choice.provisioned
    served = usage.traffic_type == "PROVISIONED_THROUGHPUT"
    key = found[0] if found else (pt.key if pt is not None and pt.mode != "never" else None)
    if not served and key is None:
        return breakdown.total
    bucket, claimed = (found[1], found[2]) if found else (0, 0)
    store = _store(router, request)
    if not served:
        record.provisioned = {"key": key, "mode": pt.mode if pt else None, "traffic": "spilled", "paygo_usd": breakdown.total}
        await store.pt_settle(key, bucket, -claimed, False, 0, Decimal(0), breakdown.total)
        if router.metrics is not None:
            router.metrics.record_pt(key, "spilled")
        return breakdown.total
    token_usd = sum((line.amount for line in breakdown.lines if not _is_grounding(line.dimension)), Decimal(0))
    record.cost_lines = [line.to_dict() for line in breakdown.lines if _is_grounding(line.dimension)]
    info: dict[str, Any] = {"key": key, "mode": pt.mode if pt else None, "traffic": "served", "paygo_equivalent_usd": token_usd}
    features = request["features"]
    sub = request["compiled"].pt_active(features.at).get((choice.model, choice.location)) if key is not None else None
    if sub is None:
        record.warnings.append(
            f"{choice.model}: served by Provisioned Throughput the policy has no subscription for in {choice.location}: $0 in budgets, no amortised cost"
        )
    else:
        tokens = sub.burndown(usage.input_tokens, usage.output_tokens, usage.audio_input_tokens, usage.thinking_tokens)
        amortised = sub.amortised_cost(tokens)
        info.update(burndown_tokens=tokens, gsu_seconds=sub.gsu_seconds(tokens), amortised_cost_usd=amortised)
        await store.pt_settle(sub.key, bucket, tokens - claimed, True, tokens, amortised, token_usd)
        if router.metrics is not None:
            router.metrics.record_pt(sub.key, "served")
    record.provisioned = info
    rest = breakdown.total - token_usd  # grounding, billed as usual
    return rest if rest else Decimal(0)


async def refresh_metrics(router: Any) -> None:
    """Set the PT gauges: window utilisation per subscription, and this month's totals."""
    compiled = router.compiled
    if not compiled.pt_keys or router.metrics is None:
        return
    import datetime as dt

    store = router.store()
    used = await store.pt_usage(compiled.pt_keys)
    # capacity: the subscriptions active today, else those of the latest day requests were priced on
    # (requests may carry their own pricing date, ``at=``)
    active: dict[str, Any] = {}
    for day in sorted({*compiled._pt_active, dt.datetime.now(dt.timezone.utc).date()}):
        active.update({sub.key: sub for sub in compiled.pt_active(day).values()})
    month = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")
    totals = {t.key: t for t in await store.pt_totals() if t.month == month}
    for key in compiled.pt_keys:
        sub = active.get(key)
        router.metrics.set_pt(key, used.get(key, 0), sub.capacity if sub else 0, totals.get(key))


__all__ = ["REQUEST_TYPE_HEADER", "bill", "claim", "read_usage", "release", "with_headers"]
