"""Usage mapping: the provider's usage on a litellm response (or on its stream chunks) as a :class:`ProviderUsage`.

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

import math
from collections.abc import Mapping, Sequence
from typing import Any

from router._transport.attrs import attributes, fields, is_mapping
from router._transport.types import ProviderUsage

CHARS_PER_TOKEN = 4


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if is_mapping(obj):
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


_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details",
                 "reasoning_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "server_tool_use")
_PTD_FIELDS = ("cached_tokens", "audio_tokens", "cache_creation_tokens", "cache_creation_token_details")
_NONE8 = (None,) * 8
_NONE4 = (None,) * 4
_RESPONSE_ATTRS = ("usage", "_hidden_params", "vertex_ai_grounding_metadata")


_fields = fields  # ``_get(obj, name)`` of each name, in one call (an object's attributes or a mapping's keys)


def _usage_numbers(usage: Any) -> dict[str, int]:
    """Token numbers of a litellm ``Usage`` (or an OpenAI-shaped dict) in ProviderUsage terms."""
    values = _fields(usage, _USAGE_FIELDS, _NONE8)
    # type(v) is int / None (_int(None) is 0): the common cases without a call (bool and anything else go through _int)
    prompt, completion, ptd, ctd, reasoning_top, cache_read, creation, tool_use = values
    prompt = prompt if type(prompt) is int else 0 if prompt is None else _int(prompt)
    completion = completion if type(completion) is int else 0 if completion is None else _int(completion)
    reasoning = _int(_get(ctd, "reasoning_tokens")) if ctd is not None else 0
    if not reasoning:
        reasoning = reasoning_top if type(reasoning_top) is int else 0 if reasoning_top is None else _int(reasoning_top)
    reasoning = min(reasoning, completion) if completion else reasoning
    cached, audio, creation_ptd, details = _fields(ptd, _PTD_FIELDS, _NONE4)
    cached = cached if type(cached) is int else 0 if cached is None else _int(cached)
    if not cached:
        cached = cache_read if type(cache_read) is int else 0 if cache_read is None else _int(cache_read)
    audio = audio if type(audio) is int else 0 if audio is None else _int(audio)
    creation = creation if type(creation) is int else 0 if creation is None else _int(creation)
    if not creation:
        creation = creation_ptd if type(creation_ptd) is int else 0 if creation_ptd is None else _int(creation_ptd)
    write_1h = write_5m = 0
    if details is not None:
        write_1h = _int(_get(details, "ephemeral_1h_input_tokens"))
        write_5m = _int(_get(details, "ephemeral_5m_input_tokens"))
    if creation:
        write_1h = min(write_1h, creation)
        write_5m = creation - write_1h  # undetailed writes are 5-minute writes (Anthropic's default TTL)
    web_searches = _int(_get(tool_use, "web_search_requests")) if tool_use is not None else 0
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
    if not metadata:
        return 0, 0
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
    usage, hidden, metadata = attributes(response, _RESPONSE_ATTRS)  # each read once (litellm: a pydantic model)
    if is_mapping(response):
        usage = response.get("usage")  # type: ignore[attr-defined]
    numbers = _usage_numbers(usage)
    if not is_mapping(hidden):
        hidden = {}
    psf = hidden.get("provider_specific_fields")
    traffic = psf.get("traffic_type") if is_mapping(psf) else None
    metadata = metadata or hidden.get("vertex_ai_grounding_metadata")
    urls, queries = _grounding_counts(metadata) if metadata else (0, 0)
    return ProviderUsage(**numbers, traffic_type=str(traffic) if traffic else None, grounding_web_urls=urls, search_queries=queries, complete=True)


#: The ProviderUsage fields that describe the prompt (the whole prompt and its separately billed parts).
_PROMPT_PARTS = frozenset({"input_tokens", "cached_input_tokens", "audio_input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"})


class StreamUsage:
    """Accumulates what a stream's chunks say (text produced, the usage chunk, traffic type, grounding
    metadata) and turns it into the attempt's :class:`ProviderUsage` at the end."""

    __slots__ = ("_prompt_estimate", "_prompt_exact", "_reported", "_chars", "_usage", "_traffic", "_grounding", "finish_seen")

    def __init__(self, prompt_estimate: int, prompt_exact: int | None = None) -> None:
        self._prompt_estimate = prompt_estimate
        self._prompt_exact = prompt_exact
        #: The largest prompt the provider reported before its final usage (Claude's ``message_start``).
        self._reported: dict[str, int] | None = None
        self._chars = 0
        self._usage: Any = None
        self._traffic: str | None = None
        self._grounding: list[Any] = []
        #: A ``finish_reason`` arrived: the model finished its answer (whether or not the usage chunk did).
        self.finish_seen = False

    def observe(self, chunk: Any) -> None:
        """Take note of one stream chunk."""
        for choice in _get(chunk, "choices") or []:
            if _get(choice, "finish_reason"):
                self.finish_seen = True
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
    def has_usage(self) -> bool:
        """A chunk carried the provider's usage (normally the last one)."""
        return self._usage is not None

    def observe_reported(self, usage: Any) -> None:
        """Take note of usage the provider reported mid-stream, not as a chunk's own usage (Claude's
        ``message_start`` carries the whole prompt before any text): the prompt is billed from it if the
        final usage never arrives."""
        if usage is None:
            return
        numbers = _usage_numbers(usage)
        if numbers["input_tokens"] and (self._reported is None or numbers["input_tokens"] > self._reported["input_tokens"]):
            self._reported = numbers

    def final(self, finished: bool) -> ProviderUsage:
        """The usage of the stream so far; ``finished``: the stream ended normally (not cut or closed early)."""
        metadata: list[Any] = []
        for item in self._grounding:
            metadata.extend(item if isinstance(item, (list, tuple)) else [item])
        urls, queries = _grounding_counts(metadata)
        if self._usage is not None:
            # The provider's own count (the usage chunk comes last): exact, even when the consumer stopped
            # reading right after it. Mid-stream usage never undercounts what was received as text.
            numbers = _usage_numbers(self._usage)
            if self._reported is not None and self._reported["input_tokens"] > numbers["input_tokens"]:
                numbers.update({k: v for k, v in self._reported.items() if k in _PROMPT_PARTS})  # never below a reported prompt
            if not finished:
                numbers["output_tokens"] = max(numbers["output_tokens"], estimate_tokens(self._chars) - numbers["thinking_tokens"])
            return ProviderUsage(**numbers, traffic_type=self._traffic, grounding_web_urls=urls, search_queries=queries, complete=True)
        # Cut, failed mid-way, closed early or no usage chunk: bill what was produced, never zero. The prompt
        # from the best known count: what the provider reported, else the exact count known before sending
        # (the caller's prompt_tokens or a Count Tokens count), else the ~4 characters a token estimate.
        prompt: dict[str, int] = {"input_tokens": max(1, self._prompt_exact or self._prompt_estimate)}
        if self._reported is not None:
            prompt = {k: v for k, v in self._reported.items() if k in _PROMPT_PARTS}
        return ProviderUsage(
            **prompt,
            output_tokens=estimate_tokens(self._chars),
            traffic_type=self._traffic,
            grounding_web_urls=urls,
            search_queries=queries,
            complete=False,
        )


__all__ = ["CHARS_PER_TOKEN", "StreamUsage", "estimate_prompt_tokens", "estimate_tokens", "usage_from_response"]
