"""LiteLLM proxy plugin: proxy traffic is routed, reserved and settled by the router's engine.

Add two lines to the proxy's ``config.yaml``::

    litellm_settings:
      callbacks: ["router.integrations.litellm_proxy.handler"]

and point the plugin at a policy and a ledger with environment variables:

===========================  ====================================================================
``ROUTER_POLICY``            policy YAML file (required; hot-reloaded when it changes)
``ROUTER_STORE``             ledger URL: ``redis://host:6379/0`` (share it with every worker and
                             every other Router process) or ``memory://`` (one process only)
``ROUTER_CATALOG``           catalog directory (default: the bundled price catalog)
``ROUTER_MODEL_ALIASES``     comma-separated model names clients send to get routed (default
                             ``router``); ``*`` routes every chat completion
``ROUTER_KEY_PREFIX``        ledger key prefix (default ``router``)
``ROUTER_FAILURE_MODE``      ``fail_closed`` (default) or ``fail_open``
``VERTEXAI_PROJECT``,        where and as whom to call Vertex AI (see
``VERTEXAI_LOCATION``,       :meth:`router._transport.VertexSettings.from_env`); ``VERTEXAI_API_BASE``
``VERTEXAI_CREDENTIALS``     overrides the endpoint (tests, egress proxies)
===========================  ====================================================================

Per request (OpenAI format), routing attributes come from ``metadata``: ``tenant`` (else the
OpenAI ``user`` field), ``app``, ``task``, ``tags`` (a dict, or a list of ``"key=value"`` strings),
``grounding`` (true or a kind), ``latency_sensitive``, ``prompt_tokens``; ``max_tokens`` (or
``max_completion_tokens``) is the output bound the reservation covers, else the policy's default.

What each hook does:

* ``async_pre_call_hook``: decides with the policy on a ledger snapshot, reserves the upper-bound
  cost of the first candidate whose reservation is granted (every candidate denied: HTTP 429), and
  rewrites the request to that model: ``data["model"]`` becomes ``router/<catalog model>@<location>``
  and ``data["user_config"]`` carries the one-deployment model list for it (``vertex_ai/<model>`` with
  the project, location, credentials and api_base), which the proxy serves with a cached router. The
  Vertex request options the choice needs (grounding tool, Priority PayGo header, ``stream_options``
  with usage) and ``max_tokens`` are set on the request.
* ``async_log_success_event``: bills the provider's usage with :func:`router.cost.compute_cost`
  (grounding through the free pools, priority only when Vertex says ``ON_DEMAND_PRIORITY``) and
  settles the reservation with that amount. litellm's own cost is never used for the ledger.
* ``async_log_failure_event`` / ``async_post_call_failure_hook``: release the reservation (both are
  idempotent; a late success still books its spend).

The reservation id is stored in the request's ``metadata["router_attempt_id"]`` (also visible in the
proxy's spend logs), with ``router_model``, ``router_location``, ``router_rule`` and
``router_profile``.

This module never imports litellm at import time: ``handler`` is built on first access, subclassing
the proxy's ``CustomLogger`` (see :func:`_custom_logger_base`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["ProxyRouting", "RoutingRejected", "handler", "make_handler"]  # noqa: F822 - `handler` is built on first access (module __getattr__)

log = logging.getLogger("router.integrations.litellm_proxy")

#: Call types of the proxy's chat completion routes (``/chat/completions``, ``/v1/chat/completions``).
CHAT_CALL_TYPES = frozenset({"completion", "acompletion"})
DEPLOYMENT_PREFIX = "router/"
#: Keys of the request ``metadata`` the plugin writes.
ATTEMPT_KEY = "router_attempt_id"
#: How long a pending attempt is kept in memory without an outcome (its ledger hold expires anyway).
PENDING_TTL_S = 3600.0


class RoutingRejected(Exception):
    """The plugin refused a request; the proxy answers with ``status_code`` (it reads the attribute)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass
class _Pending:
    attempt_id: str
    choice: Any
    request: dict[str, Any]
    upper: Decimal
    decision: Any
    created: float


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    out: dict[str, str] = {}
    if isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, str) and "=" in item:
                key, _, val = item.partition("=")
                out[key.strip()] = val.strip()
    return out


def _request_metadata(data: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key in ("litellm_metadata", "metadata"):
        value = data.get(key)
        if isinstance(value, Mapping):
            merged.update(value)
    return merged


def _attempt_id_from_kwargs(kwargs: Mapping[str, Any]) -> str | None:
    """The reservation id stamped by the pre-call hook, wherever litellm put the request metadata."""
    places: list[Any] = []
    params = kwargs.get("litellm_params")
    if isinstance(params, Mapping):
        places += [params.get("metadata"), params.get("litellm_metadata")]
    places += [kwargs.get("metadata"), kwargs.get("litellm_metadata")]
    slp = kwargs.get("standard_logging_object")
    if isinstance(slp, Mapping):
        places.append(slp.get("metadata"))
        places.append((slp.get("metadata") or {}).get("requester_metadata") if isinstance(slp.get("metadata"), Mapping) else None)
    for place in places:
        if isinstance(place, Mapping):
            found = place.get(ATTEMPT_KEY)
            if isinstance(found, str) and found:
                return found
    return None


class ProxyRouting:
    """The engine side of the plugin (no litellm): decide + reserve, bill + settle, release.

    ``policy``/``store``/``catalog`` default to ``ROUTER_POLICY`` / ``ROUTER_STORE`` / ``ROUTER_CATALOG``;
    ``router`` (a :class:`router.Router`) may be given instead, e.g. in tests.
    """

    def __init__(
        self,
        policy: Any = None,
        store: Any = None,
        catalog: Any = None,
        *,
        router: Any = None,
        aliases: Any = None,
        **vertex_settings: Any,
    ) -> None:
        self._router = router
        self._policy = policy
        self._store = store
        self._catalog = catalog
        self._vertex_kwargs = vertex_settings
        if aliases is None:
            aliases = _env("ROUTER_MODEL_ALIASES", "router")
        if isinstance(aliases, str):
            aliases = [a.strip() for a in aliases.split(",") if a.strip()]
        self.aliases = frozenset(aliases)
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ setup
    @property
    def router(self) -> Any:
        """The :class:`router.Router` whose policy, catalog and ledger the plugin uses (built lazily)."""
        if self._router is None:
            from router._client import Router

            policy = self._policy or _env("ROUTER_POLICY")
            if not policy:
                raise RuntimeError("router.integrations.litellm_proxy: set ROUTER_POLICY to a policy YAML file")
            self._router = Router(
                policy=policy,
                catalog=self._catalog or _env("ROUTER_CATALOG"),
                store=self._store or _env("ROUTER_STORE", "memory://"),
                key_prefix=_env("ROUTER_KEY_PREFIX", "router") or "router",
                failure_mode=_env("ROUTER_FAILURE_MODE", "fail_closed") or "fail_closed",
                journal_path=_env("ROUTER_JOURNAL"),
                **self._vertex_kwargs,
            )
        return self._router

    def wants(self, data: Mapping[str, Any], call_type: str | None) -> bool:
        """Whether this request is routed: a chat completion for one of the aliases (or ``*``)."""
        if call_type is not None and call_type not in CHAT_CALL_TYPES:
            return False
        if not isinstance(data.get("messages"), list):
            return False
        return "*" in self.aliases or data.get("model") in self.aliases

    # ------------------------------------------------------------------ pre-call
    def _routing_kwargs(self, data: Mapping[str, Any]) -> dict[str, Any]:
        meta = _request_metadata(data)
        kwargs: dict[str, Any] = {}
        tenant = meta.get("tenant") or data.get("user")
        if tenant:
            kwargs["tenant"] = str(tenant)
        for key in ("app", "task"):
            if meta.get(key):
                kwargs[key] = str(meta[key])
        tags = _tags(meta.get("router_tags") or meta.get("tags"))
        if tags:
            kwargs["tags"] = tags
        grounding = meta.get("grounding")
        if isinstance(grounding, str) and grounding.strip().lower() in ("", "0", "false", "no", "off", "none"):
            grounding = None
        if grounding:
            kwargs["grounding"] = True if grounding is True or _truthy(grounding) else str(grounding)
        if "latency_sensitive" in meta:
            kwargs["latency_sensitive"] = _truthy(meta["latency_sensitive"])
        if meta.get("prompt_tokens") is not None:
            kwargs["prompt_tokens"] = int(meta["prompt_tokens"])
        max_tokens = data.get("max_tokens") or data.get("max_completion_tokens")
        if max_tokens:
            kwargs["max_tokens"] = int(max_tokens)
        for key in ("tools", "functions", "response_format"):  # capabilities the policy filters on
            if data.get(key):
                kwargs[key] = data[key]
        return kwargs

    async def route(self, data: dict[str, Any]) -> dict[str, Any]:
        """Decide, reserve and rewrite ``data`` in place (see the module doc). Returns ``data``."""
        from router._transport import build_call_kwargs
        from router.errors import (
            BudgetExceededError,
            NoEligibleModelError,
            RequestRefusedError,
            RouterError,
            StoreUnavailableError,
        )

        r = self.router
        messages = list(data["messages"])
        try:
            await r._refresh_shared_policy()
            request, params = r._split(messages, self._routing_kwargs(data))
            decision = await r._decide(request)
            features = request["features"]  # after the decision: a Count Tokens count replaces the estimate
        except StoreUnavailableError as exc:
            raise RoutingRejected(f"router: ledger unavailable: {exc}", 503) from exc
        except (NoEligibleModelError, RequestRefusedError) as exc:
            raise RoutingRejected(f"router: {exc}", 400) from exc
        except RouterError as exc:
            raise RoutingRejected(f"router: {exc}", 400) from exc
        request_id = uuid.uuid4().hex
        denied: list[str] = []
        for index, choice in enumerate([decision.primary, *decision.fallbacks]):
            attempt_id = f"{request_id}:{index}"
            upper = r._upper_bound(choice, features, request.get("state"))
            try:
                reservation = await r._reserve(attempt_id, decision, upper)
            except StoreUnavailableError as exc:
                raise RoutingRejected(f"router: ledger unavailable: {exc}", 503) from exc
            if not reservation.granted:
                denied.append(str(reservation.denied_scope))
                continue
            try:
                spec = r._call_spec(choice, request, params, stream=bool(data.get("stream")))
                call = build_call_kwargs(spec, r.vertex_settings)
            except BaseException:
                await r.store().release(attempt_id)
                raise
            self._rewrite(data, choice, features, call)
            meta = data.get("metadata")
            if not isinstance(meta, dict):
                meta = data["metadata"] = {}
            meta.update(
                {
                    ATTEMPT_KEY: attempt_id,
                    "router_model": choice.model,
                    "router_location": choice.location,
                    "router_rule": decision.rule,
                    "router_profile": decision.profile,
                    "router_reserved_usd": str(upper),
                }
            )
            loop = asyncio.get_running_loop()
            with self._lock:
                self._gc(loop.time())
                self._pending[attempt_id] = _Pending(attempt_id, choice, request, upper, decision, loop.time())
            log.debug("routed %s -> %s@%s (reserved %s)", attempt_id, choice.model, choice.location, upper)
            return data
        raise RoutingRejected(
            f"router: budget exceeded: every candidate's reservation was denied (budget {denied[0] if denied else '?'})", 429
        ) from BudgetExceededError(denied[0] if denied else "?", "every candidate's reservation was denied")

    @staticmethod
    def _rewrite(data: dict[str, Any], choice: Any, features: Any, call: Mapping[str, Any]) -> None:
        """Point the proxy at the chosen deployment through a one-entry ``user_config`` model list."""
        deployment = {k: call[k] for k in ("model", "vertex_project", "vertex_location", "vertex_credentials", "api_base") if call.get(k) is not None}
        name = f"{DEPLOYMENT_PREFIX}{choice.model}@{choice.location}"
        data["model"] = name
        data["user_config"] = {"model_list": [{"model_name": name, "litellm_params": deployment}], "num_retries": 0}
        data["max_tokens"] = features.max_tokens
        data.pop("max_completion_tokens", None)
        data["drop_params"] = True
        for key in ("tools", "extra_headers", "stream_options"):
            if key in call:
                data[key] = call[key]

    def _gc(self, now: float) -> None:
        stale = [k for k, p in self._pending.items() if now - p.created > PENDING_TTL_S]
        for key in stale:
            del self._pending[key]

    def _take(self, attempt_id: str | None) -> _Pending | None:
        if not attempt_id:
            return None
        with self._lock:
            return self._pending.pop(attempt_id, None)

    # ------------------------------------------------------------------ outcomes
    async def settle(self, kwargs: Mapping[str, Any], response: Any) -> Decimal | None:
        """Bill ``response``'s usage with our cost engine and settle its reservation. Returns the bill."""
        from router._routing import RoutingRecord
        from router._transport import usage_from_response

        pending = self._take(_attempt_id_from_kwargs(kwargs))
        if pending is None:
            return None
        r = self.router
        store = r.store()
        complete = kwargs.get("complete_streaming_response") if isinstance(kwargs, Mapping) else None
        source = complete if complete is not None else response
        record = RoutingRecord(request_id=pending.attempt_id, decision=pending.decision.to_dict())
        try:
            usage = usage_from_response(source)
            cost = await r._bill(pending.choice, pending.request, usage, pending.attempt_id, record, pending.upper)
        except Exception:  # noqa: BLE001 - never lose spend: book the reserved upper bound
            log.exception("router: billing %s failed; settling the reserved upper bound", pending.attempt_id)
            cost = pending.upper
        await store.settle(pending.attempt_id, cost)
        log.debug("settled %s: %s USD", pending.attempt_id, cost)
        return cost

    async def release(self, kwargs: Mapping[str, Any] | None = None, *, attempt_id: str | None = None) -> bool:
        """Release the reservation of a failed call (idempotent)."""
        attempt_id = attempt_id or (_attempt_id_from_kwargs(kwargs) if kwargs is not None else None)
        pending = self._take(attempt_id)
        if pending is None:
            return False
        return bool(await self.router.store().release(pending.attempt_id))


# ---------------------------------------------------------------------- the CustomLogger subclass
def _custom_logger_base() -> type:
    """The proxy's ``CustomLogger`` class (litellm is loaded by :mod:`router._transport.litellm_adapter` only)."""
    from router._transport import custom_logger_base

    return custom_logger_base()


_HANDLER_CLASS: type | None = None


def _handler_class() -> type:
    global _HANDLER_CLASS
    if _HANDLER_CLASS is not None:
        return _HANDLER_CLASS
    base = _custom_logger_base()

    class RouterProxyHandler(base):  # type: ignore[misc, valid-type]
        """LiteLLM proxy callback: policy routing, budget reservations and exact settlement."""

        def __init__(self, routing: ProxyRouting | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.routing = routing or ProxyRouting()

        # The proxy only runs a pre-call hook defined on the class itself (vars(cls)).
        async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> Any:
            if not self.routing.wants(data, call_type):
                return data
            return await self.routing.route(data)

        async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            try:
                await self.routing.settle(kwargs, response_obj)
            except Exception:  # noqa: BLE001 - a logging callback must never break the proxy
                log.exception("router: settling a proxy call failed")

        async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            try:
                await self.routing.release(kwargs)
            except Exception:  # noqa: BLE001
                log.exception("router: releasing a failed proxy call failed")

        async def async_post_call_failure_hook(self, request_data: dict, original_exception: Exception, user_api_key_dict: Any, traceback_str: str | None = None) -> Any:
            # The request failed in the proxy (e.g. a later hook rejected it) before any LLM outcome.
            meta = _request_metadata(request_data or {})
            try:
                await self.routing.release(attempt_id=meta.get(ATTEMPT_KEY))
            except Exception:  # noqa: BLE001
                log.exception("router: releasing a rejected proxy call failed")
            return None

    _HANDLER_CLASS = RouterProxyHandler
    return RouterProxyHandler


def make_handler(routing: ProxyRouting | None = None, **options: Any) -> Any:
    """A new handler instance (a ``CustomLogger``); ``options`` go to :class:`ProxyRouting`."""
    return _handler_class()(routing or ProxyRouting(**options))


_HANDLER: Any = None
_HANDLER_LOCK = threading.Lock()


def __getattr__(name: str) -> Any:
    # ``handler`` (and the proxy docs' conventional ``proxy_handler_instance``) is built on first access,
    # which is when the proxy loads ``litellm_settings.callbacks``: only then is litellm imported.
    global _HANDLER
    if name in ("handler", "proxy_handler_instance"):
        with _HANDLER_LOCK:
            if _HANDLER is None:
                _HANDLER = make_handler()
        return _HANDLER
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
