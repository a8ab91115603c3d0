"""A loopback Vertex AI server for offline tests: litellm's real Vertex code talks to it unchanged.

    with VertexStub() as stub:
        stub.script("gemini-2.5-flash", usage={"input_tokens": 1200, "output_tokens": 80}, traffic_type="ON_DEMAND")
        stub.script("claude", error="rate_limited", error_times=1)   # first Claude call answers 429
        settings = vertex_settings_for(stub, tmp_path)             # VertexSettings wired to the stub
        ...
        stub.requests[-1].headers["x-vertex-ai-llm-shared-request-type"]
        stub.provision("gemini-2.0-flash", capacity=100_800)   # PT: PROVISIONED_THROUGHPUT under it, spill over it

What it serves (the paths litellm builds when ``api_base`` is the stub's URL):

- ``POST /token``: the OAuth JWT-bearer grant of a service account (see :mod:`router.testing.credentials`).
- ``.../publishers/google/models/M:generateContent`` and ``:streamGenerateContent?alt=sse`` (Gemini).
- ``.../publishers/anthropic/models/M:rawPredict`` and ``:streamRawPredict`` (Anthropic Messages, SSE).
- ``.../endpoints/openapi/chat/completions`` (OpenAI-compatible partner MaaS models, SSE with a usage
  chunk when ``stream_options.include_usage``).
- ``.../publishers/google/models/M:countTokens`` (``totalTokens``, ``totalBillableCharacters``) and
  ``.../publishers/anthropic/models/count-tokens:rawPredict`` (Anthropic ``{"input_tokens": N}``, the model
  id in the body): scripted with :meth:`VertexStub.script_count` (totals, errors, latency).
- ``.../publishers/mistralai/models/M:rawPredict|streamRawPredict`` and
  ``v1beta1/.../publishers/ai21/models/M:rawPredict|streamRawPredict`` (OpenAI format bodies).

Usage is scripted in neutral terms (see :class:`ModelScript`) and rendered in each API's own shape:
Gemini ``usageMetadata`` (``promptTokenCount`` includes cached and audio tokens, ``thoughtsTokenCount``
apart from ``candidatesTokenCount``, ``trafficType``), Anthropic ``usage`` (``input_tokens`` without
cache reads/writes, ``cache_creation`` 5m/1h breakdown, ``server_tool_use.web_search_requests``) and
OpenAI ``usage`` (``completion_tokens`` includes reasoning tokens). Unscripted values are derived
from the request: about 4 characters per prompt token, the reply's length for output (an unscripted
reply stops at the request's max tokens, as a model does).
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["CountScript", "ModelScript", "ProvisionedScript", "StubRequest", "VertexStub", "vertex_settings_for"]

CHARS_PER_TOKEN = 4
DEFAULT_TEXT = "This is a reply from the loopback Vertex stub. It has a few sentences so that streams have several chunks."

#: error kind -> (HTTP status, Google status, message); Anthropic bodies use their own error types.
ERROR_KINDS: dict[str, tuple[int, str, str]] = {
    "rate_limited": (429, "RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later. Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute."),
    "server_error": (500, "INTERNAL", "Internal error encountered."),
    "unavailable": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "context_overflow": (400, "INVALID_ARGUMENT", "The input token count (2000001) exceeds the maximum number of tokens allowed (1048576)."),
    "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "auth": (403, "PERMISSION_DENIED", "Permission denied on resource project (or it may not exist)."),
}
_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 429: "rate_limit_error", 500: "api_error", 503: "overloaded_error", 529: "overloaded_error"}
_ANTHROPIC_OVERFLOW = "prompt is too long: 250000 tokens > 200000 maximum"
_OPENAI_OVERFLOW = "This model's maximum context length is 131072 tokens. However, you requested 250000 tokens. Please reduce the length of the messages."

_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/"
    r"(?:publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)"
    r"|endpoints/openapi/chat/completions)$"
)
_PUBLISHER_API = {"google": "gemini", "anthropic": "anthropic", "mistralai": "mistral", "ai21": "ai21"}


@dataclass
class ModelScript:
    """How the stub answers calls whose model name contains ``match`` (the latest matching script wins).

    ``usage`` keys (all optional, in tokens): ``input_tokens`` (the whole prompt, cached and audio parts
    included), ``output_tokens`` (without thinking), ``thinking_tokens``, ``cached_tokens``,
    ``audio_tokens``, ``cache_write_5m_tokens``, ``cache_write_1h_tokens``.
    ``grounding_urls`` / ``search_queries``: Gemini ``groundingMetadata`` web chunks and
    ``webSearchQueries`` (default: 2 URLs, 1 query; 0 / [] script "grounding ran but found nothing").
    ``web_searches``: Claude ``server_tool_use`` count (default 1). Grounding values are only answered
    to a request that carries the matching tool (``googleSearch`` / ``enterpriseWebSearch`` /
    ``googleMaps``, or Claude's ``web_search_*`` server tool). ``traffic_type``: Gemini
    ``usageMetadata.trafficType``; ``"auto"`` answers ``ON_DEMAND_PRIORITY`` to a request with the
    priority header and ``ON_DEMAND`` otherwise; None leaves it out.
    ``error`` (a kind of :data:`ERROR_KINDS`) or ``status`` (+ ``error_message``) make calls fail;
    ``error_times=K`` fails only the first K calls (None: every call). ``latency_s`` delays the response
    headers; ``chunk_delay_s`` spaces stream chunks; ``stream_chunks`` is how many text chunks a stream
    has; ``cut_stream_after=N`` drops the connection after N text chunks (no final usage chunk).
    """

    match: str
    text: str | None = None
    usage: Mapping[str, int] | None = None
    grounding_urls: int | None = None
    search_queries: Sequence[str] | None = None
    web_searches: int | None = None
    traffic_type: str | None = "auto"
    error: str | None = None
    status: int | None = None
    error_message: str | None = None
    error_times: int | None = None
    latency_s: float = 0.0
    chunk_delay_s: float = 0.0
    stream_chunks: int = 4
    cut_stream_after: int | None = None
    calls: int = 0

    def __post_init__(self) -> None:
        if self.error is not None and self.error not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {self.error!r}; one of {sorted(ERROR_KINDS)}")
        unknown = set(self.usage or {}) - _USAGE_KEYS
        if unknown:
            raise ValueError(f"unknown usage keys {sorted(unknown)}; use {sorted(_USAGE_KEYS)}")

    def failure(self) -> tuple[int, str, str] | None:
        """(status, google status, message) if this call must fail."""
        if self.error is None and self.status is None:
            return None
        if self.error_times is not None and self.calls > self.error_times:
            return None
        if self.error is not None:
            status, gstatus, message = ERROR_KINDS[self.error]
            if self.status is not None:
                status = self.status
        else:
            status = int(self.status or 500)
            gstatus = {429: "RESOURCE_EXHAUSTED", 400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}.get(status, "INTERNAL")
            message = f"stub error (HTTP {status})"
        return status, gstatus, self.error_message or message


@dataclass
class ProvisionedScript:
    """Scripted Provisioned Throughput of the models whose name contains ``match`` (Gemini API).

    ``capacity``: burndown-adjusted tokens per ``window_s`` seconds (Vertex's quota enforcement period,
    default 30 s); ``rates``: burndown multipliers (text input, audio input, output + thinking), default
    the seed's gemini-2.0-flash rates (1, 7, 4). A request without ``X-Vertex-AI-LLM-Request-Type:
    shared`` is served by PT (``trafficType: PROVISIONED_THROUGHPUT``) while the window's tokens + its own
    stay within the capacity; over it, it spills (``ON_DEMAND``, or ``ON_DEMAND_PRIORITY`` with the
    priority header), or is refused with a 429 when it asked for ``dedicated``. ``served``, ``spilled``
    and ``refused`` count the outcomes.
    """

    match: str
    capacity: int
    window_s: float = 30.0
    rates: tuple[int, int, int] = (1, 7, 4)
    served: int = 0
    spilled: int = 0
    refused: int = 0
    events: list[tuple[float, int]] = field(default_factory=list)

    def used(self, now: float) -> int:
        self.events[:] = [(t, n) for t, n in self.events if t > now - self.window_s]
        return sum(n for _, n in self.events)


@dataclass
class CountScript:
    """How the stub answers countTokens calls whose model name contains ``match`` (latest match wins).

    ``total_tokens``: the count to answer (None: derived from the request, about 4 characters a token
    plus :data:`MEDIA_PART_TOKENS` per inline / file part); ``billable_characters``: Gemini
    ``totalBillableCharacters`` (None: the characters of the request's text); ``error`` / ``status`` /
    ``error_times`` / ``error_message`` as in :class:`ModelScript`; ``latency_s`` delays the answer.
    """

    match: str
    total_tokens: int | None = None
    billable_characters: int | None = None
    error: str | None = None
    status: int | None = None
    error_message: str | None = None
    error_times: int | None = None
    latency_s: float = 0.0
    calls: int = 0

    def __post_init__(self) -> None:
        if self.error is not None and self.error not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {self.error!r}; one of {sorted(ERROR_KINDS)}")

    failure = ModelScript.failure


#: Tokens the stub counts for one inline or file part (image, PDF, audio) when no total is scripted.
MEDIA_PART_TOKENS = 258


def _media_parts(value: Any) -> int:
    """Inline / file data parts in a Gemini or Anthropic request body (images, documents, audio)."""
    if isinstance(value, list):
        return sum(_media_parts(v) for v in value)
    if isinstance(value, Mapping):
        if any(k in value for k in ("inlineData", "inline_data", "fileData", "file_data")):
            return 1
        if value.get("type") in ("image", "document"):
            return 1
        return sum(_media_parts(v) for k, v in value.items() if k in ("contents", "parts", "messages", "content"))
    return 0


_USAGE_KEYS = frozenset({"input_tokens", "output_tokens", "thinking_tokens", "cached_tokens", "audio_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"})


@dataclass
class StubRequest:
    """One request the stub received. ``headers`` keys are lower-case; ``body`` is the decoded JSON."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    api: str | None = None  # "token", "gemini", "anthropic", "openai_maas", "mistral", "ai21", "count_tokens"
    model: str | None = None
    project: str | None = None
    location: str | None = None
    stream: bool = False
    status: int = 200


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


def _text_of(value: Any) -> str:
    """All the text in a message content / Gemini part / list thereof."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(v) for v in value)
    if isinstance(value, Mapping):
        if "text" in value and isinstance(value["text"], str):
            return value["text"]
        for key in ("content", "parts"):
            if key in value:
                return _text_of(value[key])
    return ""


def _prompt_text(api: str, body: Mapping[str, Any]) -> str:
    if api == "gemini":
        return " ".join([_text_of(body.get("systemInstruction") or body.get("system_instruction")), *(_text_of(c) for c in body.get("contents") or [])])
    if api == "anthropic":
        return " ".join([_text_of(body.get("system")), *(_text_of(m) for m in body.get("messages") or [])])
    return " ".join(_text_of(m) for m in body.get("messages") or [])


@dataclass
class _Reply:
    """A resolved answer: text split into chunks and the usage numbers, in neutral terms."""

    text: str
    chunks: list[str]
    input_tokens: int
    output_tokens: int
    thinking_tokens: int
    cached_tokens: int
    audio_tokens: int
    cache_write_5m: int
    cache_write_1h: int
    grounding_urls: int
    search_queries: list[str]
    web_searches: int
    traffic_type: str | None
    cut_after: int | None
    chunk_delay_s: float
    model: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])


class _StubHTTPServer(ThreadingHTTPServer):
    """A listen backlog for bursts (the stdlib default of 5 refuses connections when several processes
    send dozens of concurrent requests, which litellm then reports as provider 5xx errors)."""

    request_queue_size = 256
    daemon_threads = True


class VertexStub:
    """The loopback server. ``start()``/``stop()`` or use as a context manager; ``url`` is the API base."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, require_auth: bool = True) -> None:
        self._host, self._want_port = host, port
        self.require_auth = require_auth
        self._lock = threading.Lock()
        self._scripts: list[ModelScript] = []
        self._provisioned: list[ProvisionedScript] = []
        self._count_scripts: list[CountScript] = []
        self.requests: list[StubRequest] = []
        self._tokens: set[str] = set()
        self._token_counter = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "VertexStub":
        if self._server is not None:
            return self
        stub = self

        class Handler(_Handler):
            pass

        Handler.stub = stub
        server = _StubHTTPServer((self._host, self._want_port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="vertex-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "VertexStub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stub is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    # ------------------------------------------------------------------ scripting
    def script(self, match: str, **options: Any) -> ModelScript:
        """Script answers for models whose name contains ``match`` (see :class:`ModelScript`)."""
        entry = ModelScript(match=match, **options)
        with self._lock:
            self._scripts.append(entry)
        return entry

    def provision(self, match: str, capacity: int, **options: Any) -> ProvisionedScript:
        """Give models whose name contains ``match`` Provisioned Throughput (see :class:`ProvisionedScript`)."""
        entry = ProvisionedScript(match=match, capacity=capacity, **options)
        with self._lock:
            self._provisioned.append(entry)
        return entry

    def script_count(self, match: str, **options: Any) -> CountScript:
        """Script countTokens answers for models whose name contains ``match`` (see :class:`CountScript`)."""
        entry = CountScript(match=match, **options)
        with self._lock:
            self._count_scripts.append(entry)
        return entry

    def reset(self) -> None:
        """Forget scripts, PT capacity and the request log (issued tokens stay valid: litellm caches them)."""
        with self._lock:
            self._scripts.clear()
            self._provisioned.clear()
            self._count_scripts.clear()
            self.requests.clear()

    def _pt_route(self, model: str, reply: "_Reply", headers: Mapping[str, str]) -> bool:
        """Decide how Provisioned Throughput serves ``reply`` (sets its traffic type); False: refuse (429)."""
        kind = headers.get("x-vertex-ai-llm-request-type", "").lower()
        priority = headers.get("x-vertex-ai-llm-shared-request-type", "").lower() == "priority"
        with self._lock:
            entry = next((e for e in reversed(self._provisioned) if e.match in model), None)
            if entry is not None and kind != "shared":
                text_in = reply.input_tokens - reply.audio_tokens
                r_text, r_audio, r_out = entry.rates
                tokens = text_in * r_text + reply.audio_tokens * r_audio + (reply.output_tokens + reply.thinking_tokens) * r_out
                now = time.monotonic()
                if entry.used(now) + tokens <= entry.capacity:
                    entry.events.append((now, tokens))
                    entry.served += 1
                    reply.traffic_type = "PROVISIONED_THROUGHPUT"
                    return True
                if kind == "dedicated":
                    entry.refused += 1
                    return False
                entry.spilled += 1
            elif kind == "dedicated":
                return False
        reply.traffic_type = "ON_DEMAND_PRIORITY" if priority else "ON_DEMAND"
        return True

    def model_requests(self, match: str = "") -> list[StubRequest]:
        """Logged model calls (not token grants, not countTokens) whose model name contains ``match``."""
        with self._lock:
            return [r for r in self.requests if r.api not in (None, "token", "count_tokens") and match in (r.model or "")]

    def count_requests(self, match: str = "") -> list[StubRequest]:
        """Logged countTokens calls (Gemini and Claude) whose model name contains ``match``."""
        with self._lock:
            return [r for r in self.requests if r.api == "count_tokens" and match in (r.model or "")]

    def _find_count_script(self, model: str) -> CountScript | None:
        with self._lock:
            for entry in reversed(self._count_scripts):
                if entry.match in model:
                    entry.calls += 1
                    return entry
        return None

    def _find_script(self, model: str) -> ModelScript | None:
        with self._lock:
            for entry in reversed(self._scripts):
                if entry.match in model:
                    entry.calls += 1
                    return entry
        return None

    def _issue_token(self) -> str:
        token = f"ya29.stub-{next(self._token_counter)}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self._tokens.add(token)
        return token

    def _token_ok(self, authorization: str | None) -> bool:
        if not self.require_auth:
            return True
        if not authorization or not authorization.startswith("Bearer "):
            return False
        with self._lock:
            return authorization[len("Bearer "):] in self._tokens

    def _log(self, request: StubRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # ------------------------------------------------------------------ replies
    def _reply(self, api: str, model: str, body: Mapping[str, Any], headers: Mapping[str, str], entry: ModelScript | None) -> _Reply:
        usage = dict(entry.usage or {}) if entry else {}
        text = (entry.text if entry and entry.text is not None else DEFAULT_TEXT)
        limit = _max_output_tokens(api, body)
        if limit is not None and "output_tokens" not in usage:
            text = text[: limit * CHARS_PER_TOKEN]  # like a model, stop at the request's max tokens
        n_chunks = max(1, entry.stream_chunks if entry else 4)
        size = max(1, math.ceil(len(text) / n_chunks))
        chunks = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        prompt_chars = len(_prompt_text(api, body))
        grounded = _request_grounding(api, body)
        # Grounding metadata only answers a request that carries a grounding tool, as on Vertex.
        web = grounded in ("web", "maps")
        urls = (entry.grounding_urls if entry and entry.grounding_urls is not None else 2) if web else 0
        queries = (list(entry.search_queries) if entry and entry.search_queries is not None else [_query_from(_prompt_text(api, body))]) if web else []
        searches = (entry.web_searches if entry and entry.web_searches is not None else 1) if grounded == "claude_web" else 0
        traffic = entry.traffic_type if entry else "auto"
        if traffic == "auto":
            priority = headers.get("x-vertex-ai-llm-shared-request-type", "").lower() == "priority"
            traffic = "ON_DEMAND_PRIORITY" if priority else "ON_DEMAND"
        return _Reply(
            text=text,
            chunks=chunks,
            input_tokens=int(usage.get("input_tokens", _tokens(prompt_chars))),
            output_tokens=int(usage.get("output_tokens", _tokens(len(text)))),
            thinking_tokens=int(usage.get("thinking_tokens", 0)),
            cached_tokens=int(usage.get("cached_tokens", 0)),
            audio_tokens=int(usage.get("audio_tokens", 0)),
            cache_write_5m=int(usage.get("cache_write_5m_tokens", 0)),
            cache_write_1h=int(usage.get("cache_write_1h_tokens", 0)),
            grounding_urls=int(urls),
            search_queries=queries,
            web_searches=int(searches),
            traffic_type=traffic,
            cut_after=entry.cut_stream_after if entry else None,
            chunk_delay_s=entry.chunk_delay_s if entry else 0.0,
            model=model,
        )


def _max_output_tokens(api: str, body: Mapping[str, Any]) -> int | None:
    """The request's output token limit (Gemini ``generationConfig``, Anthropic / OpenAI ``max_tokens``)."""
    if api == "gemini":
        config = body.get("generationConfig") or body.get("generation_config") or {}
        value = config.get("maxOutputTokens", config.get("max_output_tokens"))
    else:
        value = body.get("max_tokens", body.get("max_completion_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _query_from(prompt: str) -> str:
    words = prompt.split()
    return " ".join(words[:6]) or "query"


def _request_grounding(api: str, body: Mapping[str, Any]) -> str | None:
    for tool in body.get("tools") or []:
        if not isinstance(tool, Mapping):
            continue
        if api == "gemini":
            if any(k in tool for k in ("googleSearch", "google_search", "googleSearchRetrieval", "enterpriseWebSearch", "enterprise_web_search")):
                return "web"
            if "googleMaps" in tool or "google_maps" in tool:
                return "maps"
            if "retrieval" in tool:
                return "data"
        elif api == "anthropic" and str(tool.get("type", "")).startswith("web_search"):
            return "claude_web"
    return None


# ---------------------------------------------------------------------- API renderings
def _gemini_usage(r: _Reply, final: bool = True) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    if final:
        details = [{"modality": "TEXT", "tokenCount": r.input_tokens - r.audio_tokens}]
        if r.audio_tokens:
            details.append({"modality": "AUDIO", "tokenCount": r.audio_tokens})
        usage.update(
            promptTokenCount=r.input_tokens,
            candidatesTokenCount=r.output_tokens,
            totalTokenCount=r.input_tokens + r.output_tokens + r.thinking_tokens,
            promptTokensDetails=details,
            candidatesTokensDetails=[{"modality": "TEXT", "tokenCount": r.output_tokens}],
        )
        if r.thinking_tokens:
            usage["thoughtsTokenCount"] = r.thinking_tokens
        if r.cached_tokens:
            usage["cachedContentTokenCount"] = r.cached_tokens
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": r.cached_tokens}]
    if r.traffic_type:
        usage["trafficType"] = r.traffic_type
    return usage


def _gemini_grounding(r: _Reply) -> dict[str, Any] | None:
    if not r.grounding_urls and not r.search_queries:
        return None
    chunks = [
        {"web": {"uri": f"https://vertexaisearch.cloud.google.com/grounding-api-redirect/stub-{i}", "title": f"example{i}.com", "domain": f"example{i}.com"}}
        for i in range(r.grounding_urls)
    ]
    meta: dict[str, Any] = {"webSearchQueries": list(r.search_queries), "groundingChunks": chunks}
    if r.search_queries:
        meta["searchEntryPoint"] = {"renderedContent": "<div>stub search entry point</div>"}
    if chunks:
        meta["groundingSupports"] = [
            {"segment": {"startIndex": 0, "endIndex": min(len(r.text), 20), "text": r.text[:20]}, "groundingChunkIndices": list(range(len(chunks))), "confidenceScores": [0.9] * len(chunks)}
        ]
    return meta


def _gemini_body(r: _Reply) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": r.text}]}, "finishReason": "STOP", "index": 0}
    grounding = _gemini_grounding(r)
    if grounding:
        candidate["groundingMetadata"] = grounding
    return {"candidates": [candidate], "usageMetadata": _gemini_usage(r), "modelVersion": r.model, "responseId": r.id, "createTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())}


def _gemini_events(r: _Reply) -> Iterator[tuple[bool, str]]:
    """(is_text_chunk, SSE event) pairs."""
    last = len(r.chunks) - 1
    for i, piece in enumerate(r.chunks):
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
        event: dict[str, Any] = {"candidates": [candidate], "modelVersion": r.model, "responseId": r.id}
        if i == last:
            candidate["finishReason"] = "STOP"
            grounding = _gemini_grounding(r)
            if grounding:
                candidate["groundingMetadata"] = grounding
            event["usageMetadata"] = _gemini_usage(r)
        else:
            event["usageMetadata"] = _gemini_usage(r, final=False)
        yield True, f"data: {json.dumps(event)}\r\n\r\n"


def _anthropic_usage(r: _Reply, *, output: bool = True) -> dict[str, Any]:
    writes = r.cache_write_5m + r.cache_write_1h
    usage: dict[str, Any] = {
        "input_tokens": max(0, r.input_tokens - r.cached_tokens - writes),
        "cache_creation_input_tokens": writes,
        "cache_read_input_tokens": r.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": r.cache_write_5m, "ephemeral_1h_input_tokens": r.cache_write_1h},
        "output_tokens": (r.output_tokens + r.thinking_tokens) if output else 1,
    }
    if r.web_searches:
        usage["server_tool_use"] = {"web_search_requests": r.web_searches}
    return usage


def _anthropic_body(r: _Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for i in range(r.web_searches):
        tool_id = f"srvtoolu_{r.id}_{i}"
        content.append({"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": f"stub query {i}"}})
        content.append({"type": "web_search_tool_result", "tool_use_id": tool_id, "content": [{"type": "web_search_result", "url": f"https://example{i}.com/", "title": f"Example {i}", "encrypted_content": "stub", "page_age": None}]})
    content.append({"type": "text", "text": r.text})
    return {"id": f"msg_{r.id}", "type": "message", "role": "assistant", "model": r.model, "content": content, "stop_reason": "end_turn", "stop_sequence": None, "usage": _anthropic_usage(r)}


def _sse(event: str, data: Mapping[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _anthropic_events(r: _Reply) -> Iterator[tuple[bool, str]]:
    message = {"id": f"msg_{r.id}", "type": "message", "role": "assistant", "model": r.model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": _anthropic_usage(r, output=False)}
    yield False, _sse("message_start", {"type": "message_start", "message": message})
    yield False, _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    for piece in r.chunks:
        yield True, _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
    yield False, _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    final_usage = _anthropic_usage(r)
    yield False, _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": final_usage})
    yield False, _sse("message_stop", {"type": "message_stop"})


def _openai_usage(r: _Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": r.input_tokens,
        "completion_tokens": r.output_tokens + r.thinking_tokens,
        "total_tokens": r.input_tokens + r.output_tokens + r.thinking_tokens,
    }
    if r.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": r.cached_tokens}
    if r.thinking_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": r.thinking_tokens}
    return usage


def _openai_body(r: _Reply) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{r.id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": r.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": r.text}, "finish_reason": "stop"}],
        "usage": _openai_usage(r),
    }


def _openai_events(r: _Reply, include_usage: bool, usage_on_last: bool = False) -> Iterator[tuple[bool, str]]:
    """OpenAI chat chunks. ``include_usage``: a final ``choices: []`` usage chunk (OpenAI's
    ``stream_options``); ``usage_on_last``: usage on the finishing chunk (Mistral's native streams)."""
    base = {"id": f"chatcmpl-{r.id}", "object": "chat.completion.chunk", "created": int(time.time()), "model": r.model}
    for i, piece in enumerate(r.chunks):
        delta: dict[str, Any] = {"content": piece}
        if i == 0:
            delta["role"] = "assistant"
        yield True, f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': delta, 'finish_reason': None}]})}\n\n"
    last: dict[str, Any] = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if usage_on_last:
        last["usage"] = _openai_usage(r)
    yield False, f"data: {json.dumps(last)}\n\n"
    if include_usage and not usage_on_last:
        yield False, f"data: {json.dumps({**base, 'choices': [], 'usage': _openai_usage(r)})}\n\n"
    yield False, "data: [DONE]\n\n"


def _error_body(api: str, status: int, gstatus: str, message: str) -> dict[str, Any]:
    if api == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        if gstatus == "INVALID_ARGUMENT" and "exceeds the maximum number of tokens" in message:
            message = _ANTHROPIC_OVERFLOW
        return {"type": "error", "error": {"type": kind, "message": message}}
    if api in ("openai_maas", "mistral", "ai21") and "exceeds the maximum number of tokens" in message:
        message = _OPENAI_OVERFLOW
    return {"error": {"code": status, "message": message, "status": gstatus}}


# ---------------------------------------------------------------------- HTTP handler
class _Handler(BaseHTTPRequestHandler):
    stub: VertexStub
    protocol_version = "HTTP/1.1"
    server_version = "VertexStub/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        return

    # -- plumbing
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, extra_headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _write_chunk(self, text: str) -> None:
        data = text.encode("utf-8")
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, events: Iterator[tuple[bool, str]], reply: _Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        sent_text = 0
        for is_text, event in events:
            if reply.cut_after is not None and is_text and sent_text >= reply.cut_after:
                # Kill the connection mid-body: no terminating chunk, so the client sees a broken stream.
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if is_text:
                sent_text += 1
                if reply.chunk_delay_s and sent_text > 1:
                    time.sleep(reply.chunk_delay_s)
            self._write_chunk(event)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        if urlsplit(self.path).path in ("/", "/health", "/healthz"):
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})

    def do_POST(self) -> None:
        try:
            self._handle_post()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
            self.close_connection = True

    def _handle_post(self) -> None:
        stub = self.stub
        parts = urlsplit(self.path)
        raw = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = parse_qs(parts.query)
        if parts.path.rstrip("/").endswith("/token"):
            form = parse_qs(raw.decode("utf-8", "replace"))
            claims = _jwt_claims((form.get("assertion") or [""])[0])
            stub._log(StubRequest("POST", parts.path, query, headers, {"grant_type": (form.get("grant_type") or [""])[0], "claims": claims}, api="token"))
            if (form.get("grant_type") or [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not claims:
                self._send_json(400, {"error": "invalid_grant", "error_description": "expected a JWT-bearer assertion"})
                return
            self._send_json(200, {"access_token": stub._issue_token(), "expires_in": 3600, "token_type": "Bearer"})
            return
        match = _PATH.match(parts.path)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        record = StubRequest("POST", parts.path, query, headers, body)
        if match is None or not isinstance(body, dict):
            record.status = 404 if match is None else 400
            stub._log(record)
            self._send_json(record.status, {"error": {"code": record.status, "message": f"stub: no route for {parts.path}", "status": "NOT_FOUND"}})
            return
        publisher, method = match.group("publisher"), match.group("method")
        api = _PUBLISHER_API.get(publisher or "", "openai_maas") if publisher else "openai_maas"
        model = match.group("model") or str(body.get("model") or "")
        if (publisher == "google" and method == "countTokens") or (publisher == "anthropic" and model == "count-tokens" and method == "rawPredict"):
            self._count_tokens(record, api, model if api == "gemini" else str(body.get("model") or ""), body, headers, match)
            return
        stream = bool(method and method.startswith("stream")) or bool(body.get("stream"))
        record.api, record.model, record.project, record.location, record.stream = api, model, match.group("project"), match.group("location"), stream
        stub._log(record)
        if not stub._token_ok(headers.get("authorization")):
            record.status = 401
            self._send_json(401, _error_body(api, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials."))
            return
        entry = stub._find_script(model)
        if entry is not None and entry.latency_s:
            time.sleep(entry.latency_s)
        failure = entry.failure() if entry is not None else None
        if failure is not None:
            status, gstatus, message = failure
            record.status = status
            self._send_json(status, _error_body(api, status, gstatus, message))
            return
        reply = stub._reply(api, model, body, headers, entry)
        if api == "gemini" and (entry is None or entry.traffic_type == "auto") and not stub._pt_route(model, reply, headers):
            record.status = 429
            message = "Resource exhausted: dedicated Provisioned Throughput is fully used (X-Vertex-AI-LLM-Request-Type: dedicated)."
            self._send_json(429, _error_body(api, 429, "RESOURCE_EXHAUSTED", message))
            return
        if not stream:
            payload = _gemini_body(reply) if api == "gemini" else _anthropic_body(reply) if api == "anthropic" else _openai_body(reply)
            self._send_json(200, payload)
            return
        if api == "gemini":
            events = _gemini_events(reply)
        elif api == "anthropic":
            events = _anthropic_events(reply)
        else:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _openai_events(reply, include_usage, usage_on_last=api in ("mistral", "ai21"))
        self._stream(events, reply)


    def _count_tokens(self, record: StubRequest, api: str, model: str, body: Mapping[str, Any], headers: Mapping[str, str], match: Any) -> None:
        """Gemini ``:countTokens`` -> ``totalTokens`` / ``totalBillableCharacters``; Claude
        ``count-tokens:rawPredict`` -> ``input_tokens`` (an Anthropic body naming the model without @version)."""
        stub = self.stub
        record.api, record.model, record.project, record.location = "count_tokens", model, match.group("project"), match.group("location")
        stub._log(record)
        if not stub._token_ok(headers.get("authorization")):
            record.status = 401
            self._send_json(401, _error_body(api, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials."))
            return
        if api == "anthropic" and (not model or "@" in model):
            record.status = 400
            self._send_json(400, _error_body(api, 400, "INVALID_ARGUMENT", f"count-tokens: model must be a Claude model id without @version, not {model!r}"))
            return
        entry = stub._find_count_script(model)
        if entry is not None and entry.latency_s:
            time.sleep(entry.latency_s)
        failure = entry.failure() if entry is not None else None
        if failure is not None:
            status, gstatus, message = failure
            record.status = status
            self._send_json(status, _error_body(api, status, gstatus, message))
            return
        text = _prompt_text(api, body)
        total = entry.total_tokens if entry is not None and entry.total_tokens is not None else _tokens(len(text)) + MEDIA_PART_TOKENS * _media_parts(body)
        if api == "anthropic":
            self._send_json(200, {"input_tokens": int(total)})
            return
        chars = entry.billable_characters if entry is not None and entry.billable_characters is not None else len(text.replace(" ", ""))
        self._send_json(200, {"totalTokens": int(total), "totalBillableCharacters": int(chars), "promptTokensDetails": [{"modality": "TEXT", "tokenCount": int(total)}]})


def _jwt_claims(assertion: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT assertion, or {} if it is not one."""
    try:
        payload = assertion.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError, TypeError):
        return {}


def vertex_settings_for(
    stub: VertexStub,
    directory: str | Path | None = None,
    *,
    project: str = "router-stub-project",
    location: str = "us-central1",
) -> Any:
    """``VertexSettings`` wired to ``stub``: a generated service account whose token endpoint is the
    stub's (written to ``directory``, or a temporary directory), and ``api_base`` = the stub's URL."""
    import tempfile

    from router._transport import VertexSettings
    from router.testing.credentials import write_service_account

    folder = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="vertex-stub-"))
    path = write_service_account(folder / f"service-account-{stub.port}.json", stub.token_uri, project)
    return VertexSettings(vertex_project=project, vertex_location=location, vertex_credentials=str(path), api_base=stub.url)
