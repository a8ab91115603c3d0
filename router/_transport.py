"""The transport adapter: the ONLY module of the project that talks to litellm (imported lazily).

A routing decision becomes a :class:`CallSpec`; :class:`LiteLLMTransport` turns it into one
``litellm.acompletion`` call on Vertex AI and hands back litellm's own ``ModelResponse`` (or its
stream) together with the provider's usage as a :class:`ProviderUsage`, which the Router bills with
its own cost engine (litellm's cost calculation is never used).

How a spec maps to litellm (``vertex_ai/<vertex_model>`` in every case; litellm picks the wire format):

- ``gemini``: ``publishers/google/models/M:generateContent`` (``:streamGenerateContent?alt=sse``).
  Grounding tools: ``{"googleSearch": {}}``, ``{"enterpriseWebSearch": {}}``, ``{"googleMaps": {}}``.
- ``anthropic``: Claude on Vertex, Anthropic Messages via ``publishers/anthropic/models/M:rawPredict``
  (``:streamRawPredict``), regional or ``global``. Grounding: the ``web_search_20250305`` server tool.
- ``openai_maas``: partner models (DeepSeek, Qwen, Llama, gpt-oss, MiniMax, Kimi) on the
  OpenAI-compatible ``endpoints/openapi/chat/completions`` endpoint of the spec's location.
- ``mistral`` / ``ai21``: ``publishers/mistralai|ai21/models/M:rawPredict`` with OpenAI-format bodies.

Where the provider's numbers are found on litellm's response (litellm 1.110):

- tokens: ``response.usage`` (``prompt_tokens`` is the whole prompt: Gemini ``promptTokenCount``
  includes cached and audio tokens, and litellm adds Anthropic cache reads/writes to ``input_tokens``);
  ``completion_tokens_details.reasoning_tokens`` (Gemini ``thoughtsTokenCount``, included by litellm in
  ``completion_tokens``), ``prompt_tokens_details.cached_tokens`` / ``.audio_tokens``,
  ``cache_creation_input_tokens`` with ``prompt_tokens_details.cache_creation_token_details``
  (Anthropic's 5m / 1h breakdown), ``usage.server_tool_use.web_search_requests`` (Claude web search).
- Gemini ``usageMetadata.trafficType``: ``response._hidden_params["provider_specific_fields"]["traffic_type"]``
  (on stream chunks too).
- Gemini ``groundingMetadata``: ``response.vertex_ai_grounding_metadata`` (a list, one item per
  candidate; also ``_hidden_params["vertex_ai_grounding_metadata"]``); on streams the chunk carrying it
  has the same attribute. Web URLs = ``groundingChunks`` items with a ``web`` entry; search queries =
  distinct ``webSearchQueries``.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = [
    "AttemptFailed",
    "CallResult",
    "CallSpec",
    "LiteLLMTransport",
    "MockTransport",
    "ProviderUsage",
    "VertexSettings",
    "build_call_kwargs",
    "litellm_model_name",
    "usage_from_response",
]

APIS = frozenset({"gemini", "anthropic", "openai_maas", "mistral", "ai21"})
GROUNDING_KINDS = frozenset({"google_search", "enterprise_web_search", "google_maps", "your_data", "web_search"})
PRIORITY_HEADER = "X-Vertex-AI-LLM-Shared-Request-Type"
#: Claude web searches allowed per request (the Router reserves this many, so the bound holds).
WEB_SEARCH_MAX_USES = 4
CHARS_PER_TOKEN = 4
FAILURE_KINDS = frozenset({"rate_limited", "server_error", "timeout", "context_overflow", "bad_request", "auth"})

_GEMINI_GROUNDING_TOOLS: dict[str, dict[str, Any]] = {
    "google_search": {"googleSearch": {}},
    "enterprise_web_search": {"enterpriseWebSearch": {}},
    "google_maps": {"googleMaps": {}},
}
_CONTEXT_MARKERS = (
    "context length",
    "context window",
    "context_length",
    "maximum context",
    "prompt is too long",
    "input is too long",
    "too many tokens",
    "exceeds the maximum number of tokens",
    "input token count",
    "reduce the length",
    "maximum number of tokens allowed",
)


# ---------------------------------------------------------------------- value types
@dataclass(frozen=True)
class VertexSettings:
    """Where and as whom to call Vertex AI. ``vertex_credentials``: a service-account JSON string or a
    path to one (None: Application Default Credentials). ``api_base``: a URL override (tests, proxies)."""

    vertex_project: str | None = None
    vertex_location: str | None = None
    vertex_credentials: str | None = None
    api_base: str | None = None

    @classmethod
    def from_env(
        cls,
        vertex_project: str | None = None,
        vertex_location: str | None = None,
        vertex_credentials: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        api_base: str | None = None,
    ) -> "VertexSettings":
        """Explicit arguments win; else ``VERTEXAI_PROJECT``, ``VERTEXAI_LOCATION``,
        ``VERTEXAI_CREDENTIALS`` (JSON or path) or ``GOOGLE_APPLICATION_CREDENTIALS`` (path),
        ``VERTEXAI_API_BASE``."""
        env = os.environ
        creds: Any = vertex_credentials
        if isinstance(creds, Mapping):
            import json

            creds = json.dumps(dict(creds))
        elif isinstance(creds, os.PathLike):
            creds = os.fspath(creds)
        if creds is None:
            creds = env.get("VERTEXAI_CREDENTIALS") or env.get("GOOGLE_APPLICATION_CREDENTIALS") or None
        return cls(
            vertex_project=vertex_project or env.get("VERTEXAI_PROJECT") or None,
            vertex_location=vertex_location or env.get("VERTEXAI_LOCATION") or None,
            vertex_credentials=creds,
            api_base=api_base or env.get("VERTEXAI_API_BASE") or None,
        )


@dataclass
class CallSpec:
    """One attempt of a routed call. ``params``: OpenAI-style extras passed to litellm unchanged."""

    model_id: str
    api: str
    vertex_model: str
    location: str | None
    messages: list[Mapping[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    grounding: str | None = None
    priority: bool = False
    stream: bool = False
    timeout_s: float | None = None
    #: The decision allowed the Batch API for this request: it is marked with the Vertex request label
    #: ``router-batch-eligible`` (Gemini) so batch-able traffic can be found in billing reports.
    batch: bool = False
    #: Vertex request labels (Gemini), e.g. tenant and rule, so the cloud bill breaks down like the ledger.
    labels: dict[str, str] = field(default_factory=dict)


_LABEL_RE = re.compile(r"[^a-z0-9_-]")


def vertex_label(value: str) -> str:
    """A value Vertex accepts as a request label: lowercase letters, digits, ``_`` and ``-``, <= 63 chars."""
    return _LABEL_RE.sub("_", value.lower())[:63]


@dataclass
class ProviderUsage:
    """What the provider says was used. ``input_tokens`` is the whole prompt (cached and audio parts
    included); ``output_tokens`` excludes ``thinking_tokens``. ``complete`` is False when the numbers
    are an estimate of what an interrupted stream produced."""

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_input_tokens: int = 0
    audio_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    traffic_type: str | None = None
    grounding_web_urls: int = 0
    search_queries: int = 0
    web_searches: int = 0
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class CallResult:
    """A successful attempt: litellm's ``ModelResponse`` and the provider's usage."""

    response: Any
    usage: ProviderUsage


class AttemptFailed(Exception):
    """An attempt failed before producing a billable answer. ``kind``: ``rate_limited`` (429),
    ``server_error`` (5xx, connection), ``timeout``, ``context_overflow``, ``bad_request``, ``auth``."""

    def __init__(self, kind: str, message: str = "", status: int | None = None) -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}")
        self.kind = kind
        self.status = status
        super().__init__(message or kind)

    def __repr__(self) -> str:
        return f"AttemptFailed(kind={self.kind!r}, status={self.status!r}, message={str(self)!r})"


# ---------------------------------------------------------------------- helpers
def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def estimate_tokens(text_or_chars: str | int) -> int:
    """About 4 characters per token (at least 1 for any non-empty text)."""
    chars = text_or_chars if isinstance(text_or_chars, int) else len(text_or_chars)
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def _content_chars(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, Sequence):
        return sum(_content_chars(part) for part in content)
    if isinstance(content, Mapping):
        if isinstance(content.get("text"), str):
            return len(content["text"])
        return _content_chars(content.get("content"))
    return 0


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    chars = sum(_content_chars(_get(m, "content")) for m in messages)
    return max(1, estimate_tokens(chars))


def litellm_model_name(spec: CallSpec) -> str:
    """The litellm model string for a spec: ``vertex_ai/<vertex_model>`` (litellm routes by name:
    ``gemini-*`` to generateContent, ``claude-*`` to Anthropic rawPredict, ``mistral*``/``codestral*``
    and ``jamba*`` to their rawPredict, the ``publisher/model-maas`` names to the OpenAI endpoint)."""
    if spec.api not in APIS:
        raise ValueError(f"unknown api {spec.api!r} for {spec.model_id}; one of {sorted(APIS)}")
    model = spec.vertex_model
    if spec.api == "mistral":
        model = model.split("@")[0]
    return f"vertex_ai/{model}"


def _grounding_tool(spec: CallSpec) -> dict[str, Any] | None:
    kind = spec.grounding
    if not kind:
        return None
    if kind not in GROUNDING_KINDS:
        raise ValueError(f"unknown grounding kind {kind!r}; one of {sorted(GROUNDING_KINDS)}")
    if spec.api == "gemini" and kind in _GEMINI_GROUNDING_TOOLS:
        return dict(_GEMINI_GROUNDING_TOOLS[kind])
    if spec.api == "anthropic" and kind == "web_search":
        return {"type": "web_search_20250305", "name": "web_search", "max_uses": WEB_SEARCH_MAX_USES}
    raise ValueError(f"grounding {kind!r} is not available through litellm for {spec.model_id} (api {spec.api})")


def build_call_kwargs(spec: CallSpec, settings: VertexSettings) -> dict[str, Any]:
    """The keyword arguments of the ``litellm.acompletion`` call for ``spec`` (pure; no litellm import)."""
    if spec.priority and spec.location != "global":
        raise ValueError(f"Priority PayGo is served on the global endpoint only; {spec.model_id} is routed to {spec.location!r}")
    params = dict(spec.params)
    kwargs: dict[str, Any] = {
        "model": litellm_model_name(spec),
        "messages": list(spec.messages),
        "vertex_project": settings.vertex_project,
        "vertex_location": spec.location or settings.vertex_location,
        "drop_params": True,
    }
    if settings.vertex_credentials is not None:
        kwargs["vertex_credentials"] = settings.vertex_credentials
    if settings.api_base:
        kwargs["api_base"] = settings.api_base
    if spec.timeout_s is not None:
        kwargs["timeout"] = spec.timeout_s
    tool = _grounding_tool(spec)
    if tool is not None:
        tools = list(params.pop("tools", None) or [])
        tools.append(tool)
        params["tools"] = tools
    headers = dict(params.pop("extra_headers", None) or {})
    if spec.priority:
        headers[PRIORITY_HEADER] = "priority"
    if headers:
        kwargs["extra_headers"] = headers
    if spec.stream:
        options = dict(params.pop("stream_options", None) or {})
        options["include_usage"] = True
        kwargs["stream"] = True
        kwargs["stream_options"] = options
    else:
        params.pop("stream_options", None)
    params.pop("stream", None)
    labels = {vertex_label(k): vertex_label(v) for k, v in spec.labels.items() if v}
    if spec.batch:
        labels["router-batch-eligible"] = "true"
    if labels and spec.api == "gemini":  # request labels are a Gemini (generateContent) feature
        params["labels"] = {**labels, **(params.get("labels") or {})}
    kwargs.update(params)
    return kwargs


# ---------------------------------------------------------------------- usage mapping
def _usage_numbers(usage: Any) -> dict[str, int]:
    """Token numbers of a litellm ``Usage`` (or an OpenAI-shaped dict) in ProviderUsage terms."""
    prompt = _int(_get(usage, "prompt_tokens"))
    completion = _int(_get(usage, "completion_tokens"))
    ptd = _get(usage, "prompt_tokens_details")
    ctd = _get(usage, "completion_tokens_details")
    reasoning = _int(_get(ctd, "reasoning_tokens")) or _int(_get(usage, "reasoning_tokens"))
    reasoning = min(reasoning, completion) if completion else reasoning
    cached = _int(_get(ptd, "cached_tokens")) or _int(_get(usage, "cache_read_input_tokens"))
    audio = _int(_get(ptd, "audio_tokens"))
    creation = _int(_get(usage, "cache_creation_input_tokens")) or _int(_get(ptd, "cache_creation_tokens"))
    details = _get(ptd, "cache_creation_token_details")
    write_1h = _int(_get(details, "ephemeral_1h_input_tokens"))
    write_5m = _int(_get(details, "ephemeral_5m_input_tokens"))
    if creation:
        write_1h = min(write_1h, creation)
        write_5m = creation - write_1h  # undetailed writes are 5-minute writes (Anthropic's default TTL)
    web_searches = _int(_get(_get(usage, "server_tool_use"), "web_search_requests"))
    return {
        "input_tokens": prompt,
        "output_tokens": max(0, completion - reasoning),
        "thinking_tokens": reasoning,
        "cached_input_tokens": cached,
        "audio_input_tokens": audio,
        "cache_write_5m_tokens": write_5m,
        "cache_write_1h_tokens": write_1h,
        "web_searches": web_searches,
    }


def _grounding_counts(metadata: Any) -> tuple[int, int]:
    """(web URLs, distinct search queries) in Gemini grounding metadata (a dict or a list of them)."""
    items = metadata if isinstance(metadata, (list, tuple)) else [metadata] if metadata else []
    urls: set[str] = set()
    unnamed = 0
    queries: set[str] = set()
    for item in items:
        if not isinstance(item, Mapping):
            continue
        for chunk in item.get("groundingChunks") or item.get("grounding_chunks") or []:
            web = chunk.get("web") if isinstance(chunk, Mapping) else None
            if isinstance(web, Mapping):
                uri = web.get("uri")
                if isinstance(uri, str) and uri:
                    urls.add(uri)
                else:
                    unnamed += 1
        for query in item.get("webSearchQueries") or item.get("web_search_queries") or []:
            if isinstance(query, str) and query:
                queries.add(query)
    return len(urls) + unnamed, len(queries)


def _hidden(obj: Any) -> Mapping[str, Any]:
    hidden = getattr(obj, "_hidden_params", None)
    return hidden if isinstance(hidden, Mapping) else {}


def _traffic_type(obj: Any) -> str | None:
    psf = _hidden(obj).get("provider_specific_fields")
    value = psf.get("traffic_type") if isinstance(psf, Mapping) else None
    return str(value) if value else None


def _grounding_metadata(obj: Any) -> Any:
    found = getattr(obj, "vertex_ai_grounding_metadata", None)
    if not found:
        found = _hidden(obj).get("vertex_ai_grounding_metadata")
    return found or None


def usage_from_response(response: Any) -> ProviderUsage:
    """The provider usage of a litellm ``ModelResponse`` (see the module doc for where each number is)."""
    numbers = _usage_numbers(_get(response, "usage"))
    urls, queries = _grounding_counts(_grounding_metadata(response))
    return ProviderUsage(**numbers, traffic_type=_traffic_type(response), grounding_web_urls=urls, search_queries=queries, complete=True)


# ---------------------------------------------------------------------- exceptions
def _status_of(exc: BaseException) -> int | None:
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def _is_context_message(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _CONTEXT_MARKERS)


def map_exception(exc: BaseException) -> AttemptFailed:
    """Map a litellm / httpx / asyncio exception to an :class:`AttemptFailed`."""
    if isinstance(exc, AttemptFailed):
        return exc
    message = str(exc) or type(exc).__name__
    status = _status_of(exc)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or names & {"Timeout", "TimeoutException", "ReadTimeout", "ConnectTimeout", "APITimeoutError"} or status == 408:
        return AttemptFailed("timeout", message, status)
    if (status is None or status >= 500) and ("litellm.Timeout" in message or "timed out" in message.lower()):
        # litellm's OpenAI-like handlers (Mistral, AI21 on Vertex) wrap a read timeout in a 500 error.
        return AttemptFailed("timeout", message, status)
    if "ContextWindowExceededError" in names:
        return AttemptFailed("context_overflow", message, status or 400)
    if status == 429 or "RateLimitError" in names:
        return AttemptFailed("rate_limited", message, status or 429)
    if status in (401, 403) or names & {"AuthenticationError", "PermissionDeniedError"}:
        return AttemptFailed("auth", message, status)
    if status is not None and 400 <= status < 500:
        if status in (400, 413) and _is_context_message(message):
            return AttemptFailed("context_overflow", message, status)
        return AttemptFailed("bad_request", message, status)
    if "BadRequestError" in names or "UnsupportedParamsError" in names:
        return AttemptFailed("context_overflow" if _is_context_message(message) else "bad_request", message, status)
    # 5xx, connection failures, broken streams, anything else from the provider side: retryable.
    return AttemptFailed("server_error", message, status)


# ---------------------------------------------------------------------- litellm transport
class LiteLLMTransport:
    """Calls Vertex AI through ``litellm.acompletion`` (imported on first use)."""

    def __init__(self) -> None:
        self._acompletion: Any = None
        self._regions_ok: set[tuple[str, str]] = set()

    def _litellm(self) -> Any:
        if self._acompletion is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the cost map at import
            try:
                import google.auth  # noqa: F401  (litellm's Vertex auth needs it; say so instead of a 500)
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError("calling Vertex AI through litellm needs google-auth: pip install google-auth") from exc
            import litellm

            # litellm prints "Provider List: ..." banners on stdout for every provider error; a library
            # must not write to its caller's stdout (it broke `router demo --json`).
            litellm.suppress_debug_info = True
            self._acompletion = litellm.acompletion
        return self._acompletion

    def _prepare(self, kwargs: dict[str, Any]) -> Any:
        """Import litellm and make sure it calls the location the catalog chose.

        litellm moves a call to the first of a model's ``supported_regions`` (its cost map) when the
        requested location is not listed, e.g. ``deepseek-ai/deepseek-v3.1-maas`` at ``global`` would go
        to ``us-central1``. The catalog is this project's source of truth for regions, so the chosen
        location is added to that model's ``supported_regions`` with litellm's public
        ``register_model`` (once per model and location) before the call."""
        acompletion = self._litellm()
        model, location = kwargs["model"], kwargs.get("vertex_location")
        if location and (model, location) not in self._regions_ok:
            import litellm

            entry = litellm.model_cost.get(model) or {}
            regions = entry.get("supported_regions")
            if isinstance(regions, list) and regions and location not in regions:
                litellm.register_model({model: {"supported_regions": [*regions, location]}})
            self._regions_ok.add((model, location))
        return acompletion

    async def send(self, spec: CallSpec, settings: VertexSettings) -> CallResult:
        kwargs = build_call_kwargs(replace(spec, stream=False), settings)
        acompletion = self._prepare(kwargs)
        try:
            response = await acompletion(**kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every provider failure becomes an AttemptFailed
            raise map_exception(exc) from exc
        return CallResult(response=response, usage=usage_from_response(response))

    def stream(self, spec: CallSpec, settings: VertexSettings) -> "LiteLLMStream":
        kwargs = build_call_kwargs(replace(spec, stream=True), settings)
        return LiteLLMStream(self, kwargs, estimate_prompt_tokens(spec.messages))


class LiteLLMStream:
    """Async iterator over litellm's stream chunks. The call starts on the first ``__anext__``; failures
    raise :class:`AttemptFailed`. :meth:`final_usage` is the usage of the final usage chunk, or, if the
    stream was cut (or closed early), an estimate of what was produced with ``complete=False``."""

    def __init__(self, transport: LiteLLMTransport, kwargs: dict[str, Any], prompt_estimate: int) -> None:
        self._transport = transport
        self._kwargs = kwargs
        self._prompt_estimate = prompt_estimate
        self._wrapper: Any = None
        self._iter: Any = None
        self._chars = 0
        self._chunks = 0
        self._usage: Any = None
        self._traffic: str | None = None
        self._grounding: list[Any] = []
        self._finished = False
        self._finish_seen = False
        self._error: AttemptFailed | None = None

    def __aiter__(self) -> "LiteLLMStream":
        return self

    async def _start(self) -> None:
        acompletion = self._transport._prepare(self._kwargs)
        try:
            self._wrapper = await acompletion(**self._kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._error = map_exception(exc)
            raise self._error from exc
        self._iter = self._wrapper.__aiter__()

    async def __anext__(self) -> Any:
        if self._finished or self._error is not None:
            raise StopAsyncIteration
        if self._iter is None:
            await self._start()
        try:
            chunk = await self._iter.__anext__()
        except StopAsyncIteration:
            self._finished = True
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            self._error = map_exception(exc)
            raise self._error from exc
        self._observe(chunk)
        return chunk

    def _observe(self, chunk: Any) -> None:
        self._chunks += 1
        for choice in _get(chunk, "choices") or []:
            if _get(choice, "finish_reason"):
                self._finish_seen = True
            delta = _get(choice, "delta")
            for name in ("content", "reasoning_content"):
                text = _get(delta, name)
                if isinstance(text, str):
                    self._chars += len(text)
        usage = _get(chunk, "usage")
        if usage is not None and (_int(_get(usage, "prompt_tokens")) or _int(_get(usage, "completion_tokens"))):
            self._usage = usage
        traffic = _traffic_type(chunk)
        if traffic:
            self._traffic = traffic
        metadata = _grounding_metadata(chunk)
        if metadata:
            self._grounding.append(metadata)

    @property
    def answer_complete(self) -> bool:
        """The model finished its answer (a ``finish_reason`` arrived), whether or not the usage chunk did."""
        return self._finish_seen

    async def drain(self, max_chunks: int = 16, timeout_s: float = 2.0) -> None:
        """Read what is left after the answer finished (the usage chunk comes last) so the bill is the
        provider's own count; bounded, so a consumer that stopped early is never held up for long."""
        if self._iter is None or self._finished or self._error is not None:
            return

        async def _read() -> None:
            for _ in range(max_chunks):
                await self.__anext__()

        try:
            await asyncio.wait_for(_read(), timeout_s)
        except (StopAsyncIteration, AttemptFailed, asyncio.TimeoutError):
            pass

    async def aclose(self) -> None:
        wrapper, self._wrapper = self._wrapper, None
        self._iter = None
        if wrapper is not None and not self._finished:
            close = getattr(wrapper, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # noqa: BLE001 - closing a broken stream must not mask the caller's error
                    pass

    @property
    def chunks_received(self) -> int:
        return self._chunks

    def final_usage(self) -> ProviderUsage:
        metadata: list[Any] = []
        for item in self._grounding:
            metadata.extend(item if isinstance(item, (list, tuple)) else [item])
        urls, queries = _grounding_counts(metadata)
        if self._usage is not None:
            # The provider's own count (the usage chunk comes last): exact, even when the consumer stopped
            # reading right after it. Mid-stream usage never undercounts what was received as text.
            numbers = _usage_numbers(self._usage)
            if not self._finished:
                numbers["output_tokens"] = max(numbers["output_tokens"], estimate_tokens(self._chars) - numbers["thinking_tokens"])
            return ProviderUsage(**numbers, traffic_type=self._traffic, grounding_web_urls=urls, search_queries=queries, complete=True)
        # Cut, failed mid-way, closed early or no usage chunk: bill what was produced, never zero.
        output = estimate_tokens(self._chars)
        prompt = self._prompt_estimate
        if self._usage is not None:
            prompt = _int(_get(self._usage, "prompt_tokens")) or prompt
        return ProviderUsage(
            input_tokens=max(1, prompt),
            output_tokens=output,
            traffic_type=self._traffic,
            grounding_web_urls=urls,
            search_queries=queries,
            complete=False,
        )


# ---------------------------------------------------------------------- in-process mock
@dataclass
class MockScript:
    """A scripted answer of :class:`MockTransport` for models whose id contains ``match``."""

    match: str
    text: str = "mock reply"
    usage: ProviderUsage | Mapping[str, Any] | None = None
    error: str | None = None
    status: int | None = None
    error_times: int | None = None
    latency_s: float = 0.0
    stream_chunks: int = 3
    cut_stream_after: int | None = None
    calls: int = 0

    def __post_init__(self) -> None:
        if self.error is not None and self.error not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {self.error!r}; one of {sorted(FAILURE_KINDS)}")

    def failing(self) -> bool:
        return self.error is not None and (self.error_times is None or self.calls <= self.error_times)


_DEFAULT_STATUS = {"rate_limited": 429, "server_error": 500, "timeout": None, "context_overflow": 400, "bad_request": 400, "auth": 403}


class MockTransport:
    """A pure in-process transport with the :class:`LiteLLMTransport` API (no litellm call, no I/O).

        mock = MockTransport()
        mock.script("gemini-2.5-flash", usage={"input_tokens": 100, "output_tokens": 20}, traffic_type="ON_DEMAND")
        mock.script("claude", error="rate_limited", error_times=1)
        Router(policy, transport=mock)

    Unscripted usage: input from the prompt length (~4 chars/token), output from the reply's length.
    ``usage`` may set any :class:`ProviderUsage` field (e.g. ``traffic_type``, ``grounding_web_urls``).
    ``lightweight=True`` answers with tiny plain objects instead of litellm ``ModelResponse`` objects
    (for overhead benchmarks); otherwise litellm is imported to build real response objects.
    ``calls`` logs every :class:`CallSpec` received.
    """

    def __init__(self, *, lightweight: bool = False, default_text: str = "mock reply") -> None:
        self.lightweight = lightweight
        self.default_text = default_text
        self.scripts: list[MockScript] = []
        self.calls: list[CallSpec] = []

    def script(self, match: str, **options: Any) -> MockScript:
        usage_fields = {f.name for f in fields(ProviderUsage)}
        extra = {k: options.pop(k) for k in list(options) if k in usage_fields}
        if extra:
            usage = options.get("usage")
            merged = usage.to_dict() if isinstance(usage, ProviderUsage) else dict(usage or {})
            merged.update(extra)
            options["usage"] = merged
        entry = MockScript(match=match, **options)
        self.scripts.append(entry)
        return entry

    def reset(self) -> None:
        self.scripts.clear()
        self.calls.clear()

    def _find(self, spec: CallSpec) -> MockScript:
        for entry in reversed(self.scripts):
            if entry.match in spec.model_id or entry.match in spec.vertex_model:
                entry.calls += 1
                return entry
        return MockScript(match="", text=self.default_text)

    def _usage(self, spec: CallSpec, entry: MockScript) -> ProviderUsage:
        given = entry.usage.to_dict() if isinstance(entry.usage, ProviderUsage) else dict(entry.usage or {})
        given.setdefault("input_tokens", estimate_prompt_tokens(spec.messages))
        given.setdefault("output_tokens", max(1, estimate_tokens(entry.text)))
        if spec.priority and "traffic_type" not in given:
            given["traffic_type"] = "ON_DEMAND_PRIORITY"
        return ProviderUsage(**given)

    def _fail(self, spec: CallSpec, entry: MockScript) -> AttemptFailed:
        status = entry.status if entry.status is not None else _DEFAULT_STATUS[entry.error or "server_error"]
        return AttemptFailed(entry.error or "server_error", f"mock {entry.error} for {spec.model_id}", status)

    def _response(self, spec: CallSpec, text: str, usage: ProviderUsage) -> Any:
        if self.lightweight:
            return _LightResponse(spec.vertex_model, text, usage)
        import litellm

        response = litellm.ModelResponse(
            model=spec.vertex_model,
            choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            usage=litellm.Usage(
                prompt_tokens=usage.input_tokens,
                completion_tokens=usage.output_tokens + usage.thinking_tokens,
                total_tokens=usage.input_tokens + usage.output_tokens + usage.thinking_tokens,
            ),
        )
        return response

    async def send(self, spec: CallSpec, settings: VertexSettings | None = None) -> CallResult:
        build_call_kwargs(replace(spec, stream=False), settings or VertexSettings())  # same validation as litellm's path
        self.calls.append(spec)
        entry = self._find(spec)
        if entry.latency_s:
            await asyncio.sleep(entry.latency_s)
        if entry.failing():
            raise self._fail(spec, entry)
        usage = self._usage(spec, entry)
        return CallResult(response=self._response(spec, entry.text, usage), usage=usage)

    def stream(self, spec: CallSpec, settings: VertexSettings | None = None) -> "MockStream":
        build_call_kwargs(replace(spec, stream=True), settings or VertexSettings())
        self.calls.append(spec)
        return MockStream(self, spec, self._find(spec))


class MockStream:
    """The :class:`MockTransport` stream: text chunks, then (unless cut) a final chunk with usage."""

    def __init__(self, transport: MockTransport, spec: CallSpec, entry: MockScript) -> None:
        self._transport, self._spec, self._entry = transport, spec, entry
        text = entry.text
        n = max(1, entry.stream_chunks)
        size = max(1, math.ceil(len(text) / n))
        self._pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        self._index = 0
        self._chars = 0
        self._done = False
        self._started = False
        self._usage = transport._usage(spec, entry)

    def __aiter__(self) -> "MockStream":
        return self

    async def __anext__(self) -> Any:
        entry = self._entry
        if not self._started:
            self._started = True
            if entry.latency_s:
                await asyncio.sleep(entry.latency_s)
            if entry.failing():
                self._done = True
                raise self._transport._fail(self._spec, entry)
        if self._done:
            raise StopAsyncIteration
        if entry.cut_stream_after is not None and self._index >= entry.cut_stream_after:
            self._done = True
            raise AttemptFailed("server_error", f"mock stream of {self._spec.model_id} cut after {self._index} chunks")
        if self._index < len(self._pieces):
            piece = self._pieces[self._index]
            self._index += 1
            self._chars += len(piece)
            return self._chunk(piece, None)
        self._done = True
        self._index += 1
        return self._chunk("", self._usage)

    def _chunk(self, text: str, usage: ProviderUsage | None) -> Any:
        if self._transport.lightweight:
            return _LightChunk(self._spec.vertex_model, text, usage)
        import litellm

        chunk = litellm.ModelResponseStream(
            model=self._spec.vertex_model,
            choices=[{"index": 0, "delta": {"role": "assistant", "content": text or None}, "finish_reason": "stop" if usage else None}],
        )
        if usage is not None:
            chunk.usage = litellm.Usage(prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens + usage.thinking_tokens, total_tokens=usage.input_tokens + usage.output_tokens + usage.thinking_tokens)  # type: ignore[attr-defined]
        return chunk

    async def aclose(self) -> None:
        self._done = True

    def final_usage(self) -> ProviderUsage:
        if self._index > len(self._pieces):  # the usage chunk was delivered
            return self._usage
        return ProviderUsage(
            input_tokens=self._usage.input_tokens,
            output_tokens=estimate_tokens(self._chars),
            traffic_type=self._usage.traffic_type,
            complete=False,
        )


class _LightMessage:
    __slots__ = ("role", "content")

    def __init__(self, content: str) -> None:
        self.role = "assistant"
        self.content = content


class _LightChoice:
    __slots__ = ("index", "message", "delta", "finish_reason")

    def __init__(self, content: str, finish_reason: str | None) -> None:
        self.index = 0
        self.message = self.delta = _LightMessage(content)
        self.finish_reason = finish_reason


class _LightResponse:
    """A minimal stand-in for ``ModelResponse`` (``choices[0].message.content``, ``usage``, ``model``)."""

    def __init__(self, model: str, text: str, usage: ProviderUsage) -> None:
        self.id = f"mock-{time.monotonic_ns()}"
        self.model = model
        self.choices = [_LightChoice(text, "stop")]
        self.usage = {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens + usage.thinking_tokens}
        self.routing: Any = None


class _LightChunk:
    def __init__(self, model: str, text: str, usage: ProviderUsage | None) -> None:
        self.model = model
        self.choices = [_LightChoice(text, "stop" if usage else None)]
        self.usage = None if usage is None else {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens + usage.thinking_tokens}


def custom_logger_base() -> type:
    """litellm's ``CustomLogger`` base class, for the LiteLLM proxy plugin (:mod:`router.integrations.litellm_proxy`).

    Kept here so that this module stays the only one importing litellm.
    """
    from litellm.integrations.custom_logger import CustomLogger

    return CustomLogger
