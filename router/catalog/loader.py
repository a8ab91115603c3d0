"""Load the price catalog from a directory of YAML files into a :class:`Catalog`."""

from __future__ import annotations

import difflib
import os
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from router._yaml import YamlSyntaxError, load_with_positions, locate
from router.catalog.models import BurndownRates, CatalogModel, ProvisionedThroughput, QuotaPoolSpec
from router.errors import CatalogError, UnknownModelError

#: Files of a catalog directory and what each holds.
MODEL_FILES = ("gemini.yaml", "gemini_legacy.yaml", "claude.yaml", "partners.yaml")
POOLS_FILE = "grounding.yaml"
GSU_FILE = "provisioned_throughput.yaml"


def default_catalog_dir() -> Path:
    """``$ROUTER_CATALOG`` if set, else the catalog bundled with the package (or the source checkout)."""
    env = os.environ.get("ROUTER_CATALOG")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "_data" / "price_catalog", here.parents[1] / "price_catalog"):
        if (candidate / MODEL_FILES[0]).is_file():
            return candidate
    raise CatalogError("no price catalog found: set ROUTER_CATALOG to a price_catalog/ directory")


class Catalog:
    """All models, grounding pools and Provisioned Throughput data, with id/alias lookup."""

    def __init__(
        self,
        models: list[CatalogModel],
        pools: list[QuotaPoolSpec],
        provisioned: ProvisionedThroughput | None,
        source: str = "<memory>",
    ) -> None:
        self.source = source
        self.models: dict[str, CatalogModel] = {}
        self._names: dict[str, str] = {}
        for model in models:
            if model.id in self.models:
                raise CatalogError(f"{source}: model id {model.id!r} defined twice")
            self.models[model.id] = model
        for model in models:
            for name in (model.id, *model.aliases):
                owner = self._names.setdefault(name.lower(), model.id)
                if owner != model.id:
                    raise CatalogError(f"{source}: alias {name!r} names both {owner!r} and {model.id!r}")
        self.pools: dict[str, QuotaPoolSpec] = {p.id: p for p in pools}
        self.provisioned = provisioned
        self._check_references()

    def _check_references(self) -> None:
        for model in self.models.values():
            for kind, option in model.grounding.items():
                if option.pool is None:
                    continue
                pool = self.pools.get(option.pool)
                if pool is None:
                    raise CatalogError(f"{self.source}: {model.id}: grounding {kind} names unknown pool {option.pool!r}")
                if model.id not in pool.models:
                    raise CatalogError(f"{self.source}: pool {pool.id!r} does not list {model.id!r}")
        for pool in self.pools.values():
            for model_id in pool.models:
                if model_id not in self.models:
                    raise CatalogError(f"{self.source}: pool {pool.id!r} lists unknown model {model_id!r}")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._names

    def __iter__(self):
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def resolve(self, name: str) -> str:
        """The catalog id for an id or alias (case-insensitive); :class:`UnknownModelError` otherwise."""
        found = self._names.get(name.lower())
        if found is None:
            raise UnknownModelError(name, self.closest(name))
        return found

    def get(self, name: str) -> CatalogModel:
        """The model for an id or alias; :class:`UnknownModelError` (with the closest ids) otherwise."""
        return self.models[self.resolve(name)]

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` catalog ids closest to ``name``."""
        matches = difflib.get_close_matches(name.lower(), list(self._names), n=n * 2, cutoff=0.5)
        ids: list[str] = []
        for match in matches:
            model_id = self._names[match]
            if model_id not in ids:
                ids.append(model_id)
        return ids[:n]

    def pool(self, pool_id: str) -> QuotaPoolSpec:
        try:
            return self.pools[pool_id]
        except KeyError:
            raise CatalogError(f"unknown grounding pool {pool_id!r}") from None


def _load_file(path: Path) -> tuple[object, dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read catalog file: {exc.strerror}") from None
    try:
        return load_with_positions(text, str(path))
    except YamlSyntaxError as exc:
        raise CatalogError(str(exc)) from None


def _validation_message(path: Path, positions: dict, exc: ValidationError, prefix: tuple) -> str:
    lines = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        line, col = locate(positions, loc)
        field = ".".join(str(p) for p in loc)
        lines.append(f"{path}:{line}:{col}: {field}: {err['msg']}")
    return "\n".join(lines)


def _apply_overlay(models: list[CatalogModel], path: Path) -> list[CatalogModel]:
    """Add the price blocks of an overlay file to the models it names.

    An overlay is how an operator adds a price the seeds do not give (Priority PayGo rates, a regional
    uplift, a negotiated discount) without editing the bundled data::

        overlay:
          - model: gemini-2.5-flash
            prices:
              - effective_from: 2026-01-01
                provenance: {source: "https://cloud.google.com/vertex-ai/generative-ai/pricing", section: "Priority PayGo"}
                rates: {priority_input: "0.54", priority_output: "4.50"}

    Every overlay block must name a public ``source`` (an https URL) as its provenance.
    """
    data, positions = _load_file(path)
    entries = (data or {}).get("overlay") if isinstance(data, dict) else None
    if entries is None and isinstance(data, dict) and "provisioned_burndown" in data:
        return models  # a Provisioned Throughput overlay only (see _overlay_burndown)
    if not isinstance(entries, list):
        raise CatalogError(f"{path}:1:1: expected a mapping with an 'overlay' list (or a 'provisioned_burndown' list)")
    by_id = {m.id: m for m in models}
    names = {alias.lower(): m.id for m in models for alias in (m.id, *m.aliases)}
    for index, entry in enumerate(entries):
        line, col = locate(positions, ("overlay", index))
        model_name = entry.get("model") if isinstance(entry, dict) else None
        if not isinstance(model_name, str) or model_name.lower() not in names:
            close = difflib.get_close_matches(str(model_name), list(by_id), n=3, cutoff=0.5)
            hint = f" (closest: {', '.join(close)})" if close else ""
            raise CatalogError(f"{path}:{line}:{col}: overlay names unknown model {model_name!r}{hint}")
        model = by_id[names[model_name.lower()]]
        raw_blocks = entry.get("prices") or []
        for b_index, raw in enumerate(raw_blocks):
            source = ((raw or {}).get("provenance") or {}).get("source", "")
            if not str(source).startswith("https://"):
                where = ("overlay", index, "prices", b_index) + (("provenance",) if isinstance(raw, dict) and "provenance" in raw else ())
                line, col = locate(positions, where)
                raise CatalogError(f"{path}:{line}:{col}: an overlay price needs provenance.source, the https URL it comes from")
        merged = {**model.model_dump(mode="json"), "prices": [*(b.model_dump(mode="json") for b in model.prices), *raw_blocks]}
        try:
            by_id[model.id] = CatalogModel.model_validate(merged)
        except ValidationError as exc:
            raise CatalogError(_validation_message(path, positions, exc, ("overlay", index))) from None
    return [by_id[m.id] for m in models]


def _overlay_burndown(provisioned: ProvisionedThroughput | None, models: list[CatalogModel], path: Path) -> ProvisionedThroughput | None:
    """Add (or replace, per model) Provisioned Throughput burndown rates from an overlay's
    ``provisioned_burndown`` list; each entry needs ``provenance.source``, the https URL it comes from::

        provisioned_burndown:
          - model: gemini-2.5-flash
            tokens_per_second_per_gsu: ...
            min_gsu_increment: 1
            input_text: 1
            input_audio: ...
            output_text: ...
            provenance: {source: "https://cloud.google.com/vertex-ai/generative-ai/docs/provisioned-throughput/supported-models", section: "..."}
    """
    data, positions = _load_file(path)
    entries = data.get("provisioned_burndown") if isinstance(data, dict) else None
    if entries is None:
        return provisioned
    if not isinstance(entries, list):
        line, col = locate(positions, ("provisioned_burndown",))
        raise CatalogError(f"{path}:{line}:{col}: provisioned_burndown must be a list")
    if provisioned is None:
        raise CatalogError(f"{path}:1:1: provisioned_burndown needs the catalog's {GSU_FILE} (its GSU terms)")
    names = {alias.lower(): m.id for m in models for alias in (m.id, *m.aliases)}
    rates = {b.model: b for b in provisioned.burndown}
    for index, raw in enumerate(entries):
        line, col = locate(positions, ("provisioned_burndown", index))
        model_name = raw.get("model") if isinstance(raw, dict) else None
        if not isinstance(model_name, str) or model_name.lower() not in names:
            close = difflib.get_close_matches(str(model_name), [m.id for m in models], n=3, cutoff=0.5)
            hint = f" (closest: {', '.join(close)})" if close else ""
            raise CatalogError(f"{path}:{line}:{col}: provisioned_burndown names unknown model {model_name!r}{hint}")
        source = ((raw.get("provenance") or {}) if isinstance(raw.get("provenance"), dict) else {}).get("source", "")
        if not str(source).startswith("https://"):
            line, col = locate(positions, ("provisioned_burndown", index, "provenance") if "provenance" in raw else ("provisioned_burndown", index))
            raise CatalogError(f"{path}:{line}:{col}: provisioned burndown rates need provenance.source, the https URL they come from")
        try:
            entry = BurndownRates.model_validate({**raw, "model": names[model_name.lower()]})
        except ValidationError as exc:
            raise CatalogError(_validation_message(path, positions, exc, ("provisioned_burndown", index))) from None
        rates[entry.model] = entry
    return provisioned.model_copy(update={"burndown": list(rates.values())})


def overlay_paths(root: Path) -> list[Path]:
    """Overlay files: ``overlay*.yaml`` in the catalog directory, then ``$ROUTER_CATALOG_OVERLAY``
    (paths separated by ``os.pathsep``)."""
    found = sorted(root.glob("overlay*.yaml"))
    env = os.environ.get("ROUTER_CATALOG_OVERLAY")
    if env:
        found.extend(Path(p) for p in env.split(os.pathsep) if p)
    return found


def load_catalog(directory: str | os.PathLike[str] | None = None, overlays: list[str | os.PathLike[str]] | None = None) -> Catalog:
    """Load and validate a catalog directory (default: :func:`default_catalog_dir`), then apply its
    overlays (``overlay*.yaml`` in it, ``$ROUTER_CATALOG_OVERLAY``, and ``overlays``)."""
    root = Path(directory) if directory is not None else default_catalog_dir()
    models: list[CatalogModel] = []
    for name in MODEL_FILES:
        path = root / name
        if not path.exists():
            continue
        data, positions = _load_file(path)
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise CatalogError(f"{path}:1:1: expected a mapping with a 'models' list")
        for index, raw in enumerate(data["models"]):
            try:
                models.append(CatalogModel.model_validate(raw))
            except ValidationError as exc:
                raise CatalogError(_validation_message(path, positions, exc, ("models", index))) from None
    if not models:
        raise CatalogError(f"{root}: no model files ({', '.join(MODEL_FILES)})")
    overlay_files = [*overlay_paths(root), *(Path(p) for p in overlays or [])]
    for overlay in overlay_files:
        models = _apply_overlay(models, overlay)
    pools: list[QuotaPoolSpec] = []
    pools_path = root / POOLS_FILE
    if pools_path.exists():
        data, positions = _load_file(pools_path)
        for index, raw in enumerate((data or {}).get("pools", [])):
            try:
                pools.append(QuotaPoolSpec.model_validate(raw))
            except ValidationError as exc:
                raise CatalogError(_validation_message(pools_path, positions, exc, ("pools", index))) from None
    provisioned = None
    gsu_path = root / GSU_FILE
    if gsu_path.exists():
        data, positions = _load_file(gsu_path)
        try:
            provisioned = ProvisionedThroughput.model_validate(data)
        except ValidationError as exc:
            raise CatalogError(_validation_message(gsu_path, positions, exc, ())) from None
    for overlay in overlay_files:
        provisioned = _overlay_burndown(provisioned, models, overlay)
    return Catalog(models, pools, provisioned, source=str(root))


@lru_cache(maxsize=8)
def _cached(directory: str) -> Catalog:
    return load_catalog(directory)


def default_catalog() -> Catalog:
    """The default catalog, loaded once per process (cached by directory)."""
    return _cached(str(default_catalog_dir()))


__all__ = ["Catalog", "default_catalog", "default_catalog_dir", "load_catalog"]
