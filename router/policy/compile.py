"""Compile a validated :class:`Policy` against a catalog into a :class:`CompiledPolicy`.

Everything that does not depend on the request is done here, once: candidate lists per profile with
their static rejections (lifecycle, quality, regions, profile capabilities), the endpoint location of
each candidate, rules as plain tuples, budgets with cached scopes, and per-date integer rate tables so
that :meth:`CompiledPolicy.decide` only does integer arithmetic per candidate.

Cost units: an integer cost ``u`` means ``u * 10**-18`` USD (token rates are stored as USD per 1M
tokens times ``10**12``, which is exact for every rate in the catalog).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from router.catalog import Catalog, CatalogModel
from router.catalog.models import GROUNDING_DIMENSION_OF
from router.ledger.names import scope_of
from router.ledger.types import BudgetScope, QuotaPool, Window
from router.policy.decide import Decision, decide
from router.policy.explain import explain
from router.policy.features import RequestFeatures, StateSnapshot
from router.policy.model import CandidateSpec, Policy, Profile, parse_window
from router.policy.selection import choose_location, resolve_entries, static_reason
from router.policy.units import GROUNDING_SCALE, RATE_SCALE, from_units, to_units
from router.policy.validate import load_policy


def _scaled(rate: Decimal, factor: int) -> int:
    value = rate * factor
    as_int = int(value)
    return as_int if as_int == value else as_int + 1  # never under-estimate


def _fmt_usd(value: Decimal) -> str:
    from router.cost import fmt

    return fmt(value)


# --------------------------------------------------------------------------- compiled pieces
class Cand:
    """A candidate of a profile, with everything the per-request loop needs precomputed."""

    __slots__ = (
        "index", "model", "model_id", "family", "location", "batch_allowed", "priority_family", "priority_priced", "static_reason",
        "ctx", "max_out", "caps", "quality", "qf", "grounding", "listed", "pt_mode", "task",
    )

    def __init__(self, index: int, entry: CandidateSpec, model: CatalogModel, profile: Profile, policy: Policy) -> None:
        self.index = index
        self.listed = index
        self.model = model
        self.model_id = model.id
        self.family = model.family
        c = profile.constraints
        self.location = choose_location(entry, model, c.regions)
        self.batch_allowed = entry.batch and "batch" in model.capabilities
        self.priority_family = model.priority_ramp_family if (entry.priority and policy.priority.enabled) else None
        # Priority PayGo is only sent when the catalog can bill it: the seeds give no such rate, so it
        # takes a catalog overlay with its public source (see router.catalog.loader._apply_overlay).
        self.priority_priced = any("priority_input" in b.rates and "priority_output" in b.rates for b in model.prices)
        self.static_reason = static_reason(entry, model, c)
        self.ctx = model.context_window
        self.max_out = model.max_output_tokens
        self.caps = frozenset(model.capabilities)
        self.task = None if model.task == "chat" else model.task  # a non-chat model serves only its task
        self.quality = model.quality.score if model.quality else None
        self.qf = float(self.quality) if self.quality is not None else 0.0
        self.grounding = {kind: (opt.unit, opt.pool) for kind, opt in model.grounding.items()}
        # Provisioned Throughput use: the candidate's setting, else the profile's, else provisioned.mode.
        self.pt_mode = entry.provisioned or profile.provisioned or policy.provisioned.mode


class RateRow:
    """Integer rates of one model on one date (standard and batch), ``None`` parts when not priced."""

    __slots__ = ("std", "batch", "grounding", "long_threshold", "long_inclusive", "out_mtok", "batch_out_mtok", "missing")

    def __init__(self, model: CatalogModel, day: dt.date) -> None:
        chars = model.billing_unit == "character"
        factor = RATE_SCALE * (4000 if chars else 1)  # 4 chars a token; char rates are per 1K chars
        base_in, base_out = ("input_chars", "output_chars") if chars else ("input", "output")

        def pair(prefix: str) -> tuple[int, int, int, int] | None:
            i, o = model.rate(prefix + base_in, day), model.rate(prefix + base_out, day)
            if i is None or o is None:
                return None
            il, ol = model.rate(prefix + base_in + "_long", day), model.rate(prefix + base_out + "_long", day)
            return (
                _scaled(i[0], factor),
                _scaled(o[0], factor),
                _scaled(il[0], factor) if il else _scaled(i[0], factor),
                _scaled(ol[0], factor) if ol else _scaled(o[0], factor),
            )

        self.std = pair("")
        self.batch = pair("batch_")
        self.missing = None if self.std else f"no price for {base_in}/{base_out} on {day.isoformat()}"
        out = model.rate(base_out, day)
        self.out_mtok = (out[0] * (4000 if chars else 1)) if out else None
        bout = model.rate("batch_" + base_out, day)
        self.batch_out_mtok = (bout[0] * (4000 if chars else 1)) if bout else None
        self.grounding: dict[str, int | None] = {}
        for kind in model.grounding:
            r = model.rate(GROUNDING_DIMENSION_OF[kind], day)
            self.grounding[kind] = _scaled(r[0], GROUNDING_SCALE) if r else None
        lc = model.long_context
        self.long_threshold = lc.threshold_tokens if lc else None
        self.long_inclusive = lc.inclusive if lc else False


@dataclass(frozen=True)
class CompiledProfile:
    name: str
    profile: Profile
    cands: tuple[Cand, ...]
    objective: str
    bound_units: int | None  # best_quality cost bound / constraints.max_cost_usd (min of both)
    max_out_mtok: Decimal | None
    fit: bool
    batch: bool
    fallbacks: int
    quality_weight: float
    cost_weight: float


@dataclass(frozen=True)
class CompiledRule:
    name: str
    profile: str
    tenants: frozenset[str] | None
    apps: frozenset[str] | None
    tasks: frozenset[str] | None
    tags: tuple[tuple[str, frozenset[str]], ...] | None
    pmin: int | None
    pmax: int | None
    grounding: bool | str | None
    latency: bool | None

    def matches(self, f: RequestFeatures) -> bool:
        if self.tenants is not None and f.tenant not in self.tenants:
            return False
        if self.apps is not None and f.app not in self.apps:
            return False
        if self.tasks is not None and f.task not in self.tasks:
            return False
        if self.tags is not None:
            tags = f.tags or {}
            for key, values in self.tags:
                if tags.get(key) not in values:
                    return False
        if self.pmin is not None and f.prompt_tokens < self.pmin:
            return False
        if self.pmax is not None and f.prompt_tokens > self.pmax:
            return False
        g = self.grounding
        if g is not None:
            if g is True:
                if f.grounding is None:
                    return False
            elif g is False:
                if f.grounding is not None:
                    return False
            elif f.grounding != g:
                return False
        if self.latency is not None and f.latency_sensitive != self.latency:
            return False
        return True


@dataclass(frozen=True)
class CompiledAction:
    at_percent: Decimal | None
    switch_profile: str | None
    max_output_usd_per_mtok: Decimal | None
    max_cost_usd: Decimal | None
    refuse: bool
    at_pace_percent: Decimal | None = None

    def describe(self) -> str:
        parts = []
        if self.refuse:
            parts.append("refuse")
        if self.switch_profile:
            parts.append(f"profile {self.switch_profile}")
        if self.max_output_usd_per_mtok is not None:
            parts.append(f"only models <= ${_fmt_usd(self.max_output_usd_per_mtok)} per 1M output tokens")
        if self.max_cost_usd is not None:
            parts.append(f"max ${_fmt_usd(self.max_cost_usd)} per request")
        return ", ".join(parts)


class CompiledBudget:
    __slots__ = ("name", "kind", "key", "value", "window", "limit", "actions", "pace_actions", "pace_min_elapsed", "pace_min_spend", "_cache")

    def __init__(
        self,
        name: str,
        scope: str,
        window: str,
        limit: Decimal,
        actions: Sequence[CompiledAction],
        pace_min_elapsed_percent: Decimal = Decimal(10),
        pace_min_spend_percent: Decimal = Decimal(10),
    ) -> None:
        self.name = name
        #: Pace actions act only once this percent of the window has elapsed and spend reached this percent of the limit.
        self.pace_min_elapsed = pace_min_elapsed_percent
        self.pace_min_spend = pace_min_spend_percent
        kind, _, rest = scope.partition(":")
        self.kind = kind  # global | tenant | app | tag
        self.key: str | None = None
        self.value: str | None = None
        if kind == "tag":
            k, eq, v = rest.partition("=")
            self.key, self.value = k, (v if eq else None)
        elif rest:
            self.value = rest
        wk, span, tz = parse_window(window)
        self.window = Window(wk, span, tz)  # type: ignore[arg-type]
        self.limit = limit
        self.actions = tuple(sorted((a for a in actions if a.at_percent is not None), key=lambda a: a.at_percent))
        self.pace_actions = tuple(sorted((a for a in actions if a.at_pace_percent is not None), key=lambda a: a.at_pace_percent))
        self._cache: dict[str, BudgetScope] = {}

    def _scope(self, name: str) -> BudgetScope:
        """The budget scope of the caller-supplied ``name`` (the tenant, app or tag value; ignored for global),
        encoded injectively (:mod:`router.ledger.names`); cached per name."""
        found = self._cache.get(name)
        if found is None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            found = BudgetScope(self.fixed_scope(name), self.window, self.limit)
            self._cache[name] = found
        return found

    def fixed_scope(self, name: str | None = None) -> str:
        """The ledger scope this budget uses for ``name`` (its own fixed name when None)."""
        name = self.value if name is None else name
        if self.kind == "global":
            return "global"
        return scope_of(self.kind, name, self.key)

    def scope_for(self, f: RequestFeatures) -> BudgetScope | None:
        kind = self.kind
        if kind == "global":
            return self._scope("")
        if kind == "tag":
            assert self.key is not None
            got = f.tags.get(self.key) if f.tags else None
            if got is None or (self.value is not None and got != self.value):
                return None
            return self._scope(got)
        got = f.tenant if kind == "tenant" else f.app
        if got is None or (self.value is not None and got != self.value):
            return None
        return self._scope(got)


class BudgetShape:
    """The budgets one kind of request spends against: ``pairs`` (budget, scope) and ``scopes``, in policy
    order, plus ``memo``, a place for results that depend only on them (see ``counting.count_trigger``)."""

    __slots__ = ("pairs", "scopes", "memo")

    def __init__(self, pairs: tuple[tuple[CompiledBudget, BudgetScope], ...]) -> None:
        self.pairs = pairs
        self.scopes: tuple[BudgetScope, ...] = tuple(scope for _, scope in pairs)
        self.memo: dict[Any, Any] = {}


# --------------------------------------------------------------------------- the compiled policy
class CompiledPolicy:
    """A policy ready to decide: call :meth:`decide` per request (pure, no I/O)."""

    def __init__(self, policy: Policy, catalog: Catalog) -> None:
        self.policy = policy
        self.catalog = catalog
        text = policy.source_text
        self.version: str | None = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12] if text is not None else None
        self.default_max_tokens: int = policy.settings.default_max_tokens
        self.quota_timezone: str = policy.settings.quota_timezone
        self.expected_ratio = policy.settings.expected_output_ratio
        #: ``settings.count_tokens`` (never | near_limits | always) and its margin in percent.
        self.count_tokens: str = policy.settings.count_tokens
        self.count_margin: Decimal = policy.settings.count_tokens_margin
        ratio = policy.settings.expected_output_ratio.as_integer_ratio()
        self._ratio_num, self._ratio_den = ratio
        self.when_pool_empty = policy.grounding.when_pool_empty
        self.prefer_free_pool = policy.grounding.prefer_free_pool
        self.expected_queries = policy.grounding.expected_queries
        self.priority_cap = policy.priority.max_tokens_per_minute
        self.fallback_order = policy.fallbacks.order
        self.retry_on = tuple(policy.fallbacks.retry_on)
        self.profiles: dict[str, CompiledProfile] = {name: self._profile(name, prof) for name, prof in policy.profiles.items()}
        self.default_profile = policy.default_profile
        self.rules: tuple[CompiledRule, ...] = tuple(self._rule(r) for r in policy.rules)
        self.budgets: tuple[CompiledBudget, ...] = tuple(
            CompiledBudget(
                b.name or f"budgets[{i}]",
                b.scope,
                b.window,
                b.limit_usd,
                [CompiledAction(a.at_percent, a.switch_profile, a.max_output_usd_per_mtok, a.max_cost_usd, a.refuse, a.at_pace_percent) for a in b.actions],
                b.pace_min_elapsed_percent,
                b.pace_min_spend_percent,
            )
            for i, b in enumerate(policy.budgets)
        )
        self._tag_keys = tuple(b.key for b in self.budgets if b.kind == "tag")
        self._scoped: dict[tuple, BudgetShape] = {}
        families = set()
        self._models: dict[str, CatalogModel] = {}
        for prof in self.profiles.values():
            for cand in prof.cands:
                self._models[cand.model_id] = cand.model
                if cand.priority_family and cand.static_reason is None:
                    families.add(cand.priority_family)
        self.ramp_families: list[str] = sorted(families)
        self._rates: dict[dt.date, dict[str, RateRow]] = {}
        self._pools_by_kind: dict[str, list[str]] = {}
        for model in self._models.values():
            for kind, opt in model.grounding.items():
                if opt.pool and opt.pool not in self._pools_by_kind.setdefault(kind, []):
                    self._pools_by_kind[kind].append(opt.pool)
        self._quota_pools: dict[str, QuotaPool] = {}
        # Provisioned Throughput subscriptions (router.provisioned): capacity per (model, region) per day.
        self.pt_subscriptions = tuple(policy.provisioned.subscriptions)
        self.pt_wait_s = policy.provisioned.wait_s
        self.pt_keys: list[str] = sorted({f"{catalog.resolve(s.model)}@{s.region}" for s in self.pt_subscriptions})
        self._pt_active: dict[dt.date, dict] = {}
        self.pt_any = bool(self.pt_subscriptions) or any(c.pt_mode == "only" for p in self.profiles.values() for c in p.cands)

    def pt_active(self, day: dt.date) -> dict:
        """(model id, region) -> :class:`~router.provisioned.ActiveSubscription` active on ``day``."""
        found = self._pt_active.get(day)
        if found is None:
            from router.provisioned import active_subscriptions

            if len(self._pt_active) > 32:
                self._pt_active.clear()
            found = self._pt_active[day] = active_subscriptions(self.pt_subscriptions, self.catalog, day)
        return found

    # ------------------------------------------------------------------ building
    def _profile(self, name: str, prof: Profile) -> CompiledProfile:
        entries = prof.candidates if prof.candidates is not None else self.policy.candidates
        cands = tuple(Cand(i, entry, model, prof, self.policy) for i, (_, entry, model) in enumerate(resolve_entries(entries, self.catalog)))
        obj = prof.objective
        bounds = [b for b in (prof.constraints.max_cost_usd, obj.max_cost_usd if obj.type == "best_quality" else None) if b is not None]
        return CompiledProfile(
            name=name,
            profile=prof,
            cands=cands,
            objective=obj.type,
            bound_units=to_units(min(bounds)) if bounds else None,
            max_out_mtok=prof.constraints.max_output_usd_per_mtok,
            fit=prof.constraints.context_fit,
            batch=prof.batch,
            fallbacks=prof.fallbacks if prof.fallbacks is not None else self.policy.fallbacks.max,
            quality_weight=float(obj.quality_weight),
            cost_weight=float(obj.cost_weight),
        )

    @staticmethod
    def _rule(rule: Any) -> CompiledRule:
        w = rule.when

        def s(values: list[str] | None) -> frozenset[str] | None:
            return frozenset(values) if values is not None else None

        tags = tuple((k, frozenset(v)) for k, v in w.tags.items()) if w.tags is not None else None
        return CompiledRule(
            rule.name,
            rule.profile,
            s(w.tenant),
            s(w.app),
            s(w.task),
            tags,
            w.prompt_tokens.min if w.prompt_tokens else None,
            w.prompt_tokens.max if w.prompt_tokens else None,
            w.grounding,
            w.latency_sensitive,
        )

    def rates_on(self, day: dt.date) -> dict[str, RateRow]:
        table = self._rates.get(day)
        if table is None:
            if len(self._rates) > 32:
                self._rates.clear()
            table = {mid: RateRow(model, day) for mid, model in self._models.items()}
            self._rates[day] = table
        return table

    # ------------------------------------------------------------------ Router-facing API
    def match_rule(self, features: RequestFeatures) -> tuple[str | None, str]:
        for rule in self.rules:
            if rule.matches(features):
                return rule.name, rule.profile
        return None, self.default_profile

    def budgets_for(self, features: RequestFeatures) -> list[BudgetScope]:
        """The budget scopes this request spends against (a tenant budget resolves to ``tenant:<name>``)."""
        return list(self.budget_scopes(features).scopes)

    def budget_scopes(self, features: RequestFeatures) -> BudgetShape:
        """The budgets that apply to the request, with their scopes, in policy order. Cached per tenant /
        app / tag values the budgets look at: the snapshot, the decision and the prompt count of a request
        all read it, and it is computed once per distinct request shape."""
        tag_keys = self._tag_keys
        tags = features.tags
        key = (features.tenant, features.app, tuple([tags.get(k) for k in tag_keys]) if tag_keys and tags else None)
        found = self._scoped.get(key)
        if found is None:
            pairs = []
            for budget in self.budgets:
                scope = budget.scope_for(features)
                if scope is not None:
                    pairs.append((budget, scope))
            found = BudgetShape(tuple(pairs))
            if len(self._scoped) > 10_000:  # bounded: many tenants only ever cost a recomputation
                self._scoped.clear()
            self._scoped[key] = found
        return found

    def quota_pool(self, pool_id: str) -> QuotaPool:
        """The :class:`QuotaPool` of a catalog grounding pool, resetting in the policy's quota time zone."""
        found = self._quota_pools.get(pool_id)
        if found is None:
            spec = self.catalog.pool(pool_id)
            found = QuotaPool(spec.id, spec.free_units, spec.period, self.quota_timezone)
            self._quota_pools[pool_id] = found
        return found

    def pools_for(self, features: RequestFeatures) -> list[QuotaPool]:
        """Grounding pools the candidates could use for this request (none when it wants no grounding)."""
        if not features.grounding:
            return []
        out = []
        for pool_id in self._pools_by_kind.get(features.grounding, ()):
            spec = self.catalog.pools[pool_id]
            if spec.effective_from is None or features.at >= spec.effective_from:
                out.append(self.quota_pool(pool_id))
        return out

    def decide(self, features: RequestFeatures, state: StateSnapshot | None = None) -> Decision:
        """The :class:`~router.policy.decide.Decision` for one request (raises ``RequestRefusedError``
        when a budget action refuses, ``NoEligibleModelError`` when no candidate qualifies)."""
        if state is None:
            state = _EMPTY
        elif not isinstance(state, StateSnapshot):  # a LedgerSnapshot straight from the store
            state = StateSnapshot.from_ledger(state, self.budgets_for(features))
        return decide(self, features, state)

    def explain(self, features: RequestFeatures, state: StateSnapshot | None = None) -> dict[str, Any]:
        """:func:`router.policy.explain.explain` of this policy: the decision with its trace."""
        return explain(self, features, state if state is not None else _EMPTY)


_EMPTY = StateSnapshot()


def compile_policy(policy: Any, catalog: Catalog) -> CompiledPolicy:
    """Compile a :class:`Policy` (or anything :func:`load_policy` accepts) for ``catalog``."""
    if not isinstance(policy, Policy):
        policy = load_policy(policy, catalog)
    try:
        return CompiledPolicy(policy, catalog)
    except Exception as exc:  # e.g. compiled against another catalog than it was validated for
        from router.errors import PolicyError, RouterError

        if isinstance(exc, RouterError) and not isinstance(exc, PolicyError):
            raise PolicyError([(policy.filename, 1, 1, str(exc))]) from exc
        raise


__all__ = ["CompiledPolicy", "compile_policy", "from_units", "to_units"]
