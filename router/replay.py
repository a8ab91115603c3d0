"""Policy replay: what a request log would have cost, and where it would have gone, under another policy.

A Router started with ``request_log="requests.jsonl"`` appends one line per served request: when, who
(tenant, app, tags, task), its shape (prompt tokens, max_tokens, grounding, latency-sensitive, required
capabilities), the model it went to, the provider's usage and the exact bill. :func:`replay` re-decides
every logged request, in log order, with a candidate policy, against a simulated ledger (a
:class:`~router.ledger.MemoryStore` whose clock follows the log, so rolling and calendar windows, budget
actions and grounding pools behave as they would have), and bills each new choice with the cost engine.

Assumption (stated in every report): a request produces the same number of output and thinking tokens on
whichever model serves it; the prompt is re-billed at the new model's rates, grounding units are re-counted
through the pools. The logged bill of the original model is exact; the replayed one is an estimate.
Provider failures are not re-enacted: a logged request that a fallback served (after a 429, say) is
replayed on the policy's first choice; ``served_by_fallback`` counts them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from router.errors import RouterError, UsageError

ASSUMPTION = "output and thinking tokens are assumed model-independent; prompts and grounding are re-billed at the new model's rates"


class RequestLog:
    """Append-only JSON-lines log of served requests (one ``write`` per line, safe across threads)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, separators=(",", ":"), sort_keys=True, default=str) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


def log_entry(record: Any, features: Any, at: dt.datetime) -> dict[str, Any]:
    """The log line of one served request (see :class:`RequestLog`)."""
    usage = record.usage or {}
    return {
        "at": at.isoformat(),
        "request_id": record.request_id,
        "policy_version": record.policy_version,
        "tenant": features.tenant,
        "app": features.app,
        "tags": dict(features.tags or {}),
        "task": features.task,
        "prompt_tokens": features.prompt_tokens,
        "max_tokens": features.max_tokens,
        "grounding": features.grounding,
        "latency_sensitive": features.latency_sensitive,
        "capabilities": sorted(features.required_capabilities),
        "model": record.model,
        "decided_model": (record.decision or {}).get("model"),
        "usage": {k: usage.get(k, 0) for k in ("input_tokens", "output_tokens", "thinking_tokens", "audio_input_tokens", "grounding_web_urls", "search_queries", "web_searches")},
        "cost_usd": str(record.cost_usd),
        "location": next((a.location for a in reversed(record.attempts) if a.outcome in ("ok", "interrupted")), None),
        "traffic_type": record.traffic_type,
        **({"provisioned": {k: str(v) if isinstance(v, Decimal) else v for k, v in record.provisioned.items()}} if record.provisioned else {}),
    }


def read_log(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, entry) for every line of a request log; a malformed line is an error naming it."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                dt.datetime.fromisoformat(entry["at"])
                int(entry["prompt_tokens"])
            except (ValueError, KeyError, TypeError) as exc:
                raise RouterError(f"{path}:{number}: not a request-log line ({exc})") from None
            yield number, entry


@dataclass
class ReplayReport:
    """Totals of a replay: logged (exact) against replayed (estimated), by model and by tenant."""

    requests: int = 0
    logged_usd: Decimal = Decimal(0)
    replayed_usd: Decimal = Decimal(0)
    changed: int = 0
    refused: int = 0
    served_by_fallback: int = 0
    by_model_logged: Counter = field(default_factory=Counter)
    by_model_replayed: Counter = field(default_factory=Counter)
    by_tenant: dict[str, dict[str, Decimal]] = field(default_factory=lambda: defaultdict(lambda: {"logged_usd": Decimal(0), "replayed_usd": Decimal(0)}))
    moves: Counter = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)
    #: One entry per logged request, in log order: when, who, logged and replayed model and bill, budgets.
    timeline: list[dict[str, Any]] = field(default_factory=list)
    budget_limits: dict[str, Decimal] = field(default_factory=dict)
    #: The moments a budget action started to apply (or a request was refused), in log order.
    fired: list[dict[str, Any]] = field(default_factory=list)
    #: Grounding pool id -> [(moment, units used this period)] after each grounded request; and free units.
    pool_usage: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    pool_free: dict[str, int] = field(default_factory=dict)
    quality_logged: list[Decimal] = field(default_factory=list)
    quality_replayed: list[Decimal] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from router.cost import fmt

        return {
            "requests": self.requests,
            "logged_usd": fmt(self.logged_usd),
            "replayed_usd": fmt(self.replayed_usd),
            "difference_usd": fmt(self.replayed_usd - self.logged_usd),
            "changed_model": self.changed,
            "refused": self.refused,
            "served_by_fallback": self.served_by_fallback,
            "by_model": {
                m: {"logged": self.by_model_logged.get(m, 0), "replayed": self.by_model_replayed.get(m, 0)}
                for m in sorted(set(self.by_model_logged) | set(self.by_model_replayed))
            },
            "by_tenant": {t: {k: fmt(v) for k, v in sums.items()} for t, sums in sorted(self.by_tenant.items())},
            "moves": [{"from": a, "to": b, "requests": n} for (a, b), n in self.moves.most_common()],
            "refusals": self.refusals[:20],
            "assumption": ASSUMPTION,
            "figures": self.figures(),
        }

    def mean_quality(self) -> dict[str, str | None]:
        """Mean catalog quality score (0-100, two decimals) of the logged and of the replayed models."""
        from router.cost import fmt

        def mean(values: list[Decimal]) -> str | None:
            return fmt((sum(values, Decimal(0)) / len(values)).quantize(Decimal("0.01"))) if values else None

        return {"logged": mean(self.quality_logged), "replayed": mean(self.quality_replayed)}

    def figures(self) -> dict[str, Any]:
        """The data behind every chart of ``router replay --report`` (amounts as exact decimal strings)."""
        from router.cost import fmt

        logged_total = replayed_total = Decimal(0)
        cumulative = []
        for item in self.timeline:
            logged_total += item["logged_usd"]
            replayed_total += item["replayed_usd"]
            cumulative.append({"at": item["at"], "line": item["line"], "logged_usd": fmt(logged_total), "replayed_usd": fmt(replayed_total)})

        return {
            "cumulative_spend": cumulative,
            "requests": [
                {**item, "logged_usd": fmt(item["logged_usd"]), "replayed_usd": fmt(item["replayed_usd"])} for item in self.timeline
            ],
            "budget_limits": {budget: fmt(limit) for budget, limit in sorted(self.budget_limits.items())},
            "actions_fired": list(self.fired),
            "grounding": {
                pool: {"free_units": self.pool_free.get(pool, 0), "usage": [{"at": at, "used": used} for at, used in points]}
                for pool, points in sorted(self.pool_usage.items())
            },
            "mean_quality": self.mean_quality(),
        }


def _quality(catalog: Any, model_id: str | None) -> Decimal | None:
    if not model_id:
        return None
    try:
        quality = catalog.get(model_id).quality
    except RouterError:
        return None
    return quality.score if quality is not None else None


def _action_key(text: str) -> tuple[str, str]:
    """(budget id, action) of an applied-action line such as ``tenant:a|calendar:month@UTC at 85% >= 80%: profile x``."""
    why, _, action = text.rpartition(": ")
    return why.split(" ", 1)[0], action


async def replay(entries: Iterable[tuple[int, dict[str, Any]]], compiled: Any, catalog: Any) -> ReplayReport:
    """Re-decide logged requests with ``compiled`` (a compiled policy) on a simulated ledger; see the module doc."""
    from router.ledger import MemoryStore
    from router.policy import RequestFeatures, StateSnapshot

    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    report = ReplayReport()
    active: set[tuple[str, str]] = set()  # (budget id, action) applying as of the previous request
    for number, entry in entries:
        at = dt.datetime.fromisoformat(entry["at"])
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.timezone.utc)
        now[0] = at.timestamp()
        features = RequestFeatures(
            tenant=entry.get("tenant"),
            app=entry.get("app"),
            tags=entry.get("tags") or {},
            task=entry.get("task"),
            prompt_tokens=int(entry["prompt_tokens"]),
            max_tokens=int(entry.get("max_tokens") or compiled.default_max_tokens),
            grounding=entry.get("grounding"),
            latency_sensitive=bool(entry.get("latency_sensitive")),
            required_capabilities=frozenset(entry.get("capabilities") or ()),
            at=at.date(),
        )
        logged = Decimal(str(entry.get("cost_usd") or "0"))
        tenant = features.tenant or "-"
        report.requests += 1
        report.logged_usd += logged
        report.by_model_logged[entry.get("model") or "-"] += 1
        report.by_tenant[tenant]["logged_usd"] += logged
        budgets = compiled.budgets_for(features)
        pools = compiled.pools_for(features)
        for budget in budgets:
            report.budget_limits[budget.id] = budget.limit_usd
        logged_quality = _quality(catalog, entry.get("model"))
        if logged_quality is not None:
            report.quality_logged.append(logged_quality)
        moment = at.isoformat()
        point: dict[str, Any] = {
            "at": moment, "line": number, "tenant": tenant, "budgets": [b.id for b in budgets],
            "logged_model": entry.get("model"), "logged_usd": logged, "model": None, "replayed_usd": Decimal(0), "refused": False,
        }
        report.timeline.append(point)
        snap = await store.snapshot(budgets, pools, compiled.ramp_families)
        try:
            state = StateSnapshot.from_ledger(snap, budgets)
            state.now = at  # pacing measures the window from the logged moment, not from today
            decision = compiled.decide(features, state)
        except RouterError as exc:
            report.refused += 1
            report.refusals.append(f"line {number}: {type(exc).__name__}: {exc}")
            report.moves[(entry.get("model") or "-", "refused")] += 1
            point["refused"] = True
            report.fired.append({"at": moment, "line": number, "tenant": tenant, "kind": "refused", "budget": None, "action": f"{type(exc).__name__}: {exc}"})
            continue
        current = {_action_key(text) for text in decision.actions}
        for budget_id, action in sorted(current - active):
            kind = "refused" if action.startswith("refuse") else "downgrade"
            report.fired.append({"at": moment, "line": number, "tenant": tenant, "kind": kind, "budget": budget_id, "action": action})
        scopes = {b.id for b in budgets}
        active = {key for key in active if key[0] not in scopes} | current
        served = None
        for index, choice in enumerate([decision.primary, *decision.fallbacks]):
            try:
                cost = await _price(choice, entry, features, catalog, compiled, store, f"replay-{number}-{index}")
            except (RouterError, UsageError) as exc:
                report.refusals.append(f"line {number}: cannot price {choice.model}: {exc}")
                continue
            rid = f"replay-{number}-{index}"
            if (await store.reserve(rid, decision.budgets, cost, 60)).granted:  # like the Router: each attempt reserves
                await store.settle(rid, cost)
                served = (choice.model, cost)
                break
        if served is None:
            report.refused += 1
            report.refusals.append(f"line {number}: every candidate's reservation was denied or unpriced")
            report.moves[(entry.get("model") or "-", "refused")] += 1
            point["refused"] = True
            report.fired.append({"at": moment, "line": number, "tenant": tenant, "kind": "denied", "budget": None, "action": "every reservation denied"})
            continue
        model_id, cost = served
        point["model"], point["replayed_usd"] = model_id, cost
        chosen = next(c for c in [decision.primary, *decision.fallbacks] if c.model == model_id)
        if chosen.quality is not None:
            report.quality_replayed.append(chosen.quality)
        if pools:
            usage = (await store.snapshot([], pools, [])).pools
            for pool in pools:
                if pool.id in usage:
                    report.pool_usage[pool.id].append((moment, usage[pool.id].used))
                    report.pool_free[pool.id] = usage[pool.id].free_units
        report.replayed_usd += cost
        report.by_model_replayed[model_id] += 1
        report.by_tenant[tenant]["replayed_usd"] += cost
        # A change is a different *decision*: a logged request served by a fallback (a 429 that day) whose
        # primary is chosen again is not a change; replay does not re-enact provider failures.
        decided = entry.get("decided_model") or entry.get("model")
        if entry.get("model") != decided:
            report.served_by_fallback += 1
        if model_id != decided:
            report.changed += 1
            report.moves[(decided or "-", model_id)] += 1
    return report


async def _price(choice: Any, entry: dict[str, Any], features: Any, catalog: Any, compiled: Any, store: Any, consume_id: str) -> Decimal:
    """The replayed bill of ``choice``: the logged usage re-billed at its rates, grounding through the pools."""
    from router.cost import USAGE_FIELD_OF_UNIT, Usage, compute_cost

    model = catalog.get(choice.model)
    usage = entry.get("usage") or {}
    prompt = int(usage.get("input_tokens") or features.prompt_tokens)
    output, thinking = int(usage.get("output_tokens", 0)), int(usage.get("thinking_tokens", 0))
    fields: dict[str, Any] = {"at": features.at, "location": choice.location}
    if model.billing_unit == "character":
        fields.update(input_chars=prompt * 4, output_chars=(output + thinking) * 4)
    else:
        fields.update(input_tokens=prompt, output_tokens=output, thinking_tokens=thinking)
    if choice.grounding:
        option = model.grounding[choice.grounding]
        key = USAGE_FIELD_OF_UNIT[option.unit]
        units = max(1, int(usage.get(key, 0) or 0)) if key in ("search_queries", "web_searches") else 1
        fields[key] = units
        fields["grounding_kind"] = choice.grounding
        if option.pool:
            consumed = await store.consume(compiled.quota_pool(option.pool), units, consume_id)
            fields["grounding_billable_units"] = consumed.billable_units
    return compute_cost(model, Usage.build(**fields), catalog.pools).total
