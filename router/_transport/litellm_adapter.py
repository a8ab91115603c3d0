"""The litellm adapter: the ONLY module of the project that imports litellm, and only on first use.

:class:`LiteLLMTransport` turns a :class:`~router._transport.types.CallSpec` into one
``litellm.acompletion`` call on Vertex AI (the keyword arguments come from
:mod:`router._transport.call_kwargs`) and hands back litellm's own ``ModelResponse`` (or its stream)
with the provider's usage (:mod:`router._transport.usage`), which the Router bills with its own cost
engine (litellm's cost calculation is never used). litellm's exceptions become :class:`AttemptFailed`.
``count_tokens`` asks Vertex's Count Tokens API with the same settings, by a direct call
(:mod:`router._transport.count_tokens` explains why not ``litellm.acount_tokens``).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import Any

from router._transport.call_kwargs import build_call_kwargs
from router._transport.count_tokens import COUNT_TIMEOUT_S, TokenCount, VertexCounter
from router._transport.types import AttemptFailed, CallResult, CallSpec, ProviderUsage, VertexSettings
from router._transport.usage import StreamUsage, estimate_prompt_tokens, usage_from_response

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



def import_litellm() -> Any:
    """Import litellm (the one place the project does): with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` unless the
    user set it, so litellm reads its bundled cost map instead of fetching the remote one (three failing
    fetches and a delay on an offline machine); the router never uses litellm's prices anyway."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


# ---------------------------------------------------------------------- litellm transport
class LiteLLMTransport:
    """Calls Vertex AI through ``litellm.acompletion`` (imported on first use)."""

    def __init__(self, count_timeout_s: float = COUNT_TIMEOUT_S) -> None:
        self._acompletion: Any = None
        self._regions_ok: set[tuple[str, str]] = set()
        self._counter = VertexCounter(count_timeout_s)

    def _litellm(self) -> Any:
        if self._acompletion is None:
            try:
                import google.auth  # noqa: F401  (litellm's Vertex auth needs it; say so instead of a 500)
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError("calling Vertex AI through litellm needs google-auth: pip install google-auth") from exc
            litellm = import_litellm()

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
            litellm = import_litellm()

            entry = litellm.model_cost.get(model) or {}
            regions = entry.get("supported_regions")
            if isinstance(regions, list) and regions and location not in regions:
                litellm.register_model({model: {"supported_regions": [*regions, location]}})
            self._regions_ok.add((model, location))
        return acompletion

    async def send(self, spec: CallSpec, settings: VertexSettings) -> CallResult:
        kwargs = build_call_kwargs(spec if not spec.stream else replace(spec, stream=False), settings)
        acompletion = self._prepare(kwargs)
        try:
            response = await acompletion(**kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every provider failure becomes an AttemptFailed
            raise map_exception(exc) from exc
        return CallResult(response=response, usage=usage_from_response(response))

    def stream(self, spec: CallSpec, settings: VertexSettings) -> "LiteLLMStream":
        kwargs = build_call_kwargs(spec if spec.stream else replace(spec, stream=True), settings)
        return LiteLLMStream(self, kwargs, estimate_prompt_tokens(spec.messages), spec.prompt_tokens)

    async def count_tokens(self, spec: CallSpec, settings: VertexSettings) -> TokenCount:
        """Vertex's exact prompt size of ``spec.messages`` for ``spec``'s model (Gemini ``:countTokens``,
        Claude ``count-tokens:rawPredict``); raises :class:`~router._transport.count_tokens.CountFailed`
        (never answers an estimate). The deadline is ``count_timeout_s`` (2 s by default)."""
        return await self._counter.count(spec.api, spec.vertex_model, spec.location, spec.messages, settings)


class LiteLLMStream:
    """Async iterator over litellm's stream chunks. The call starts on the first ``__anext__``; failures
    raise :class:`AttemptFailed`. :meth:`final_usage` is the usage of the final usage chunk, or, if the
    stream was cut (or closed early), an estimate of what was produced with ``complete=False``."""

    def __init__(self, transport: LiteLLMTransport, kwargs: dict[str, Any], prompt_estimate: int, prompt_exact: int | None = None) -> None:
        self._transport = transport
        self._kwargs = kwargs
        self._wrapper: Any = None
        self._iter: Any = None
        self._chunks = 0
        self._seen = StreamUsage(prompt_estimate, prompt_exact)
        self._finished = False
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
        self._chunks += 1
        self._seen.observe(chunk)
        return chunk

    @property
    def answer_complete(self) -> bool:
        """The model finished its answer (a ``finish_reason`` arrived), whether or not the usage chunk did."""
        return self._seen.finish_seen

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

    def _read_reported_usage(self) -> None:
        """Usage litellm received but keeps off the chunks it yields (Claude's ``message_start`` reports the
        whole prompt before any text; litellm holds it for the final usage chunk): read it from the stream
        wrapper's received chunks, so a stream that ends early still bills the provider's prompt count."""
        if self._wrapper is None or (self._finished and self._seen.has_usage):
            return  # gone, or not needed: a stream that ended with its usage chunk bills from it
        chunks = getattr(self._wrapper, "chunks", None)
        if isinstance(chunks, list):
            for chunk in chunks:
                self._seen.observe_reported(getattr(chunk, "usage", None))

    async def aclose(self) -> None:
        self._read_reported_usage()
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
        self._read_reported_usage()
        return self._seen.final(self._finished)


# ---------------------------------------------------------------------- litellm objects for other modules
def model_response(model: str, text: str, usage: ProviderUsage) -> Any:
    """A litellm ``ModelResponse`` with one assistant message and ``usage`` (for :class:`MockTransport`)."""
    litellm = import_litellm()

    return litellm.ModelResponse(
        model=model,
        choices=[{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        usage=_litellm_usage(usage),
    )


def model_response_chunk(model: str, text: str, usage: ProviderUsage | None) -> Any:
    """A litellm ``ModelResponseStream`` chunk; the last one (``usage`` given) carries the usage."""
    litellm = import_litellm()

    chunk = litellm.ModelResponseStream(
        model=model,
        choices=[{"index": 0, "delta": {"role": "assistant", "content": text or None}, "finish_reason": "stop" if usage else None}],
    )
    if usage is not None:
        chunk.usage = _litellm_usage(usage)  # type: ignore[attr-defined]
    return chunk


def _litellm_usage(usage: ProviderUsage) -> Any:
    litellm = import_litellm()

    completion = usage.output_tokens + usage.thinking_tokens
    return litellm.Usage(prompt_tokens=usage.input_tokens, completion_tokens=completion, total_tokens=usage.input_tokens + completion)


def custom_logger_base() -> type:
    """litellm's ``CustomLogger`` base class, for the LiteLLM proxy plugin (:mod:`router.integrations.litellm_proxy`).

    Kept here so that this module stays the only one importing litellm.
    """
    import_litellm()
    from litellm.integrations.custom_logger import CustomLogger

    return CustomLogger


def proxy_exception(message: str, error_type: str, status_code: int, headers: dict[str, str] | None = None) -> Exception:
    """The LiteLLM proxy's own error (``ProxyException``), answered as is: ``{"error": {"message", "type",
    "param", "code"}}`` with ``status_code`` and ``headers`` (for the proxy plugin's refusals)."""
    import_litellm()
    from litellm.proxy._types import ProxyException

    return ProxyException(message=message, type=error_type, param=None, code=status_code, headers=dict(headers or {}))


__all__ = [
    "LiteLLMStream",
    "LiteLLMTransport",
    "custom_logger_base",
    "import_litellm",
    "map_exception",
    "model_response",
    "model_response_chunk",
    "proxy_exception",
]
