"""The decision engine: features + state -> :class:`Decision`. Pure and allocation-light.

Order of evaluation (the same order ``router explain`` prints):

1. the first matching rule selects a profile (else ``default_profile``);
2. every budget this request spends against is measured: each action whose ``at_percent`` is reached
   applies (``refuse`` raises :class:`RequestRefusedError`; the highest reached ``switch_profile`` wins;
   price / cost caps take the tightest);
3. each candidate of the profile is checked: static reasons (lifecycle, quality, regions, profile
   capabilities), a price on the request date, context window >= prompt + max_tokens, max_tokens <= the
   model's max output, the request's capabilities, grounding support and the free pool, the output price
   cap, the per-request cost bound; failures go to ``rejected`` with the reason;
4. the eligible are ranked by the objective (grounded requests: candidates whose free pool has room
   first, when ``grounding.prefer_free_pool``); the first is the primary, the next ones the fallbacks.
"""

from __future__ import annotations

import datetime as dt

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from router.errors import NoEligibleModelError, RequestRefusedError
from router.ledger.types import BudgetScope
from router.policy.features import RequestFeatures, StateSnapshot
from router.policy.units import USD_OF_UNITS, from_units, to_units

if TYPE_CHECKING:  # types only: compile imports this module, never the other way round
    from router.policy.compile import Cand, CompiledPolicy

_PCT = Decimal("0.1")
_HUNDRED = Decimal(100)


def _fmt(value: Decimal) -> str:
    from router.cost import fmt

    return fmt(value)


@dataclass(frozen=True)
class Choice:
    """One way to send the request: model, endpoint location, batch / priority, grounding, cost estimates."""

    model: str
    location: str
    batch: bool = False
    priority: bool = False
    grounding: str | None = None
    estimated_cost: Decimal = Decimal(0)
    upper_bound_cost: Decimal = Decimal(0)
    quality: Decimal | None = None
    #: Grounding units ``upper_bound_cost`` bills in full (never counting on a free pool): one grounded
    #: prompt / request, or ``grounding.expected_queries`` search queries / web searches.
    grounding_units: int = 0
    #: Provisioned Throughput status (None: the candidate has no subscription and is not ``only``).
    provisioned: Any = None

    def to_dict(self) -> dict[str, Any]:
        extra = {"provisioned": self.provisioned.to_dict()} if self.provisioned is not None else {}
        return {
            "model": self.model,
            "location": self.location,
            "batch": self.batch,
            "priority": self.priority,
            "grounding": self.grounding,
            "estimated_cost_usd": _fmt(self.estimated_cost),
            "upper_bound_cost_usd": _fmt(self.upper_bound_cost),
            "quality": _fmt(self.quality.quantize(_PCT)) if self.quality is not None else None,
            **extra,
        }


@dataclass
class Decision:
    """The engine's answer for one request."""

    primary: Choice
    fallbacks: list[Choice]
    budgets: list[BudgetScope]
    rule: str | None
    profile: str
    rejected: list[tuple[str, str]]
    actions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    policy_version: str | None = None
    retry_on: tuple[str, ...] = ()
    ranked: list[dict[str, Any]] | None = None  # every eligible candidate, best first (explain only)
    rule_profile: str | None = None  # the profile the rule (or default) selected, before budget actions
    #: Where the prompt size came from (a :class:`router.policy.counting.PromptSize`); None: not said.
    prompt: Any = None

    @property
    def model(self) -> str:
        return self.primary.model

    @property
    def estimated_cost(self) -> Decimal:
        return self.primary.estimated_cost

    @property
    def upper_bound_cost(self) -> Decimal:
        return self.primary.upper_bound_cost

    @property
    def choices(self) -> list[Choice]:
        return [self.primary, *self.fallbacks]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (Decimals as exact strings)."""
        p = self.primary
        return {
            "model": p.model,
            "location": p.location,
            "batch": p.batch,
            "priority": p.priority,
            "grounding": p.grounding,
            "estimated_cost_usd": _fmt(p.estimated_cost),
            "upper_bound_cost_usd": _fmt(p.upper_bound_cost),
            "quality": _fmt(p.quality.quantize(_PCT)) if p.quality is not None else None,
            "provisioned": p.provisioned.to_dict() if p.provisioned is not None else None,
            "fallbacks": [c.model for c in self.fallbacks],
            "choices": [c.to_dict() for c in self.choices],
            "rule": self.rule,
            "profile": self.profile,
            "rule_profile": self.rule_profile or self.profile,
            "budgets": [b.id for b in self.budgets],
            "actions": list(self.actions),
            "rejected": [{"model": m, "reason": r} for m, r in self.rejected],
            "notes": list(self.notes),
            "retry_on": list(self.retry_on),
            "policy_version": self.policy_version,
            "prompt_size": self.prompt.to_dict() if self.prompt is not None else None,
        }


def _pct(spend: Decimal, limit: Decimal) -> str:
    return _fmt((spend * _HUNDRED / limit).quantize(_PCT))


def _projected(spend: Decimal, window: Any, now: dt.datetime | None, min_elapsed_percent: Decimal) -> Decimal | None:
    """Spend at the end of the calendar ``window`` if it goes on at the pace since the window began;
    None while less than ``min_elapsed_percent`` of the window has elapsed (too early to project)."""
    from router.ledger.windows import period

    moment = now or dt.datetime.now(dt.timezone.utc)
    ms = int(moment.timestamp() * 1000)
    p = period(window.span, window.timezone, ms)
    elapsed, length = ms - p.start_ms, p.end_ms - p.start_ms
    if elapsed <= 0 or elapsed * _HUNDRED < min_elapsed_percent * length:
        return None
    return spend * Decimal(length) / Decimal(elapsed)


def apply_budgets(cp: CompiledPolicy, f: RequestFeatures, state: StateSnapshot, status: list | None = None):
    """Measure every applicable budget: (scopes, actions text, refuse message, switch profile, output cap, cost cap)."""
    shape = cp.budget_scopes(f)  # computed once per request shape
    scopes: list[BudgetScope] = list(shape.scopes)
    actions: list[str] = []
    refuse: str | None = None
    switch: str | None = None
    switch_at = Decimal(-1)
    cap_out: Decimal | None = None
    cap_cost: Decimal | None = None
    for budget, scope in shape.pairs:
        if not budget.actions and not budget.pace_actions and status is None:
            continue
        spend = state.spend_for(scope.id, scope.scope)
        s100 = spend * _HUNDRED
        limit = budget.limit
        if status is not None:
            status.append({"scope": scope.id, "budget": budget.name, "spend_usd": _fmt(spend), "limit_usd": _fmt(limit), "utilisation_percent": _pct(spend, limit)})
        reached: list[tuple[Any, Decimal, str]] = []  # (action, threshold, why)
        for action in budget.actions:
            if s100 < action.at_percent * limit:
                break
            reached.append((action, action.at_percent, f"{scope.id} at {_pct(spend, limit)}% >= {_fmt(action.at_percent)}%"))
        projected = None
        if budget.pace_actions and spend > 0 and s100 >= budget.pace_min_spend * limit:
            projected = _projected(spend, scope.window, state.now, budget.pace_min_elapsed)
        if projected is not None:
            for action in budget.pace_actions:
                if projected * _HUNDRED < action.at_pace_percent * limit:
                    break
                reached.append((action, action.at_pace_percent, f"{scope.id} on pace for {_pct(projected, limit)}% by window end >= {_fmt(action.at_pace_percent)}%"))
        for action, threshold, why in reached:
            actions.append(f"{why}: {action.describe()}")
            if action.refuse and refuse is None:
                refuse = f"refused by budget {scope.id}: {why} (${_fmt(spend)} of ${_fmt(limit)} spent)"
            if action.switch_profile and threshold > switch_at:
                switch, switch_at = action.switch_profile, threshold
            if action.max_output_usd_per_mtok is not None and (cap_out is None or action.max_output_usd_per_mtok < cap_out):
                cap_out = action.max_output_usd_per_mtok
            if action.max_cost_usd is not None and (cap_cost is None or action.max_cost_usd < cap_cost):
                cap_cost = action.max_cost_usd
    return scopes, actions, refuse, switch, cap_out, cap_cost


def decide(cp: CompiledPolicy, f: RequestFeatures, state: StateSnapshot, trace: bool = False, status: list | None = None) -> Decision:
    rule, profile_name = cp.match_rule(f)
    scopes, actions, refuse, switch, cap_out, cap_cost = apply_budgets(cp, f, state, status)
    if refuse is not None:
        exc = RequestRefusedError(refuse)
        exc.rule, exc.profile, exc.actions, exc.budgets = rule, profile_name, actions, scopes  # type: ignore[attr-defined]
        raise exc
    rule_profile = profile_name
    if switch is not None:
        profile_name = switch
    prof = cp.profiles[profile_name]
    rates = cp.rates_on(f.at)
    prompt = f.prompt_tokens
    max_tokens = f.max_tokens
    need = prompt + max_tokens
    exp_out = -(-max_tokens * cp._ratio_num // cp._ratio_den)
    kind = f.grounding
    req_caps = f.required_capabilities
    use_batch = prof.batch and not f.latency_sensitive
    fit = prof.fit
    bound = prof.bound_units
    if cap_cost is not None:
        cap_units = to_units(cap_cost)
        bound = cap_units if bound is None else min(bound, cap_units)
    out_cap = prof.max_out_mtok
    if cap_out is not None and (out_cap is None or cap_out < out_cap):
        out_cap = cap_out
    pools_used = state.pools
    pools = cp.catalog.pools
    day = f.at
    prefer = cp.prefer_free_pool and kind is not None
    empty_mode = cp.when_pool_empty
    pt_active = cp.pt_active(day) if cp.pt_any else None
    notes: list[str] = []
    rejected: list[tuple[str, str]] = []
    # eligible rows: (ranking tier, cand, expected units, upper units, batch, grounding kind or None, grounding units
    # reserved, PtStatus or None, free-pool tier: 0 when the free pool covers the grounding, whether ranked on or not)
    elig: list[tuple[int, Cand, int, int, bool, str | None, int, Any, int]] = []
    for c in prof.cands:
        if c.static_reason is not None:
            rejected.append((c.model_id, c.static_reason))
            continue
        if c.task is not None and f.task != c.task:
            rejected.append((c.model_id, f"an {c.task} model, not a chat model: only requests with task={c.task} use it"))
            continue
        row = rates[c.model_id]
        r = row.std
        if r is None:
            rejected.append((c.model_id, row.missing or "no price"))
            continue
        if prompt > c.ctx:
            rejected.append((c.model_id, f"prompt {prompt:,} tokens > the model's context window of {c.ctx:,} tokens"))
            continue
        if fit and need > c.ctx:
            rejected.append((c.model_id, f"context window {c.ctx:,} < prompt {prompt:,} + max_tokens {max_tokens:,} tokens"))
            continue
        if max_tokens > c.max_out:
            rejected.append((c.model_id, f"max_tokens {max_tokens:,} > the model's max output {c.max_out:,}"))
            continue
        if req_caps and not req_caps <= c.caps:
            rejected.append((c.model_id, f"lacks capability {', '.join(sorted(req_caps - c.caps))}"))
            continue
        batch = False
        out_mtok = row.out_mtok
        if use_batch and c.batch_allowed and row.batch is not None:
            # Marked batch-eligible only: the Router sends requests online (it submits no Batch API jobs),
            # so estimates, caps and ranking use the online rates it will be billed at.
            batch = True
        if out_cap is not None and out_mtok is not None and out_mtok > out_cap:
            rejected.append((c.model_id, f"output price ${_fmt(out_mtok)} per 1M tokens > ${_fmt(out_cap)} cap"))
            continue
        thr = row.long_threshold
        if thr is not None and (prompt >= thr if row.long_inclusive else prompt > thr):
            base = prompt * r[2]
            exp = base + exp_out * r[3]
            ub = base + max_tokens * r[3]
        else:
            base = prompt * r[0]
            exp = base + exp_out * r[1]
            ub = base + max_tokens * r[1]
        pt = None
        if pt_active is not None:
            pt = _provisioned(cp, c, pt_active, state, prompt, max_tokens, exp, ub, rejected)
            if pt is False:
                continue
            if pt is not None and pt.covered:
                exp = ub = 0  # the subscription is already paid for: marginal cost 0 while capacity lasts
        tier = 0
        gk = None
        g_units = 0
        if kind is not None:
            opt = c.grounding.get(kind)
            if opt is None:
                rejected.append((c.model_id, f"no {kind} grounding"))
                continue
            grate = row.grounding.get(kind)
            if grate is None:
                rejected.append((c.model_id, f"no price for {kind} grounding on {day.isoformat()}"))
                continue
            unit, pool_id = opt
            # Per-query billing (Gemini 3 search queries, Claude web searches): the policy's expected count.
            per_query = unit in ("search_query", "web_search")
            units = cp.expected_queries if per_query else 1
            gk = kind
            spec = pools.get(pool_id) if pool_id else None
            if spec is not None and (spec.effective_from is None or day >= spec.effective_from):
                remaining = spec.free_units - pools_used.get(pool_id, 0)
                if remaining >= units:
                    g_exp = 0
                elif remaining > 0:
                    g_exp = (units - remaining) * grate
                    tier = 1
                else:
                    tier = 1
                    if empty_mode == "switch_family":
                        rejected.append((c.model_id, f"free grounding pool {pool_id} is exhausted (when_pool_empty: switch_family)"))
                        continue
                    if empty_mode == "drop":
                        gk = None
                        g_exp = 0
                    else:
                        g_exp = units * grate
            else:
                g_exp = units * grate
                tier = 0 if grate == 0 else 1
            if gk is not None:
                exp += g_exp
                # The bound bills every unit, free pool or not: the snapshot the pool's room was read from
                # may be stale, and a unit the pool does not grant at settlement is billed.
                g_units = units
                ub += units * grate
        if bound is not None and exp > bound:
            rejected.append((c.model_id, f"estimated ${_fmt(from_units(exp))} > max ${_fmt(from_units(bound))} per request"))
            continue
        elig.append((tier if prefer else 0, c, exp, ub, batch, gk, g_units, pt, tier))
    if not elig:
        exc = NoEligibleModelError(f"no eligible model in profile {profile_name!r}: all {len(rejected)} candidates rejected", rejected)
        exc.rule, exc.profile, exc.actions, exc.budgets = rule, profile_name, actions, scopes  # type: ignore[attr-defined]
        raise exc
    ranked = _rank(prof.objective, elig, prof.quality_weight, prof.cost_weight)
    n_fallbacks = prof.fallbacks
    if cp.fallback_order == "listed" and n_fallbacks:
        head = ranked[0]
        rest = sorted((row for row in ranked[1:]), key=lambda row: row[1].listed)
        chosen = [head, *rest[:n_fallbacks]]
    else:
        chosen = ranked[: n_fallbacks + 1]
    choices = [_choice(cp, f, state, row, notes) for row in chosen]
    if kind is not None:
        for row, choice in zip(chosen, choices):
            if choice.grounding is None:
                notes.append(f"{choice.model}: grounding dropped (free pool exhausted; when_pool_empty: drop)")
    decision = Decision(
        primary=choices[0],
        fallbacks=choices[1:],
        budgets=scopes,
        rule=rule,
        profile=profile_name,
        rejected=rejected,
        actions=actions,
        notes=notes,
        policy_version=cp.version,
        retry_on=cp.retry_on,
        rule_profile=rule_profile,
    )
    if trace:
        decision.ranked = [
            {
                "model": row[1].model_id,
                "location": row[1].location,
                "estimated_cost_usd": _fmt(from_units(row[2])),
                "upper_bound_cost_usd": _fmt(from_units(row[3])),
                "quality": _fmt(row[1].quality.quantize(_PCT)) if row[1].quality is not None else None,
                "batch": row[4],
                "grounding": row[5],
                "free_pool_room": (row[8] == 0) if kind is not None else None,
                **({"provisioned": row[7].to_dict()} if row[7] is not None else {}),
            }
            for row in ranked
        ]
    return decision


def _rank(objective: str, elig: list, wq: float, wc: float) -> list:
    if objective == "cheapest":
        return sorted(elig, key=lambda r: (r[0], r[2], -r[1].qf, r[1].index))
    if objective == "best_quality":
        return sorted(elig, key=lambda r: (r[0], -r[1].qf, r[2], r[1].index))
    if objective == "quality_per_dollar":
        return sorted(elig, key=lambda r: (r[0], -(r[1].qf / r[2]) if r[2] else (-math.inf if r[1].qf else 0.0), r[2], r[1].index))
    lo = min(r[2] for r in elig)
    span = (max(r[2] for r in elig) - lo) or 1
    return sorted(elig, key=lambda r: (r[0], -(wq * r[1].qf / 100.0 - wc * (r[2] - lo) / span), r[2], r[1].index))


@dataclass(frozen=True)
class PtStatus:
    """Provisioned Throughput for one candidate: the subscription's key, the mode, this request's
    burndown-adjusted tokens (prompt + max_tokens), the window's headroom and capacity, whether the
    headroom covers the request, and the PayGo costs (units) the spill would cost."""

    mode: str
    key: str | None
    tokens: int = 0
    headroom: int = 0
    capacity: int = 0
    covered: bool = False
    paygo_exp: int = 0
    paygo_ub: int = 0

    def why(self) -> str:
        if self.key is None:
            return f"no Provisioned Throughput subscription (provisioned: {self.mode}): PayGo"
        if self.mode == "never":
            return f"Provisioned Throughput {self.key} skipped (provisioned: never): PayGo, sent as shared"
        room = f"headroom {self.headroom:,} of {self.capacity:,} burndown-adjusted tokens in the 30 s window"
        if self.headroom >= self.tokens:  # not ``covered``: under ``only`` with a wait that is True without the room
            return f"Provisioned Throughput {self.key} ({self.mode}): {room} >= this request's {self.tokens:,}: marginal cost $0"
        if self.mode == "only":
            return f"Provisioned Throughput {self.key} (only): {room} < this request's {self.tokens:,}: waits for capacity, else refused"
        return f"Provisioned Throughput {self.key} (first): {room} < this request's {self.tokens:,}: estimated and reserved as a PayGo spill"

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "key": self.key,
            "burndown_tokens": self.tokens,
            "headroom": self.headroom,
            "capacity": self.capacity,
            "covered": self.covered,
            "paygo_estimated_cost_usd": _fmt(from_units(self.paygo_exp)),
            "paygo_upper_bound_cost_usd": _fmt(from_units(self.paygo_ub)),
            "why": self.why(),
        }


def _provisioned(cp: CompiledPolicy, c: Cand, active: dict, state: StateSnapshot, prompt: int, max_tokens: int, exp: int, ub: int, rejected: list) -> Any:
    """The candidate's :class:`PtStatus` (None: no subscription and not ``only``; False: rejected)."""
    mode = c.pt_mode
    sub = active.get((c.model_id, c.location))
    if sub is None:
        if mode == "only":
            rejected.append((c.model_id, f"no active Provisioned Throughput subscription for {c.model_id} in {c.location} (provisioned: only)"))
            return False
        return None
    if mode == "never":
        return PtStatus(mode, sub.key, paygo_exp=exp, paygo_ub=ub)
    tokens = sub.burndown(prompt, max_tokens)
    headroom = max(0, sub.capacity - state.pt.get(sub.key, 0))
    covered = headroom >= tokens
    if not covered and mode == "only" and not cp.pt_wait_s:
        rejected.append((c.model_id, f"Provisioned Throughput {sub.key} saturated: headroom {headroom:,} < this request's {tokens:,} burndown-adjusted tokens (provisioned: only)"))
        return False
    # under `only` with a wait, the request is PT or nothing: its marginal cost is 0 either way
    return PtStatus(mode, sub.key, tokens, headroom, sub.capacity, covered or mode == "only", exp, ub)


def _choice(cp: CompiledPolicy, f: RequestFeatures, state: StateSnapshot, row: tuple, notes: list[str]) -> Choice:
    _, c, exp, ub, batch, gk, g_units, pt, _ = row
    if pt is not None:
        notes.append(f"{c.model_id}: {pt.why()}")
    priority = False
    fam = c.priority_family
    if f.latency_sensitive and fam is not None and not batch:
        if not c.priority_priced:
            notes.append(
                f"{c.model_id}: sent as standard, not Priority PayGo: the catalog has no Priority PayGo price for it "
                "(the seeds give none; add one in a catalog overlay with its source)"
            )
        elif c.location != "global":
            notes.append(f"{c.model_id}: no Priority PayGo on {c.location} (global endpoint only)")
        else:
            ramp = state.ramp_for(fam)
            limit = ramp.limit_tpm
            cap = cp.priority_cap
            ceiling, what = (cap, "policy cap") if cap is not None and cap < limit else (limit, "ramp limit")
            need = f.prompt_tokens + f.max_tokens
            if ramp.tokens_last_minute + need <= ceiling:
                priority = True
                notes.append(f"{c.model_id}: Priority PayGo on the global endpoint ({ramp.tokens_last_minute:,} + {need:,} <= {ceiling:,} tokens/min, {what})")
            else:
                notes.append(
                    f"{c.model_id}: no Priority PayGo: {ramp.tokens_last_minute:,} + {need:,} tokens in the last minute > {ceiling:,}/min {what} ({fam})"
                )
    assert c.location is not None
    try:  # remembered Decimals of recent estimates (units.from_units), without a call
        exp_usd, ub_usd = USD_OF_UNITS[exp], USD_OF_UNITS[ub]
    except KeyError:
        exp_usd, ub_usd = from_units(exp), from_units(ub)
    return _new_choice(c.model_id, c.location, batch, priority, gk, exp_usd, ub_usd, c.quality, g_units, pt)


def _new_choice(model: str, location: str, batch: bool, priority: bool, grounding: str | None, estimated: Decimal, upper: Decimal,
                quality: Decimal | None, grounding_units: int, provisioned: Any, _new: Any = object.__new__) -> Choice:
    """``Choice(...)`` with every field given, without the frozen dataclass's ``object.__setattr__`` per field (a
    third of the cost; three per request). Equal to the constructor's result (tests/policy/test_decide.py)."""
    choice = _new(Choice)
    fields = choice.__dict__
    fields["model"] = model
    fields["location"] = location
    fields["batch"] = batch
    fields["priority"] = priority
    fields["grounding"] = grounding
    fields["estimated_cost"] = estimated
    fields["upper_bound_cost"] = upper
    fields["quality"] = quality
    fields["grounding_units"] = grounding_units
    fields["provisioned"] = provisioned
    return choice


__all__ = ["Choice", "Decision", "decide"]
