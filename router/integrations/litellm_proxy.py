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
  cost of the first candidate whose reservation is granted, and rewrites the request to that model:
  ``data["model"]`` becomes ``router/<catalog model>@<location>`` and ``data["user_config"]`` carries a
  model list with that deployment and every later candidate of the decision (``vertex_ai/<model>`` with
  the project, location, credentials, api_base and the Vertex request options each needs: grounding
  tool, Priority PayGo header, ``stream_options`` with usage), the later ones as its ``fallbacks``.
  A budget refusal (every reservation denied, or a budget action that refuses) is answered like
  LiteLLM's own budget errors: HTTP 400 with ``type: budget_exceeded`` (OpenAI SDKs do not retry it),
  and ``Retry-After`` only when the denied budget's calendar window resets within the hour.
* ``async_pre_call_deployment_hook``: before each fallback attempt, releases the failed attempt's hold
  and reserves the fallback's upper bound (denied: that fallback is skipped), as ``Router.complete`` does.
* ``async_post_call_success_hook``: the response's ``model`` is the catalog id of the model that served.
* ``async_log_success_event``: bills the provider's usage with :func:`router.cost.compute_cost`
  (grounding through the free pools, priority only when Vertex says ``ON_DEMAND_PRIORITY``) and
  settles the reservation with that amount. litellm's own cost is never used for the ledger.
* ``async_log_failure_event``: releases the failed attempt's reservation (a fallback may follow);
  ``async_post_call_failure_hook``: releases whatever the request still holds (both idempotent).

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
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["ProxyRouting", "RoutingRejected", "budget_refusal_retry_after", "handler", "make_handler"]  # noqa: F822 - `handler` is built on first access (module __getattr__)

log = logging.getLogger("router.integrations.litellm_proxy")

#: Call types of the proxy's chat completion routes (``/chat/completions``, ``/v1/chat/completions``).
CHAT_CALL_TYPES = frozenset({"completion", "acompletion"})
DEPLOYMENT_PREFIX = "router/"
#: Keys of the request ``metadata`` the plugin writes.
ATTEMPT_KEY = "router_attempt_id"
REQUEST_KEY = "router_request_id"
#: Retry-After is sent with a budget refusal only when the denied budget's window resets within this.
RETRY_AFTER_MAX_S = 3600
#: How long a pending attempt is kept in memory without an outcome (its ledger hold expires anyway).
PENDING_TTL_S = 3600.0


class RoutingRejected(Exception):
    """The plugin refused a request; the proxy answers with ``status_code`` (it reads the attribute)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def budget_refusal_retry_after(scope: Any, now: Any = None) -> int | None:
    """Seconds until ``scope``'s window resets (a :class:`~router.ledger.BudgetScope`), when that is within
    :data:`RETRY_AFTER_MAX_S` and the window has a fixed end (calendar windows); otherwise None."""
    import datetime as dt

    window = getattr(scope, "window", None)
    if window is None or getattr(window, "kind", None) != "calendar":
        return None
    from router.burn import window_bounds

    moment = now or dt.datetime.now(dt.timezone.utc)
    _start, end = window_bounds(window, moment)
    seconds = int((end - moment).total_seconds()) + 1
    return seconds if 0 < seconds <= RETRY_AFTER_MAX_S else None


def _budget_named(decision: Any, scope_id: Any) -> Any:
    """The decision's :class:`~router.ledger.BudgetScope` whose id is ``scope_id`` (None if unknown)."""
    return next((b for b in getattr(decision, "budgets", ()) if b.id == str(scope_id)), None)


def _budget_refusal(message: str, scope: Any) -> Exception:
    """A refusal shaped like LiteLLM's own budget errors: HTTP 400, ``type: budget_exceeded`` (OpenAI SDKs do
    not retry a 400, as they would a 429), with ``Retry-After`` only when the budget's window resets soon."""
    from router._transport.litellm_adapter import proxy_exception

    retry = budget_refusal_retry_after(scope)
    return proxy_exception(message, "budget_exceeded", 400, {"Retry-After": str(retry)} if retry else None)


@dataclass
class _Pending:
    """One routed proxy request: its decision, the candidates it may walk, and the attempt in flight."""

    request_id: str
    candidates: list[Any]  # the decision's choices, primary first
    deployments: list[str]  # deployment name of each candidate (``router/<model>@<location>``)
    request: dict[str, Any]
    decision: Any
    created: float
    current: int  # index of the attempt holding a reservation now
    uppers: dict[int, Decimal]
    released: set[int]

    def attempt_id(self, index: int) -> str:
        return f"{self.request_id}:{index}"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _count(value: Any) -> Any:
    """A token count from JSON: a number, or a string of digits; anything else (``true``, ``2.5``, ``"x"``) is
    passed on for the Router to refuse by name (``RequestError`` -> 400), never coerced (``True`` is not 1)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


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


def _metadata_places(kwargs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every place litellm may have put the request metadata in a call's or a logging event's kwargs."""
    places: list[Any] = []
    params = kwargs.get("litellm_params")
    if isinstance(params, Mapping):
        places += [params.get("metadata"), params.get("litellm_metadata")]
    places += [kwargs.get("metadata"), kwargs.get("litellm_metadata")]
    slp = kwargs.get("standard_logging_object")
    if isinstance(slp, Mapping):
        places.append(slp.get("metadata"))
        places.append((slp.get("metadata") or {}).get("requester_metadata") if isinstance(slp.get("metadata"), Mapping) else None)
    return [p for p in places if isinstance(p, Mapping)]


def _request_id_from_kwargs(kwargs: Mapping[str, Any]) -> str | None:
    """The routed request's id stamped by the pre-call hook, wherever litellm put the request metadata."""
    for place in _metadata_places(kwargs):
        found = place.get(REQUEST_KEY)
        if isinstance(found, str) and found:
            return found
    attempt = _attempt_id_from_kwargs(kwargs)
    return attempt.rpartition(":")[0] if attempt else None


def _deployment_of(kwargs: Mapping[str, Any]) -> str | None:
    """The deployment (``router/<model>@<location>``) a litellm call or logging event is about."""
    for place in _metadata_places(kwargs):
        for key in ("model_group", "deployment"):
            value = place.get(key)
            if isinstance(value, str) and value.startswith(DEPLOYMENT_PREFIX):
                return value
    slp = kwargs.get("standard_logging_object")
    if isinstance(slp, Mapping) and isinstance(slp.get("model_group"), str) and slp["model_group"].startswith(DEPLOYMENT_PREFIX):
        return slp["model_group"]
    return None


def _attempt_id_from_kwargs(kwargs: Mapping[str, Any]) -> str | None:
    """The reservation id stamped by the pre-call hook, wherever litellm put the request metadata."""
    for place in _metadata_places(kwargs):
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
        self._served: "OrderedDict[str, str]" = OrderedDict()
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
            kwargs["prompt_tokens"] = _count(meta["prompt_tokens"])
        max_tokens = data.get("max_tokens") or data.get("max_completion_tokens")
        if max_tokens:
            kwargs["max_tokens"] = _count(max_tokens)
        for key in ("tools", "functions", "response_format"):  # capabilities the policy filters on
            if data.get(key):
                kwargs[key] = data[key]
        return kwargs

    async def route(self, data: dict[str, Any]) -> dict[str, Any]:
        """Decide, reserve and rewrite ``data`` in place (see the module doc). Returns ``data``."""
        from router._transport import build_call_kwargs
        from router.errors import (
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
        except RequestRefusedError as exc:
            raise _budget_refusal(f"router: {exc}", None) from exc
        except NoEligibleModelError as exc:
            raise RoutingRejected(f"router: {exc}", 400) from exc
        except RouterError as exc:
            raise RoutingRejected(f"router: {exc}", 400) from exc
        request_id = uuid.uuid4().hex
        candidates = [decision.primary, *decision.fallbacks]
        denied: list[Any] = []
        for index, choice in enumerate(candidates):
            attempt_id = f"{request_id}:{index}"
            upper = r._upper_bound(choice, features, request.get("state"), request.get("cache_writes"))
            try:
                reservation = await r._reserve(request["store"], attempt_id, decision, upper, request["timeout_s"])
            except StoreUnavailableError as exc:
                raise RoutingRejected(f"router: ledger unavailable: {exc}", 503) from exc
            if not reservation.granted:
                denied.append(reservation.denied_scope)
                continue
            try:
                calls = [
                    build_call_kwargs(r._call_spec(c, request, params, stream=bool(data.get("stream"))), r.vertex_settings)
                    for c in candidates
                ]
            except BaseException:
                await r.store().release(attempt_id)
                raise
            deployments = self._rewrite(data, candidates, index, features, calls)
            meta = data.get("metadata")
            if not isinstance(meta, dict):
                meta = data["metadata"] = {}
            meta.update(
                {
                    ATTEMPT_KEY: attempt_id,
                    REQUEST_KEY: request_id,
                    "router_model": choice.model,
                    "router_location": choice.location,
                    "router_rule": decision.rule,
                    "router_profile": decision.profile,
                    "router_reserved_usd": str(upper),
                }
            )
            loop = asyncio.get_running_loop()
            pending = _Pending(request_id, candidates, deployments, request, decision, loop.time(), index, {index: upper}, set(range(index)))
            with self._lock:
                self._gc(loop.time())
                self._pending[request_id] = pending
                self._served[request_id] = choice.model
            log.debug("routed %s -> %s@%s (reserved %s)", attempt_id, choice.model, choice.location, upper)
            return data
        scope = _budget_named(decision, denied[0] if denied else None)
        raise _budget_refusal(f"router: budget exceeded: every candidate's reservation was denied (budget {denied[0] if denied else '?'})", scope)

    @staticmethod
    def _rewrite(data: dict[str, Any], candidates: list[Any], first: int, features: Any, calls: list[Mapping[str, Any]]) -> list[str]:
        """Point the proxy at the chosen deployment through a ``user_config`` model list holding it and every
        later candidate, the later ones as its fallbacks (each with its own request options: grounding tool,
        Priority PayGo header, stream usage). Returns every candidate's deployment name."""
        names = [f"{DEPLOYMENT_PREFIX}{c.model}@{c.location}" for c in candidates]
        model_list = []
        for index in range(first, len(candidates)):
            call = calls[index]
            params = {k: call[k] for k in ("model", "vertex_project", "vertex_location", "vertex_credentials", "api_base") if call.get(k) is not None}
            for key in ("tools", "extra_headers", "stream_options"):
                if key in call:
                    params[key] = call[key]
            model_list.append({"model_name": names[index], "litellm_params": params})
        config: dict[str, Any] = {"model_list": model_list, "num_retries": 0}
        if len(candidates) > first + 1:
            config["fallbacks"] = [{names[first]: names[first + 1 :]}]
        data["model"] = names[first]
        data["user_config"] = config
        data["max_tokens"] = features.max_tokens
        data.pop("max_completion_tokens", None)
        data["drop_params"] = True
        for key in ("tools", "extra_headers", "stream_options"):
            data.pop(key, None)  # per deployment now (the client's tools are in each deployment's list)
        return names

    async def before_attempt(self, kwargs: Mapping[str, Any]) -> None:
        """Called by the proxy just before each deployment call (``async_pre_call_deployment_hook``): a fallback
        attempt reserves its own upper bound first (the attempt before it failed and is released). A denied
        reservation raises, so the proxy moves on to the next fallback without calling this one."""
        request_id = _request_id_from_kwargs(kwargs)
        deployment = _deployment_of(kwargs)
        if request_id is None or deployment is None:
            return
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None or deployment not in pending.deployments:
            return
        index = pending.deployments.index(deployment)
        if index == pending.current:
            return
        r = self.router
        await self._release_attempt(pending, pending.current)
        upper = r._upper_bound(pending.candidates[index], pending.request["features"], pending.request.get("state"), pending.request.get("cache_writes"))
        reservation = await r._reserve(r.store(), pending.attempt_id(index), pending.decision, upper, pending.request["timeout_s"])
        pending.current = index
        if not reservation.granted:
            pending.released.add(index)
            scope = _budget_named(pending.decision, reservation.denied_scope)
            raise _budget_refusal(f"router: {deployment}: reservation denied (budget {reservation.denied_scope})", scope)
        pending.uppers[index] = upper
        with self._lock:
            self._served[request_id] = pending.candidates[index].model
        log.debug("fallback %s -> %s (reserved %s)", request_id, deployment, upper)

    async def _release_attempt(self, pending: _Pending, index: int) -> bool:
        if index in pending.released or index not in pending.uppers:
            return False
        pending.released.add(index)
        return bool(await self.router.store().release(pending.attempt_id(index)))

    def served_model(self, data: Mapping[str, Any]) -> str | None:
        """The catalog id of the model that served a routed request (for the response's ``model``)."""
        request_id = _request_metadata(data).get(REQUEST_KEY)
        with self._lock:
            return self._served.get(request_id) if isinstance(request_id, str) else None

    def _gc(self, now: float) -> None:
        stale = [k for k, p in self._pending.items() if now - p.created > PENDING_TTL_S]
        for key in stale:
            del self._pending[key]
        while len(self._served) > 10_000:
            self._served.popitem(last=False)

    def _take(self, request_id: str | None) -> _Pending | None:
        if not request_id:
            return None
        with self._lock:
            return self._pending.pop(request_id, None)

    # ------------------------------------------------------------------ outcomes
    async def settle(self, kwargs: Mapping[str, Any], response: Any) -> Decimal | None:
        """Bill ``response``'s usage with our cost engine and settle its reservation. Returns the bill."""
        from router._routing import RoutingRecord
        from router._transport import usage_from_response

        pending = self._take(_request_id_from_kwargs(kwargs))
        if pending is None:
            return None
        deployment = _deployment_of(kwargs)
        index = pending.deployments.index(deployment) if deployment in pending.deployments else pending.current
        if index != pending.current:  # the event names an attempt the proxy moved past: still, never lose spend
            pending.current = index
        r = self.router
        store = r.store()
        attempt_id, upper = pending.attempt_id(index), pending.uppers.get(index, Decimal(0))
        complete = kwargs.get("complete_streaming_response") if isinstance(kwargs, Mapping) else None
        source = complete if complete is not None else response
        record = RoutingRecord(request_id=attempt_id, decision=pending.decision.to_dict())
        try:
            usage = usage_from_response(source)
            request = {**pending.request, "store": store}  # this loop's store (the callback may run on another loop)
            cost = await r._bill(pending.candidates[index], request, usage, attempt_id, record, upper)
        except Exception:  # noqa: BLE001 - never lose spend: book the reserved upper bound
            log.exception("router: billing %s failed; settling the reserved upper bound", attempt_id)
            cost = upper
        await store.settle(attempt_id, cost)
        for other in pending.uppers:  # an attempt that failed without its failure event arriving first
            if other != index:
                await self._release_attempt(pending, other)
        with self._lock:
            self._served[pending.request_id] = pending.candidates[index].model
        log.debug("settled %s: %s USD", attempt_id, cost)
        return cost

    async def release(self, kwargs: Mapping[str, Any] | None = None, *, attempt_id: str | None = None, final: bool = False) -> bool:
        """Release the reservation of a failed attempt (idempotent). A failure event of one deployment
        releases that attempt only (a fallback may follow); ``final`` (the proxy gave up on the request, or an
        ``attempt_id`` is given) releases whatever the request still holds and forgets it."""
        if attempt_id is not None:
            request_id: str | None = attempt_id.rpartition(":")[0]
            final = True
        else:
            request_id = _request_id_from_kwargs(kwargs) if kwargs is not None else None
        if not request_id:
            return False
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None:
            return False
        deployment = _deployment_of(kwargs) if kwargs is not None else None
        if final or deployment not in pending.deployments:
            with self._lock:
                self._pending.pop(request_id, None)
            released = False
            for index in list(pending.uppers):
                released = await self._release_attempt(pending, index) or released
            return released
        return await self._release_attempt(pending, pending.deployments.index(deployment))


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

        async def async_pre_call_deployment_hook(self, kwargs: dict, call_type: Any) -> Any:
            # Every deployment call, the fallbacks included: a fallback attempt reserves before it is sent.
            await self.routing.before_attempt(kwargs)
            return None

        async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            try:
                await self.routing.release(kwargs)
            except Exception:  # noqa: BLE001
                log.exception("router: releasing a failed proxy call failed")

        async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
            # The response names the catalog model that served (not the alias the client sent).
            served = self.routing.served_model(data or {})
            if served is not None and hasattr(response, "model"):
                try:
                    response.model = served
                except (AttributeError, TypeError, ValueError):  # pragma: no cover - a response type without attrs
                    pass
            return response

        async def async_post_call_failure_hook(self, request_data: dict, original_exception: Exception, user_api_key_dict: Any, traceback_str: str | None = None) -> Any:
            # The request failed in the proxy (e.g. a later hook rejected it) before any LLM outcome.
            meta = _request_metadata(request_data or {})
            try:
                if meta.get(ATTEMPT_KEY):
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
