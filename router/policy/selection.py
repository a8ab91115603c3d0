"""Which catalog models a policy entry selects, where they are served, and why a profile rules one out.

Request-independent helpers shared by validation (:mod:`router.policy.validate`) and compilation
(:mod:`router.policy.compile`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from router.catalog import Catalog, CatalogModel
from router.policy.model import REGION_GROUPS, CandidateSpec, Constraints, Selector


def region_matches(location: str, allowed: Sequence[str] | None) -> bool:
    """Whether an endpoint ``location`` is allowed by a list of regions / groups (None: anything)."""
    if allowed is None:
        return True
    for item in allowed:
        key = item.lower()
        if key == location:
            return True
        prefix = REGION_GROUPS.get(key)
        if prefix and location.startswith(prefix):
            return True
    return False


def selector_matches(sel: Selector, model: CatalogModel) -> bool:
    if sel.publisher is not None and model.publisher not in sel.publisher:
        return False
    if sel.family is not None and model.family not in sel.family:
        return False
    if sel.tier is not None and model.tier not in sel.tier:
        return False
    if sel.lifecycle is not None and model.lifecycle not in sel.lifecycle:
        return False
    if sel.min_quality is not None and (model.quality is None or model.quality.score < sel.min_quality):
        return False
    if sel.region is not None and not any(region_matches(r, sel.region) for r in model.regions):
        return False
    if sel.capabilities is not None and not set(sel.capabilities) <= set(model.capabilities):
        return False
    return True


def resolve_entries(entries: Sequence[CandidateSpec], catalog: Catalog) -> list[tuple[int, CandidateSpec, CatalogModel]]:
    """(entry index, entry, model) for every candidate, first entry wins for a model listed twice.
    An empty list means the whole catalog. Unknown ids raise :class:`UnknownModelError`."""
    if not entries:
        return [(-1, CandidateSpec(select=Selector()), m) for m in catalog]
    out: list[tuple[int, CandidateSpec, CatalogModel]] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if entry.model is not None:
            models: Iterable[CatalogModel] = [catalog.get(entry.model)]
        else:
            assert entry.select is not None
            models = [m for m in catalog if selector_matches(entry.select, m)]
        for model in models:
            if model.id not in seen:
                seen.add(model.id)
                out.append((index, entry, model))
    return out


def choose_location(entry: CandidateSpec, model: CatalogModel, allowed: Sequence[str] | None) -> str | None:
    """The endpoint location: the entry's first available allowed preference, else global, else the
    first allowed region of the model (in catalog order)."""
    prefs = list(entry.location) if entry.location else ["global", *model.regions]
    for loc in prefs:
        if loc in model.regions and region_matches(loc, allowed):
            return loc
    return None


def static_reason(entry: CandidateSpec, model: CatalogModel, c: Constraints) -> str | None:
    """Why a candidate can never be chosen by a profile, whatever the request (None: it can)."""
    if model.id in c.exclude_models:
        return "excluded by the profile (exclude_models)"
    if model.lifecycle in c.exclude_lifecycles:
        return f"lifecycle {model.lifecycle} is excluded"
    if c.min_quality is not None:
        if model.quality is None:
            return f"no quality score (profile needs >= {c.min_quality})"
        if model.quality.score < c.min_quality:
            return f"quality {fmt_q(model.quality.score)} < {c.min_quality}"
    missing = [cap for cap in c.capabilities if cap not in model.capabilities]
    if missing:
        return f"lacks capability {', '.join(missing)}"
    if choose_location(entry, model, c.regions) is None:
        where = ", ".join(entry.location) if entry.location else ", ".join(model.regions)
        if c.regions is not None:
            return f"no endpoint in the allowed regions ({', '.join(c.regions)}); available: {where}"
        return f"not available in {where}"
    return None


def fmt_q(value: Decimal) -> str:
    text = format(value.quantize(Decimal("0.1")).normalize(), "f")
    return text


__all__ = ["choose_location", "fmt_q", "region_matches", "resolve_entries", "selector_matches", "static_reason"]
