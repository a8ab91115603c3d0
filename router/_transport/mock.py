"""An in-process transport for tests and benchmarks: :class:`MockTransport` has the
:class:`~router._transport.litellm_adapter.LiteLLMTransport` API and answers from scripts, with no I/O."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from router._transport.call_kwargs import build_call_kwargs
from router._transport.litellm_adapter import model_response, model_response_chunk
from router._transport.types import FAILURE_KINDS, AttemptFailed, CallResult, CallSpec, ProviderUsage, VertexSettings
from router._transport.usage import estimate_prompt_tokens, estimate_tokens

_NO_SETTINGS = VertexSettings()


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
        return model_response(spec.vertex_model, text, usage)

    async def send(self, spec: CallSpec, settings: VertexSettings | None = None) -> CallResult:
        build_call_kwargs(spec if not spec.stream else replace(spec, stream=False), settings or _NO_SETTINGS)  # same validation as litellm's path
        self.calls.append(spec)
        entry = self._find(spec)
        if entry.latency_s:
            await asyncio.sleep(entry.latency_s)
        if entry.failing():
            raise self._fail(spec, entry)
        usage = self._usage(spec, entry)
        return CallResult(response=self._response(spec, entry.text, usage), usage=usage)

    def stream(self, spec: CallSpec, settings: VertexSettings | None = None) -> "MockStream":
        build_call_kwargs(spec if spec.stream else replace(spec, stream=True), settings or _NO_SETTINGS)
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
        return model_response_chunk(self._spec.vertex_model, text, usage)

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


__all__ = ["MockScript", "MockStream", "MockTransport"]
