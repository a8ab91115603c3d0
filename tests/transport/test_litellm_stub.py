"""The adapter through litellm's REAL Vertex code against the loopback stub (no network)."""

from __future__ import annotations

import asyncio
import time

import pytest

from router._transport import PRIORITY_HEADER, AttemptFailed, CallSpec, LiteLLMTransport, ProviderUsage
from router.testing.vertex_stub import DEFAULT_TEXT

pytestmark = pytest.mark.litellm

PROMPT = "Summarise the history of the Eiffel Tower in three sentences, please."
MSGS = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": PROMPT}]

# api -> (vertex_model, location, the path litellm builds under /v1[beta1]/projects/P/locations/L/)
MODELS = {
    "gemini": ("gemini-2.5-flash", "us-central1", "publishers/google/models/gemini-2.5-flash:generateContent"),
    "anthropic": ("claude-sonnet-4-5@20250929", "us-east5", "publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"),
    "openai_maas": ("deepseek-ai/deepseek-v3.1-maas", "global", "endpoints/openapi/chat/completions"),
    "mistral": ("mistral-medium-3", "us-central1", "publishers/mistralai/models/mistral-medium-3:rawPredict"),
    "ai21": ("jamba-1.5-large@001", "us-central1", "publishers/ai21/models/jamba-1.5-large@001:rawPredict"),
}
STREAM_METHOD = {"gemini": ":streamGenerateContent", "anthropic": ":streamRawPredict", "mistral": ":streamRawPredict", "ai21": ":streamRawPredict"}


def make_spec(api, *, location=None, stream=False, grounding=None, priority=False, params=None, timeout_s=10.0, messages=MSGS):
    vertex_model, default_location, _ = MODELS[api]
    return CallSpec(
        model_id=vertex_model.split("@")[0].split("/")[-1],
        api=api,
        vertex_model=vertex_model,
        location=location or default_location,
        messages=list(messages),
        params=dict(params or {"max_tokens": 256}),
        grounding=grounding,
        priority=priority,
        stream=stream,
        timeout_s=timeout_s,
    )


@pytest.fixture(scope="module")
def transport():
    return LiteLLMTransport()


async def collect(stream):
    chunks, text = [], []
    async for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices or []:
            if choice.delta and choice.delta.content:
                text.append(choice.delta.content)
    return chunks, "".join(text)


# ---------------------------------------------------------------------- the three formats, not streamed
@pytest.mark.parametrize("api", sorted(MODELS))
async def test_send_reaches_the_right_endpoint(api, transport, vertex_stub, vertex_settings):
    vertex_model, location, path = MODELS[api]
    result = await transport.send(make_spec(api), vertex_settings)
    assert result.response.choices[0].message.content == DEFAULT_TEXT
    (req,) = vertex_stub.model_requests()
    version = "v1beta1" if api == "ai21" else "v1"
    assert req.path == f"/{version}/projects/{vertex_settings.vertex_project}/locations/{location}/{path}"
    assert req.api == api and req.location == location and req.status == 200
    assert req.headers["authorization"].startswith("Bearer ya29.stub-")
    assert PRIORITY_HEADER.lower() not in req.headers
    # default stub usage: ~4 chars per prompt token, the reply's length for output
    usage = result.usage
    assert usage.complete and usage.input_tokens > 0 and usage.output_tokens == -(-len(DEFAULT_TEXT) // 4)
    assert result.response.usage.prompt_tokens == usage.input_tokens


async def test_gemini_usage_mapping(transport, vertex_stub, vertex_settings):
    vertex_stub.script(
        "gemini-2.5-flash",
        usage={"input_tokens": 12000, "output_tokens": 300, "thinking_tokens": 700, "cached_tokens": 8000, "audio_tokens": 1500},
        traffic_type="ON_DEMAND",
    )
    result = await transport.send(make_spec("gemini"), vertex_settings)
    assert result.usage == ProviderUsage(
        input_tokens=12000, output_tokens=300, thinking_tokens=700, cached_input_tokens=8000, audio_input_tokens=1500, traffic_type="ON_DEMAND"
    )
    body = vertex_stub.model_requests()[0].body
    assert body["contents"][0]["parts"][0]["text"] == PROMPT
    system = body.get("systemInstruction") or body.get("system_instruction")
    assert system["parts"][0]["text"] == "You are terse."
    assert body["generationConfig"]["max_output_tokens"] == 256


@pytest.mark.parametrize("location", ["us-east5", "europe-west1", "global"])
async def test_claude_regional_and_global(location, transport, vertex_stub, vertex_settings):
    vertex_stub.script("claude", usage={"input_tokens": 5000, "output_tokens": 120, "cached_tokens": 3000, "cache_write_5m_tokens": 500, "cache_write_1h_tokens": 700})
    result = await transport.send(make_spec("anthropic", location=location), vertex_settings)
    # input_tokens is the whole prompt: Anthropic's input_tokens (800) + cache reads + cache writes
    assert result.usage == ProviderUsage(input_tokens=5000, output_tokens=120, cached_input_tokens=3000, cache_write_5m_tokens=500, cache_write_1h_tokens=700)
    (req,) = vertex_stub.model_requests()
    assert req.location == location and req.path.endswith(":rawPredict")
    assert req.body["anthropic_version"] == "vertex-2023-10-16" and req.body["max_tokens"] == 256
    assert req.body["system"][0]["text"] == "You are terse." if isinstance(req.body["system"], list) else req.body["system"] == "You are terse."


async def test_partner_maas_usage_and_region(transport, vertex_stub, vertex_settings):
    vertex_stub.script("deepseek", usage={"input_tokens": 900, "output_tokens": 100, "thinking_tokens": 400, "cached_tokens": 256})
    # litellm's cost map lists only us-central1 for deepseek-v3.1; the catalog's "global" must be honoured
    for location in ("global", "us-west2"):
        result = await transport.send(make_spec("openai_maas", location=location), vertex_settings)
        assert result.usage == ProviderUsage(input_tokens=900, output_tokens=100, thinking_tokens=400, cached_input_tokens=256)
    assert [r.location for r in vertex_stub.model_requests()] == ["global", "us-west2"]
    assert vertex_stub.model_requests()[0].body["model"] == "deepseek-ai/deepseek-v3.1-maas"


# ---------------------------------------------------------------------- streaming
@pytest.mark.parametrize("api", sorted(MODELS))
async def test_stream_settles_from_the_usage_chunk(api, transport, vertex_stub, vertex_settings):
    vertex_model = MODELS[api][0]
    vertex_stub.script(vertex_model.split("@")[0], text="one two three four five six seven eight", stream_chunks=4, usage={"input_tokens": 4321, "output_tokens": 77})
    stream = transport.stream(make_spec(api, stream=True), vertex_settings)
    chunks, text = await collect(stream)
    assert text == "one two three four five six seven eight"
    assert stream.final_usage() == ProviderUsage(input_tokens=4321, output_tokens=77, traffic_type="ON_DEMAND" if api == "gemini" else None)
    assert chunks[-1].usage.prompt_tokens == 4321  # litellm's final usage chunk, passed through
    (req,) = vertex_stub.model_requests()
    assert req.stream
    if api in STREAM_METHOD:
        assert req.path.endswith(STREAM_METHOD[api])
    if api == "openai_maas":
        assert req.body["stream_options"] == {"include_usage": True}


async def test_stream_gemini_thinking_cached_audio_and_grounding(transport, vertex_stub, vertex_settings):
    vertex_stub.script(
        "gemini",
        usage={"input_tokens": 3000, "output_tokens": 40, "thinking_tokens": 60, "cached_tokens": 1000, "audio_tokens": 200},
        grounding_urls=3,
        search_queries=["eiffel tower history", "eiffel tower height"],
    )
    stream = transport.stream(make_spec("gemini", grounding="google_search", stream=True), vertex_settings)
    await collect(stream)
    assert stream.final_usage() == ProviderUsage(
        input_tokens=3000, output_tokens=40, thinking_tokens=60, cached_input_tokens=1000, audio_input_tokens=200,
        traffic_type="ON_DEMAND", grounding_web_urls=3, search_queries=2,
    )


async def test_stream_claude_cache_writes_and_web_search(transport, vertex_stub, vertex_settings):
    vertex_stub.script("claude", usage={"input_tokens": 2000, "output_tokens": 50, "cache_write_1h_tokens": 1500}, web_searches=2)
    stream = transport.stream(make_spec("anthropic", grounding="web_search", stream=True), vertex_settings)
    await collect(stream)
    assert stream.final_usage() == ProviderUsage(input_tokens=2000, output_tokens=50, cache_write_1h_tokens=1500, web_searches=2)


# ---------------------------------------------------------------------- grounding
async def test_gemini_google_search_grounding(transport, vertex_stub, vertex_settings):
    vertex_stub.script("gemini", grounding_urls=4, search_queries=["a", "b", "c"])
    result = await transport.send(make_spec("gemini", grounding="google_search"), vertex_settings)
    assert (result.usage.grounding_web_urls, result.usage.search_queries) == (4, 3)
    assert vertex_stub.model_requests()[0].body["tools"] == [{"googleSearch": {}}]
    metadata = result.response.vertex_ai_grounding_metadata
    assert metadata[0]["webSearchQueries"] == ["a", "b", "c"]


async def test_gemini_grounding_without_web_results(transport, vertex_stub, vertex_settings):
    vertex_stub.script("gemini", grounding_urls=0, search_queries=["only a query"])
    result = await transport.send(make_spec("gemini", grounding="google_search"), vertex_settings)
    assert (result.usage.grounding_web_urls, result.usage.search_queries) == (0, 1)
    result = await transport.send(make_spec("gemini"), vertex_settings)  # not grounded: no metadata at all
    assert (result.usage.grounding_web_urls, result.usage.search_queries) == (0, 0)


@pytest.mark.parametrize(("kind", "tool"), [("enterprise_web_search", "enterpriseWebSearch"), ("google_maps", "googleMaps")])
async def test_gemini_other_grounding_tools(kind, tool, transport, vertex_stub, vertex_settings):
    result = await transport.send(make_spec("gemini", grounding=kind, location="global"), vertex_settings)
    assert tool in vertex_stub.model_requests()[0].body["tools"][0]
    assert result.usage.search_queries == 1  # the stub's default for a grounded request


async def test_claude_web_search(transport, vertex_stub, vertex_settings):
    vertex_stub.script("claude", web_searches=3)
    result = await transport.send(make_spec("anthropic", grounding="web_search"), vertex_settings)
    assert result.usage.web_searches == 3
    assert vertex_stub.model_requests()[0].body["tools"] == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 4}]


# ---------------------------------------------------------------------- priority and traffic type
@pytest.mark.parametrize("api", ["gemini", "anthropic"])
async def test_priority_header_only_when_priority(api, transport, vertex_stub, vertex_settings):
    await transport.send(make_spec(api, location="global", priority=True), vertex_settings)
    await transport.send(make_spec(api, location="global"), vertex_settings)
    prio, plain = vertex_stub.model_requests()
    assert prio.headers[PRIORITY_HEADER.lower()] == "priority" and prio.location == "global"
    assert PRIORITY_HEADER.lower() not in plain.headers


async def test_priority_streams_carry_the_header(transport, vertex_stub, vertex_settings):
    stream = transport.stream(make_spec("gemini", location="global", priority=True, stream=True), vertex_settings)
    await collect(stream)
    assert vertex_stub.model_requests()[0].headers[PRIORITY_HEADER.lower()] == "priority"
    assert stream.final_usage().traffic_type == "ON_DEMAND_PRIORITY"


async def test_priority_needs_the_global_endpoint(transport, vertex_settings):
    with pytest.raises(ValueError):
        await transport.send(make_spec("gemini", location="us-central1", priority=True), vertex_settings)


@pytest.mark.parametrize("traffic", ["ON_DEMAND_PRIORITY", "ON_DEMAND", "PROVISIONED_THROUGHPUT"])
async def test_traffic_type(traffic, transport, vertex_stub, vertex_settings):
    vertex_stub.script("gemini", traffic_type=traffic)  # ON_DEMAND for a priority request = downgraded
    result = await transport.send(make_spec("gemini", location="global", priority=True), vertex_settings)
    assert result.usage.traffic_type == traffic
    assert result.response._hidden_params["provider_specific_fields"]["traffic_type"] == traffic


# ---------------------------------------------------------------------- failures
@pytest.mark.parametrize("api", sorted(MODELS))
@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [("rate_limited", "rate_limited", 429), ("server_error", "server_error", 500), ("unavailable", "server_error", 503), ("context_overflow", "context_overflow", 400), ("bad_request", "bad_request", 400), ("auth", "auth", 403)],
)
async def test_errors_map_to_attempt_failed(api, error, kind, status, transport, vertex_stub, vertex_settings):
    vertex_stub.script(MODELS[api][0].split("@")[0], error=error)
    with pytest.raises(AttemptFailed) as info:
        await transport.send(make_spec(api), vertex_settings)
    assert (info.value.kind, info.value.status) == (kind, status)
    assert len(vertex_stub.model_requests()) == 1  # litellm does not retry behind our back


@pytest.mark.parametrize("api", ["gemini", "anthropic", "mistral"])
async def test_timeout(api, transport, vertex_stub, vertex_settings):
    vertex_stub.script(MODELS[api][0].split("@")[0], latency_s=1.0)
    started = time.perf_counter()
    with pytest.raises(AttemptFailed) as info:
        await transport.send(make_spec(api, timeout_s=0.25), vertex_settings)
    assert info.value.kind == "timeout"
    assert time.perf_counter() - started < 0.9


async def test_error_times_then_success(transport, vertex_stub, vertex_settings):
    vertex_stub.script("gemini", error="rate_limited", error_times=2)
    for _ in range(2):
        with pytest.raises(AttemptFailed):
            await transport.send(make_spec("gemini"), vertex_settings)
    assert (await transport.send(make_spec("gemini"), vertex_settings)).usage.complete
    assert [r.status for r in vertex_stub.model_requests()] == [429, 429, 200]


@pytest.mark.parametrize("api", ["gemini", "anthropic", "openai_maas"])
async def test_stream_error_before_any_chunk(api, transport, vertex_stub, vertex_settings):
    vertex_stub.script(MODELS[api][0].split("@")[0], error="rate_limited")
    stream = transport.stream(make_spec(api, stream=True), vertex_settings)
    with pytest.raises(AttemptFailed) as info:
        await collect(stream)
    assert info.value.kind == "rate_limited"


@pytest.mark.parametrize("api", sorted(MODELS))
async def test_interrupted_stream_is_estimated_never_zero(api, transport, vertex_stub, vertex_settings):
    text = "abcd" * 40  # 160 chars in 8 chunks of 20
    vertex_stub.script(MODELS[api][0].split("@")[0], text=text, stream_chunks=8, cut_stream_after=3, usage={"input_tokens": 999, "output_tokens": 40})
    stream = transport.stream(make_spec(api, stream=True), vertex_settings)
    received = []
    with pytest.raises(AttemptFailed) as info:
        async for chunk in stream:
            received.append(chunk)
    assert info.value.kind == "server_error"
    assert received  # some text arrived before the cut
    usage = stream.final_usage()
    assert usage.complete is False
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.output_tokens <= 40  # what was produced, not the whole answer
    if api == "anthropic":
        assert usage.input_tokens == 999  # reported at message_start, before any text: the provider's count wins
    else:
        assert usage.input_tokens == -(-sum(len(m["content"]) for m in MSGS) // 4)


async def test_stream_closed_early_by_the_consumer(transport, vertex_stub, vertex_settings):
    vertex_stub.script("gemini", text="x" * 400, stream_chunks=10, chunk_delay_s=0.02)
    stream = transport.stream(make_spec("gemini", stream=True), vertex_settings)
    first = await stream.__anext__()
    assert first.choices[0].delta.content == "x" * 40
    await stream.aclose()
    usage = stream.final_usage()
    assert usage.complete is False and usage.output_tokens == 10 and usage.input_tokens > 0


async def test_bad_credentials_are_an_auth_failure(transport, vertex_stub, vertex_settings, tmp_path):
    from dataclasses import replace

    from router.testing.credentials import write_service_account

    # A token endpoint that refuses: google-auth fails before any model call.
    bad = replace(vertex_settings, vertex_credentials=str(write_service_account(tmp_path / "sa.json", vertex_stub.url + "/no-such-token-endpoint")))
    with pytest.raises(AttemptFailed) as info:
        await transport.send(make_spec("gemini"), bad)
    assert info.value.kind in ("auth", "server_error", "bad_request")
    assert vertex_stub.model_requests() == []


# ---------------------------------------------------------------------- the stub itself
async def test_token_grant_is_a_signed_jwt_for_the_service_account(transport, vertex_stub, tmp_path):
    import json

    from router.testing.vertex_stub import vertex_settings_for

    settings = vertex_settings_for(vertex_stub, tmp_path, project="another-project")
    await transport.send(make_spec("gemini"), settings)
    grants = [r for r in vertex_stub.requests if r.api == "token"]
    assert len(grants) == 1
    claims = grants[0].body["claims"]
    account = json.loads(open(settings.vertex_credentials, encoding="utf-8").read())
    assert claims["iss"] == account["client_email"] and "cloud-platform" in claims.get("scope", "")
    assert vertex_stub.model_requests()[0].project == "another-project"


async def test_concurrent_calls(transport, vertex_stub, vertex_settings):
    vertex_stub.script("gemini", latency_s=0.3)
    vertex_stub.script("claude", latency_s=0.3)
    started = time.perf_counter()
    results = await asyncio.gather(*(transport.send(make_spec("gemini" if i % 2 else "anthropic"), vertex_settings) for i in range(20)))
    assert len(results) == 20 and all(r.usage.complete for r in results)
    assert time.perf_counter() - started < 2.5  # served concurrently, not 20 x 0.3 s


async def test_litellm_mock_response_passes_through(transport):
    """``mock_response`` (litellm's own offline mock, used by the overhead benchmark's baseline) is a param."""
    from router._transport import VertexSettings

    result = await transport.send(make_spec("gemini", params={"mock_response": "mocked"}), VertexSettings(vertex_project="p"))
    assert result.response.choices[0].message.content == "mocked"
    assert result.usage.complete and result.usage.input_tokens > 0
