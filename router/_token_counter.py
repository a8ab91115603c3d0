"""The prompt size of a routed request: the caller's count, a Count Tokens count, or the estimate.

:class:`PromptCounter` is what the Router asks when the policy wants a count (``settings.count_tokens``,
see :mod:`router.policy.counting`). For one request it:

1. looks the prompt up in a bounded LRU cache keyed by the tokenizer family (the catalog family of the
   model counted for, e.g. ``gemini-2.5``, ``claude-4.5``) and a SHA-256 of the messages: a fallback
   attempt, a retry or an ``explain`` followed by the call never counts twice;
2. takes one request from the ledger's Count Tokens rate pool of the project (3,000 per minute, seed
   002, shared by every process on the ledger: :mod:`router.ledger.rate`);
3. asks the transport (``transport.count_tokens(spec, settings)``) within a short deadline
   (:data:`router._transport.count_tokens.COUNT_TIMEOUT_S`, 2 s by default).

When the pool is spent, the ledger cannot be reached, or the count fails (5xx, 429, timeout, auth), the
request goes on with the estimate plus the policy's ``count_tokens_margin`` (source ``estimate``, the
margin and the reason recorded). A model Vertex cannot count (partner models), or a transport without
``count_tokens``, gets the plain estimate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from router._transport.count_tokens import COUNT_TIMEOUT_S, CountFailed, TokenCount
from router._transport.types import CallSpec
from router.errors import RouterError
from router.ledger.rate import count_tokens_pool
from router.policy.counting import PromptSize, count_target, count_trigger, with_margin

#: Counts kept in the cache (per Router).
CACHE_SIZE = 4096
OUTCOMES = ("counted", "cache_hit", "fallback", "unsupported")


def content_key(family: str, messages: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The cache key of a prompt: (tokenizer family, SHA-256 of the messages as canonical JSON)."""
    text = json.dumps(list(messages), sort_keys=True, default=str, separators=(",", ":"))
    return family, hashlib.sha256(text.encode("utf-8")).hexdigest()


class PromptCounter:
    """Cache, rate pool and fallback around the transport's ``count_tokens`` (one per Router).

    ``stats``: how many prompt sizes were counted, served from the cache, fell back to the estimate plus
    the margin, or could not be counted (no Count Tokens API for the model)."""

    def __init__(self, cache_size: int = CACHE_SIZE, timeout_s: float = COUNT_TIMEOUT_S) -> None:
        if cache_size < 1:
            raise ValueError("count cache size must be at least 1")
        if not 0 < timeout_s <= 60:
            raise ValueError("count_tokens_timeout_s must be in (0, 60] seconds")
        self.cache_size = cache_size
        self.timeout_s = timeout_s
        self._cache: OrderedDict[tuple[str, str], TokenCount] = OrderedDict()
        self._lock = threading.Lock()
        self.stats: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    def _get(self, key: tuple[str, str]) -> TokenCount | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def _put(self, key: tuple[str, str], count: TokenCount) -> None:
        with self._lock:
            self._cache[key] = count
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    async def note(self, outcome: str, metrics: Any, store: Any, pool: Any) -> None:
        """Count an outcome here, in the metrics and in the ledger's day statistics (best effort)."""
        with self._lock:
            self.stats[outcome] += 1
        if metrics is not None:
            metrics.record_count_tokens(outcome)
        try:
            await store.rate_outcomes(pool, outcome)
        except NotImplementedError:  # a custom store without rate pools: no day statistics
            pass
        except Exception:  # noqa: BLE001 - statistics must never fail a request
            if metrics is not None:
                metrics.record_store_error("count_tokens_stats")

    async def size(
        self,
        *,
        transport: Any,
        store: Any,
        pool: Any,
        settings: Any,
        spec: Any,
        family: str,
        estimate: int,
        margin: Decimal,
        reason: str,
        metrics: Any = None,
    ) -> PromptSize:
        """The prompt size for ``spec`` (a ``CallSpec`` naming the model counted for and the messages)."""
        key = content_key(family, spec.messages)
        cached = self._get(key)
        if cached is not None:
            await self.note("cache_hit", metrics, store, pool)
            return PromptSize(cached.tokens, "count_tokens", estimate, None, reason, None, cached.model, True, cached.billable_characters)

        async def plain(why: str) -> PromptSize:
            await self.note("unsupported", metrics, store, pool)
            return PromptSize(estimate, "estimate", estimate, Decimal(0), reason, why, None)

        async def fallback(why: str) -> PromptSize:
            await self.note("fallback", metrics, store, pool)
            return PromptSize(with_margin(estimate, margin), "estimate", estimate, margin, reason, why, None)

        count = getattr(transport, "count_tokens", None)
        if count is None:
            return await plain(f"the transport {type(transport).__name__} cannot count tokens")
        if spec.api not in ("gemini", "anthropic"):
            return await plain(f"Vertex has no Count Tokens API for {spec.model_id}")
        try:
            took = await store.take_rate(pool)
        except Exception as exc:  # noqa: BLE001 - the ledger is down: do not spend an unshared quota
            return await fallback(f"Count Tokens quota not checked (ledger: {exc})")
        if not took.granted:
            return await fallback(f"Count Tokens quota spent ({took.used:,} of {took.limit:,} requests in the last minute, project pool {pool.id})")
        try:
            counted = await asyncio.wait_for(count(spec, settings), self.timeout_s + 0.5)
        except CountFailed as exc:
            if exc.kind == "unsupported":
                return await plain(str(exc))
            return await fallback(f"Count Tokens failed ({exc.kind}): {exc}")
        except asyncio.TimeoutError:
            return await fallback(f"Count Tokens timed out after {self.timeout_s}s")
        self._put(key, counted)
        await self.note("counted", metrics, store, pool)
        return PromptSize(counted.tokens, "count_tokens", estimate, None, reason, None, counted.model, False, counted.billable_characters)


def _location_of(compiled: Any, model_id: str) -> str | None:
    """The endpoint location the policy routes ``model_id`` to (its first usable candidate entry)."""
    for profile in compiled.profiles.values():
        for cand in profile.cands:
            if cand.model_id == model_id and cand.location is not None:
                return cand.location
    return None


async def size_prompt(
    compiled: Any,
    features: Any,
    state: Any,
    messages: Sequence[Mapping[str, Any]],
    *,
    counter: PromptCounter,
    transport: Any,
    store: Any,
    settings: Any,
    metrics: Any = None,
) -> tuple[Any, PromptSize | None]:
    """``(features, size)``: the request's features with the prompt size the policy's
    ``settings.count_tokens`` asks for (a count, or the estimate plus the margin when no count could be
    made), and where it came from; ``(features, None)`` when the estimate stands (no count wanted).
    ``features.prompt_tokens`` must be the local estimate."""
    if compiled.count_tokens == "never":
        return features, None
    if compiled.count_tokens == "always":
        reason, trigger_model = "settings.count_tokens: always", None
    else:
        found = count_trigger(compiled, features, state)
        if found is None:
            return features, None
        reason, trigger_model = found
    preferred = [trigger_model] if trigger_model else []
    try:
        preferred += [c.model for c in compiled.decide(features, state).choices]
    except RouterError:
        pass  # e.g. the estimate overflows every context window: the count may say otherwise
    model = count_target(compiled, features, preferred)
    estimate = features.prompt_tokens
    pool = count_tokens_pool(settings.vertex_project)
    if model is None:
        size = PromptSize(estimate, "estimate", estimate, Decimal(0), reason, "no candidate has a Count Tokens API")
        await counter.note("unsupported", metrics, store, pool)
    else:
        spec = CallSpec(model_id=model.id, api=model.api, vertex_model=model.vertex_model, location=_location_of(compiled, model.id), messages=list(messages))
        size = await counter.size(
            transport=transport, store=store, pool=pool, settings=settings, spec=spec, family=model.family,
            estimate=estimate, margin=compiled.count_margin, reason=reason, metrics=metrics,
        )
    if size.tokens != estimate:
        features = dataclasses.replace(features, prompt_tokens=size.tokens)
    return features, size


__all__ = ["CACHE_SIZE", "PromptCounter", "content_key", "size_prompt"]
