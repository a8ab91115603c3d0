"""``router._transport.attrs`` answers exactly what ``getattr(obj, name, None)`` / ``isinstance(obj, Mapping)``
answer, on litellm's real response objects (pydantic models with fields, extras, private attributes and
names they do not have) and on pydantic classes that bend the rules (a property, a private attribute with a
descriptor default, their own ``__getattr__``); and a litellm response's usage read through it is the general
formula's (tests/router/test_hot_path_shortcuts.py's reference)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router._transport import attrs
from router._transport import usage as usage_mod
from tests.router.test_hot_path_shortcuts import reference_usage_from_response

litellm = pytest.importorskip("litellm")

NAMES = (
    "usage", "_hidden_params", "vertex_ai_grounding_metadata", "choices", "model", "id", "object",
    "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details",
    "reasoning_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "server_tool_use",
    "_cache_read_input_tokens", "_cache_creation_input_tokens", "cached_tokens", "audio_tokens", "text_tokens",
    "cache_creation_tokens", "cache_creation_token_details", "web_search_requests", "model_fields", "json",
    "get", "mro", "__class__", "__dict__", "nothing_here", "_nothing_private",
)


def same_as_getattr(obj: Any, names: tuple[str, ...] = NAMES) -> None:
    expected = [getattr(obj, name, None) for name in names]
    got = list(attrs.attributes(obj, names))
    assert [type(v) for v in got] == [type(v) for v in expected]
    assert got == expected
    for name, value, want in zip(names, got, expected):  # the very same objects, not equal copies
        if want is not None and not isinstance(want, (int, str, bool)) and not callable(want):  # a bound method is new each time
            assert value is want, name
    assert list(attrs.attributes(obj, names[::-1])) == expected[::-1]  # another read of the same class


def a_usage(**params: Any) -> Any:
    return litellm.Usage(**params)


count = st.one_of(st.none(), st.integers(0, 5000))
usage_params = st.fixed_dictionaries(
    {"prompt_tokens": st.integers(0, 5000), "completion_tokens": st.integers(0, 5000)},
    optional={
        "reasoning_tokens": count,
        "cache_read_input_tokens": count,
        "cache_creation_input_tokens": count,
        "prompt_tokens_details": st.fixed_dictionaries({}, optional={"cached_tokens": count, "audio_tokens": count}),
        "completion_tokens_details": st.fixed_dictionaries({}, optional={"reasoning_tokens": count}),
        "server_tool_use": st.fixed_dictionaries({"web_search_requests": count}),
    },
)
hidden = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={"provider_specific_fields": st.just({"traffic_type": "ON_DEMAND_PRIORITY"})}),
)
metadata = st.one_of(st.none(), st.just([{"groundingChunks": [{"web": {"uri": "https://a"}}], "webSearchQueries": ["q"]}]))


@settings(max_examples=60, deadline=None)
@given(usage_params, hidden, metadata, st.booleans())
def test_litellm_responses_read_as_getattr_reads_them(params, hidden_params, grounding, set_usage):
    response = litellm.ModelResponse(usage=a_usage(**params)) if set_usage else litellm.ModelResponse()
    if hidden_params is not None:
        response._hidden_params = hidden_params
    if grounding is not None:
        response.vertex_ai_grounding_metadata = grounding
    same_as_getattr(response)
    usage = getattr(response, "usage", None)
    same_as_getattr(usage)
    for part in ("prompt_tokens_details", "completion_tokens_details", "server_tool_use"):
        same_as_getattr(getattr(usage, part, None))
    assert usage_mod.usage_from_response(response) == reference_usage_from_response(response)


async def test_a_mocked_litellm_completion_reads_as_getattr_reads_it():
    response = await litellm.acompletion(model="vertex_ai/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], max_tokens=20, mock_response="ok")
    same_as_getattr(response)
    same_as_getattr(response.usage)
    got = usage_mod.usage_from_response(response)
    assert got == reference_usage_from_response(response)
    assert (got.input_tokens, got.output_tokens, got.thinking_tokens, got.traffic_type) == (response.usage.prompt_tokens, response.usage.completion_tokens, 0, None)


class _Descriptor:
    def __get__(self, obj: Any, owner: Any = None) -> str:
        return "from the descriptor"


class Bent(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    usage: int = 1
    _hidden_params: dict = pydantic.PrivateAttr(default_factory=dict)
    _described: Any = pydantic.PrivateAttr(default=_Descriptor())

    @property
    def reasoning_tokens(self) -> int:
        return 42


class OwnGetattr(pydantic.BaseModel):
    def __getattr__(self, item: str) -> Any:
        return f"made up {item}"


def test_pydantic_classes_that_bend_the_rules_read_as_getattr_reads_them():
    names = NAMES + ("_described", "extra_one")
    bent = Bent(extra_one=5, prompt_tokens=3)
    bent._hidden_params["x"] = 1
    same_as_getattr(bent, names)
    assert list(attrs.attributes(bent, ("reasoning_tokens", "extra_one", "_hidden_params", "nothing_here"))) == [42, 5, {"x": 1}, None]
    del bent.usage  # a declared field no longer set: absent, as pydantic says
    same_as_getattr(bent, names)
    same_as_getattr(OwnGetattr(), names)
    assert attrs.attributes(OwnGetattr(), ("anything",)) == ["made up anything"]


@pytest.mark.parametrize("obj", [{}, OrderedDict(a=1), MappingProxyType({"a": 1}), SimpleNamespace(get=1), [], "text", 3, None, litellm.Usage(prompt_tokens=1, completion_tokens=2), Bent()])
def test_is_mapping_is_isinstance_mapping(obj):
    assert attrs.is_mapping(obj) is isinstance(obj, Mapping)
    assert attrs.is_mapping(obj) is isinstance(obj, Mapping)  # remembered
