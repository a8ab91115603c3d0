"""The Count Tokens call itself (router._transport.count_tokens): request bodies, and every failure is a
CountFailed (a count is only ever what Vertex answered, never an estimate)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from router._transport import CallSpec, CountFailed, LiteLLMTransport
from router._transport.count_tokens import VertexCounter, anthropic_count_body, gemini_count_body

PNG = "data:image/png;base64,iVBORw0KGgo="
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG}}]},
    {"role": "assistant", "content": "A logo."},
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "gs://bucket/photo.jpg"}}]},
]


def test_gemini_body_keeps_system_roles_and_media():
    body = gemini_count_body(MESSAGES)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert body["contents"][2]["parts"][0] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://bucket/photo.jpg"}}


def test_anthropic_body_has_the_model_without_version_and_system_text():
    body = anthropic_count_body("claude-sonnet-4-5@20250929", MESSAGES)
    assert body["model"] == "claude-sonnet-4-5" and body["system"] == "Be brief."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    pdf = anthropic_count_body("claude-haiku-4-5@20251001", [{"role": "user", "content": [{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0="}}]}])
    assert pdf["messages"][0]["content"][0]["type"] == "document"


def spec(api: str = "gemini", model: str = "gemini-2.5-flash") -> CallSpec:
    return CallSpec(model_id=model, api=api, vertex_model=model, location="us-central1", messages=[{"role": "user", "content": "hello there"}])


@pytest.mark.litellm
async def test_the_transport_counts_through_the_stub(vertex_stub, vertex_settings):
    vertex_stub.script_count("gemini-2.5-flash", total_tokens=42, billable_characters=10)
    counted = await LiteLLMTransport().count_tokens(spec(), vertex_settings)
    assert (counted.tokens, counted.billable_characters, counted.model) == (42, 10, "gemini-2.5-flash")
    (request,) = vertex_stub.count_requests()
    assert request.project == "router-stub-project" and request.location == "us-central1"


@pytest.mark.litellm
@pytest.mark.parametrize(("script", "kind"), [({"error": "server_error"}, "server_error"), ({"error": "rate_limited"}, "rate_limited"), ({"error": "bad_request"}, "bad_request"), ({"error": "auth"}, "auth"), ({"latency_s": 2.0}, "timeout")])
async def test_failures_are_count_failed(vertex_stub, vertex_settings, script, kind):
    counter = VertexCounter(timeout_s=10)
    await counter.count("gemini", "gemini-2.0-flash-001", "us-central1", spec().messages, vertex_settings)  # token and connection warm
    vertex_stub.script_count("gemini-2.5-flash", **script)
    with pytest.raises(CountFailed) as exc:
        await counter.count("gemini", "gemini-2.5-flash", "us-central1", spec().messages, vertex_settings, timeout_s=0.5 if "latency_s" in script else None)
    assert exc.value.kind == kind
    await counter.aclose()


async def test_partner_models_are_unsupported(vertex_settings):
    with pytest.raises(CountFailed) as exc:
        await VertexCounter().count("openai_maas", "deepseek-ai/deepseek-v3.1-maas", "global", spec().messages, vertex_settings)
    assert exc.value.kind == "unsupported"


@pytest.mark.litellm
async def test_an_answer_without_a_total_is_a_failure_not_an_estimate(vertex_stub, vertex_settings):
    counter = VertexCounter()
    counter._clients[asyncio.get_running_loop()] = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={"tokenizer_type": "local"})))
    with pytest.raises(CountFailed) as exc:
        await counter.count("gemini", "gemini-2.5-flash", "us-central1", spec().messages, vertex_settings)
    assert exc.value.kind == "server_error" and "no token total" in str(exc.value)
    await counter.aclose()
