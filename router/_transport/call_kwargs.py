"""A :class:`CallSpec` as the keyword arguments of one ``litellm.acompletion`` call (pure: no litellm import).

How a spec maps to litellm (``vertex_ai/<vertex_model>`` in every case; litellm picks the wire format):

- ``gemini``: ``publishers/google/models/M:generateContent`` (``:streamGenerateContent?alt=sse``).
  Grounding tools: ``{"googleSearch": {}}``, ``{"enterpriseWebSearch": {}}``, ``{"googleMaps": {}}``.
- ``anthropic``: Claude on Vertex, Anthropic Messages via ``publishers/anthropic/models/M:rawPredict``
  (``:streamRawPredict``), regional or ``global``. Grounding: the ``web_search_20250305`` server tool.
- ``openai_maas``: partner models (DeepSeek, Qwen, Llama, gpt-oss, MiniMax, Kimi) on the
  OpenAI-compatible ``endpoints/openapi/chat/completions`` endpoint of the spec's location.
- ``mistral`` / ``ai21``: ``publishers/mistralai|ai21/models/M:rawPredict`` with OpenAI-format bodies.
"""

from __future__ import annotations

from typing import Any

from router._transport.types import APIS, GROUNDING_KINDS, PRIORITY_HEADER, WEB_SEARCH_MAX_USES, CallSpec, VertexSettings, vertex_label

_GEMINI_GROUNDING_TOOLS: dict[str, dict[str, Any]] = {
    "google_search": {"googleSearch": {}},
    "enterprise_web_search": {"enterpriseWebSearch": {}},
    "google_maps": {"googleMaps": {}},
}
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
    params = dict(spec.params)  # popped from below; the spec's own dict serves every attempt of the call
    kwargs: dict[str, Any] = {
        "model": litellm_model_name(spec),
        "messages": spec.messages,  # the caller's list, not a copy
        "drop_params": True,
    }
    # Only what litellm needs: unset settings are left out rather than passed as None.
    if settings.vertex_project is not None:
        kwargs["vertex_project"] = settings.vertex_project
    location = spec.location or settings.vertex_location
    if location is not None:
        kwargs["vertex_location"] = location
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


__all__ = ["build_call_kwargs", "litellm_model_name"]
