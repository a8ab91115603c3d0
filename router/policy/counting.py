"""When to ask the Count Tokens API, and where a decision's prompt size came from (pure, no I/O).

``settings.count_tokens`` (default ``near_limits``) and ``settings.count_tokens_margin`` (default 25 %):

* ``never``: the prompt size is the caller's ``prompt_tokens`` or the local estimate (~4 characters a
  token, :func:`router.policy.features.estimate_prompt_tokens`).
* ``always``: every request without a caller count is counted.
* ``near_limits``: a request is counted only when the estimate could be wrong where it matters
  (:func:`count_trigger`): the estimate (prompt, or prompt + max_tokens for a context window) lies within
  the margin of a limit of a candidate of the profile the rule selects (or a budget action switches to):
  a long-context tier boundary (Gemini 2.5/3 above 200K, Claude Sonnet from 200K, Gemini 1.5 above
  128K) or its context window -- i.e. ``limit / (1 + m) <= x <= limit * (1 + m)``; or a budget's
  remaining headroom is at most the request's largest upper bound times ``1 + m``; or the request has
  non-text parts (image, audio, video, PDF / file), which the estimate prices at a flat 258 tokens each.

A short chat request (a few thousand tokens, far from every boundary, no budget near its limit, text
only) is never counted: the check is a handful of integer comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from router.policy.features import RequestFeatures, StateSnapshot
from router.policy.units import from_units

if TYPE_CHECKING:
    from router.policy.compile import CompiledPolicy

PromptSource = Literal["caller", "count_tokens", "estimate"]
#: APIs whose models Vertex can count (Gemini ``:countTokens``, Claude ``count-tokens:rawPredict``).
COUNTABLE_APIS = frozenset({"gemini", "anthropic"})
MEDIA_CAPABILITIES = frozenset({"vision", "audio", "video", "pdf"})
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class PromptSize:
    """The prompt size a decision used and where it came from.

    ``source``: ``caller`` (``prompt_tokens=`` given), ``count_tokens`` (Vertex's Count Tokens API for
    ``count_model``'s tokenizer) or ``estimate`` (~4 characters a token). ``estimate``: the local
    estimate; ``margin_percent``: for an estimate, the margin added to it (0 when none was needed,
    ``count_tokens_margin`` when a count was wanted but could not be made); ``reason``: why a count was
    made or wanted; ``fallback``: why it could not be made (quota spent, timeout, error...);
    ``cached``: the count came from the cache (no request was sent)."""

    tokens: int
    source: PromptSource
    estimate: int | None = None
    margin_percent: Decimal | None = None
    reason: str | None = None
    fallback: str | None = None
    count_model: str | None = None
    cached: bool = False
    billable_characters: int | None = None

    def to_dict(self) -> dict[str, Any]:
        from router.cost import fmt

        return {
            "tokens": self.tokens,
            "source": self.source,
            "estimate": self.estimate,
            "margin_percent": fmt(self.margin_percent) if self.margin_percent is not None else None,
            "reason": self.reason,
            "fallback": self.fallback,
            "count_model": self.count_model,
            "cached": self.cached,
            "billable_characters": self.billable_characters,
        }


def with_margin(estimate: int, margin_percent: Decimal) -> int:
    """``estimate`` plus ``margin_percent`` percent, rounded up."""
    scaled = Decimal(estimate) * (_HUNDRED + margin_percent) / _HUNDRED
    whole = int(scaled)
    return whole if whole == scaled else whole + 1


def _near(x: int, limit: int, m: Decimal) -> bool:
    """``limit / (1 + m) <= x <= limit * (1 + m)`` with ``m`` in percent (exact)."""
    return x * (_HUNDRED + m) >= limit * _HUNDRED and x * _HUNDRED <= limit * (_HUNDRED + m)


def _profiles(cp: CompiledPolicy, f: RequestFeatures, state: StateSnapshot) -> list[str]:
    """The profile the rule selects and every profile a budget action of this request could switch to."""
    _, name = cp.match_rule(f)
    names = [name]
    for budget, _ in cp.budget_scopes(f).pairs:
        for action in (*budget.actions, *budget.pace_actions):
            if action.switch_profile and action.switch_profile not in names:
                names.append(action.switch_profile)
    return names


def _plan(cp: CompiledPolicy, f: RequestFeatures, state: StateSnapshot) -> tuple[list[str], int, int, int]:
    """``(profiles, worst input rate, worst output rate, floor)`` of this kind of request: what
    :func:`count_trigger` needs besides the prompt size and the spend. Cached per budget shape (which
    budgets apply), selected profile and day."""
    shape = cp.budget_scopes(f)
    _, name = cp.match_rule(f)
    key = ("count", name, f.at)
    found = shape.memo.get(key)
    if found is None:
        names = _profiles(cp, f, state)
        worst_in = worst_out = 0
        if cp.budgets:
            for profile in names:
                w_in, w_out = _worst_rates(cp, cp.profiles[profile], f)
                worst_in, worst_out = max(worst_in, w_in), max(worst_out, w_out)
        floor = min(_floor(cp, cp.profiles[profile]) for profile in names)
        if len(shape.memo) > 64:
            shape.memo.clear()
        found = shape.memo[key] = (names, worst_in, worst_out, floor)
    return found


def count_trigger(cp: CompiledPolicy, f: RequestFeatures, state: StateSnapshot) -> tuple[str, str | None] | None:
    """Why ``near_limits`` wants this request counted, and the candidate (model id) that triggered it if
    one did; None when the estimate is good enough. See the module doc for the rules."""
    if f.required_capabilities & MEDIA_CAPABILITIES:
        kinds = ", ".join(sorted(f.required_capabilities & MEDIA_CAPABILITIES))
        return f"non-text parts ({kinds}) are estimated at a flat size", None
    m = cp.count_margin
    prompt, need = f.prompt_tokens, f.prompt_tokens + f.max_tokens
    names, worst_in, worst_out, floor = _plan(cp, f, state)
    if need >= floor:  # else far below every limit of every profile (the common case: one integer comparison)
        for name in names:
            prof = cp.profiles[name]
            if need < _floor(cp, prof):
                continue
            rates = cp.rates_on(f.at)
            for c in prof.cands:
                if c.static_reason is not None:
                    continue
                thr = rates[c.model_id].long_threshold
                if thr is not None and _near(prompt, thr, m):
                    return f"estimate {prompt:,} is within {m}% of {c.model_id}'s long-context boundary ({thr:,} tokens)", c.model_id
                if prof.fit and _near(need, c.ctx, m):
                    return f"estimate {prompt:,} + max_tokens {f.max_tokens:,} is within {m}% of {c.model_id}'s context window ({c.ctx:,} tokens)", c.model_id
    if worst_in or worst_out:
        pairs = cp.budget_scopes(f).pairs
        if pairs:
            upper = from_units(prompt * worst_in + f.max_tokens * worst_out)
            for budget, scope in pairs:
                headroom = budget.limit - state.spend_for(scope.id, scope.scope)
                if 0 < headroom and headroom * _HUNDRED <= upper * (_HUNDRED + m):
                    return f"budget {scope.id} has ${headroom} left, within {m}% of the request's upper bound ${upper}", None
    return None


def _worst_rates(cp: CompiledPolicy, prof: Any, f: RequestFeatures) -> tuple[int, int]:
    """The highest input and output rates (cost units per token, long-context tiers included) among a
    profile's usable candidates on the request date (cached): the request's largest upper bound."""
    cache = cp.__dict__.setdefault("_count_worst", {})
    key = (prof.name, f.at)
    found = cache.get(key)
    if found is None:
        if len(cache) > 256:
            cache.clear()
        rates = cp.rates_on(f.at)
        w_in = w_out = 0
        for c in prof.cands:
            row = rates[c.model_id]
            if c.static_reason is None and row.std is not None:
                w_in, w_out = max(w_in, row.std[0], row.std[2]), max(w_out, row.std[1], row.std[3])
        found = cache[key] = (w_in, w_out)
    return found


def _floor(cp: CompiledPolicy, prof: Any) -> int:
    """The smallest prompt + max_tokens that can be within the margin of a tier boundary or context window
    of a profile's usable candidates: ``ceil(min limit / (1 + m))`` (cached; an integer, so the common
    check is one integer comparison)."""
    cache = cp.__dict__.setdefault("_count_floor", {})
    found = cache.get(prof.name)
    if found is None:
        limits = [c.ctx for c in prof.cands if c.static_reason is None and prof.fit]
        for c in prof.cands:
            lc = c.model.long_context
            if c.static_reason is None and lc is not None:
                limits.append(lc.threshold_tokens)
        if limits:
            scaled = Decimal(min(limits)) * _HUNDRED / (_HUNDRED + cp.count_margin)
            found = int(scaled) if scaled == int(scaled) else int(scaled) + 1
        else:
            found = 1 << 62
        cache[prof.name] = found
    return found


def count_target(cp: CompiledPolicy, f: RequestFeatures, preferred: list[str]) -> Any | None:
    """The catalog model whose tokenizer the count is made for: the first countable (Gemini or Claude)
    of ``preferred`` (the triggering candidate, then the decision's choices), else of the profile's
    usable candidates in listed order; None when no candidate can be counted."""
    models = cp.catalog
    for model_id in preferred:
        model = models.get(model_id)
        if model.api in COUNTABLE_APIS:
            return model
    _, name = cp.match_rule(f)
    for c in cp.profiles[name].cands:
        if c.static_reason is None and c.model.api in COUNTABLE_APIS:
            return c.model
    return None


__all__ = ["COUNTABLE_APIS", "PromptSize", "count_target", "count_trigger", "with_margin"]
