"""The transport: how a routed attempt reaches Vertex AI, split by job.

- :mod:`router._transport.types`: the value types (:class:`CallSpec`, :class:`VertexSettings`,
  :class:`ProviderUsage`, :class:`CallResult`, :class:`AttemptFailed`);
- :mod:`router._transport.call_kwargs`: a spec as ``litellm.acompletion`` keyword arguments (pure);
- :mod:`router._transport.usage`: provider usage on a response or a stream -> :class:`ProviderUsage`;
- :mod:`router._transport.litellm_adapter`: :class:`LiteLLMTransport`, the ONLY module of the project
  importing litellm (lazily, on the first call), and litellm's exceptions -> :class:`AttemptFailed`;
- :mod:`router._transport.count_tokens`: Vertex's Count Tokens API, one direct call (no litellm);
- :mod:`router._transport.mock`: :class:`MockTransport`, in-process, no I/O.

Importing this package never imports litellm.
"""

from router._transport.call_kwargs import build_call_kwargs, litellm_model_name
from router._transport.count_tokens import CountFailed, TokenCount
from router._transport.litellm_adapter import LiteLLMStream, LiteLLMTransport, custom_logger_base, map_exception
from router._transport.mock import MockScript, MockStream, MockTransport
from router._transport.types import (
    APIS,
    FAILURE_KINDS,
    GROUNDING_KINDS,
    PRIORITY_HEADER,
    WEB_SEARCH_MAX_USES,
    AttemptFailed,
    CallResult,
    CallSpec,
    ProviderUsage,
    Transport,
    TransportStream,
    VertexSettings,
    vertex_label,
)
from router._transport.usage import CHARS_PER_TOKEN, StreamUsage, estimate_prompt_tokens, estimate_tokens, usage_from_response

__all__ = [
    "APIS",
    "CHARS_PER_TOKEN",
    "FAILURE_KINDS",
    "GROUNDING_KINDS",
    "PRIORITY_HEADER",
    "WEB_SEARCH_MAX_USES",
    "AttemptFailed",
    "CallResult",
    "CallSpec",
    "CountFailed",
    "LiteLLMStream",
    "LiteLLMTransport",
    "MockScript",
    "MockStream",
    "MockTransport",
    "ProviderUsage",
    "StreamUsage",
    "Transport",
    "TransportStream",
    "TokenCount",
    "VertexSettings",
    "build_call_kwargs",
    "custom_logger_base",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "litellm_model_name",
    "map_exception",
    "usage_from_response",
    "vertex_label",
]
