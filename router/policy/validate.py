"""Load and validate a policy: YAML syntax, schema (unknown keys, bad numbers) and semantics (unknown
model ids, unknown profiles, rules that can never match, profiles no catalog model can satisfy), every
problem reported as ``(file, line, column, message)`` in a :class:`~router.errors.PolicyError`."""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from router._yaml import YamlSyntaxError, load_with_positions, locate
from router.catalog import Catalog
from router.errors import PolicyError, UnknownModelError
from router.policy.model import REGION_GROUPS, CandidateSpec, Policy, Rule
from router.policy.selection import resolve_entries, selector_matches, static_reason

Problem = tuple[str, int, int, str]


def _read_source(source: Any, filename: str | None) -> tuple[str | None, Any, str]:
    """(text or None, data-if-already-parsed, filename)."""
    if isinstance(source, dict):
        return None, source, filename or "<dict>"
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        name = filename or str(source)
        try:
            return path.read_text(encoding="utf-8"), None, name
        except FileNotFoundError:
            raise PolicyError([(name, 1, 1, "policy file not found")]) from None
        except OSError as exc:
            raise PolicyError([(name, 1, 1, f"cannot read policy file: {exc.strerror}")]) from None
        except UnicodeDecodeError as exc:
            raise PolicyError([(name, 1, 1, f"policy file is not UTF-8: {exc.reason}")]) from None
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if isinstance(source, str):
        return source, None, filename or "<string>"
    raise TypeError(f"a policy is a path, YAML text or a dict, not {type(source).__name__}")


def _looks_like_path(text: str) -> bool:
    if "\n" in text:
        return False
    if text.strip().endswith((".yaml", ".yml", ".json")):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def load_policy(source: Any, catalog: Catalog, filename: str | None = None) -> Policy:
    """Load a policy from a path, YAML text or a dict and validate it against ``catalog``.

    Raises :class:`PolicyError` listing every problem as ``file:line:column: message``.
    """
    if isinstance(source, Policy):
        return source
    text, data, name = _read_source(source, filename)
    positions: dict = {(): (1, 1)}
    if text is not None:
        try:
            data, positions = load_with_positions(text, name)
        except YamlSyntaxError as exc:
            raise PolicyError([(name, exc.line, exc.column, exc.message)]) from None
    if data is None:
        raise PolicyError([(name, 1, 1, "empty policy: expected a mapping with 'version: 1'")])
    if not isinstance(data, dict):
        raise PolicyError([(name, 1, 1, f"a policy is a mapping with 'version: 1', not a {type(data).__name__}")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_schema_problems(exc, name, positions)) from None
    policy._source_text = text
    policy._filename = name
    policy._positions = positions
    problems = check_semantics(policy, catalog, name, positions)
    if problems:
        raise PolicyError(problems)
    return policy


# --------------------------------------------------------------------------- schema errors
def _strip(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            containers = [a for a in args if typing.get_origin(a) in (list, dict)]
            tp = (models or containers or args)[0]
            continue
        return tp


def _fields_at(loc: Sequence[Any]) -> list[str] | None:
    tp: Any = Policy
    for part in loc:
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def _schema_problems(exc: ValidationError, name: str, positions: dict) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple] = set()
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        line, col = locate(positions, loc)
        where = ".".join(str(p) for p in loc)
        if kind == "extra_forbidden":
            key = loc[-1]
            allowed = _fields_at(loc[:-1]) or []
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else (f" (allowed: {', '.join(allowed)})" if allowed else "")
            message = f"unknown key {key!r}{hint}"
        elif kind == "missing":
            message = f"missing required key {loc[-1]!r}" + (f" in {'.'.join(str(p) for p in loc[:-1])}" if len(loc) > 1 else "")
        elif loc == ("version",) and not isinstance(err.get("input"), bool):
            message = f"version: unsupported policy version {err.get('input')!r} (this router reads version: 1)"
        elif kind == "literal_error":
            message = f"{where}: {_unknown_value(err)}"
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            value = err.get("input")
            if kind != "value_error" and isinstance(value, (str, int, float)) and _shown(value) not in msg:
                msg = f"{msg}, not {_shown(value)}"
            message = f"{where}: {msg}" if where else msg
            if kind == "value_error":
                line, col = _field_named(positions, loc, msg) or (line, col)
        key = (line, col, message)
        if key not in seen:
            seen.add(key)
            problems.append((name, line, col, message))
    problems.sort(key=lambda p: (p[1], p[2]))
    return problems


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return text if len(text) <= 40 else text[:37] + "..."


def _unknown_value(err: Any) -> str:
    """An enum (Literal) error: the value given, the closest allowed value, and all allowed values."""
    import re

    allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
    value = err.get("input")
    close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6) if isinstance(value, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown value {_shown(value)}{hint} (one of: {', '.join(allowed)})"


def _field_named(positions: dict, loc: tuple, message: str) -> tuple[int, int] | None:
    """A model-level check's error names the key it is about (``max_cost_usd must be ...``): point at
    that key rather than at the mapping (or list item) holding it."""
    import re

    for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", message):
        found = positions.get((*loc, word))
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- semantic checks
def _rule_subsumes(a: Rule, b: Rule) -> bool:
    """True if every request that ``b`` matches is also matched by ``a``."""
    wa, wb = a.when, b.when
    for attr in ("tenant", "app", "task"):
        va, vb = getattr(wa, attr), getattr(wb, attr)
        if va is not None and (vb is None or not set(vb) <= set(va)):
            return False
    if wa.tags is not None:
        if wb.tags is None:
            return False
        for key, values in wa.tags.items():
            if key not in wb.tags or not set(wb.tags[key]) <= set(values):
                return False
    pa, pb = wa.prompt_tokens, wb.prompt_tokens
    if pa is not None:
        if pa.min is not None and (pb is None or pb.min is None or pb.min < pa.min):
            return False
        if pa.max is not None and (pb is None or pb.max is None or pb.max > pa.max):
            return False
    if wa.grounding is not None:
        gb = wb.grounding
        if not (gb == wa.grounding or (wa.grounding is True and isinstance(gb, str))):
            return False
    if wa.latency_sensitive is not None and wb.latency_sensitive != wa.latency_sensitive:
        return False
    return True


def _rule_impossible(rule: Rule) -> str | None:
    w = rule.when
    for attr in ("tenant", "app", "task"):
        if getattr(w, attr) == []:
            return f"its {attr} list is empty"
    if w.tags is not None:
        for key, values in w.tags.items():
            if values == []:
                return f"tag {key!r} has no allowed value"
    p = w.prompt_tokens
    if p is not None and p.min is not None and p.max is not None and p.min > p.max:
        return f"prompt_tokens min {p.min:,} > max {p.max:,}"
    return None


def check_semantics(policy: Policy, catalog: Catalog, name: str, positions: dict) -> list[Problem]:
    problems: list[Problem] = []

    def add(path: tuple, message: str) -> None:
        line, col = locate(positions, path)
        problems.append((name, line, col, message))

    profiles = policy.profiles
    known = ", ".join(profiles)

    def check_profile_ref(path: tuple, ref: str) -> None:
        if ref not in profiles:
            close = difflib.get_close_matches(ref, list(profiles), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (profiles: {known})"
            add(path, f"unknown profile {ref!r}{hint}")

    check_profile_ref(("default_profile",), policy.default_profile)

    all_regions = sorted({r for m in catalog for r in m.regions})

    def check_regions(path: tuple, values: Sequence[str]) -> None:
        for i, value in enumerate(values):
            if value.lower() in REGION_GROUPS or value in all_regions:
                continue
            close = difflib.get_close_matches(value, all_regions + list(REGION_GROUPS), n=3, cutoff=0.6)
            hint = f"; closest: {', '.join(close)}" if close else ""
            add((*path, i), f"unknown region {value!r}{hint}")

    def check_entries(path: tuple, entries: Sequence[CandidateSpec]) -> None:
        for i, entry in enumerate(entries):
            epath = (*path, i)
            if entry.model is not None:
                try:
                    model = catalog.get(entry.model)
                except UnknownModelError as exc:
                    hint = f"; closest ids: {', '.join(exc.suggestions)}" if exc.suggestions else ""
                    add((*epath, "model"), f"unknown model {entry.model!r}{hint}")
                    continue
                if entry.location:
                    for j, loc in enumerate(entry.location):
                        if loc not in model.regions:
                            add((*epath, "location", j), f"{model.id} is not served in {loc!r} (locations: {', '.join(model.regions)})")
                if entry.priority and model.priority_ramp_family is None:
                    add((*epath, "priority"), f"{model.id} does not support Priority PayGo (Gemini models on the global endpoint only)")
                if entry.batch and "batch" not in model.capabilities:
                    add((*epath, "batch"), f"{model.id} has no Batch API")
            else:
                assert entry.select is not None
                if entry.select.region is not None:
                    check_regions((*epath, "select", "region"), entry.select.region)
                unknown = _unknown_selector_values(entry.select, catalog)
                for field, message in unknown:
                    add((*epath, "select", *field), message)
                if not unknown and not any(True for _ in _selected(entry, catalog)):
                    for field, message in _empty_selector(entry.select, catalog):
                        add((*epath, "select", *field), message)

    check_entries(("candidates",), policy.candidates)
    top_level_bad = bool(problems)
    flawed: set[str] = set()
    for pname, prof in profiles.items():
        ppath = ("profiles", pname)
        before = len(problems)
        if prof.candidates is not None:
            check_entries((*ppath, "candidates"), prof.candidates)
            if not prof.candidates:
                add((*ppath, "candidates"), f"profile {pname!r} has an empty candidate list")
        c = prof.constraints
        for i, mid in enumerate(c.exclude_models):
            if mid not in catalog:
                close = catalog.closest(mid)
                add((*ppath, "constraints", "exclude_models", i), f"unknown model {mid!r}" + (f"; closest ids: {', '.join(close)}" if close else ""))
        if c.regions is not None:
            check_regions((*ppath, "constraints", "regions"), c.regions)
        if len(problems) > before or (prof.candidates is None and top_level_bad):
            flawed.add(pname)
    # profiles no catalog model can satisfy (skipped for a profile with unknown model ids: reported above)
    for pname, prof in profiles.items():
        if pname in flawed:
            continue
        entries = prof.candidates if prof.candidates is not None else policy.candidates
        try:
            resolved = resolve_entries(entries, catalog)
        except UnknownModelError:
            continue
        if not resolved:
            continue
        reasons = []
        ok = False
        for _, entry, model in resolved:
            reason = static_reason(entry, model, prof.constraints)
            if reason is None:
                ok = True
                break
            reasons.append(f"{model.id}: {reason}")
        if not ok:
            shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
            add(("profiles", pname), f"profile {pname!r}: no catalog model can satisfy it ({shown})")

    # rules
    names: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        rpath = ("rules", i)
        check_profile_ref((*rpath, "profile"), rule.profile)
        if rule.name in names:
            add((*rpath, "name"), f"duplicate rule name {rule.name!r} (first at rule {names[rule.name] + 1})")
        else:
            names[rule.name] = i
        impossible = _rule_impossible(rule)
        if impossible:
            add((*rpath, "when"), f"rule {rule.name!r} can never match: {impossible}")
            continue
        for j in range(i):
            earlier = policy.rules[j]
            if _rule_impossible(earlier) is None and _rule_subsumes(earlier, rule):
                line, _ = locate(positions, ("rules", j))
                add(rpath, f"rule {rule.name!r} can never match: the earlier rule {earlier.name!r} (line {line}) matches every request it would")
                break

    # budgets
    budget_names: dict[str, int] = {}
    for i, budget in enumerate(policy.budgets):
        if budget.name is not None:
            if budget.name in budget_names:
                line, _ = locate(positions, ("budgets", budget_names[budget.name], "name"))
                add(("budgets", i, "name"), f"duplicate budget name {budget.name!r} (first at line {line})")
            else:
                budget_names[budget.name] = i
    for i, budget in enumerate(policy.budgets):
        for j, action in enumerate(budget.actions):
            if action.switch_profile is not None:
                check_profile_ref(("budgets", i, "actions", j, "switch_profile"), action.switch_profile)
    _check_shared_counters(policy, add, positions)
    _check_provisioned(policy, catalog, add)
    problems.sort(key=lambda p: (p[1], p[2]))
    return problems


def _scope_parts(scope: str) -> tuple[str, str | None, str | None]:
    """``(kind, tag key, fixed name)`` of a budget scope: ``tenant`` -> (tenant, None, None),
    ``tag:team=ml`` -> (tag, team, ml), ``app:search`` -> (app, None, search)."""
    kind, _, rest = scope.partition(":")
    if kind == "tag":
        key, eq, value = rest.partition("=")
        return kind, key, value if eq else None
    return kind, None, rest or None


def _check_shared_counters(policy: Policy, add: Any, positions: dict) -> None:
    """One counter per budget: two budgets whose scopes can name the same tenant / app / tag value (or both
    ``global``) over the same window would count into ONE ledger counter (``scope|window``), and only one of
    their limits could hold. Refused, naming both lines."""
    from router.policy.model import parse_window

    seen: list[tuple[int, str, str | None, str | None, tuple[str, str, str]]] = []
    for i, budget in enumerate(policy.budgets):
        try:
            window = parse_window(budget.window)
        except ValueError:
            continue  # reported by the schema
        kind, key, value = _scope_parts(budget.scope)
        for j, o_kind, o_key, o_value, o_window in seen:
            if o_kind != kind or o_key != key or o_window != window:
                continue
            if value is not None and o_value is not None and value != o_value:
                continue
            other = policy.budgets[j]
            line, _ = locate(positions, ("budgets", j, "scope"))
            shared = "global" if kind == "global" else f"{kind}:{key + '=' if key else ''}{value or o_value or '<each value>'}"
            label = f"budget {budget.name!r}" if budget.name else "this budget"
            first = f"budget {other.name!r}" if other.name else "the budget"
            add(
                ("budgets", i, "scope"),
                f"{label} (scope {budget.scope!r}) and {first} at line {line} (scope {other.scope!r}) would share one "
                f"spend counter for {shared} over {budget.window}: a counter has one limit, so one of them could not "
                "hold. Merge them into one budget, or give them different windows",
            )
            break
        seen.append((i, kind, key, value, window))


def _check_provisioned(policy: Policy, catalog: Catalog, add: Any) -> None:
    """Subscriptions: a known model with burndown rates in the catalog, a region it is served in, whole
    terms between start and end, GSUs in the model's purchase increment."""
    from router.provisioned import term_units

    pt = catalog.provisioned
    for i, sub in enumerate(policy.provisioned.subscriptions):
        spath = ("provisioned", "subscriptions", i)
        try:
            model = catalog.get(sub.model)
        except UnknownModelError as exc:
            hint = f"; closest ids: {', '.join(exc.suggestions)}" if exc.suggestions else ""
            add((*spath, "model"), f"unknown model {sub.model!r}{hint}")
            continue
        rates = next((b for b in pt.burndown if b.model == model.id), None) if pt is not None else None
        if rates is None:
            known = ", ".join(b.model for b in pt.burndown) if pt is not None else "none"
            add((*spath, "model"), f"no Provisioned Throughput burndown rates for {model.id} in the catalog (have: {known}); add them in a catalog overlay (provisioned_burndown) with their public source")
        elif sub.gsu % rates.min_gsu_increment:
            add((*spath, "gsu"), f"{sub.gsu} GSUs is not a multiple of {model.id}'s purchase increment ({rates.min_gsu_increment})")
        if sub.region not in model.regions:
            add((*spath, "region"), f"{model.id} is not served in {sub.region!r} (locations: {', '.join(model.regions)})")
        if pt is not None and sub.term not in pt.terms:
            add((*spath, "term"), f"the catalog has no price for term {sub.term!r} (terms: {', '.join(pt.terms)})")
            continue
        try:
            term_units(sub.term, sub.start, sub.end)
        except ValueError as exc:
            add((*spath, "end"), str(exc))


def _unknown_selector_values(sel: Any, catalog: Catalog) -> list[tuple[tuple, str]]:
    """Every selector value no catalog model has (a typo, even beside values that match), with the
    closest known values."""
    out: list[tuple[tuple, str]] = []
    for field in ("publisher", "family", "tier"):
        values = getattr(sel, field)
        if values is None:
            continue
        known = sorted({getattr(m, field) for m in catalog if getattr(m, field) is not None})
        for i, value in enumerate(values):
            if value not in known:
                close = difflib.get_close_matches(value, known, n=3, cutoff=0.5)
                hint = f"; closest: {', '.join(close)}" if close else f" (known: {', '.join(known)})"
                out.append(((field, i), f"select.{field}: no catalog model has {field} {value!r}{hint}"))
    return out


def _empty_selector(sel: Any, catalog: Catalog) -> list[tuple[tuple, str]]:
    """Why a selector of known values matches no catalog model: a bound no model meets, or a
    combination of attributes no single model has."""
    out: list[tuple[tuple, str]] = []
    if sel.min_quality is not None:
        best = max((m.quality.score for m in catalog if m.quality is not None), default=None)
        if best is None or best < sel.min_quality:
            out.append((("min_quality",), f"select.min_quality: no catalog model has a quality score >= {sel.min_quality} (the highest is {best:.1f})"))
    if out:
        return out
    given = {k: v for k, v in sel.model_dump(exclude_none=True).items()}
    shown = ", ".join(f"{k}={v if not isinstance(v, list) or len(v) != 1 else v[0]}" for k, v in given.items())
    return [((), f"selector matches no catalog model: no single model has {shown} together")]


def _selected(entry: CandidateSpec, catalog: Catalog):
    assert entry.select is not None
    return (m for m in catalog if selector_matches(entry.select, m))


def validate_file(path: str | os.PathLike[str], catalog: Catalog) -> list[Problem]:
    """Problems of one policy file (empty when valid)."""
    try:
        load_policy(Path(path), catalog, filename=str(path))
    except PolicyError as exc:
        return exc.problems
    return []


__all__ = ["check_semantics", "load_policy", "validate_file"]
