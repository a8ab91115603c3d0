"""The adapter's pure parts: settings, the litellm call it builds, usage and error mapping, MockTransport."""

from __future__ import annotations

import asyncio
import json

import pytest

from router._transport import (
    PRIORITY_HEADER,
    AttemptFailed,
    CallSpec,
    MockTransport,
    ProviderUsage,
    VertexSettings,
    build_call_kwargs,
    map_exception,
    usage_from_response,
)

MSGS = [{"role": "user", "content": "What is the capital of France? Answer briefly."}]


def spec(api="gemini", vertex_model="gemini-2.5-flash", location="us-central1", **kw):
    return CallSpec(model_id=kw.pop("model_id", vertex_model), api=api, vertex_model=vertex_model, location=location, messages=MSGS, **kw)


# ---------------------------------------------------------------------- settings
def test_settings_from_env(monkeypatch, tmp_path):
    for name in ("VERTEXAI_PROJECT", "VERTEXAI_LOCATION", "VERTEXAI_CREDENTIALS", "GOOGLE_APPLICATION_CREDENTIALS", "VERTEXAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    assert VertexSettings.from_env() == VertexSettings()
    monkeypatch.setenv("VERTEXAI_PROJECT", "p-env")
    monkeypatch.setenv("VERTEXAI_LOCATION", "europe-west1")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa.json"))
    monkeypatch.setenv("VERTEXAI_API_BASE", "http://127.0.0.1:1")
    s = VertexSettings.from_env()
    assert (s.vertex_project, s.vertex_location, s.vertex_credentials, s.api_base) == ("p-env", "europe-west1", str(tmp_path / "sa.json"), "http://127.0.0.1:1")
    monkeypatch.setenv("VERTEXAI_CREDENTIALS", '{"type": "service_account"}')
    assert VertexSettings.from_env().vertex_credentials == '{"type": "service_account"}'  # wins over GOOGLE_APPLICATION_CREDENTIALS
    explicit = VertexSettings.from_env(vertex_project="p", vertex_location="global", vertex_credentials={"a": 1}, api_base="http://x")
    assert (explicit.vertex_project, explicit.vertex_location, json.loads(explicit.vertex_credentials), explicit.api_base) == ("p", "global", {"a": 1}, "http://x")
    with pytest.raises(Exception):
        explicit.vertex_project = "other"  # frozen


# ---------------------------------------------------------------------- call building
def test_kwargs_basic_and_location():
    settings = VertexSettings("proj", "us-central1", "/creds.json", "http://127.0.0.1:9")
    kw = build_call_kwargs(spec(params={"temperature": 0.2, "max_tokens": 64}, timeout_s=5.0), settings)
    assert kw["model"] == "vertex_ai/gemini-2.5-flash"
    assert (kw["vertex_project"], kw["vertex_location"], kw["vertex_credentials"], kw["api_base"]) == ("proj", "us-central1", "/creds.json", "http://127.0.0.1:9")
    assert (kw["temperature"], kw["max_tokens"], kw["timeout"]) == (0.2, 64, 5.0)
    assert "stream" not in kw and "extra_headers" not in kw
    assert build_call_kwargs(spec(location=None), settings)["vertex_location"] == "us-central1"
    assert build_call_kwargs(spec(location="europe-west4"), settings)["vertex_location"] == "europe-west4"


@pytest.mark.parametrize(
    ("api", "vertex_model", "expected"),
    [
        ("anthropic", "claude-sonnet-4-5@20250929", "vertex_ai/claude-sonnet-4-5@20250929"),
        ("openai_maas", "deepseek-ai/deepseek-v3.1-maas", "vertex_ai/deepseek-ai/deepseek-v3.1-maas"),
        ("openai_maas", "openai/gpt-oss-120b-maas", "vertex_ai/openai/gpt-oss-120b-maas"),
        ("mistral", "mistral-medium-3", "vertex_ai/mistral-medium-3"),
        ("ai21", "jamba-1.5-large@001", "vertex_ai/jamba-1.5-large@001"),
    ],
)
def test_model_names(api, vertex_model, expected):
    assert build_call_kwargs(spec(api, vertex_model), VertexSettings())["model"] == expected


def test_stream_asks_for_usage():
    kw = build_call_kwargs(spec(stream=True, params={"stream_options": {"foo": 1}}), VertexSettings())
    assert kw["stream"] is True and kw["stream_options"] == {"foo": 1, "include_usage": True}


def test_priority_header_global_only():
    kw = build_call_kwargs(spec(location="global", priority=True, params={"extra_headers": {"X-A": "1"}}), VertexSettings())
    assert kw["extra_headers"] == {"X-A": "1", PRIORITY_HEADER: "priority"}
    assert "extra_headers" not in build_call_kwargs(spec(location="global"), VertexSettings())
    with pytest.raises(ValueError, match="global"):
        build_call_kwargs(spec(location="us-central1", priority=True), VertexSettings())


@pytest.mark.parametrize(
    ("kind", "tool"),
    [("google_search", {"googleSearch": {}}), ("enterprise_web_search", {"enterpriseWebSearch": {}}), ("google_maps", {"googleMaps": {}})],
)
def test_gemini_grounding_tools(kind, tool):
    fn = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    kw = build_call_kwargs(spec(grounding=kind, params={"tools": [fn]}), VertexSettings())
    assert kw["tools"] == [fn, tool]


def test_claude_web_search_tool():
    kw = build_call_kwargs(spec("anthropic", "claude-sonnet-4-5@20250929", grounding="web_search"), VertexSettings())
    assert kw["tools"] == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 4}]


@pytest.mark.parametrize(("api", "kind"), [("gemini", "web_search"), ("anthropic", "google_search"), ("openai_maas", "google_search"), ("gemini", "your_data"), ("gemini", "nope")])
def test_unsupported_grounding(api, kind):
    with pytest.raises(ValueError):
        build_call_kwargs(spec(api, "m", grounding=kind), VertexSettings())


def test_unknown_api():
    with pytest.raises(ValueError):
        build_call_kwargs(spec("bedrock", "m"), VertexSettings())


# ---------------------------------------------------------------------- usage mapping (litellm-shaped dicts)
class _Resp:
    def __init__(self, usage, hidden=None, grounding=None):
        self.usage = usage
        self._hidden_params = hidden or {}
        if grounding is not None:
            self.vertex_ai_grounding_metadata = grounding


def test_usage_mapping_gemini_shape():
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 80,
        "prompt_tokens_details": {"cached_tokens": 400, "audio_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    grounding = [{"webSearchQueries": ["a", "b", "a"], "groundingChunks": [{"web": {"uri": "u1"}}, {"web": {"uri": "u2"}}, {"maps": {}}]}]
    got = usage_from_response(_Resp(usage, {"provider_specific_fields": {"traffic_type": "ON_DEMAND_PRIORITY"}}, grounding))
    assert got == ProviderUsage(
        input_tokens=1000, output_tokens=50, thinking_tokens=30, cached_input_tokens=400, audio_input_tokens=100,
        traffic_type="ON_DEMAND_PRIORITY", grounding_web_urls=2, search_queries=2, complete=True,
    )


def test_usage_mapping_claude_cache_writes():
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "cache_creation_input_tokens": 300,
        "cache_read_input_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 200, "cache_creation_token_details": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}},
        "server_tool_use": {"web_search_requests": 2},
    }
    got = usage_from_response(_Resp(usage))
    assert (got.input_tokens, got.cached_input_tokens, got.cache_write_5m_tokens, got.cache_write_1h_tokens, got.web_searches) == (1000, 200, 100, 200, 2)
    # without a breakdown every write is a 5-minute write
    got = usage_from_response(_Resp({"prompt_tokens": 10, "completion_tokens": 1, "cache_creation_input_tokens": 7}))
    assert (got.cache_write_5m_tokens, got.cache_write_1h_tokens) == (7, 0)


# ---------------------------------------------------------------------- exception mapping
class _Err(Exception):
    def __init__(self, message, status_code=None):
        super().__init__(message)
        self.status_code = status_code


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_Err("quota", 429), "rate_limited"),
        (_Err("boom", 500), "server_error"),
        (_Err("unavailable", 503), "server_error"),
        (_Err("The input token count (2000001) exceeds the maximum number of tokens allowed (1048576).", 400), "context_overflow"),
        (_Err("prompt is too long: 250000 tokens > 200000 maximum", 400), "context_overflow"),
        (_Err("invalid argument", 400), "bad_request"),
        (_Err("denied", 403), "auth"),
        (_Err("unauthenticated", 401), "auth"),
        (asyncio.TimeoutError(), "timeout"),
        (_Err("litellm.Timeout: Read timed out. Timeout passed=0.5", 500), "timeout"),
        (ConnectionError("refused"), "server_error"),
    ],
)
def test_map_exception(exc, kind):
    failed = map_exception(exc)
    assert isinstance(failed, AttemptFailed) and failed.kind == kind


def test_attempt_failed_kinds():
    with pytest.raises(ValueError):
        AttemptFailed("whatever")
    assert AttemptFailed("rate_limited", "x", 429).status == 429


# ---------------------------------------------------------------------- MockTransport
async def test_mock_transport_send_and_errors():
    mock = MockTransport(lightweight=True)
    mock.script("gemini", text="hi there", usage={"input_tokens": 100, "output_tokens": 5, "thinking_tokens": 7}, traffic_type="ON_DEMAND")
    mock.script("claude", error="rate_limited", error_times=1)
    result = await mock.send(spec(), VertexSettings())
    assert result.response.choices[0].message.content == "hi there"
    assert result.usage == ProviderUsage(input_tokens=100, output_tokens=5, thinking_tokens=7, traffic_type="ON_DEMAND")
    claude = spec("anthropic", "claude-sonnet-4-5@20250929")
    with pytest.raises(AttemptFailed) as info:
        await mock.send(claude, VertexSettings())
    assert (info.value.kind, info.value.status) == ("rate_limited", 429)
    assert (await mock.send(claude, VertexSettings())).usage.complete  # only the first call fails
    assert [c.vertex_model for c in mock.calls] == ["gemini-2.5-flash", "claude-sonnet-4-5@20250929", "claude-sonnet-4-5@20250929"]
    prio = await mock.send(spec(location="global", priority=True), VertexSettings())
    assert prio.usage.traffic_type == "ON_DEMAND"  # scripted value wins
    assert (await mock.send(spec("openai_maas", "qwen/q", location="global", priority=True))).usage.traffic_type == "ON_DEMAND_PRIORITY"


async def test_mock_transport_litellm_response():
    mock = MockTransport()
    result = await mock.send(spec())
    assert type(result.response).__name__ == "ModelResponse"
    assert result.response.choices[0].message.content == "mock reply"
    assert result.response.usage.prompt_tokens == result.usage.input_tokens


@pytest.mark.parametrize("lightweight", [True, False])
async def test_mock_transport_streams(lightweight):
    mock = MockTransport(lightweight=lightweight)
    mock.script("gemini", text="abcdefghijkl" * 4, usage={"input_tokens": 50, "output_tokens": 12}, stream_chunks=4)
    stream = mock.stream(spec(stream=True))
    chunks = [c async for c in stream]
    assert len(chunks) == 5 and stream.final_usage() == ProviderUsage(input_tokens=50, output_tokens=12)
    mock.script("gemini", text="abcdefghijkl" * 4, usage={"input_tokens": 50, "output_tokens": 12}, stream_chunks=4, cut_stream_after=2)
    stream = mock.stream(spec(stream=True))
    got = []
    with pytest.raises(AttemptFailed):
        async for c in stream:
            got.append(c)
    usage = stream.final_usage()
    assert len(got) == 2 and usage.complete is False and usage.input_tokens == 50 and usage.output_tokens == 6


async def test_mock_transport_stream_error_before_first_chunk():
    mock = MockTransport(lightweight=True)
    mock.script("gemini", error="server_error")
    stream = mock.stream(spec(stream=True))
    with pytest.raises(AttemptFailed) as info:
        await stream.__anext__()
    assert info.value.kind == "server_error"
