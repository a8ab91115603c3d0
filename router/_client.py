"""``Router``: decide, reserve, call, bill, settle. The only object application code needs.

    router = Router(policy="policies/balanced.yaml", store="redis://localhost:6379/0")
    response = router.complete(messages=[...], tenant="acme", max_tokens=512)
    response.routing.cost_usd   # exact Decimal bill of this call, already settled in the ledger

Every attempt reserves its upper-bound cost in every budget scope before it is sent; a failed attempt
(non-200) is released and never billed; a successful one is billed from the provider's usage with our
cost engine and settled. Streams settle from the final usage chunk, or for what was produced when the
stream is cut.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from router import _pt_path
from router._reload import PolicyWatcher
from router._snapshot_cache import SnapshotCache
from router._token_counter import size_prompt
from router._billing import token_bill_units, units_to_usd
from router._routing import Attempt, RoutingRecord
from router._transport import AttemptFailed, CallSpec, VertexSettings
from router._sync import LoopThread
from router.catalog import Catalog, CatalogModel, default_catalog, load_catalog
from router.cost import USAGE_FIELD_OF_UNIT, Usage, compute_cost
from router.ledger import MemoryStore
from router.metrics import RouterMetrics
from router.errors import (
    BudgetExceededError,
    PriceNotAvailableError,
    RequestError,
    RequestRefusedError,
    RouterError,
    TransportError,
)
from router.policy import RequestFeatures, StateSnapshot, estimate_prompt_tokens
from router.policy.features import check_count, check_request_id, plain_text_tokens
from router.policy.counting import PromptSize

if TYPE_CHECKING:  # types only (annotations are not evaluated at run time)
    from router._transport import ProviderUsage, Transport, TransportStream
    from router.ledger import Store
    from router.ledger.types import BudgetScope, LedgerSnapshot, QuotaPool, Reservation
    from router.policy.compile import CompiledPolicy
    from router.policy.decide import Choice, Decision
    from router.replay import RequestLog


#: The caller's and the estimate's PromptSize per (tokens, source): immutable, so shared (bounded).
_PROMPT_SIZES: dict[tuple[int, str], PromptSize] = {}


class CallRequest(TypedDict, total=False):
    """What one routed call carries from step to step (built by ``Router._split``)."""

    id: str  # the request id (the caller's ``request_id`` or a random one)
    call_id: str  # unique per call: the prefix of the ledger ids of its attempts
    messages: list[Mapping[str, Any]]  # the caller's messages, as they are
    features: RequestFeatures
    timeout_s: float
    compiled: CompiledPolicy  # one policy version for the whole call
    prompt_source: str  # "caller" or "estimate"
    store: Store  # the ledger store of this call's event loop
    state: StateSnapshot  # the ledger view the decision used
    prompt: PromptSize
    pt_claims: dict[str, Any]  # Provisioned Throughput claims per attempt id (router._pt_path)
    cache_writes: str | None  # "5m" / "1h": the request marks parts for prompt caching (writes cost above input)


RETRYABLE = frozenset({"rate_limited", "server_error", "timeout", "context_overflow"})
#: The keyword arguments the Router takes for itself; every other one is passed to the model.
_ROUTING_KEYS = ("stream", "grounding", "max_tokens", "prompt_tokens", "tenant", "app", "tags", "task", "latency_sensitive", "at", "request_id", "timeout")
_ROUTING_DEFAULTS: dict[str, Any] = {**dict.fromkeys(_ROUTING_KEYS), "latency_sensitive": False}
_NO_CAPABILITIES: frozenset[str] = frozenset()
_UNIT_NAMES = {"grounded_prompt": "grounded prompts", "search_query": "search queries", "web_search": "web searches", "request": "grounding requests"}


def _cache_write_ttl(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> str | None:
    """``"1h"`` or ``"5m"`` when the request marks prompt parts for (Anthropic) prompt caching, whose writes
    are billed above the input rate; None otherwise. Looks at messages, their content parts and tools."""
    ttl: str | None = None

    def mark(item: Any) -> None:
        nonlocal ttl
        control = item.get("cache_control") if isinstance(item, Mapping) else None
        if isinstance(control, Mapping):
            ttl = "1h" if control.get("ttl") == "1h" or ttl == "1h" else "5m"

    for message in messages:
        mark(message)
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            for part in content:
                mark(part)
    tools = params.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            mark(tool)
    return ttl


def _batch_warning(choice: Choice) -> str:
    return f"{choice.model}: batch-eligible, sent online (the router does not submit Batch API jobs): billed at online rates"


def _is_policy_file(policy: Any) -> bool:
    """True for a path to an existing file (YAML text, even long or multi-line, is not a path)."""
    if isinstance(policy, Path):
        return policy.is_file()
    if isinstance(policy, str) and "\n" not in policy and len(policy) < 4096:
        try:
            return Path(policy).is_file()
        except OSError:
            return False
    return False


#: The timeout of one model call when the caller passes no ``timeout`` (litellm's own default is 6000 s).
DEFAULT_REQUEST_TIMEOUT_S = 120.0
#: A hold outlives its call's timeout by this much (time to bill and settle after the answer arrives).
RESERVATION_TTL_MARGIN_S = 30.0


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 7 * 86400:
        raise ValueError(f"Router({name}=...) must be a positive number of seconds up to 7 days, not {value!r}")


def _timeout(value: Any, default: float) -> float:
    if value is None:
        return default
    _check_seconds("timeout", value)
    return float(value)


# Call ids: 128 bits from a private generator seeded from os.urandom, reseeded in every forked child (so
# two processes never share a sequence, and a caller's random.seed() never touches it). As unique as
# os.urandom(16) per call, without a getrandom syscall per call: that syscall releases the GIL, which under
# 50 concurrent calls hands it to litellm's executor threads and costs the event loop a switch interval.
_IDS = random.Random()
os.register_at_fork(after_in_child=_IDS.seed)
_ID_BITS = _IDS.getrandbits


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _as_list(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The caller's messages as a list, without copying a list (they are passed on as they are)."""
    return messages if isinstance(messages, list) else list(messages)


class Router:
    """Route chat completions across Vertex AI models by a declarative policy, with exact spend tracking.

    ``policy``: a path to a policy YAML, YAML text, or a loaded policy object.
    ``catalog``: a :class:`~router.catalog.Catalog`, a catalog directory, or None for the bundled one.
    ``store``: a ledger URL (``memory://``, ``fakeredis://``, ``redis://``, ``rediss://``,
    ``redis+cluster://``) or a store object. ``transport``: the call seam (default: litellm).
    ``**vertex_settings``: ``vertex_project``, ``vertex_location``, ``vertex_credentials``, ``api_base``.
    ``snapshot_max_age_s``: how old (counted from the start of its read) the ledger view a decision uses may
    be on a shared store; views are refreshed in the background past half that age (reservations are always
    atomic against live counters). ``failure_mode``: ``fail_closed`` or ``fail_open``.
    ``request_log``: a JSON-lines file receiving one line per served request, for ``router replay``.
    ``request_timeout_s``: the timeout of one model call when the caller passes no ``timeout``.
    ``reservation_ttl_s``: how long a hold lives if its worker dies before settling; None (default)
    derives it per call as the call's timeout + ``RESERVATION_TTL_MARGIN_S`` (120 + 30 = 150 s).
    ``count_tokens_timeout_s``: the deadline of one Count Tokens call (the policy's
    ``settings.count_tokens`` decides when one is made); ``count_cache_size``: prompt counts kept (LRU).
    """

    def __init__(
        self,
        policy: Any,
        catalog: Catalog | str | os.PathLike[str] | None = None,
        store: str | Store = "memory://",
        *,
        transport: Transport | None = None,
        failure_mode: str = "fail_closed",
        journal_path: str | None = None,
        reservation_ttl_s: float | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        snapshot_max_age_s: float = 0.05,
        request_log: str | os.PathLike[str] | None = None,
        key_prefix: str = "router",
        watch_policy: bool = True,
        watch_interval_s: float = 0.5,
        metrics: RouterMetrics | None = None,
        count_tokens_timeout_s: float = 2.0,
        count_cache_size: int = 4096,
        **vertex_settings: Any,
    ) -> None:
        from router.policy import compile_policy, load_policy

        if catalog is None:
            self.catalog = default_catalog()
        elif isinstance(catalog, Catalog):
            self.catalog = catalog
        else:
            self.catalog = load_catalog(catalog)
        self.metrics = metrics
        self._watcher: PolicyWatcher | None = None
        self._watch_interval_s = watch_interval_s
        #: ``policy="store:NAME"``: the policy lives in the ledger (``router policy publish``); every
        #: Router sharing the ledger switches to a newly published version within ``watch_interval_s``.
        self._shared_name: str | None = None
        self._shared_version: str | None = None
        self._shared_rejected: str | None = None  # a published version that did not compile (alert raised)
        self._shared_next_check = 0.0
        if isinstance(policy, str) and policy.startswith("store:"):
            from router.ledger.keys import check_policy

            self._shared_name = check_policy(policy.removeprefix("store:"))
            self._static = None
        elif _is_policy_file(policy) and watch_policy:
            self._watcher = PolicyWatcher(
                policy,
                lambda text, name: compile_policy(load_policy(text, self.catalog, filename=name), self.catalog),
                interval_s=watch_interval_s,
                on_reload=self._on_reload,
            )
            self._static = None
            if metrics is not None:
                metrics.record_policy_reload(True, self._watcher.version)
        else:
            loaded = load_policy(policy, self.catalog) if isinstance(policy, (str, bytes, dict, Path)) else policy
            self._static = compile_policy(loaded, self.catalog)
        self._store_spec = store
        self._store_options = {"prefix": key_prefix, "failure_mode": failure_mode, "journal_path": journal_path}
        self._memory_store: Store | None = None
        self._loop_stores: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Store]" = weakref.WeakKeyDictionary()
        self._transport = transport
        self._vertex_settings_kwargs = vertex_settings
        self._vertex_settings: VertexSettings | None = None
        _check_seconds("request_timeout_s", request_timeout_s)
        if reservation_ttl_s is not None:
            _check_seconds("reservation_ttl_s", reservation_ttl_s)
        self.reservation_ttl_s = reservation_ttl_s
        self.request_timeout_s = request_timeout_s
        self.snapshot_max_age_s = snapshot_max_age_s
        self._request_log: RequestLog | None = None
        if request_log is not None:
            from router import replay

            self._request_log = replay.RequestLog(request_log)
        self._snapshots = SnapshotCache()
        from router._token_counter import PromptCounter

        self.prompt_counter = PromptCounter(count_cache_size, count_tokens_timeout_s)
        self._sync = LoopThread()

    # ------------------------------------------------------------------ plumbing
    @property
    def compiled(self) -> CompiledPolicy:
        """The serving compiled policy (hot-reloaded from its file when ``watch_policy``, or from the
        ledger for ``policy="store:NAME"``)."""
        if self._watcher is not None:
            return self._watcher.get()
        if self._static is None and self._shared_name is not None:
            self._sync.run(self._refresh_shared_policy(force=True))
        return self._static

    @property
    def policy_version(self) -> str | None:
        """The version id of the serving policy (file or shared); None for a policy given as an object."""
        if self._shared_name is not None:
            return self._shared_version
        return self._watcher.version if self._watcher is not None else None

    async def _refresh_shared_policy(self, force: bool = False) -> None:
        """For ``policy="store:NAME"``: adopt a newly published version (validated first; a version that
        does not compile is refused and the serving one kept, with the alert metric set)."""
        name = self._shared_name
        if name is None:
            return
        now = time.monotonic()
        if not force and self._static is not None and now < self._shared_next_check:
            return
        self._shared_next_check = now + self._watch_interval_s
        from router.errors import PolicyError
        from router.policy import compile_policy, load_policy

        store = self.store()
        version = await store.policy_version(name)
        if version is None:
            if self._static is None:
                raise PolicyError([(f"store:{name}", 1, 1, "no policy published under this name: run `router policy publish FILE --store URL --name NAME`")])
            return
        if version == self._shared_version:
            if self._shared_rejected is not None:  # the serving version is current again: clear the alert
                self._shared_rejected = None
                self._on_reload(True, version, None)
            return
        if version == self._shared_rejected:
            return  # already refused and reported
        text = await store.policy_text(name, version)
        try:
            if text is None:
                raise PolicyError([(f"store:{name}@{version}", 1, 1, "the published text is gone (expired from the ledger)")])
            compiled = compile_policy(load_policy(text, self.catalog, filename=f"store:{name}@{version}"), self.catalog)
        except PolicyError:
            self._on_reload(False, None, None)
            if self._static is None:
                raise
            self._shared_rejected = version
            return
        self._static, self._shared_version, self._shared_rejected = compiled, version, None
        self._on_reload(True, version, None)

    def _on_reload(self, ok: bool, version: str | None, error: str | None) -> None:
        if self.metrics is not None:
            self.metrics.record_policy_reload(ok, version)

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            from router._transport.litellm_adapter import LiteLLMTransport

            self._transport = LiteLLMTransport(count_timeout_s=self.prompt_counter.timeout_s)
        return self._transport

    @property
    def vertex_settings(self) -> VertexSettings:
        if self._vertex_settings is None:
            self._vertex_settings = VertexSettings.from_env(**self._vertex_settings_kwargs)
        return self._vertex_settings

    def store(self) -> Store:
        """The ledger store for the running event loop (a memory store is shared by all loops).
        Resolved once per request (the request carries it)."""
        if self._memory_store is not None:  # set only for a memory:// spec
            return self._memory_store
        if not isinstance(self._store_spec, str):
            return self._store_spec
        if self._store_spec.startswith("memory://"):
            if self._memory_store is None:
                self._memory_store = self._new_store()
            return self._memory_store
        # A network client belongs to the event loop it was made on: one per loop, dropped with the loop.
        loop = asyncio.get_running_loop()
        found = self._loop_stores.get(loop)
        if found is None:
            found = self._loop_stores[loop] = self._new_store()
        return found

    def _new_store(self) -> Store:
        from router.ledger import store_from_url  # loads the Redis client only for a Redis URL

        return store_from_url(self._store_spec, **self._store_options)

    # ------------------------------------------------------------------ public API
    def complete(self, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
        """Synchronous :meth:`acomplete`. With ``stream=True`` returns a synchronous iterator of chunks."""
        if kwargs.get("stream"):
            return _SyncRoutedStream(_RoutedStream(self._stream(_as_list(messages), kwargs)), self._sync)
        return self._sync.run(self.acomplete(messages, **kwargs))

    async def acomplete(self, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
        """Route one chat completion. Returns litellm's ``ModelResponse`` with a ``routing`` attribute
        (:class:`RoutingRecord`); with ``stream=True``, an async iterator of chunks (the record is on
        the iterator's ``routing`` attribute once it is exhausted or closed).

        Routing attributes: ``tenant``, ``app``, ``tags`` (dict), ``task``, ``grounding`` (True or a kind
        such as ``"google_search"``), ``latency_sensitive``, ``max_tokens``, ``prompt_tokens`` (an exact
        count, if you have one), ``request_id``. Everything else (``temperature``, ``tools``,
        ``response_format``, ...) is passed to the model.
        """
        if kwargs.get("stream"):
            return _RoutedStream(self._stream(_as_list(messages), kwargs))
        if self._shared_name is not None:
            await self._refresh_shared_policy()
        request, params = self._split(_as_list(messages), kwargs)
        return await self._complete(request, params)

    def explain(self, messages: Sequence[Mapping[str, Any]] = (), **kwargs: Any) -> dict[str, Any]:
        """The decision this Router would make now for such a request (no model call, nothing reserved;
        when the policy's ``settings.count_tokens`` wants a count, the prompt is counted and cached as
        the call would do, so the call that follows does not count it again)."""
        return self._sync.run(self._explain(_as_list(messages), kwargs))

    async def ledger_state(self) -> tuple[list[BudgetScope], LedgerSnapshot]:
        """``(budgets, snapshot)``: every budget the ledger knows and, in one read, their spend, the
        catalog's grounding pools and the priority ramp (for dashboards, ``router demo``, metrics)."""
        from router.ledger.ramp import RAMP_BASE_TPM

        store = self.store()
        budgets = [info.budget for info in await store.list_scopes()]
        pools = [self.compiled.quota_pool(pool_id) for pool_id in self.catalog.pools]
        return budgets, await store.snapshot(budgets, pools, list(RAMP_BASE_TPM))

    async def refresh_metrics(self) -> None:
        """Set the ledger gauges of ``metrics`` (budgets, grounding pools, priority ramp, journal backlog)
        from this Router's store; call it before a scrape, or periodically."""
        if self.metrics is None:
            return
        from router.errors import StoreError

        backlog = getattr(self.store(), "journal_backlog", None)  # this ledger's events only
        self.metrics.journal_backlog.set(backlog() if backlog is not None else 0)
        try:
            budgets, snap = await self.ledger_state()
        except StoreError:
            self.metrics.record_store_error("refresh_metrics")
            return
        self.metrics.set_ledger(budgets, snap)
        if self.compiled.count_tokens != "never":
            from router.ledger.rate import count_tokens_pool

            try:
                usage = await self.store().take_rate(count_tokens_pool(self.vertex_settings.vertex_project), 0)
            except (StoreError, NotImplementedError):
                self.metrics.record_store_error("refresh_metrics")
                return
            self.metrics.set_count_pool(usage.pool_id, usage.used, usage.remaining)
        try:
            await _pt_path.refresh_metrics(self)
        except StoreError:
            self.metrics.record_store_error("refresh_metrics")

    async def aclose(self) -> None:
        current = asyncio.get_running_loop()
        stores = [*([self._memory_store] if self._memory_store is not None else []), *(s for loop, s in list(self._loop_stores.items()) if loop is current)]
        for store in stores:
            close = getattr(store, "close", None)
            if close is not None:
                await close()
        self._memory_store = None
        self._loop_stores.pop(current, None)

    def close(self) -> None:
        self._sync.run(self.aclose())
        self._sync.close()

    # ------------------------------------------------------------------ internals
    def _split(self, messages: list[Mapping[str, Any]], kwargs: dict[str, Any]) -> tuple[CallRequest, dict[str, Any]]:
        """Routing attributes -> (request, params to pass to the model). ``kwargs`` is the caller's
        ``**kwargs`` dict (owned by this call): it is consumed and becomes the params."""
        compiled = self.compiled  # one policy version for the whole request, even if a reload lands meanwhile
        params = kwargs
        # the routing attributes leave the params (a pop only for those present: most calls pass few)
        routing = dict(_ROUTING_DEFAULTS)
        for name in _ROUTING_KEYS:
            if name in params:
                routing[name] = params.pop(name)
        grounding = routing["grounding"]
        if grounding is True:
            grounding = "google_search"
        max_tokens = routing["max_tokens"]
        if max_tokens is None:
            max_tokens = compiled.default_max_tokens
        elif type(max_tokens) is not int or max_tokens < 0:
            max_tokens = check_count("max_tokens", max_tokens)
        if max_tokens == 0:
            raise RequestError("max_tokens", "must be at least 1 (leave it out for the policy's default_max_tokens)")
        prompt_tokens = routing["prompt_tokens"]
        plain = plain_text_tokens(messages)  # plain text messages: one pass says tokens, capabilities, cache marks
        source = "caller"
        if prompt_tokens is None:
            prompt_tokens = plain if plain is not None else estimate_prompt_tokens(messages)
            source = "estimate"
        else:
            prompt_tokens = check_count("prompt_tokens", prompt_tokens)
        if plain is None:
            capabilities = RequestFeatures.capabilities_from(messages, params)
            cache_writes = _cache_write_ttl(messages, params)
        elif "tools" in params or "functions" in params or "response_format" in params:  # the only params these two read
            capabilities = RequestFeatures.capabilities_from((), params)
            cache_writes = _cache_write_ttl((), params)
        else:
            capabilities, cache_writes = _NO_CAPABILITIES, None
        features = RequestFeatures(
            routing["tenant"],
            routing["app"],
            dict(routing["tags"] or {}),
            routing["task"],
            prompt_tokens,
            max_tokens,
            grounding or None,
            bool(routing["latency_sensitive"]),
            capabilities,
            routing["at"] or _utcnow().date(),
        )
        # One random id per call. Ledger ids are unique per call even when a caller reuses request_id: a
        # reused id must never make the ledger treat a second call as a retry of the first (and skip booking it).
        token = f"{_ID_BITS(128):032x}"
        given_id = routing["request_id"]
        if given_id is not None:
            given_id = check_request_id(given_id)
        timeout = routing["timeout"]
        request: CallRequest = {
            "id": given_id if given_id is not None else token,
            "call_id": f"{given_id}:{token[:12]}" if given_id is not None else token,
            "messages": messages,
            "features": features,
            "timeout_s": self.request_timeout_s if timeout is None else _timeout(timeout, self.request_timeout_s),
            "compiled": compiled,
            "prompt_source": source,
            "store": self.store(),
            "cache_writes": cache_writes,  # prompt-caching marks: writes cost above input
        }
        params["max_tokens"] = features.max_tokens
        return request, params

    async def _snapshot(self, compiled: CompiledPolicy, features: RequestFeatures, store: Store) -> StateSnapshot:
        """The ledger state the decision sees. On a shared (Redis) store it comes from a cache of views per set
        of budgets / pools / families (:mod:`router._snapshot_cache`): a view is used while its read started at
        most ``snapshot_max_age_s`` ago and refreshed in the background past half that age, so a request
        waits on a read only when the view is older than the bound (or missing). The reservation that follows
        is always checked atomically against the live counters, so a slightly older view can change *which*
        model is preferred, never let a budget overflow."""
        budgets = compiled.budgets_for(features)
        pools = compiled.pools_for(features)
        families = compiled.ramp_families
        if self.snapshot_max_age_s <= 0 or isinstance(store, MemoryStore):
            return StateSnapshot.from_ledger(await self._read_snapshot(store, budgets, pools, families), budgets)
        cache_key = (id(store), tuple(b.id for b in budgets), tuple(p.id for p in pools), tuple(families))
        snap = await self._snapshots.get(cache_key, self.snapshot_max_age_s, lambda: self._read_snapshot(store, budgets, pools, families))
        return StateSnapshot.from_ledger(snap, budgets)

    async def _read_snapshot(self, store: Store, budgets: list[BudgetScope], pools: list[QuotaPool], families: Sequence[str]) -> LedgerSnapshot:
        try:
            return await store.snapshot(budgets, pools, families)
        except Exception:
            if self.metrics is not None:
                self.metrics.record_store_error("snapshot")
            raise

    async def _decide(self, request: CallRequest) -> Decision:
        compiled, features = request["compiled"], request["features"]
        state = await self._snapshot(compiled, features, request["store"])
        if compiled.pt_keys:  # Provisioned Throughput windows: a fresh read (they move within seconds)
            await _pt_path.read_usage(request["store"], compiled, state)
        request["state"] = state
        if request["prompt_source"] == "estimate" and compiled.count_tokens != "never":
            features = await self._size_prompt(request, state)
        started = time.perf_counter()
        try:
            decision = compiled.decide(features, state)
            decision.prompt = self._prompt_size(request)
            return decision
        except RouterError:
            if self.metrics is not None:
                self.metrics.record_request(None, features.tenant, None, "refused")
            raise
        finally:
            if self.metrics is not None:
                self.metrics.decision_seconds.observe(time.perf_counter() - started)

    async def _explain(self, messages: list[Mapping[str, Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
        from router.policy import explain

        await self._refresh_shared_policy()
        request, _ = self._split(messages, kwargs)
        state = await self._snapshot(request["compiled"], request["features"], request["store"])
        await _pt_path.read_usage(request["store"], request["compiled"], state)
        if request["prompt_source"] == "estimate" and request["compiled"].count_tokens != "never":
            await self._size_prompt(request, state)  # counted (and cached) as the call would be
        return explain(request["compiled"], request["features"], state, self._prompt_size(request))

    @staticmethod
    def _prompt_size(request: CallRequest) -> PromptSize:
        """Where the request's prompt size came from (caller, count_tokens or estimate)."""
        found = request.get("prompt")
        if found is None:
            tokens = request["features"].prompt_tokens
            key = (tokens, request["prompt_source"])
            found = _PROMPT_SIZES.get(key)
            if found is None:  # frozen, so one per (tokens, source) is shared by every request of that size
                if key[1] == "caller":
                    found = PromptSize(tokens, "caller")
                else:
                    found = PromptSize(tokens, "estimate", tokens, Decimal(0))
                if len(_PROMPT_SIZES) >= 4096:
                    _PROMPT_SIZES.clear()
                _PROMPT_SIZES[key] = found
            request["prompt"] = found
        return found

    async def _size_prompt(self, request: CallRequest, state: StateSnapshot) -> RequestFeatures:
        """Count the prompt with Vertex when the policy's ``settings.count_tokens`` wants it (see
        :mod:`router.policy.counting` and :mod:`router._token_counter`); the request's features then
        carry the count (or, when no count could be made, the estimate plus the policy's margin)."""
        features, size = await size_prompt(
            request["compiled"],
            request["features"],
            state,
            request["messages"],
            counter=self.prompt_counter,
            transport=self.transport,
            store=request["store"],
            settings=self.vertex_settings,
            metrics=self.metrics,
        )
        if size is not None:
            request["prompt"], request["features"] = size, features
        return features

    def _candidates(self, decision: Decision) -> list[Choice]:
        return [decision.primary, *decision.fallbacks]

    def _upper_bound(self, choice: Choice, features: RequestFeatures, state: StateSnapshot | None = None, cache_writes: str | None = None) -> Decimal:
        """The most this attempt can cost: the whole prompt plus ``max_tokens`` of output, plus its grounding
        billed in full (``choice.grounding_units``: one grounded prompt / request, or the policy's
        ``grounding.expected_queries`` search queries / web searches).

        The free pool is never counted on: the decision saw it through a snapshot that may be stale, and the
        pool grants its units only at settlement, so a request racing others for the last free units could
        otherwise be billed above its reservation. The settlement books the exact bill (grounding the pool
        covered is free). ``state`` is unused (kept for callers). ``cache_writes`` (``"5m"`` / ``"1h"``, the
        request marks parts for prompt caching): the whole prompt is reserved at that cache-write rate where
        the model has one (Claude: 1.25x / 2x the input rate), since the provider may bill it as writes."""
        precomputed = getattr(choice, "upper_bound_cost", None)
        if precomputed is not None and not (choice.priority or choice.grounding or cache_writes):
            # The engine's bound is our cost engine's at online rates, from rates precompiled per model
            # (tested equal); priority and grounding depend on the catalog overlay and the pools.
            return precomputed
        model = self.catalog.get(choice.model)
        # The router sends every request online (it does not submit Batch API jobs), so it reserves and
        # bills online rates even when the policy allowed batch; the request carries a batch-eligible label.
        fields: dict[str, Any] = {"at": features.at, "batch": False, "location": choice.location}
        if model.billing_unit == "character":
            fields.update(input_chars=features.prompt_tokens * 4, output_chars=features.max_tokens * 4)
        else:
            fields.update(input_tokens=features.prompt_tokens, output_tokens=features.max_tokens)
        if choice.priority:
            fields["traffic"] = "on_demand_priority"
        kind = choice.grounding
        if kind:
            option = model.grounding[kind]
            fields["grounding_kind"] = kind
            fields[USAGE_FIELD_OF_UNIT[option.unit]] = max(1, getattr(choice, "grounding_units", 0))
        if cache_writes and model.billing_unit != "character":
            try:
                written = {f"cache_write_{cache_writes}_tokens": features.prompt_tokens}
                return compute_cost(model, Usage.build(**fields, **written)).total
            except PriceNotAvailableError:
                pass  # no cache-write price for this model: its prompt is billed at the input rate
        return compute_cost(model, Usage.build(**fields)).total  # no pools: every grounding unit is billed

    def _call_spec(self, choice: Choice, request: CallRequest, params: dict[str, Any], stream: bool) -> CallSpec:
        """The attempt as the transport sees it: the caller's messages and params are passed as they are (not copied)."""
        model = self.catalog.get(choice.model)
        features = request["features"]
        labels = {}
        if features.tenant:
            labels["router-tenant"] = features.tenant
        if features.app:
            labels["router-app"] = features.app
        return CallSpec(
            model_id=model.id,
            api=model.api,
            vertex_model=model.vertex_model,
            location=choice.location,
            messages=request["messages"],
            params=_pt_path.with_headers(choice, params),
            grounding=choice.grounding,
            priority=choice.priority,
            stream=stream,
            timeout_s=request["timeout_s"],
            batch=choice.batch,
            labels=labels,
            prompt_tokens=features.prompt_tokens if self._prompt_size(request).source != "estimate" else None,
        )

    @staticmethod
    def _usage_fields(model: CatalogModel, choice: Choice, features: RequestFeatures, usage: ProviderUsage) -> dict[str, Any]:
        """The cost engine's usage fields of a served attempt (its grounding and traffic are the caller's)."""
        # The router sends every request online (it does not submit Batch API jobs), so it reserves and
        # bills online rates even when the policy allowed batch; the request carries a batch-eligible label.
        fields: dict[str, Any] = {"at": features.at, "batch": False, "location": choice.location}
        if model.billing_unit == "character":
            fields.update(input_chars=usage.input_tokens * 4, output_chars=(usage.output_tokens + usage.thinking_tokens) * 4)
        else:
            fields.update(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                thinking_tokens=usage.thinking_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                audio_input_tokens=usage.audio_input_tokens,
                cache_write_5m_tokens=usage.cache_write_5m_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
            )
        return fields

    async def _bill(self, choice: Choice, request: CallRequest, usage: ProviderUsage, request_id: str, record: RoutingRecord, upper: Decimal) -> Decimal:
        """Bill a successful attempt from the provider's usage (grounding through the free pools)."""
        features = request["features"]
        models = self.catalog.models
        model = models[choice.model] if choice.model in models else self.catalog.get(choice.model)
        store = request["store"]
        kind = choice.grounding
        pt = choice.provisioned
        if (
            not kind
            and usage.traffic_type != "PROVISIONED_THROUGHPUT"
            and not (choice.priority and usage.traffic_type == "ON_DEMAND_PRIORITY")
            and (pt is None or pt.mode == "never")
            and not request.get("pt_claims")
        ):
            # The common case in integers (exactly the engine's total); the itemised lines wait for a reader.
            units = token_bill_units(model, usage, features.at, choice.location)
            if units is not None:
                record.traffic_type = usage.traffic_type
                if choice.batch:
                    record.warnings.append(_batch_warning(choice))
                pools = self.catalog.pools
                record.cost_lines_from(lambda: [line.to_dict() for line in compute_cost(model, Usage.build(**self._usage_fields(model, choice, features, usage)), pools, check_context_window=False).lines])
                record.usage_from(usage)
                return units_to_usd(units)
        fields = self._usage_fields(model, choice, features, usage)
        # Only billed traffic counts: a priority request downgraded to ON_DEMAND is billed standard.
        if choice.priority and usage.traffic_type == "ON_DEMAND_PRIORITY":
            fields["traffic"] = "on_demand_priority"
        record.traffic_type = usage.traffic_type
        if choice.batch:
            record.warnings.append(_batch_warning(choice))
        if kind:
            option = model.grounding[kind]
            if option.unit == "search_query":
                units = usage.search_queries
            elif option.unit == "web_search":
                units = usage.web_searches
            elif option.unit == "grounded_prompt" and kind != "google_maps":
                units = 1 if usage.grounding_web_urls > 0 else 0  # Search: billed only with >= 1 web grounding URL
            else:
                # Maps bills a request that ran at least one Maps query (seed 000); the response does not say
                # so reliably, so a Maps-grounded request always counts: the bill may be high, never low.
                units = 1
            fields[USAGE_FIELD_OF_UNIT[option.unit]] = units
            fields["grounding_kind"] = kind
            if units and option.pool:
                pool = self.catalog.pool(option.pool)
                if pool.effective_from is None or features.at >= pool.effective_from:
                    consumed = await store.consume(request["compiled"].quota_pool(pool.id), units, request_id)
                    fields["grounding_billable_units"] = consumed.billable_units
        if choice.priority and usage.traffic_type == "ON_DEMAND_PRIORITY" and model.priority_ramp_family:
            await store.record_priority_tokens(model.priority_ramp_family, usage.input_tokens + usage.output_tokens + usage.thinking_tokens)
        pools = self.catalog.pools
        try:
            # The provider served this prompt: its usage is the bill, whatever the catalog's context window says.
            breakdown = compute_cost(model, Usage.build(**fields), pools, check_context_window=False)
        except PriceNotAvailableError as exc:
            # Never lose spend: bill what was reserved and say why.
            record.warnings.append(f"billed at the reserved upper bound: {exc}")
            return upper
        record.cost_lines_from(lambda: [line.to_dict() for line in breakdown.lines])
        record.grounding_free_units = breakdown.grounding_free_units
        record.grounding_billable_units = breakdown.grounding_billable_units
        record.warnings.extend(breakdown.warnings)
        record.usage_from(usage)
        return await _pt_path.bill(self, choice, request, usage, request_id, record, breakdown)

    def hold_ttl_s(self, timeout_s: float | None = None) -> float:
        """The TTL of a call's holds: ``reservation_ttl_s`` when set, else the call's timeout (default
        ``request_timeout_s``) + ``RESERVATION_TTL_MARGIN_S``."""
        if self.reservation_ttl_s is not None:
            return self.reservation_ttl_s
        return (self.request_timeout_s if timeout_s is None else timeout_s) + RESERVATION_TTL_MARGIN_S

    async def _reserve(self, store: Store, attempt_id: str, decision: Decision, amount: Decimal, timeout_s: float | None = None) -> Reservation:
        try:
            reservation = await store.reserve(attempt_id, decision.budgets, amount, self.hold_ttl_s(timeout_s))
        except Exception:
            if self.metrics is not None:
                self.metrics.record_store_error("reserve")
            raise
        if not reservation.granted and self.metrics is not None:
            self.metrics.record_denial(str(reservation.denied_scope))
        return reservation

    @staticmethod
    def _retry_on(decision: Decision) -> frozenset[str]:
        """The failure kinds the policy falls back on (its ``fallbacks.retry_on``; default: all retryable)."""
        kinds = getattr(decision, "retry_on", None)
        return frozenset(kinds) & RETRYABLE if kinds is not None else RETRYABLE

    @staticmethod
    def _begin_attempt(record: RoutingRecord, choice: Choice, reservation: Reservation, upper: Decimal) -> Attempt | None:
        """Record the attempt; None when its reservation was denied (the next candidate is tried)."""
        if not reservation.granted:
            record.attempts.append(Attempt(choice.model, choice.location, "denied", upper, detail=f"budget {reservation.denied_scope}"))
            return None
        attempt = Attempt(choice.model, choice.location, "ok", upper)
        record.attempts.append(attempt)
        return attempt

    async def _settle_attempt(self, attempt_id: str, cost: Decimal, upper: Decimal, choice: Choice, record: RoutingRecord, attempt: Attempt, request: CallRequest, usage: ProviderUsage) -> None:
        """Book the bill of a served attempt and record it (the end of every successful call or stream)."""
        features = request["features"]
        await request["store"].settle(attempt_id, cost)
        self._check_bound(record, cost, upper, choice, request, usage)
        attempt.settled_usd = cost
        record.model, record.cost_usd = choice.model, cost
        self._finish(record, features, attempt.outcome)

    def _check_bound(self, record: RoutingRecord, cost: Decimal, upper: Decimal, choice: Choice, request: CallRequest, usage: ProviderUsage) -> None:
        """Say so, naming the cause, when the bill passed its reservation: a budget can then overshoot by the
        difference. Only what the router cannot know before the answer does that (see :meth:`_overrun_causes`)."""
        if cost > upper:
            causes = "; ".join(self._overrun_causes(choice, request, usage, record))
            record.warnings.append(f"billed ${cost} > reserved ${upper}: {causes}; the ledger recorded the full amount")
            if self.metrics is not None:
                self.metrics.overruns.inc()

    def _overrun_causes(self, choice: Choice, request: CallRequest, usage: ProviderUsage, record: RoutingRecord) -> list[str]:
        """Why a bill passed its reservation: which reserved quantity the provider's usage exceeded."""
        features = request["features"]
        causes: list[str] = []
        if usage.input_tokens > features.prompt_tokens:
            source = self._prompt_size(request).source
            if source == "caller":
                causes.append(
                    f"the provider counted {usage.input_tokens:,} prompt tokens, more than the prompt_tokens="
                    f"{features.prompt_tokens:,} passed with the request"
                )
            elif source == "count_tokens":
                causes.append(
                    f"the provider billed {usage.input_tokens:,} prompt tokens, more than the {features.prompt_tokens:,} "
                    "Count Tokens counted (a fallback to a model of another tokenizer family, or tool declarations)"
                )
            else:
                causes.append(
                    f"the prompt estimate was low ({features.prompt_tokens:,} tokens at about 4 characters a token; the "
                    f"provider counted {usage.input_tokens:,}): pass prompt_tokens from the Count Tokens API for an exact bound"
                )
        produced = usage.output_tokens + usage.thinking_tokens
        if produced > features.max_tokens:
            causes.append(f"the model produced {produced:,} output tokens (thinking included), more than max_tokens={features.max_tokens:,}")
        if (usage.cache_write_5m_tokens and request.get("cache_writes") is None) or (usage.cache_write_1h_tokens and request.get("cache_writes") != "1h"):
            causes.append("prompt cache writes are billed above the rate reserved (mark cached parts with cache_control, and its ttl)")
        reserved_units = getattr(choice, "grounding_units", 0)
        if choice.grounding and record.grounding_billable_units > reserved_units:
            unit = self.catalog.get(choice.model).grounding[choice.grounding].unit
            causes.append(
                f"the model ran {record.grounding_billable_units} billable {_UNIT_NAMES.get(unit, unit)}, more than the "
                f"{reserved_units} reserved (grounding.expected_queries): how many searches a model runs is not known "
                "before it answers"
            )
        pt = choice.provisioned
        if pt is not None and pt.covered and record.provisioned is not None and record.provisioned.get("traffic") == "spilled":
            causes.append(
                f"Provisioned Throughput {pt.key} was to serve it ($0 reserved for its tokens) but Vertex spilled it to "
                "PayGo (the project's PT was used by traffic this router does not count, or Vertex's window differs)"
            )
        if not causes:
            causes.append("a priced dimension of the usage that the reservation did not include")
        return causes

    def _finish(self, record: RoutingRecord, features: RequestFeatures, outcome: str) -> None:
        if self._request_log is not None and record.model is not None and outcome in ("ok", "interrupted"):
            from router.replay import log_entry

            try:
                self._request_log.append(log_entry(record, features, _utcnow()))
            except OSError as exc:  # the log is for analysis: never fail a served request over it
                record.warnings.append(f"request log not written: {exc.strerror}")
        if self.metrics is None:
            return
        rule = record.rule
        self.metrics.record_request(record.model, features.tenant, rule, outcome, record.cost_usd)

    def _new_record(self, request: CallRequest, decision: Decision) -> RoutingRecord:
        record = RoutingRecord(request_id=request["id"], decision=decision)
        record.policy_version = getattr(request["compiled"], "version", None) or self.policy_version
        return record

    def _failed_attempt(self, record: RoutingRecord, attempt: Attempt, exc: AttemptFailed) -> None:
        attempt.outcome, attempt.detail = exc.kind, str(exc)
        if self.metrics is not None and exc.kind in RETRYABLE:
            self.metrics.record_fallback(attempt.model, exc.kind)

    def _exhausted(self, record: RoutingRecord, features: RequestFeatures) -> RouterError:
        saturated = [a for a in record.attempts if a.outcome == "pt_saturated"]
        if saturated and len(saturated) == len(record.attempts):
            self._finish(record, features, "refused")
            return RequestRefusedError("refused: " + "; ".join(f"{a.model}: {a.detail}" for a in saturated))
        denied = [a for a in record.attempts if a.outcome == "denied"]
        if record.attempts and len(denied) == len(record.attempts):
            self._finish(record, features, "denied")
            scope = denied[0].detail.removeprefix("budget ")
            return BudgetExceededError(scope, f"every candidate's reservation was denied (budget {scope} would overflow)")
        self._finish(record, features, "failed")
        return TransportError("every attempt failed: " + "; ".join(f"{a.model}: {a.outcome}" for a in record.attempts), record.attempts)

    async def _complete(self, request: CallRequest, params: dict[str, Any]) -> Any:
        features = request["features"]
        decision = await self._decide(request)
        record = self._new_record(request, decision)
        store = request["store"]
        for index, choice in enumerate(self._candidates(decision)):
            attempt_id = f"{request['call_id']}:{index}"
            upper = self._upper_bound(choice, features, request.get("state"), request["cache_writes"])
            if choice.provisioned is not None:  # claim PT capacity: $0 to reserve, or the PayGo spill
                upper = await _pt_path.claim(self, choice, request, attempt_id, upper, record)
                if upper is None:
                    continue
            attempt = self._begin_attempt(record, choice, await self._reserve(store, attempt_id, decision, upper, request["timeout_s"]), upper)
            if attempt is None:
                continue
            try:
                result = await self.transport.send(self._call_spec(choice, request, params, stream=False), self.vertex_settings)
            except AttemptFailed as exc:
                await store.release(attempt_id)  # a failed (non-200) attempt is never billed
                self._failed_attempt(record, attempt, exc)
                await _pt_path.release(self, request, attempt_id)
                if exc.kind in self._retry_on(decision):
                    continue
                self._finish(record, features, "failed")
                raise TransportError(f"{choice.model}: {exc}", record.attempts) from exc
            except BaseException:
                await store.release(attempt_id)
                raise
            try:
                cost = await self._bill(choice, request, result.usage, attempt_id, record, upper)
            except BaseException:
                await store.settle(attempt_id, upper)  # never lose spend on a billing error
                raise
            await self._settle_attempt(attempt_id, cost, upper, choice, record, attempt, request, result.usage)
            response = result.response
            try:
                response.routing = record
            except (AttributeError, TypeError, ValueError):  # pragma: no cover - a response type without attrs
                object.__setattr__(response, "routing", record)
            return response
        raise self._exhausted(record, features)

    async def _stream(self, messages: list[Mapping[str, Any]], kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """Async generator of chunks; settles when the stream ends, fails or is closed by the consumer."""
        await self._refresh_shared_policy()
        request, params = self._split(messages, kwargs)
        features = request["features"]
        decision = await self._decide(request)
        record = self._new_record(request, decision)
        store = request["store"]
        for index, choice in enumerate(self._candidates(decision)):
            attempt_id = f"{request['call_id']}:{index}"
            upper = self._upper_bound(choice, features, request.get("state"), request["cache_writes"])
            if choice.provisioned is not None:  # claim PT capacity: $0 to reserve, or the PayGo spill
                upper = await _pt_path.claim(self, choice, request, attempt_id, upper, record)
                if upper is None:
                    continue
            attempt = self._begin_attempt(record, choice, await self._reserve(store, attempt_id, decision, upper, request["timeout_s"]), upper)
            if attempt is None:
                continue
            try:
                stream = self.transport.stream(self._call_spec(choice, request, params, stream=True), self.vertex_settings)
            except BaseException:
                await store.release(attempt_id)
                raise
            produced = 0
            try:
                async for chunk in stream:
                    if produced == 0:
                        yield _RecordChunk(record)
                    produced += 1
                    yield chunk
            except AttemptFailed as exc:
                if produced == 0:
                    await store.release(attempt_id)
                    self._failed_attempt(record, attempt, exc)
                    await _pt_path.release(self, request, attempt_id)
                    if exc.kind in self._retry_on(decision):
                        continue
                    self._finish(record, features, "failed")
                    raise TransportError(f"{choice.model}: {exc}", record.attempts) from exc
                attempt.outcome, attempt.detail = "interrupted", str(exc)
            except BaseException:
                # The consumer closed the stream, or the task was cancelled: settle what was produced.
                if produced == 0:
                    await _close(stream)
                    await store.release(attempt_id)
                    raise
                attempt.outcome = "interrupted"
                answer_complete = getattr(stream, "answer_complete", False)
                if answer_complete:
                    # The answer was whole: read the usage chunk that follows so the bill is exact.
                    drain = getattr(stream, "drain", None)
                    if drain is not None:
                        await drain()
                    attempt.outcome = "ok"
                await _close(stream)  # stop the provider generating output nobody reads
                await self._settle_stream(stream, choice, request, attempt_id, record, attempt, upper)
                raise
            await self._settle_stream(stream, choice, request, attempt_id, record, attempt, upper)
            if produced == 0:
                yield _RecordChunk(record)
            return
        raise self._exhausted(record, features)

    async def _settle_stream(self, stream: TransportStream, choice: Choice, request: CallRequest, attempt_id: str, record: RoutingRecord, attempt: Attempt, upper: Decimal) -> None:
        store = request["store"]
        usage = stream.final_usage()
        if not usage.complete and attempt.outcome == "ok":
            attempt.outcome = "interrupted"
        try:
            cost = await self._bill(choice, request, usage, attempt_id, record, upper)
        except RouterError as exc:
            record.warnings.append(f"billed at the reserved upper bound: {exc}")
            cost = upper
        except BaseException:
            await store.settle(attempt_id, upper)  # never lose spend, even when cancelled while billing
            raise
        await self._settle_attempt(attempt_id, cost, upper, choice, record, attempt, request, usage)


async def _close(stream: TransportStream) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


class _RecordChunk:
    """Internal marker carrying the routing record to :class:`_RoutedStream`; never shown to callers."""

    def __init__(self, record: RoutingRecord) -> None:
        self.record = record


class _RoutedStream:
    """Async iterator of a routed stream's chunks; ``routing`` is the :class:`RoutingRecord`."""

    def __init__(self, agen: AsyncIterator[Any]) -> None:
        self._agen = agen
        self.routing: RoutingRecord | None = None

    def __aiter__(self) -> "_RoutedStream":
        return self

    async def __anext__(self) -> Any:
        while True:
            chunk = await self._agen.__anext__()
            if isinstance(chunk, _RecordChunk):
                self.routing = chunk.record
                continue
            return chunk

    async def aclose(self) -> None:
        await self._agen.aclose()  # type: ignore[attr-defined]


class _SyncRoutedStream:
    """Synchronous iterator over a routed stream; ``routing`` is the :class:`RoutingRecord`."""

    def __init__(self, stream: _RoutedStream, runner: LoopThread) -> None:
        self._stream = stream
        self._chunks: Iterator[Any] = runner.iterate(stream)

    @property
    def routing(self) -> RoutingRecord | None:
        return self._stream.routing

    def __iter__(self) -> "_SyncRoutedStream":
        return self

    def __next__(self) -> Any:
        return next(self._chunks)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
