"""The transport's value types: where to call (:class:`VertexSettings`), one attempt (:class:`CallSpec`),
what the provider says was used (:class:`ProviderUsage`), and how an attempt ends (:class:`CallResult`,
:class:`AttemptFailed`). No litellm here."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Protocol

APIS = frozenset({"gemini", "anthropic", "openai_maas", "mistral", "ai21"})
GROUNDING_KINDS = frozenset({"google_search", "enterprise_web_search", "google_maps", "your_data", "web_search"})
PRIORITY_HEADER = "X-Vertex-AI-LLM-Shared-Request-Type"
#: Claude web searches allowed per request (the Router reserves this many, so the bound holds).
WEB_SEARCH_MAX_USES = 4
FAILURE_KINDS = frozenset({"rate_limited", "server_error", "timeout", "context_overflow", "bad_request", "auth"})


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
    #: An exact prompt size known before sending (the caller's ``prompt_tokens`` or a Count Tokens count),
    #: or None. A stream cut before the provider reported its usage bills the prompt from it, not from
    #: the ~4 characters a token estimate.
    prompt_tokens: int | None = None


_LABEL_RE = re.compile(r"[^a-z0-9_-]")


@lru_cache(maxsize=4096)
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



class TransportStream(Protocol):
    """A stream from :meth:`Transport.stream`: async iteration over chunks (failures raise
    :class:`AttemptFailed`), ``aclose()``, and the usage of what was produced."""

    def __aiter__(self) -> "TransportStream": ...

    async def __anext__(self) -> Any: ...

    async def aclose(self) -> None: ...

    def final_usage(self) -> ProviderUsage: ...


class Transport(Protocol):
    """The call seam of the Router (:class:`~router._transport.litellm_adapter.LiteLLMTransport`,
    :class:`~router._transport.mock.MockTransport`)."""

    async def send(self, spec: CallSpec, settings: VertexSettings) -> CallResult: ...

    def stream(self, spec: CallSpec, settings: VertexSettings) -> TransportStream: ...


__all__ = [
    "APIS",
    "FAILURE_KINDS",
    "GROUNDING_KINDS",
    "PRIORITY_HEADER",
    "WEB_SEARCH_MAX_USES",
    "AttemptFailed",
    "CallResult",
    "CallSpec",
    "ProviderUsage",
    "Transport",
    "TransportStream",
    "VertexSettings",
    "vertex_label",
]
